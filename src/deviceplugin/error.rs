use std::io;
use std::path::PathBuf;

use crate::cdi::CdiError;
use crate::pci::PciError;

/// Why the device plugin cannot run, or refuses a kubelet request.
#[derive(Debug, thiserror::Error)]
pub enum DevicePluginError {
    /// The host could not be read at start.
    #[error("cannot read the host")]
    Host(#[source] PciError),
    /// `--resource all` on a host with neither TPUs nor NVIDIA GPUs.
    #[error(
        "host {root} has no TPU chips and no NVIDIA GPUs, so there is nothing to serve; name a resource with --resource to serve it while it has no devices"
    )]
    NothingToServe {
        /// The host root.
        root: PathBuf,
    },
    /// A unix socket could not be set up or removed.
    #[error("cannot {action} socket {path}")]
    Socket {
        /// The socket.
        path: PathBuf,
        /// What was being done (`bind`, `remove the stale`).
        action: &'static str,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The async runtime or the signal handlers could not be set up.
    #[error("cannot start the {what}")]
    Runtime {
        /// The runtime or the signal handlers.
        what: &'static str,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The kubelet's registration socket could not be reached.
    #[error("cannot connect to the kubelet at {path}")]
    Connect {
        /// `kubelet.sock`.
        path: PathBuf,
        /// Why.
        #[source]
        source: tonic::transport::Error,
    },
    /// The kubelet refused the registration (or it failed on the way).
    #[error("the kubelet at {path} did not register {resource}")]
    Register {
        /// `kubelet.sock`.
        path: PathBuf,
        /// The resource name.
        resource: &'static str,
        /// The kubelet's status (boxed: a status is large).
        #[source]
        source: Box<tonic::Status>,
    },
    /// A request names a device this plugin never advertised.
    #[error("unknown device ID {id:?}: {resource} has {known}")]
    UnknownDevice {
        /// The ID.
        id: String,
        /// The resource name.
        resource: &'static str,
        /// The IDs it has, for the message.
        known: String,
    },
    /// A request names a device that is unhealthy now.
    #[error("device {id} of {resource} is unhealthy: {reason}")]
    Unhealthy {
        /// The ID.
        id: String,
        /// The resource name.
        resource: &'static str,
        /// Why.
        reason: String,
    },
    /// A request that cannot be met as asked (sizes, duplicates).
    #[error("{reason}")]
    BadRequest {
        /// What is wrong, naming the field.
        reason: String,
    },
    /// `--cdi`: the spec could not be generated or written.
    #[error("cannot refresh the CDI spec")]
    Cdi(#[source] CdiError),
    /// A blocking task of the plugin failed.
    #[error("an internal task failed")]
    Task(#[source] tokio::task::JoinError),
}

impl DevicePluginError {
    /// The gRPC status the kubelet gets for this error: `INVALID_ARGUMENT` for what the request
    /// got wrong, `FAILED_PRECONDITION` for an unhealthy device, `INTERNAL` otherwise.
    pub fn status(&self) -> tonic::Status {
        let message = crate::pci::error_chain(self);
        match self {
            Self::UnknownDevice { .. } | Self::BadRequest { .. } => {
                tonic::Status::invalid_argument(message)
            }
            Self::Unhealthy { .. } => tonic::Status::failed_precondition(message),
            _ => tonic::Status::internal(message),
        }
    }
}
