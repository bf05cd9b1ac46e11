//! The raw ioctls the benchmark's workload issues, timed in a loop.
#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, BorrowedFd};

/// Issues `ioctl(fd, request, arg)` and returns its raw result (errors are expected and
/// ignored: several measured calls end in ENOTTY by design).
pub fn ioctl(fd: BorrowedFd<'_>, request: u32, arg: *mut u8) -> libc::c_long {
    // SAFETY: every request the benchmark issues either takes no argument or gets a pointer to
    // a live buffer at least as large as its `_IOC_SIZE`.
    unsafe {
        libc::syscall(
            libc::SYS_ioctl,
            fd.as_raw_fd(),
            request as libc::c_ulong,
            arg,
        )
    }
}

/// `fork` from the scenario process, which is single-threaded at that point.
pub fn fork() -> nix::unistd::ForkResult {
    // SAFETY: the scenario process forks before it starts any thread, so the child's copy of
    // every lock and allocator state is consistent.
    unsafe { nix::unistd::fork() }.expect("fork the workload")
}
