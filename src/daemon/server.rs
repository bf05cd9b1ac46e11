//! The daemon's main loop: accept agent connections until SIGTERM or SIGINT, serve each
//! container's listener on the gate's threads, answer the control socket, then drain.

use std::os::fd::AsFd;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::SignalFd;

use super::DaemonError;
use super::agent::{Hello, receive};
use super::containers::{ContainerInfo, Containers};
use super::control;
use super::devices::{Granted, granted, simulator};
use super::state::Metadata;
use crate::boot::{HostSnapshot, NvidiaTables, families};
use crate::nvproxy::AbiChoice;
use crate::pci::HostRoot;
use crate::supervisor::{Gate, Mode, Sandbox, SandboxConfig, Supervisor, Threads};
use crate::vfs::DeviceRegistry;

/// How the daemon runs.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// The OCI seccomp agent socket (`listenerPath`).
    pub socket: PathBuf,
    /// The control socket (`ps`, `stats`).
    pub control: PathBuf,
    /// The host whose accelerators are served.
    pub root: HostRoot,
    /// Serve the host's TPUs with simulators (a fixture host).
    pub simulate: bool,
    /// The policy for containers whose profile does not name one.
    pub policy: Mode,
    /// How long SIGTERM waits for served containers to end before the daemon exits.
    pub drain: Duration,
    /// Which NVIDIA driver ABI to serve the host's GPUs with.
    pub nvidia_abi: AbiChoice,
}

/// What every connection thread shares.
struct Shared {
    config: DaemonConfig,
    host: HostSnapshot,
    registry: DeviceRegistry,
    supervisor: Supervisor,
    containers: Containers,
}

/// Runs the daemon until SIGTERM or SIGINT, then drains: stops accepting, waits up to
/// `config.drain` for the containers it serves to end, and exits. Containers still running
/// then fail closed: their routed calls get ENOSYS from the kernel once the listeners close.
pub fn run(config: DaemonConfig) -> Result<(), DaemonError> {
    // Before any thread starts, so that every thread inherits the mask and the signals wait
    // in the signalfd.
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGTERM);
    signals.add(Signal::SIGINT);
    signals.thread_block().map_err(DaemonError::Signals)?;
    let signalfd = SignalFd::new(&signals).map_err(DaemonError::Signals)?;
    raise_fd_limit();

    let host = HostSnapshot::read(&config.root).map_err(|e| DaemonError::Host(Box::new(e)))?;
    let registry = host.discovery.registry().map_err(DaemonError::Registry)?;
    let nvidia = NvidiaTables::for_host(&host.discovery, host.fresh_sysfs, config.nvidia_abi, &[])
        .map_err(|e| DaemonError::Host(Box::new(e)))?;
    let gate = Gate::new(families(nvidia), registry.clone()).map_err(DaemonError::Families)?;
    let supervisor = Supervisor::new(gate);
    let agent = bind(&config.socket)?;
    let control_socket = bind(&config.control)?;
    let shared = Arc::new(Shared {
        config,
        host,
        registry,
        supervisor,
        containers: Containers::default(),
    });
    tracing::info!(
        socket = %shared.config.socket.display(),
        control = %shared.config.control.display(),
        simulate = shared.config.simulate,
        policy = %shared.config.policy,
        tpus = shared.host.discovery.tpus.len(),
        "accelgate daemon listening"
    );
    let served = Arc::clone(&shared);
    std::thread::Builder::new()
        .name("accelgate-control".into())
        .spawn(move || {
            for stream in control_socket.incoming().flatten() {
                control::answer(stream, &served.containers);
            }
        })
        .map_err(|e| socket_error(&shared.config.control, "start its thread", e))?;

    loop {
        let mut fds = [
            PollFd::new(agent.as_fd(), PollFlags::POLLIN),
            PollFd::new(signalfd.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(socket_error(&shared.config.socket, "poll", e.into())),
        }
        if fds[1].any().unwrap_or(false) {
            let signal = signalfd.read_signal().ok().flatten().map(|s| s.ssi_signo);
            tracing::info!(?signal, "draining");
            break;
        }
        match agent.accept() {
            Ok((stream, _)) => {
                let shared = Arc::clone(&shared);
                let spawned = std::thread::Builder::new()
                    .name("accelgate-agent".into())
                    .spawn(move || connection(&shared, &stream));
                if let Err(e) = spawned {
                    tracing::error!(%e, "cannot start a thread for an agent connection");
                }
            }
            Err(e) => tracing::warn!(%e, "accept an agent connection"),
        }
    }
    drop(agent);
    let _ = std::fs::remove_file(&shared.config.socket);
    let deadline = Instant::now() + shared.config.drain;
    while shared.containers.listeners() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let left = shared.containers.listeners();
    if left > 0 {
        tracing::warn!(
            listeners = left,
            "exiting with containers still running: their accelerator calls fail with ENOSYS from now on"
        );
    }
    let _ = std::fs::remove_file(&shared.config.control);
    Ok(())
}

fn socket_error(path: &Path, what: &'static str, source: std::io::Error) -> DaemonError {
    DaemonError::Socket {
        path: path.to_path_buf(),
        what,
        source,
    }
}

/// Binds a unix socket at `path`, for root only. A stale socket file (nobody answers on it)
/// is replaced; a live one, or any other file, is an error.
fn bind(path: &Path) -> Result<UnixListener, DaemonError> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        let in_use = UnixStream::connect(path).is_ok();
        if !meta.file_type().is_socket() || in_use {
            return Err(socket_error(
                path,
                "bind",
                std::io::Error::from(std::io::ErrorKind::AddrInUse),
            ));
        }
        std::fs::remove_file(path).map_err(|e| socket_error(path, "remove the stale socket", e))?;
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| socket_error(path, "create its directory", e))?;
    }
    let listener = UnixListener::bind(path).map_err(|e| socket_error(path, "bind", e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| socket_error(path, "restrict to root", e))?;
    Ok(listener)
}

/// Dups, eventfds and pidfds in flight are fds, for every container: take the hard limit.
fn raise_fd_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

/// Serves one agent connection. Anything wrong with it is logged and the connection closed;
/// a listener that cannot be served is closed too, so its container's routed calls fail with
/// ENOSYS rather than pass.
fn connection(shared: &Shared, stream: &UnixStream) {
    let Hello { state, listener } = match receive(stream) {
        Ok(hello) => hello,
        Err(e) => {
            tracing::warn!("{}", crate::pci::error_chain(&e));
            return;
        }
    };
    let container = &state.state;
    let id = container.id.clone();
    let config = &shared.config;
    let metadata = Metadata::parse(&state.metadata);
    if let Some(metadata) = metadata.filter(|m| m.simulate != config.simulate) {
        tracing::error!(
            container = %id,
            "refused: its profile was made for simulate={} and this daemon runs with simulate={}; its accelerator calls fail with ENOSYS",
            metadata.simulate,
            config.simulate
        );
        return;
    }
    let policy = metadata.map_or(config.policy, |m| m.policy);
    let granted = match granted(container, &shared.host, &shared.registry, config.simulate) {
        Ok(granted) => Some(granted),
        Err(e) if config.simulate => {
            tracing::error!(
                "refused: {}; its accelerator calls fail with ENOSYS",
                crate::pci::error_chain(&e)
            );
            return;
        }
        // The gate classifies files by device number: without the bundle it still serves.
        Err(e) => {
            tracing::warn!("{}", crate::pci::error_chain(&e));
            None
        }
    };
    let sandbox = shared.containers.attach(&id, || {
        let Granted { tpus, nodes } = granted.clone().unwrap_or_default();
        let simulator = granted
            .as_ref()
            .filter(|_| config.simulate)
            .map(|g| simulator(g, &shared.host));
        (
            ContainerInfo {
                id: id.clone(),
                bundle: container.bundle.display().to_string(),
                policy,
                simulated: config.simulate,
                tpus: granted.is_some().then_some(tpus),
                devices: nodes,
                listeners: 0,
            },
            Sandbox::new(SandboxConfig {
                name: id.clone(),
                mode: policy,
                simulator,
                granted: None,
            }),
        )
    });
    tracing::info!(container = %id, status = %container.status, pid = state.pid, %policy, "serving");
    match shared
        .supervisor
        .serve(&sandbox, listener, Threads::default())
    {
        Ok(serving) => serving.wait(),
        Err(e) => {
            tracing::error!(container = %id, %e, "cannot serve its listener; its accelerator calls fail with ENOSYS")
        }
    }
    shared.containers.detach(&id);
    tracing::info!(container = %id, "its processes are gone");
}
