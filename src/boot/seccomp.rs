//! The spec's own seccomp filter (`linux.seccomp`) in the workload: the runtime compiles it,
//! the workload installs it on top of the ioctl gate's filter just before exec, and hands its
//! listener (`SCMP_ACT_NOTIFY`) to the spec's seccomp agent.
//!
//! The gate's filter is installed first. The kernel runs every filter and takes the strictest
//! action; between two `SECCOMP_RET_USER_NOTIF`s the newer filter's listener wins, so the
//! runtime refuses a profile that notifies a syscall the gate routes (it would take accelerator
//! ioctls from the gate). Nothing the profile does can then stop the gate from seeing them.

use std::io::{IoSlice, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};

use super::sys::install_seccomp_filter;
use crate::supervisor::abi::{SECCOMP_FILTER_FLAG_NEW_LISTENER, SockFilter};

/// The spec's profile, compiled into what the workload installs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecFilter {
    /// The classic BPF program.
    pub program: Vec<SockFilter>,
    /// `seccomp(2)` filter flags from `linux.seccomp.flags` (`NEW_LISTENER` is added when the
    /// profile has an agent).
    pub flags: u32,
    /// `linux.seccomp.listenerPath`, for a profile with `SCMP_ACT_NOTIFY`: the agent's socket,
    /// which gets the container process state and the listener.
    pub agent: Option<PathBuf>,
}

/// In the workload: the filter and, when it has an agent, the connection to it (made by the
/// launcher, as the agent's path is out of reach after `pivot_root`) and the container process
/// state that goes with the listener.
pub(super) struct Installation<'a> {
    pub(super) filter: &'a SpecFilter,
    pub(super) agent: Option<(UnixStream, String)>,
}

impl Installation<'_> {
    /// Installs the filter; hands the listener and the state to the agent in one message (the
    /// fd rides on its first bytes) and closes the connection, as the runtime spec asks.
    pub(super) fn install(self) -> Result<(), String> {
        let flags = match self.agent {
            Some(_) => self.filter.flags | SECCOMP_FILTER_FLAG_NEW_LISTENER,
            None => self.filter.flags,
        };
        let listener = install_seccomp_filter(&self.filter.program, flags)
            .map_err(|e| format!("install the linux.seccomp filter: {e}"))?;
        let (Some(listener), Some((mut socket, message))) = (listener, self.agent) else {
            return Ok(());
        };
        send_with_fd(&mut socket, message.as_bytes(), listener.as_fd()).map_err(|e| {
            let path = self
                .filter
                .agent
                .as_deref()
                .unwrap_or(std::path::Path::new(""));
            format!(
                "send the seccomp listener to linux.seccomp.listenerPath {}: {e}",
                path.display()
            )
        })
    }
}

/// Writes `message` to `socket`, `fd` with its first bytes.
fn send_with_fd(
    socket: &mut UnixStream,
    message: &[u8],
    fd: BorrowedFd<'_>,
) -> std::io::Result<()> {
    let fds = [fd.as_raw_fd()];
    let sent = sendmsg::<()>(
        socket.as_raw_fd(),
        &[IoSlice::new(message)],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::MSG_NOSIGNAL,
        None,
    )?;
    socket.write_all(&message[sent..])
}
