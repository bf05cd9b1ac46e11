use std::io;
use std::path::PathBuf;

/// Errors from reading the host's `/sys`, `/proc` and `/dev`.
///
/// Every path is the *host* path (`/sys/...`), so messages read the same for a real host and
/// for a fixture tree; the caller knows which root it passed.
#[derive(Debug, thiserror::Error)]
pub enum PciError {
    /// The host root directory itself is unusable.
    #[error("host root {root} has no {what} directory")]
    MissingTree {
        /// The directory given as the host root.
        root: PathBuf,
        /// Which tree is missing (`sys`).
        what: &'static str,
    },
    /// A file or directory could not be read.
    #[error("cannot read {path}")]
    Read {
        /// Host path of the file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A file is larger than any sysfs or procfs attribute can be.
    #[error("{path} is larger than {limit} bytes, not an attribute file")]
    TooLarge {
        /// Host path of the file.
        path: PathBuf,
        /// The size cap.
        limit: usize,
    },
    /// A file's contents or a link's name do not parse.
    #[error("invalid value {value:?} in {path}: {reason}")]
    Invalid {
        /// Host path of the file or link.
        path: PathBuf,
        /// The offending text, as read.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Following symbolic links did not terminate within the kernel's limit.
    #[error("too many levels of symbolic links at {link} (limit {limit}): a link loop")]
    SymlinkLoop {
        /// Host path of the link where resolution stopped.
        link: PathBuf,
        /// The cap on followed links.
        limit: usize,
    },
    /// A symbolic link points outside the tree it lives in.
    #[error("symbolic link {link} -> {target} leaves {tree}")]
    SymlinkEscape {
        /// Host path of the link.
        link: PathBuf,
        /// The link's text.
        target: PathBuf,
        /// The tree it must stay in (`/sys`, `/proc`).
        tree: &'static str,
    },
    /// A path that must be a device node is something else.
    #[error("{path} is not a character or block device node")]
    NotADevice {
        /// Host path of the would-be node.
        path: PathBuf,
    },
    /// A line of a `dev.list` manifest does not parse.
    #[error("{path}:{line}: {reason}")]
    Manifest {
        /// On-disk path of the manifest.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with the line.
        reason: String,
    },
}

impl PciError {
    /// The host path this error is about.
    pub fn path(&self) -> &std::path::Path {
        match self {
            Self::MissingTree { root, .. } => root,
            Self::Read { path, .. }
            | Self::TooLarge { path, .. }
            | Self::Invalid { path, .. }
            | Self::NotADevice { path }
            | Self::Manifest { path, .. } => path,
            Self::SymlinkLoop { link, .. } | Self::SymlinkEscape { link, .. } => link,
        }
    }

    /// Whether the error means "the file is not there" rather than "the file is bad".
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Read { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }
}
