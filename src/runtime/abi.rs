//! Kernel constants the runtime needs that `libc` does not name.

/// `SECCOMP_FILTER_FLAG_LOG` (`linux/seccomp.h`, 4.14): log every action but `ALLOW`.
pub const SECCOMP_FILTER_FLAG_LOG: u32 = 1 << 1;
/// `SECCOMP_FILTER_FLAG_SPEC_ALLOW` (4.17): keep speculative store bypass unmitigated.
pub const SECCOMP_FILTER_FLAG_SPEC_ALLOW: u32 = 1 << 2;
