//! Getting a listener from the workload to the supervisor.
//!
//! ```text
//! launcher: check_kernel, socketpair ──► supervisor process: receive_listener ─► serve
//!                                    └─► workload (before exec): install_and_send
//! ```
//!
//! The workload installs the filter itself (a filter applies to the thread that installs it and
//! what it starts later), sends the listener over the inherited socket with `SCM_RIGHTS` and
//! closes its copy, so that the supervisor holds the only one: when the supervisor dies, the
//! listener closes and every routed call fails with ENOSYS instead of passing unchecked.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;

use super::abi::{
    SECCOMP_FILTER_FLAG_NEW_LISTENER, SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
    SECCOMP_RET_USER_NOTIF, SeccompData, SeccompNotif, SeccompNotifResp, SockFilter,
};
use super::sys;

/// Why the gate cannot start on this kernel, or the hand-off failed.
#[derive(Debug, thiserror::Error)]
pub enum HandoffError {
    /// The kernel lacks a feature the gate needs.
    #[error("this kernel lacks {feature} (Linux {since} or later): {errno}")]
    Kernel {
        /// The feature, as the kernel names it.
        feature: &'static str,
        /// The first kernel release with it.
        since: &'static str,
        /// What the kernel answered.
        errno: Errno,
    },
    /// The kernel's notification structs differ from the ones compiled in.
    #[error(
        "the kernel's seccomp notification structs ({notif}, {resp}, {data} bytes) differ from accelgate's"
    )]
    Sizes {
        /// `struct seccomp_notif`.
        notif: u16,
        /// `struct seccomp_notif_resp`.
        resp: u16,
        /// `struct seccomp_data`.
        data: u16,
    },
    /// Installing the filter failed for another reason.
    #[error("install the seccomp filter: {0}")]
    Install(Errno),
    /// The socket to the supervisor failed.
    #[error("hand the seccomp listener to the supervisor: {0}")]
    Socket(Errno),
}

fn errno_of(e: &std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

/// Checks, in the launcher, what can be checked without installing a filter: user
/// notifications exist and their structs match ours.
pub fn check_kernel() -> Result<(), HandoffError> {
    sys::action_available(SECCOMP_RET_USER_NOTIF).map_err(|e| HandoffError::Kernel {
        feature: "SECCOMP_RET_USER_NOTIF",
        since: "5.0",
        errno: errno_of(&e),
    })?;
    let sizes = sys::notif_sizes().map_err(|e| HandoffError::Kernel {
        feature: "SECCOMP_GET_NOTIF_SIZES",
        since: "5.0",
        errno: errno_of(&e),
    })?;
    // The kernel may grow the structs; it never shrinks them, and reads only what it knows.
    if usize::from(sizes.seccomp_notif) < size_of::<SeccompNotif>()
        || usize::from(sizes.seccomp_notif_resp) < size_of::<SeccompNotifResp>()
        || usize::from(sizes.seccomp_data) != size_of::<SeccompData>()
    {
        return Err(HandoffError::Sizes {
            notif: sizes.seccomp_notif,
            resp: sizes.seccomp_notif_resp,
            data: sizes.seccomp_data,
        });
    }
    Ok(())
}

/// In the workload, before exec: installs `program` with a listener whose waits are killable
/// but not interruptible (a signal cannot turn a pending decision into a restarted syscall),
/// sends the listener over `socket` and closes both.
///
/// The caller must hold `CAP_SYS_ADMIN` in its user namespace or have set `no_new_privs`.
pub fn install_and_send(program: &[SockFilter], socket: OwnedFd) -> Result<(), HandoffError> {
    let flags = SECCOMP_FILTER_FLAG_NEW_LISTENER | SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;
    let listener = sys::install_filter(program, flags).map_err(|e| match errno_of(&e) {
        // check_kernel passed, so the flag is what this kernel does not know.
        Errno::EINVAL => HandoffError::Kernel {
            feature: "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
            since: "5.19",
            errno: Errno::EINVAL,
        },
        errno => HandoffError::Install(errno),
    })?;
    sys::send_fd(socket.as_fd(), listener.as_fd()).map_err(|e| HandoffError::Socket(errno_of(&e)))
}

/// In the supervisor: waits for the listener. `None` when the workload side closed the socket
/// without sending one (it failed before exec).
pub fn receive_listener(socket: BorrowedFd<'_>) -> Result<Option<OwnedFd>, HandoffError> {
    sys::recv_fd(socket).map_err(|e| HandoffError::Socket(errno_of(&e)))
}

/// One message on a unix socket and the fds that came with it, owned (unwanted ones are
/// closed when dropped): how the seccomp agent daemon takes a runtime's container state and
/// listener (`listenerPath`), which come in one message.
pub fn recv_with_fds(
    socket: BorrowedFd<'_>,
    buffer: &mut [u8],
) -> std::io::Result<(usize, Vec<OwnedFd>)> {
    sys::recv_with_fds(socket, buffer)
}
