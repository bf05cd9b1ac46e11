//! The ioctl gate's supervisor for a created container: a process of its own that outlives
//! `create`, serves the first process's listener and every exec'd process's, and answers for
//! the sandbox's counts.
//!
//! ```text
//! create: bind SOCKET, fork ──► service (new session, stdio on /dev/null, log in LOG)
//!   workload (after start) ──── listener over the socketpair ──► served
//!   exec'd process ─────────── connect SOCKET, listener ───────► served, same sandbox
//!   accelgate stats ─────────── connect SOCKET, "stats" ───────► the counts as JSON
//! ```
//!
//! It ends once the first process's listener has been served to its end (or never came) and
//! no exec'd process's listener is served any more: every process of the container is gone
//! then (they all die with its pid 1). It leaves its last counts in `STATS` beside the socket.
//! If it dies first, the container's accelerator ioctls fail with ENOSYS (fail closed).

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::unistd::{ForkResult, Pid};

use super::BootError;
use super::gate::{WorkloadGate, prepare};
use super::launch::FORWARDED_SIGNALS;
use super::sys::{fork_process, ignore_signal};
use crate::supervisor::filter::{decode, encode};
use crate::supervisor::handoff::{check_kernel, receive_listener, recv_with_fds};
use crate::supervisor::stats::Stats;
use crate::supervisor::{GateConfig, Sandbox, Supervisor};

/// The counts a finished service leaves beside its socket.
pub const GATE_STATS_FILE: &str = "gate-stats.json";
/// Where a service logs, beside its socket.
pub const GATE_LOG_FILE: &str = "gate.log";
/// The sandbox's filter, beside the socket: what a process joining the container installs (the
/// same program as the first process's, whatever tables the sandbox was built with).
pub const GATE_FILTER_FILE: &str = "gate.filter";
/// The request for the counts.
const STATS_REQUEST: &[u8] = b"stats";
/// How long a client may take to say what it wants once connected.
const CLIENT_PATIENCE: Duration = Duration::from_secs(5);

/// A running service, as `create` records it.
#[derive(Debug, Clone, Copy)]
pub struct GateService {
    /// Its process.
    pub pid: Pid,
}

fn service_error(what: &str, e: &dyn std::fmt::Display) -> BootError {
    BootError::Launch(format!("ioctl gate service: {what}: {e}"))
}

impl GateService {
    /// Binds `socket` (mode 0600) and forks the service; returns it with the first process's
    /// half of the hand-off. The caller must be single-threaded.
    pub fn start(config: GateConfig, socket: &Path) -> Result<(Self, WorkloadGate), BootError> {
        let (program, ours, theirs) = prepare(&config)?;
        let filter = socket.with_file_name(GATE_FILTER_FILE);
        std::fs::write(&filter, encode(&program))
            .map_err(|e| service_error(&format!("write {}", filter.display()), &e))?;
        let listener = UnixListener::bind(socket)
            .map_err(|e| service_error(&format!("bind {}", socket.display()), &e))?;
        std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| service_error(&format!("chmod {}", socket.display()), &e))?;
        let dir = socket.parent().map(Path::to_path_buf).unwrap_or_default();
        match fork_process().map_err(|e| service_error("fork", &e))? {
            ForkResult::Child => {
                let status = match detach(&dir, &[ours.as_raw_fd(), listener.as_raw_fd()]) {
                    Ok(()) => serve_container(ours, &listener, config, socket),
                    Err(_) => 1,
                };
                std::process::exit(status);
            }
            ForkResult::Parent { child } => {
                Ok((Self { pid: child }, WorkloadGate::new(program, theirs)))
            }
        }
    }
}

/// The gate of a process joining a container the service at `socket` serves: the filter of
/// that sandbox (kept beside the socket), its listener to go to the service.
pub fn join_gate(socket: &Path) -> Result<WorkloadGate, BootError> {
    check_kernel().map_err(|e| service_error("seccomp", &e))?;
    let filter = socket.with_file_name(GATE_FILTER_FILE);
    let bytes = std::fs::read(&filter)
        .map_err(|e| service_error(&format!("read {}", filter.display()), &e))?;
    let program = decode(&bytes)
        .ok_or_else(|| service_error(&filter.display().to_string(), &"not a filter program"))?;
    let stream = UnixStream::connect(socket)
        .map_err(|e| service_error(&format!("connect to {}", socket.display()), &e))?;
    Ok(WorkloadGate::new(program, stream.into()))
}

/// The counts of the sandbox the service at `socket` serves; once it has ended, the ones it
/// left beside the socket.
pub fn gate_stats(socket: &Path) -> std::io::Result<Stats> {
    let text = match UnixStream::connect(socket) {
        Ok(mut stream) => {
            stream.set_read_timeout(Some(CLIENT_PATIENCE))?;
            stream.write_all(STATS_REQUEST)?;
            stream.shutdown(std::net::Shutdown::Write)?;
            let mut text = String::new();
            stream.read_to_string(&mut text)?;
            text
        }
        Err(_) => std::fs::read_to_string(socket.with_file_name(GATE_STATS_FILE)).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("no gate service at {} and no counts left", socket.display()),
            )
        })?,
    };
    serde_json::from_str(&text).map_err(std::io::Error::other)
}

/// In the service: a session of its own (the engine's terminal signals are not its business),
/// stdio on `/dev/null` and its log in `dir`, and no descriptor but `keep` (the caller's lock
/// on the state directory, its pipes and sockets stay with the caller).
fn detach(dir: &Path, keep: &[RawFd]) -> Result<(), ()> {
    nix::unistd::setsid().map_err(drop)?;
    for forwarded in FORWARDED_SIGNALS {
        let _ = ignore_signal(forwarded);
    }
    let null = std::fs::File::options()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(drop)?;
    let log = std::fs::File::options()
        .create(true)
        .append(true)
        .open(dir.join(GATE_LOG_FILE))
        .map_err(drop)?;
    nix::unistd::dup2_stdin(&null)
        .and_then(|()| nix::unistd::dup2_stdout(&null))
        .and_then(|()| nix::unistd::dup2_stderr(&log))
        .map_err(drop)?;
    drop((null, log));
    let open: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")
        .map_err(drop)?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    for fd in open {
        if fd > 2 && !keep.contains(&fd) {
            // The directory listing's own fd is gone already: EBADF is expected for it.
            let _ = nix::unistd::close(fd);
        }
    }
    // Dups, eventfds and pidfds in flight are fds: take the whole hard limit.
    if let Ok((_, hard)) =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
    {
        let _ =
            nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, hard, hard);
    }
    let _ = nix::sys::prctl::set_name(c"accelgate-gate");
    Ok(())
}

/// What the service waits for.
struct Waiting {
    /// The first process's socket, until its listener came (or never will).
    first: Option<OwnedFd>,
    /// Listeners being served.
    active: usize,
}

/// The service's loop. Returns its exit status.
fn serve_container(
    first: OwnedFd,
    listener: &UnixListener,
    config: GateConfig,
    socket: &Path,
) -> i32 {
    let supervisor = Supervisor::new(config.gate);
    let sandbox = Arc::new(Sandbox::new(config.sandbox));
    let threads = config.threads;
    // Each listener's waiter writes a byte here when the listener's processes are all gone.
    let Ok((ended_read, ended_write)) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) else {
        return 1;
    };
    let ended_write = Arc::new(ended_write);
    let serve = |fd: OwnedFd, waiting: &mut Waiting| match supervisor.serve(&sandbox, fd, threads) {
        Ok(serving) => {
            waiting.active += 1;
            let ended = Arc::clone(&ended_write);
            std::thread::spawn(move || {
                serving.wait();
                let _ = nix::unistd::write(ended.as_fd(), b"x");
            });
        }
        // Dropped, the listener closes: that process's routed calls fail with ENOSYS.
        Err(e) => tracing::error!(%e, "ioctl gate: cannot serve a listener"),
    };
    let mut waiting = Waiting {
        first: Some(first),
        active: 0,
    };
    while waiting.first.is_some() || waiting.active > 0 {
        let mut fds = vec![
            PollFd::new(listener.as_fd(), PollFlags::POLLIN),
            PollFd::new(ended_read.as_fd(), PollFlags::POLLIN),
        ];
        if let Some(first) = &waiting.first {
            fds.push(PollFd::new(first.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => {
                tracing::error!(%e, "ioctl gate service: poll");
                return 1;
            }
        }
        let ready: Vec<bool> = fds.iter().map(|f| f.any().unwrap_or(false)).collect();
        if ready.get(2) == Some(&true) {
            let first = waiting.first.take();
            match first.as_ref().map(|f| receive_listener(f.as_fd())) {
                Some(Ok(Some(fd))) => serve(fd, &mut waiting),
                // The first process failed before exec, or went away without a listener.
                Some(Ok(None)) | None => {}
                Some(Err(e)) => tracing::error!(%e, "ioctl gate service"),
            }
        }
        if ready[1] {
            let mut byte = [0u8; 1];
            if nix::unistd::read(&ended_read, &mut byte) == Ok(1) {
                waiting.active = waiting.active.saturating_sub(1);
            }
        }
        if ready[0] {
            if let Ok((stream, _)) = listener.accept() {
                if let Some(fd) = answer(&stream, &sandbox) {
                    serve(fd, &mut waiting);
                }
            }
        }
    }
    let json = serde_json::to_string(&sandbox.stats()).unwrap_or_default();
    let _ = std::fs::write(socket.with_file_name(GATE_STATS_FILE), json);
    let _ = std::fs::remove_file(socket);
    0
}

/// One client: a listener to serve (returned), or a request for the counts (answered).
fn answer(stream: &UnixStream, sandbox: &Sandbox) -> Option<OwnedFd> {
    let _ = stream.set_read_timeout(Some(CLIENT_PATIENCE));
    let mut buffer = [0u8; 16];
    let (read, fds) = recv_with_fds(stream.as_fd(), &mut buffer).ok()?;
    if let Some(fd) = fds.into_iter().next() {
        return Some(fd);
    }
    if &buffer[..read] == STATS_REQUEST {
        let json = serde_json::to_string(&sandbox.stats()).unwrap_or_default();
        let _ = (&*stream).write_all(json.as_bytes());
    }
    None
}
