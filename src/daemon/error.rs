use std::path::PathBuf;

/// What went wrong in the daemon, its control socket, or a seccomp profile.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// A socket could not be bound, connected or used.
    #[error("socket {path}: {what}")]
    Socket {
        /// The socket's path.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// Signal handling could not be set up.
    #[error("signals: {0}")]
    Signals(#[source] nix::Error),
    /// The host could not be read.
    #[error("the host's accelerators")]
    Host(#[source] Box<crate::boot::BootError>),
    /// The host's device numbers could not be mapped.
    #[error("the host's device numbers")]
    Registry(#[source] crate::vfs::VfsError),
    /// The device families' tables contradict each other.
    #[error("the device families' tables")]
    Families(#[source] crate::family::FamilyError),
    /// An agent connection was not a container process state with a seccomp fd.
    #[error("agent connection: {0}")]
    Agent(String),
    /// A container's accelerators could not be worked out from its bundle.
    #[error("container {id}: its bundle {bundle}")]
    Bundle {
        /// The container.
        id: String,
        /// Its bundle directory.
        bundle: PathBuf,
        /// Why.
        #[source]
        source: Box<crate::boot::BootError>,
    },
    /// A container cannot be served as this daemon is configured.
    #[error("container {id}: {reason}")]
    Refused {
        /// The container.
        id: String,
        /// Why.
        reason: String,
    },
    /// The control socket answered with an error, or not in its protocol.
    #[error("control socket {path}: {message}")]
    Control {
        /// The socket's path.
        path: PathBuf,
        /// What it said, or what was wrong with its answer.
        message: String,
    },
    /// A base seccomp profile could not be read or merged.
    #[error("base profile {path}: {reason}")]
    Base {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The gate's routing cannot be written as an OCI seccomp profile.
    #[error("seccomp profile: {0}")]
    Profile(String),
}
