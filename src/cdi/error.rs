use std::io;
use std::path::PathBuf;

use super::Kind;

/// Why a CDI spec could not be generated or written.
#[derive(Debug, thiserror::Error)]
pub enum CdiError {
    /// The host has no devices of the kind asked for.
    #[error("host {host} has no {}, so there is no {kind} spec", kind.devices())]
    NoDevices {
        /// The kind asked for.
        kind: Kind,
        /// The host root.
        host: PathBuf,
    },
    /// The spec directory could not be made.
    #[error("cannot create spec directory {path}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The spec could not be written or moved into place.
    #[error("cannot write {path}")]
    Write {
        /// The file being written (the temporary one until the rename).
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The spec could not be encoded as JSON.
    #[error("cannot encode the {kind} spec as JSON")]
    Encode {
        /// Its kind.
        kind: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
}
