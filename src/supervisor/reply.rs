//! Answers to notifications: a value or errno, CONTINUE, or a new file installed in the caller.

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;

use super::abi::{
    SECCOMP_ADDFD_FLAG_SEND, SECCOMP_USER_NOTIF_FLAG_CONTINUE, SeccompNotifAddfd, SeccompNotifResp,
};
use super::sys;

/// Answers notification `id` with a return value or an errno.
pub fn answer(listener: BorrowedFd<'_>, id: u64, result: Result<i64, Errno>) {
    let response = match result {
        Ok(val) => SeccompNotifResp {
            id,
            val,
            error: 0,
            flags: 0,
        },
        Err(e) => SeccompNotifResp {
            id,
            val: 0,
            error: -(e as i32),
            flags: 0,
        },
    };
    send(listener, response);
}

/// Sends `response`. ENOENT means the caller was interrupted or died: nothing to answer. Any
/// other failure would leave the caller waiting for good, so it is logged and the call
/// answered EIO instead.
fn send(listener: BorrowedFd<'_>, response: SeccompNotifResp) {
    let Err(e) = sys::send(listener, response) else {
        return;
    };
    if e.raw_os_error() == Some(libc::ENOENT) {
        return;
    }
    tracing::error!(%e, id = response.id, "cannot answer a seccomp notification; answering EIO");
    let fallback = SeccompNotifResp {
        id: response.id,
        val: 0,
        error: -libc::EIO,
        flags: 0,
    };
    if let Err(e) = sys::send(listener, fallback) {
        tracing::error!(%e, id = response.id, "cannot answer a seccomp notification at all");
    }
}

/// Lets notification `id`'s call run in the kernel.
pub fn continue_call(listener: BorrowedFd<'_>, id: u64) {
    let response = SeccompNotifResp {
        id,
        val: 0,
        error: 0,
        flags: SECCOMP_USER_NOTIF_FLAG_CONTINUE,
    };
    send(listener, response);
}

/// Installs `file` in the caller and answers the call with its number, atomically.
pub fn install(listener: BorrowedFd<'_>, id: u64, file: &OwnedFd, cloexec: bool) {
    let Ok(srcfd) = u32::try_from(file.as_raw_fd()) else {
        return answer(listener, id, Err(Errno::EBADF));
    };
    let request = SeccompNotifAddfd {
        id,
        flags: SECCOMP_ADDFD_FLAG_SEND,
        srcfd,
        newfd: 0,
        newfd_flags: if cloexec { libc::O_CLOEXEC as u32 } else { 0 },
    };
    if let Err(e) = sys::addfd(listener, request) {
        if e.raw_os_error() != Some(libc::ENOENT) {
            answer(
                listener,
                id,
                Err(Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))),
            );
        }
    }
}
