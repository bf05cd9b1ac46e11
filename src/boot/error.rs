use std::io;
use std::path::PathBuf;

use crate::pci::PciError;
use crate::vfs::VfsError;

/// Why a bundle cannot become a sandbox plan. Each variant names the file, field or mount at
/// fault.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    /// The host's NVIDIA driver cannot be served (an unsupported version, say).
    #[error("{0}")]
    Nvidia(String),
    /// `config.json` could not be read.
    #[error("cannot read {path}")]
    ReadSpec {
        /// The spec file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// `config.json` is not a valid OCI runtime spec.
    #[error("{path} is not a valid OCI runtime spec")]
    ParseSpec {
        /// The spec file.
        path: PathBuf,
        /// The JSON error, with line and column.
        #[source]
        source: serde_json::Error,
    },
    /// A field of `config.json` has the wrong type or an unknown value.
    #[error("{path}: {field}")]
    SpecField {
        /// The spec file.
        path: PathBuf,
        /// The field, in JSON-path style (`mounts[0].options`).
        field: String,
        /// The JSON error, with line and column.
        #[source]
        source: serde_json::Error,
    },
    /// A field of the spec has a value accelgate cannot accept.
    #[error("{field}: {reason}")]
    InvalidField {
        /// The field, in JSON-path style (`linux.devices[2].type`, `mounts[/data].destination`).
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// An annotation or flag of accelgate's own has a bad value.
    #[error("{name}={value:?}: {reason}")]
    InvalidConfig {
        /// The annotation or flag.
        name: String,
        /// Its value.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// The host lacks an accelerator the sandbox asks for.
    #[error("{requested} asks for {what}, which this host does not have")]
    MissingAccelerator {
        /// Where the request comes from (`NVIDIA_VISIBLE_DEVICES=5`, `linux.devices /dev/vfio/9`).
        requested: String,
        /// What is missing.
        what: String,
    },
    /// A host file the plan depends on is missing or unusable.
    #[error("{what} {path}")]
    HostPath {
        /// What the path is for (`bind source of /data`, `rootfs`).
        what: String,
        /// The host path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The rootfs could not be inspected.
    #[error("cannot inspect the rootfs")]
    Rootfs(#[source] VfsError),
    /// The workload's executable is missing or not executable.
    #[error("process.args[0] {name:?}: {reason}")]
    Executable {
        /// `args[0]`.
        name: String,
        /// What went wrong (not found on PATH, not executable, ...).
        reason: String,
    },
    /// The sandbox could not be started or supervised.
    #[error("cannot run the sandbox: {0}")]
    Launch(String),
    /// The host could not be read.
    #[error("cannot read the host")]
    Host(#[source] PciError),
    /// The host's device numbers do not add up (two nodes with one number).
    #[error("the host's device numbers")]
    Registry(#[source] VfsError),
}
