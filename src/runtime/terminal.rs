//! `process.terminal` when no engine holds the console socket (`run`, and `exec --tty` in the
//! foreground): the caller's own terminal, proxied, as `runc run` does. The container makes its
//! pseudo-terminal as for an engine and sends the master to a socket of accelgate's; a proxy
//! process puts the caller's terminal in raw mode, copies keystrokes to the master and the
//! master's output to stdout, follows the caller's window size, and ends when the container's
//! side of the terminal is closed.
//!
//! The proxy is `accelgate` itself (a hidden subcommand) started before the launch: the
//! launcher must stay single-threaded until its clone, and the copy must run while it waits.
//! Its stdin is the listening socket; it reaches the caller's terminal as the launcher's stdin
//! (`/proc/<launcher>/fd/0`), and takes a console only from the launcher itself, which connects
//! before it clones the sandbox.

use std::io::{IoSliceMut, Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
use nix::sys::signalfd::SignalFd;
use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, recvmsg};
use rustix::termios::{
    OptionalActions, Termios, isatty, tcgetattr, tcgetpgrp, tcgetwinsize, tcsetattr, tcsetwinsize,
};

use super::RuntimeError;

/// The hidden subcommand that runs the proxy.
pub const PROXY_COMMAND: &str = "terminal-proxy";

/// How long the proxy may take to copy the last output once the container's process is gone.
const DRAIN: Duration = Duration::from_secs(2);

/// The launcher's side: the socket to hand the container as its console socket, and the proxy.
/// Dropped without [`TerminalProxy::finish`] (an error on the way), it ends the proxy.
pub struct TerminalProxy {
    proxy: Child,
    socket: PathBuf,
    _dir: tempfile::TempDir,
    /// The caller's terminal as it was, put back should the proxy not end on its own.
    saved: Option<Termios>,
}

impl TerminalProxy {
    /// Starts a proxy for the caller's terminal; `None` when stdin is not a terminal this
    /// process may use (none, or one whose foreground is another job's).
    pub fn start() -> Result<Option<Self>, RuntimeError> {
        let stdin = std::io::stdin();
        let foreground = isatty(stdin.as_fd())
            && tcgetpgrp(stdin.as_fd()).ok() == Some(rustix::process::getpgrp());
        if !foreground {
            return Ok(None);
        }
        let failed = |what: &str, source: std::io::Error| RuntimeError::Unsupported {
            field: "process.terminal".into(),
            reason: format!("proxy the caller's terminal: {what}: {source}"),
        };
        // A directory of the caller's own (mode 0700); the proxy also takes a console from the
        // launcher's pid only.
        let dir = tempfile::Builder::new()
            .prefix("accelgate-terminal-")
            .tempdir()
            .map_err(|e| failed("make a socket directory", e))?;
        let socket = dir.path().join("console.sock");
        let listener = UnixListener::bind(&socket).map_err(|e| failed("bind its socket", e))?;
        let saved = tcgetattr(stdin.as_fd()).ok();
        let proxy = Command::new("/proc/self/exe")
            .arg(PROXY_COMMAND)
            .stdin(Stdio::from(OwnedFd::from(listener)))
            .spawn()
            .map_err(|e| failed("start the proxy", e))?;
        Ok(Some(Self {
            proxy,
            socket,
            _dir: dir,
            saved,
        }))
    }

    /// The console socket the container sends its terminal's master to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Once the container's process is gone: lets the proxy copy what is left (it ends when
    /// the container's side of the terminal is closed), then ends it if it has not.
    pub fn finish(mut self) {
        let started = Instant::now();
        while matches!(self.proxy.try_wait(), Ok(None)) && started.elapsed() < DRAIN {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for TerminalProxy {
    fn drop(&mut self) {
        let ended_well = match self.proxy.try_wait() {
            Ok(Some(status)) => status.success(),
            _ => {
                let _ = self.proxy.kill();
                let _ = self.proxy.wait();
                false
            }
        };
        // A proxy that ended on its own put the terminal back itself.
        if let (false, Some(saved)) = (ended_well, self.saved.take()) {
            let _ = tcsetattr(std::io::stdin().as_fd(), OptionalActions::Now, &saved);
        }
    }
}

/// The proxy's side (the hidden subcommand): takes the master from the launcher's connection
/// on the listener that is its stdin, and copies between it and the caller's terminal until
/// the container closes its side or the launcher is gone. Returns an error message for stderr.
pub fn serve_proxy() -> Result<(), String> {
    let launcher = nix::unistd::getppid();
    // Ends with the launcher (SIGKILL'd, say), putting the terminal back on the way out.
    nix::sys::prctl::set_pdeathsig(Signal::SIGTERM)
        .map_err(|e| format!("set the parent-death signal: {e}"))?;
    if nix::unistd::getppid() != launcher {
        return Ok(());
    }
    let mut handled = SigSet::empty();
    for signal in [Signal::SIGWINCH, Signal::SIGTERM, Signal::SIGHUP] {
        handled.add(signal);
    }
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&handled), None)
        .map_err(|e| format!("block signals: {e}"))?;
    let signals = SignalFd::new(&handled).map_err(|e| format!("signalfd: {e}"))?;
    let listener = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .map(UnixListener::from)
        .map_err(|e| format!("the listening socket: {e}"))?;
    let Some(connection) = accept_from(&listener, launcher, &signals)? else {
        return Ok(());
    };
    drop(listener);
    // None: the sandbox failed before it made the terminal; the launcher says why.
    let Some(master) = receive_master(connection.as_fd())? else {
        return Ok(());
    };
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(format!("/proc/{launcher}/fd/0"))
        .map_err(|e| format!("open the caller's terminal: {e}"))?;
    let saved = tcgetattr(&tty).map_err(|e| format!("read the terminal's mode: {e}"))?;
    let mut raw = saved.clone();
    raw.make_raw();
    tcsetattr(&tty, OptionalActions::Now, &raw)
        .map_err(|e| format!("put the terminal in raw mode: {e}"))?;
    let copied = copy(&tty, master, &signals);
    let _ = tcsetattr(&tty, OptionalActions::Now, &saved);
    copied
}

/// The first connection on `listener` whose peer is `launcher` (others are dropped); None when
/// a signal ends the wait.
fn accept_from(
    listener: &UnixListener,
    launcher: nix::unistd::Pid,
    signals: &SignalFd,
) -> Result<Option<UnixStream>, String> {
    loop {
        let mut fds = [
            PollFd::new(listener.as_fd(), PollFlags::POLLIN),
            PollFd::new(signals.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(format!("poll: {e}")),
        }
        if fds[1].revents().is_some_and(|r| !r.is_empty()) {
            return Ok(None);
        }
        let (connection, _) = listener
            .accept()
            .map_err(|e| format!("accept the container's console: {e}"))?;
        let peer = rustix::net::sockopt::socket_peercred(&connection)
            .map_err(|e| format!("the console's peer: {e}"))?;
        if peer.pid.as_raw_nonzero().get() == launcher.as_raw() {
            return Ok(Some(connection));
        }
    }
}

/// The master of the container's terminal, sent over `connection` with `SCM_RIGHTS`; None
/// when the connection closes without one.
fn receive_master(connection: BorrowedFd<'_>) -> Result<Option<OwnedFd>, String> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut data = [0u8; 64];
    recvmsg(
        connection,
        &mut [IoSliceMut::new(&mut data)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )
    .map_err(|e| format!("receive the terminal: {e}"))?;
    Ok(control.drain().find_map(|message| match message {
        RecvAncillaryMessage::ScmRights(mut fds) => fds.next(),
        _ => None,
    }))
}

/// Copies keystrokes from `tty` to `master` and `master`'s output to stdout, and the window
/// size on every SIGWINCH, until the container's side is closed (the master reads EIO) or
/// SIGTERM or SIGHUP arrives. Input waits in a buffer while the master takes no more, and no
/// more is read meanwhile: output keeps flowing whatever the container does with its input.
fn copy(tty: &std::fs::File, master: OwnedFd, signals: &SignalFd) -> Result<(), String> {
    let resize = |master: BorrowedFd<'_>| {
        if let Ok(size) = tcgetwinsize(tty) {
            let _ = tcsetwinsize(master, size);
        }
    };
    resize(master.as_fd());
    fcntl(&master, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))
        .map_err(|e| format!("the terminal's master: {e}"))?;
    let mut master = std::fs::File::from(master);
    let mut stdout = std::io::stdout().lock();
    let mut buffer = [0u8; 4096];
    let mut pending: Vec<u8> = Vec::new();
    let mut keys_open = true;
    loop {
        let towards_master = if pending.is_empty() {
            PollFlags::POLLIN
        } else {
            PollFlags::POLLIN | PollFlags::POLLOUT
        };
        let mut fds = vec![
            PollFd::new(master.as_fd(), towards_master),
            PollFd::new(signals.as_fd(), PollFlags::POLLIN),
        ];
        if keys_open && pending.is_empty() {
            fds.push(PollFd::new(tty.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(format!("poll: {e}")),
        }
        let events = |fd: &PollFd<'_>| fd.revents().unwrap_or(PollFlags::empty());
        let (at_master, signalled, keys) = (
            events(&fds[0]),
            !events(&fds[1]).is_empty(),
            fds.get(2).map_or(PollFlags::empty(), events),
        );
        drop(fds);
        if at_master.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
            match master.read(&mut buffer) {
                Ok(n) if n > 0 => stdout
                    .write_all(&buffer[..n])
                    .and_then(|()| stdout.flush())
                    .map_err(|e| format!("write the output: {e}"))?,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                // EIO: no process holds the container's side any more.
                _ => return Ok(()),
            }
        }
        if at_master.contains(PollFlags::POLLOUT) {
            match master.write(&pending) {
                Ok(n) => {
                    pending.drain(..n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => return Ok(()),
            }
        }
        if signalled {
            if let Ok(Some(info)) = signals.read_signal() {
                if info.ssi_signo == Signal::SIGWINCH as u32 {
                    resize(master.as_fd());
                } else {
                    return Ok(());
                }
            }
        }
        if !keys.is_empty() {
            match (&*tty).read(&mut buffer) {
                Ok(n) if n > 0 => pending.extend_from_slice(&buffer[..n]),
                _ => keys_open = false,
            }
        }
    }
}
