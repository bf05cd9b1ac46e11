use std::io;
use std::path::PathBuf;

use nix::errno::Errno;

use super::DeviceClass;

/// Errors from the device registry.
#[derive(Debug, thiserror::Error)]
pub enum VfsError {
    /// Two devices claim the same (kind, major, minor).
    #[error(
        "{kind} {major}:{minor} for {path} ({class}) is already registered to {existing_path} ({existing_class})"
    )]
    Duplicate {
        /// `c` or `b`.
        kind: char,
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
        /// The path that was being registered.
        path: PathBuf,
        /// Its class.
        class: DeviceClass,
        /// The path that holds the numbers.
        existing_path: PathBuf,
        /// Its class.
        existing_class: DeviceClass,
    },
    /// Every dynamic character major is taken.
    #[error("no dynamic character major left: 254..=234 and 511..=384 are all in use")]
    MajorsExhausted,
    /// A major that this registry did not hand out was released.
    #[error("character major {major} was not handed out by this registry")]
    NotDynamic {
        /// The major.
        major: u32,
    },
    /// A directory could not be opened as a root.
    #[error("cannot open {root} as a root directory")]
    OpenRoot {
        /// The directory.
        root: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// A path inside a root could not be resolved or opened.
    #[error("cannot resolve {path} inside {root}")]
    Resolve {
        /// The root directory.
        root: PathBuf,
        /// The path inside it.
        path: PathBuf,
        /// The error, with its errno.
        #[source]
        source: io::Error,
    },
    /// One step of applying a plan failed.
    #[error("{step} {path}")]
    Step {
        /// What was being done (`mount proc at`, `mknod`, `pivot_root`).
        step: String,
        /// The path inside the sandbox (or on the host) it was done to.
        path: PathBuf,
        /// The error, with its errno.
        #[source]
        source: io::Error,
    },
    /// A path was refused: a symlink where a real directory must be, a changed bind source, a
    /// node that is not what was made.
    #[error("{path}: {reason}")]
    Refused {
        /// The path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

impl VfsError {
    /// The errno behind the error, when a syscall failed.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            Self::OpenRoot { source, .. }
            | Self::Resolve { source, .. }
            | Self::Step { source, .. } => source.raw_os_error().map(Errno::from_raw),
            _ => None,
        }
    }

    /// Whether the path (or a directory on the way) does not exist.
    pub fn is_missing(&self) -> bool {
        matches!(self.errno(), Some(Errno::ENOENT | Errno::ENOTDIR))
    }
}
