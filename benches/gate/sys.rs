//! The raw ioctls the benchmark's workload issues, timed in a loop.
#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, BorrowedFd};

use accelgate::supervisor::abi::{
    SECCOMP_IOCTL_NOTIF_RECV, SECCOMP_IOCTL_NOTIF_SEND, SECCOMP_IOCTL_NOTIF_SET_FLAGS,
    SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP, SECCOMP_USER_NOTIF_FLAG_CONTINUE, SeccompNotif,
    SeccompNotifResp,
};

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

/// The floor: answers every notification on `listener` with CONTINUE from a thread blocked in
/// `NOTIF_RECV`, with nothing in between. Returns when the listener fails.
pub fn continue_everything(listener: BorrowedFd<'_>, sync_wake_up: bool) {
    let fd = listener.as_raw_fd();
    if sync_wake_up {
        // SAFETY: SET_FLAGS takes the flags by value; no memory is passed.
        let set = unsafe {
            libc::ioctl(
                fd,
                SECCOMP_IOCTL_NOTIF_SET_FLAGS as libc::c_ulong,
                SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP as libc::c_ulong,
            )
        };
        assert_eq!(set, 0, "SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (Linux 6.6)");
    }
    loop {
        let mut notif = SeccompNotif::default();
        // SAFETY: RECV writes one zeroed `struct seccomp_notif`, which `notif` is.
        if unsafe { libc::ioctl(fd, SECCOMP_IOCTL_NOTIF_RECV as libc::c_ulong, &mut notif) } < 0 {
            return;
        }
        let mut response = SeccompNotifResp {
            id: notif.id,
            val: 0,
            error: 0,
            flags: SECCOMP_USER_NOTIF_FLAG_CONTINUE,
        };
        // SAFETY: SEND reads one `struct seccomp_notif_resp`, which `response` is.
        unsafe { libc::ioctl(fd, SECCOMP_IOCTL_NOTIF_SEND as libc::c_ulong, &mut response) };
    }
}

/// Installs `program` as a plain filter (no listener), the way any seccomp user does.
pub fn install_plain_filter(
    program: &[accelgate::supervisor::abi::SockFilter],
) -> Result<(), String> {
    let len = u16::try_from(program.len()).map_err(|_| "a filter this long".to_owned())?;
    let fprog = libc::sock_fprog {
        len,
        filter: program.as_ptr().cast_mut().cast(),
    };
    // SAFETY: `fprog` points at `program`, which outlives the call; the kernel copies it.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0,
            &fprog as *const libc::sock_fprog,
        )
    };
    if ret == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error().to_string())
    }
}
