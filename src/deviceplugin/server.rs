//! The plugin's life: serve each resource on its socket, then register it; poll the host and
//! the kubelet's socket; serve and register again after a kubelet restart; on SIGTERM or
//! SIGINT stop serving and remove the sockets.

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UnixListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::transport::Server;

use super::DevicePluginError;
use super::api::device_plugin_server::DevicePluginServer;
use super::monitor::Monitor;
use super::registration::{KUBELET_SOCKET, SocketIdentity, endpoint, register, socket_identity};
use super::service::PluginService;
use crate::cdi::Kind;

/// The kubelet's device plugin directory.
pub const DEFAULT_KUBELET_DIR: &str = "/var/lib/kubelet/device-plugins";

/// How long a stopping server may take to close its connections before it is dropped.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// Which resources to serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resources {
    /// One kind, even while the host has none of it (it is served once it appears).
    Only(Kind),
    /// Every kind the host has at start.
    All,
}

/// How the plugin runs.
#[derive(Debug, Clone)]
pub struct PluginConfig {
    /// The kubelet's device plugin directory: `kubelet.sock` and the plugin's sockets.
    pub kubelet_dir: PathBuf,
    /// The host root (a fixture directory); the running host when `None`.
    pub root: Option<PathBuf>,
    /// What to serve.
    pub resources: Resources,
    /// Where to write CDI specs, when `Allocate` answers with CDI device names.
    pub cdi_dir: Option<PathBuf>,
    /// How often the host and `kubelet.sock` are looked at.
    pub poll_interval: Duration,
}

/// Runs the plugin until SIGTERM or SIGINT.
pub fn run(config: PluginConfig) -> Result<(), DevicePluginError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("accelgate-device-plugin")
        .enable_all()
        .build()
        .map_err(|source| DevicePluginError::Runtime {
            what: "async runtime",
            source,
        })?;
    runtime.block_on(serve(config))
}

async fn serve(config: PluginConfig) -> Result<(), DevicePluginError> {
    let signals = |kind| {
        signal(kind).map_err(|source| DevicePluginError::Runtime {
            what: "signal handlers",
            source,
        })
    };
    let mut terminate = signals(SignalKind::terminate())?;
    let mut interrupt = signals(SignalKind::interrupt())?;
    let monitors = start_monitors(&config)?;
    let kubelet = config.kubelet_dir.join(KUBELET_SOCKET);
    let mut servers = start_servers(&monitors, &config)?;
    // The `kubelet.sock` the plugin last registered with.
    let mut registered: Option<SocketIdentity> = None;
    let mut ticks = tokio::time::interval(config.poll_interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
            _ = ticks.tick() => {}
        }
        for monitor in &monitors {
            let monitor = Arc::clone(monitor);
            tokio::task::spawn_blocking(move || monitor.refresh())
                .await
                .map_err(DevicePluginError::Task)?;
        }
        if let Some(lost) = servers.iter().find(|s| !s.socket_intact()) {
            tracing::warn!(socket = %lost.socket.display(), "the plugin's socket is gone (a kubelet restart removes it); serving anew");
            servers = restart_servers(servers, &monitors, &config).await?;
            registered = None;
        }
        let Some(now) = socket_identity(&kubelet) else {
            continue;
        };
        if registered == Some(now) {
            continue;
        }
        if registered.is_some() {
            tracing::info!(socket = %kubelet.display(), "the kubelet restarted; serving and registering anew");
            servers = restart_servers(servers, &monitors, &config).await?;
            registered = None;
        }
        match register_all(&kubelet, &monitors).await {
            Ok(()) => registered = Some(now),
            Err(e) => tracing::warn!(
                error = %crate::pci::error_chain(&e),
                "registration failed; trying again in {:?}",
                config.poll_interval
            ),
        }
    }
    tracing::info!("stopping");
    for server in servers {
        server.stop().await;
    }
    Ok(())
}

fn start_monitors(config: &PluginConfig) -> Result<Vec<Arc<Monitor>>, DevicePluginError> {
    let kinds: Vec<Kind> = match config.resources {
        Resources::Only(kind) => vec![kind],
        Resources::All => Kind::ALL.to_vec(),
    };
    let mut monitors = Vec::new();
    for kind in kinds {
        let monitor = Monitor::start(kind, config.root.clone()).map_err(DevicePluginError::Host)?;
        let found = monitor.inventory().devices().len();
        if config.resources == Resources::All && found == 0 {
            tracing::info!(resource = kind.name(), "no devices on the host; not served");
            continue;
        }
        tracing::info!(resource = kind.name(), devices = found, "serving");
        monitors.push(Arc::new(monitor));
    }
    if monitors.is_empty() {
        return Err(DevicePluginError::NothingToServe {
            root: config.root.clone().unwrap_or_else(|| PathBuf::from("/")),
        });
    }
    Ok(monitors)
}

async fn register_all(kubelet: &Path, monitors: &[Arc<Monitor>]) -> Result<(), DevicePluginError> {
    for monitor in monitors {
        register(kubelet, monitor.kind()).await?;
    }
    Ok(())
}

/// One resource's gRPC server on its socket.
struct RunningServer {
    socket: PathBuf,
    identity: Option<SocketIdentity>,
    stop: watch::Sender<()>,
    task: JoinHandle<Result<(), tonic::transport::Error>>,
}

fn start_servers(
    monitors: &[Arc<Monitor>],
    config: &PluginConfig,
) -> Result<Vec<RunningServer>, DevicePluginError> {
    monitors
        .iter()
        .map(|monitor| RunningServer::start(Arc::clone(monitor), config))
        .collect()
}

async fn restart_servers(
    servers: Vec<RunningServer>,
    monitors: &[Arc<Monitor>],
    config: &PluginConfig,
) -> Result<Vec<RunningServer>, DevicePluginError> {
    for server in servers {
        server.stop().await;
    }
    start_servers(monitors, config)
}

impl RunningServer {
    /// Binds the resource's socket (replacing a stale one) and serves it.
    fn start(monitor: Arc<Monitor>, config: &PluginConfig) -> Result<Self, DevicePluginError> {
        let socket = config.kubelet_dir.join(endpoint(monitor.kind()));
        remove_stale(&socket)?;
        let listener = UnixListener::bind(&socket).map_err(|source| DevicePluginError::Socket {
            path: socket.clone(),
            action: "bind",
            source,
        })?;
        let identity = socket_identity(&socket);
        let (stop, stopped) = watch::channel(());
        let service = PluginService::new(monitor, config.cdi_dir.clone(), stopped.clone());
        let mut shutdown = stopped;
        let task = tokio::spawn(Server::builder().serve_with_incoming_shutdown(
            DevicePluginServer::new(service),
            UnixListenerStream::new(listener),
            async move {
                // Resolves when the sender is dropped.
                let _ = shutdown.changed().await;
            },
        ));
        tracing::info!(socket = %socket.display(), "listening");
        Ok(Self {
            socket,
            identity,
            stop,
            task,
        })
    }

    /// Whether the socket file is still the one this server bound.
    fn socket_intact(&self) -> bool {
        self.identity.is_some() && socket_identity(&self.socket) == self.identity
    }

    /// Stops serving (streams end, connections close, at most [`STOP_GRACE`]) and removes the
    /// socket if it is still this server's.
    async fn stop(self) {
        let intact = self.socket_intact();
        drop(self.stop);
        let mut task = self.task;
        match tokio::time::timeout(STOP_GRACE, &mut task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => {
                tracing::warn!(socket = %self.socket.display(), error = %e, "the server failed")
            }
            Ok(Err(e)) => {
                tracing::warn!(socket = %self.socket.display(), error = %e, "the server task failed")
            }
            Err(_) => {
                tracing::warn!(socket = %self.socket.display(), "connections still open after {STOP_GRACE:?}; dropped");
                task.abort();
            }
        }
        if intact {
            if let Err(e) = std::fs::remove_file(&self.socket) {
                tracing::warn!(socket = %self.socket.display(), error = %e, "cannot remove the socket");
            }
        }
    }
}

/// Removes a socket left at `path` by an earlier run; anything else there is an error.
fn remove_stale(path: &Path) -> Result<(), DevicePluginError> {
    let error = |action, source| DevicePluginError::Socket {
        path: path.to_path_buf(),
        action,
        source,
    };
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            std::fs::remove_file(path).map_err(|e| error("remove the stale", e))
        }
        Ok(_) => Err(error(
            "bind",
            std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "a file that is not a socket is in the way",
            ),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(error("inspect", e)),
    }
}
