//! The two device kinds accelgate writes specs for.

use std::fmt;

/// A CDI device kind: one spec file each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// NVIDIA GPUs: `nvidia.com/gpu`, the kind `nvidia-ctk` writes and engines' docs use.
    Gpu,
    /// TPU chips: `google.com/tpu`.
    Tpu,
}

impl Kind {
    /// Every kind, in the order specs are written.
    pub const ALL: [Kind; 2] = [Kind::Gpu, Kind::Tpu];

    /// `vendor.com/class`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Gpu => "nvidia.com/gpu",
            Self::Tpu => "google.com/tpu",
        }
    }

    /// What the devices are called in messages.
    pub const fn devices(self) -> &'static str {
        match self {
            Self::Gpu => "NVIDIA GPUs",
            Self::Tpu => "TPU chips",
        }
    }

    /// The kind a spec names, when it is one of ours.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
