//! One OCI seccomp agent connection: the runtime sends the container process state and the
//! listener (`SCM_RIGHTS`). The spec says it then closes the connection, but runc 1.1 leaves
//! its end open (it closes a dup of it), so the message ends where its JSON does: reads go on
//! until the text parses, the stream ends, or it cannot be JSON any more.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use super::DaemonError;
use super::state::ProcessState;
use crate::supervisor::handoff::recv_with_fds;

/// The most a state may take: annotations can be long, but not this long.
const MAX_MESSAGE: usize = 1 << 20;

/// How long a runtime may take to send its message once connected.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// What a runtime handed over.
#[derive(Debug)]
pub struct Hello {
    /// The container process state.
    pub state: ProcessState,
    /// The seccomp listener.
    pub listener: OwnedFd,
}

/// Reads a connection to its end; fails on an empty or unparsable state, or a missing fd.
pub fn receive(stream: &UnixStream) -> Result<Hello, DaemonError> {
    let io = |e: std::io::Error| DaemonError::Agent(format!("read: {e}"));
    stream.set_read_timeout(Some(READ_TIMEOUT)).map_err(io)?;
    let mut message = Vec::new();
    let mut fds = Vec::new();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let (read, received) = recv_with_fds(stream.as_fd(), &mut buffer).map_err(io)?;
        fds.extend(received);
        if read == 0 {
            break;
        }
        message.extend_from_slice(&buffer[..read]);
        if !incomplete(&message) {
            break;
        }
        if message.len() > MAX_MESSAGE {
            return Err(DaemonError::Agent(format!(
                "message longer than {MAX_MESSAGE} bytes"
            )));
        }
    }
    let state = ProcessState::parse(&message)?;
    let index = state.seccomp_fd_index(fds.len()).ok_or_else(|| {
        DaemonError::Agent(format!(
            "container {}: no seccomp fd (names {:?}, {} fds received)",
            state.state.id,
            state.fds,
            fds.len()
        ))
    })?;
    let listener = fds.swap_remove(index);
    if !is_seccomp_listener(&listener) {
        return Err(DaemonError::Agent(format!(
            "container {}: the fd sent is not a seccomp listener",
            state.state.id
        )));
    }
    Ok(Hello { state, listener })
}

/// Whether `message` is the start of a JSON value that more bytes could complete.
fn incomplete(message: &[u8]) -> bool {
    let mut values =
        serde_json::Deserializer::from_slice(message).into_iter::<serde::de::IgnoredAny>();
    matches!(values.next(), Some(Err(e)) if e.is_eof())
}

/// Whether `fd` is a seccomp notification fd, as `/proc/self/fd` names it.
fn is_seccomp_listener(fd: &OwnedFd) -> bool {
    use std::os::fd::AsRawFd;
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .is_ok_and(|target| target.as_os_str() == "anon_inode:seccomp notify")
}
