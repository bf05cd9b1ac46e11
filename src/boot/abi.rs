//! Kernel ABI the launcher needs that `libc` does not give in a portable form.

/// `struct clone_args` (`linux/sched.h`, `CLONE_ARGS_SIZE_VER2`): `clone3`'s arguments.
#[repr(C)]
#[derive(Debug, Default)]
pub struct CloneArgs {
    /// `CLONE_*` flags.
    pub flags: u64,
    /// Where to store a pidfd (`CLONE_PIDFD`).
    pub pidfd: u64,
    /// Where to store the child's tid in the child (`CLONE_CHILD_SETTID`).
    pub child_tid: u64,
    /// Where to store the child's tid in the parent (`CLONE_PARENT_SETTID`).
    pub parent_tid: u64,
    /// The signal the parent gets when the child exits.
    pub exit_signal: u64,
    /// The child's stack (0: the parent's, copied, as with `fork`).
    pub stack: u64,
    /// Its size.
    pub stack_size: u64,
    /// `CLONE_SETTLS`.
    pub tls: u64,
    /// Pids to take in each pid namespace.
    pub set_tid: u64,
    /// Their count.
    pub set_tid_size: u64,
    /// A cgroup2 directory's fd (`CLONE_INTO_CGROUP`).
    pub cgroup: u64,
}

const _: () = assert!(size_of::<CloneArgs>() == 88);

/// `CLONE_INTO_CGROUP` (Linux 5.7): the child starts in the cgroup2 cgroup `cgroup` names.
pub const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
