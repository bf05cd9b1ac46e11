//! `process.terminal` when no engine holds the console socket (`run`, and `exec --tty` in the
//! foreground): the caller's own terminal, proxied, as `runc run` does. The container makes its
//! pseudo-terminal as for an engine and sends the master to a socket of accelgate's; a proxy
//! process puts the caller's terminal in raw mode, copies keystrokes to the master and the
//! master's output to stdout, follows the caller's window size, and ends when the container's
//! side of the terminal is closed.
//!
//! The proxy is `accelgate` itself (a hidden subcommand) started before the launch: the
//! launcher must stay single-threaded until its clone, and the copy must run while it waits.
//! Its stdin is the listening socket; it reads keystrokes from `/dev/tty`, as runc does.

use std::io::{IoSliceMut, Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
use nix::sys::signalfd::SignalFd;
use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, recvmsg};
use rustix::termios::{OptionalActions, Termios, isatty, tcgetattr, tcgetwinsize, tcsetattr};

use super::RuntimeError;

/// The hidden subcommand that runs the proxy.
pub const PROXY_COMMAND: &str = "terminal-proxy";

/// How long the proxy may take to copy the last output once the container's process is gone.
const DRAIN: Duration = Duration::from_secs(2);

/// The launcher's side: the socket to hand the container as its console socket, and the proxy.
pub struct TerminalProxy {
    proxy: Child,
    socket: PathBuf,
    _dir: tempfile::TempDir,
    /// The caller's terminal as it was, put back however the proxy ends.
    saved: Option<Termios>,
}

impl TerminalProxy {
    /// Starts a proxy for the caller's terminal; `None` when stdin is not a terminal (there is
    /// nothing to proxy).
    pub fn start() -> Result<Option<Self>, RuntimeError> {
        let stdin = std::io::stdin();
        if !isatty(stdin.as_fd()) {
            return Ok(None);
        }
        let failed = |what: &str, source: std::io::Error| RuntimeError::Unsupported {
            field: "process.terminal".into(),
            reason: format!("proxy the caller's terminal: {what}: {source}"),
        };
        // A directory only root can enter: nobody else can connect first and hand the proxy
        // a terminal of their own.
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

    /// Once the container's process is gone: lets the proxy copy what is left, then ends it,
    /// and gives the caller's terminal back as it was.
    pub fn finish(mut self) {
        let started = Instant::now();
        while matches!(self.proxy.try_wait(), Ok(None)) && started.elapsed() < DRAIN {
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = self.proxy.kill();
        let _ = self.proxy.wait();
        if let Some(saved) = self.saved.take() {
            let _ = tcsetattr(std::io::stdin().as_fd(), OptionalActions::Now, &saved);
        }
    }
}

/// The proxy's side (the hidden subcommand): takes the master from the one connection on the
/// listener that is its stdin, and copies between it and the caller's terminal until the
/// container closes its side. Returns an error message for stderr.
pub fn serve_proxy() -> Result<(), String> {
    let listener = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .map(UnixListener::from)
        .map_err(|e| format!("the listening socket: {e}"))?;
    let (connection, _) = listener
        .accept()
        .map_err(|e| format!("accept the container's console: {e}"))?;
    drop(listener);
    // None: the sandbox failed before it made the terminal; the launcher says why.
    let Some(master) = receive_master(connection.as_fd())? else {
        return Ok(());
    };
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .map_err(|e| format!("open /dev/tty: {e}"))?;
    let saved = tcgetattr(&tty).map_err(|e| format!("read the terminal's mode: {e}"))?;
    let mut raw = saved.clone();
    raw.make_raw();
    tcsetattr(&tty, OptionalActions::Now, &raw)
        .map_err(|e| format!("put the terminal in raw mode: {e}"))?;
    let copied = copy(&tty, &master);
    let _ = tcsetattr(&tty, OptionalActions::Now, &saved);
    copied
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
/// size on every SIGWINCH, until the container's side is closed (the master reads EIO).
fn copy(tty: &std::fs::File, master: &OwnedFd) -> Result<(), String> {
    let mut winch = SigSet::empty();
    winch.add(Signal::SIGWINCH);
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&winch), None)
        .map_err(|e| format!("block SIGWINCH: {e}"))?;
    let resizes = SignalFd::new(&winch).map_err(|e| format!("signalfd: {e}"))?;
    let resize = || {
        if let Ok(size) = tcgetwinsize(tty) {
            let _ = rustix::termios::tcsetwinsize(master, size);
        }
    };
    resize();
    let mut master_file = std::fs::File::from(
        master
            .try_clone()
            .map_err(|e| format!("the terminal's master: {e}"))?,
    );
    let mut stdout = std::io::stdout().lock();
    let mut buffer = [0u8; 4096];
    let mut keys_open = true;
    loop {
        let mut fds = vec![
            PollFd::new(master.as_fd(), PollFlags::POLLIN),
            PollFd::new(resizes.as_fd(), PollFlags::POLLIN),
        ];
        if keys_open {
            fds.push(PollFd::new(tty.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(format!("poll: {e}")),
        }
        let ready = |fd: &PollFd<'_>| {
            fd.revents()
                .is_some_and(|r| r.intersects(PollFlags::POLLIN | PollFlags::POLLHUP))
        };
        let (output, resized, keys) = (
            ready(&fds[0]),
            ready(&fds[1]),
            fds.get(2).is_some_and(ready),
        );
        drop(fds);
        if output {
            match master_file.read(&mut buffer) {
                // EIO: no process holds the container's side any more.
                Ok(0) | Err(_) => return Ok(()),
                Ok(n) => {
                    stdout
                        .write_all(&buffer[..n])
                        .and_then(|()| stdout.flush())
                        .map_err(|e| format!("write the output: {e}"))?;
                }
            }
        }
        if resized {
            let _ = resizes.read_signal();
            resize();
        }
        if keys {
            match (&*tty).read(&mut buffer) {
                Ok(0) | Err(_) => keys_open = false,
                Ok(n) => master_file
                    .write_all(&buffer[..n])
                    .map_err(|e| format!("pass the input on: {e}"))?,
            }
        }
    }
}
