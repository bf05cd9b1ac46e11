//! What kind of accelerator file an ioctl targets: each family names its own kinds.

use std::fmt;

use serde::{Serialize, Serializer};

/// A kind of file of one device family (`vfio-group`, `tpu-accel`): the key, with the request
/// number, of every policy decision. The gate compares kinds and prints them; only the family
/// that made one knows what it means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FdKind {
    family: &'static str,
    name: &'static str,
}

impl FdKind {
    /// Kind `name` of family `family`.
    pub const fn new(family: &'static str, name: &'static str) -> Self {
        Self { family, name }
    }

    /// The name in logs, counters and docs.
    pub const fn name(self) -> &'static str {
        self.name
    }

    /// The family it belongs to.
    pub const fn family(self) -> &'static str {
        self.family
    }
}

impl fmt::Display for FdKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

impl Serialize for FdKind {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name)
    }
}
