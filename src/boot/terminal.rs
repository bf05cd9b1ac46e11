//! `process.terminal` with a console socket: the sandbox makes a pseudo-terminal in its own
//! devpts (after `pivot_root`, so the engine's pty is the container's), sends the master to the
//! engine's socket with `SCM_RIGHTS`, and the workload takes the slave as its controlling
//! terminal and stdio.

use std::io::IoSlice;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use nix::pty::{Winsize, openpty};
use nix::sys::socket::{ControlMessage, MsgFlags, UnixAddr, sendmsg};
use oci_spec::runtime::Process;

/// Makes the pty (window size from `process.consoleSize`), sends its master on `console` and
/// returns the slave.
pub fn open_terminal(process: &Process, console: RawFd) -> Result<OwnedFd, String> {
    let size = process.console_size().as_ref().map(|size| Winsize {
        ws_row: u16::try_from(size.height()).unwrap_or(u16::MAX),
        ws_col: u16::try_from(size.width()).unwrap_or(u16::MAX),
        ws_xpixel: 0,
        ws_ypixel: 0,
    });
    let pty = openpty(size.as_ref(), None).map_err(|e| format!("open a pseudo-terminal: {e}"))?;
    let fds = [pty.master.as_raw_fd()];
    sendmsg::<UnixAddr>(
        console,
        &[IoSlice::new(b"accelgate-console")],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .map_err(|e| format!("send the terminal to the console socket: {e}"))?;
    Ok(pty.slave)
}

/// In the workload, after `setsid`: the terminal becomes its controlling terminal (opened again
/// by name, without `O_NOCTTY`) and its stdin, stdout and stderr.
pub fn take_terminal(slave: OwnedFd) -> Result<(), String> {
    let name = nix::unistd::ttyname(&slave).map_err(|e| format!("ttyname: {e}"))?;
    let tty = nix::fcntl::open(
        &name,
        nix::fcntl::OFlag::O_RDWR,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| format!("open {}: {e}", name.display()))?;
    terminal_as_stdio(&tty)
}

/// The terminal as this process's stdin, stdout and stderr, in place of the engine's: a
/// created sandbox that kept them would hold open the pipe go-runc (containerd's shim) reads to
/// its end before `create` returns, as runc's init does not.
pub fn terminal_as_stdio(tty: &OwnedFd) -> Result<(), String> {
    nix::unistd::dup2_stdin(tty)
        .and_then(|()| nix::unistd::dup2_stdout(tty))
        .and_then(|()| nix::unistd::dup2_stderr(tty))
        .map_err(|e| format!("the terminal as stdio: {e}"))
}
