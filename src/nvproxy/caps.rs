//! Driver capabilities (`NVIDIA_DRIVER_CAPABILITIES`): which parts of the driver a workload
//! may use. Each escape, control and class of the tables needs one of them; what the enabled
//! set does not reach is answered as the driver answers what it does not know.

use std::fmt;

/// A set of driver capabilities.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DriverCaps(u16);

impl DriverCaps {
    /// CUDA and OpenCL.
    pub const COMPUTE: Self = Self(1 << 0);
    /// `nvidia-smi` and NVML.
    pub const UTILITY: Self = Self(1 << 1);
    /// OpenGL and Vulkan.
    pub const GRAPHICS: Self = Self(1 << 2);
    /// The video codecs (NVENC, NVDEC).
    pub const VIDEO: Self = Self(1 << 3);
    /// X11 display.
    pub const DISPLAY: Self = Self(1 << 4);
    /// 32-bit applications.
    pub const COMPAT32: Self = Self(1 << 5);
    /// NGX (DLSS).
    pub const NGX: Self = Self(1 << 6);
    /// IMEX fabric management (multi-node NVLink).
    pub const FABRIC_IMEX_MGMT: Self = Self(1 << 7);
    /// Profiling (Nsight).
    pub const PROFILING: Self = Self(1 << 8);
    /// GPUDirect RDMA (dma-buf export).
    pub const RDMA: Self = Self(1 << 9);

    /// Every capability, with its name.
    pub const NAMED: [(&'static str, Self); 10] = [
        ("compute", Self::COMPUTE),
        ("utility", Self::UTILITY),
        ("graphics", Self::GRAPHICS),
        ("video", Self::VIDEO),
        ("display", Self::DISPLAY),
        ("compat32", Self::COMPAT32),
        ("ngx", Self::NGX),
        ("fabric-imex-mgmt", Self::FABRIC_IMEX_MGMT),
        ("profiling", Self::PROFILING),
        ("rdma", Self::RDMA),
    ];

    /// What `all` stands for: the NVIDIA container toolkit's seven (the others must be named).
    pub const ALL: [&'static str; 7] = [
        "compute", "utility", "graphics", "video", "display", "compat32", "ngx",
    ];

    /// The set when the spec names none.
    pub const DEFAULT: Self = Self(Self::COMPUTE.0 | Self::UTILITY.0);

    /// No capability.
    pub const NONE: Self = Self(0);

    /// Every capability: for what any enabled set reaches.
    pub const ANY: Self = Self((1 << 10) - 1);

    /// The union.
    pub const fn or(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// Whether `self` and `other` share a capability.
    pub const fn intersects(self, other: Self) -> bool {
        self.0 & other.0 != 0
    }

    /// The capability named `name`.
    pub fn named(name: &str) -> Option<Self> {
        Self::NAMED
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, cap)| *cap)
    }

    /// The set of `names` (as the plan lists them); an unknown name is returned as the error.
    pub fn from_names<S: AsRef<str>>(names: &[S]) -> Result<Self, String> {
        names.iter().try_fold(Self::NONE, |set, name| {
            Self::named(name.as_ref())
                .map(|cap| set.or(cap))
                .ok_or_else(|| name.as_ref().to_owned())
        })
    }

    /// The names of the set, in table order.
    pub fn names(self) -> Vec<&'static str> {
        Self::NAMED
            .iter()
            .filter(|(_, cap)| self.intersects(*cap))
            .map(|(name, _)| *name)
            .collect()
    }
}

impl fmt::Display for DriverCaps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.names().join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_ones_are_named() {
        let caps = DriverCaps::from_names(&["compute", "video", "compute"]).unwrap();
        assert_eq!(caps.names(), ["compute", "video"]);
        assert_eq!(DriverCaps::DEFAULT.to_string(), "compute,utility");
        assert_eq!(
            DriverCaps::from_names(&["compute", "teleport"]),
            Err("teleport".to_owned())
        );
        assert!(
            DriverCaps::ALL
                .iter()
                .all(|n| DriverCaps::named(n).is_some())
        );
    }
}
