use std::io;
use std::path::PathBuf;

use crate::boot::BootError;

/// Why the OCI lifecycle around a sandbox failed. Each variant names the hook, cgroup or field.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A hook could not be run, failed or timed out.
    #[error("{phase} hook {path}: {reason}")]
    Hook {
        /// The phase (`createRuntime`, `poststop`, ...).
        phase: &'static str,
        /// The hook's program.
        path: PathBuf,
        /// What went wrong (exit status, timeout, spawn error).
        reason: String,
    },
    /// A cgroup could not be set up.
    #[error("cgroup {path}: {what}")]
    Cgroup {
        /// The cgroup directory.
        path: PathBuf,
        /// The step that failed.
        what: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A container lifecycle request cannot be met (unknown id, wrong state, ...).
    #[error("container {id}: {reason}")]
    Container {
        /// The container's id.
        id: String,
        /// Why.
        reason: String,
    },
    /// The state directory could not be used.
    #[error("state {path}: {what}")]
    State {
        /// The file or directory.
        path: PathBuf,
        /// The step that failed.
        what: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A spec field cannot be honoured on this host.
    #[error("{field}: {reason}")]
    Unsupported {
        /// The field, in JSON-path style.
        field: String,
        /// Why.
        reason: String,
    },
    /// The launch itself failed.
    #[error(transparent)]
    Boot(#[from] BootError),
}
