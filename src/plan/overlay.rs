//! How a sandbox keeps writes away from its rootfs.

use std::fmt;
use std::path::PathBuf;

use serde::{Serialize, Serializer};

/// How writes to the rootfs are kept away from it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum OverlayMode {
    /// The rootfs is bind-mounted; writes reach it.
    #[default]
    None,
    /// An overlay whose upper layer is a tmpfs: writes vanish with the sandbox.
    Memory,
    /// An overlay whose upper layer lives in a hidden directory inside the rootfs itself,
    /// hidden from the workload.
    SelfBacked,
    /// An overlay whose upper layer lives in this host directory.
    Dir(PathBuf),
}

impl OverlayMode {
    /// Parses `none`, `memory`, `self` or `dir:PATH` (an absolute path).
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "none" => Ok(Self::None),
            "memory" => Ok(Self::Memory),
            "self" => Ok(Self::SelfBacked),
            _ => match text.strip_prefix("dir:") {
                Some(dir) if dir.starts_with('/') => Ok(Self::Dir(PathBuf::from(dir))),
                Some(_) => Err("the directory of dir:PATH must be absolute".to_owned()),
                None => Err("expected none, memory, self or dir:PATH".to_owned()),
            },
        }
    }
}

impl fmt::Display for OverlayMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("none"),
            Self::Memory => f.write_str("memory"),
            Self::SelfBacked => f.write_str("self"),
            Self::Dir(dir) => write!(f, "dir:{}", dir.display()),
        }
    }
}

impl Serialize for OverlayMode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}
