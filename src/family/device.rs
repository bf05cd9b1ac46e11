//! Device classes: what a device number is. `vfs::DeviceRegistry` maps numbers to classes;
//! each family says which classes are its files.

use std::fmt;

use serde::Serialize;

/// What a device number is: the class decides how the ioctl gate treats an fd on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DeviceClass {
    /// `/dev/null`.
    Null,
    /// `/dev/zero`.
    Zero,
    /// `/dev/full`.
    Full,
    /// `/dev/random`.
    Random,
    /// `/dev/urandom`.
    Urandom,
    /// `/dev/tty`.
    Tty,
    /// `/dev/ptmx`.
    Ptmx,
    /// `/dev/net/tun`.
    Tun,
    /// `/dev/fuse`.
    Fuse,
    /// A TPU v4 on the accel driver, `/dev/accelN`.
    TpuAccel,
    /// A TPU v4 lite on the accel driver (a shorter interrupt list).
    TpuAccelLite,
    /// The VFIO container, `/dev/vfio/vfio`.
    VfioContainer,
    /// A VFIO group, `/dev/vfio/<group>`.
    VfioGroup,
    /// An NVIDIA GPU, `/dev/nvidiaN`.
    NvidiaGpu,
    /// `/dev/nvidiactl`.
    NvidiaCtl,
    /// `/dev/nvidia-uvm`.
    NvidiaUvm,
    /// `/dev/nvidia-uvm-tools`.
    NvidiaUvmTools,
    /// `/dev/nvidia-modeset`.
    NvidiaModeset,
    /// `/dev/nvidia-caps/*`.
    NvidiaCap,
}

impl DeviceClass {
    /// Whether devices of this class are accelerators (their ioctls are the gate's business).
    pub const fn is_accelerator(self) -> bool {
        !matches!(
            self,
            Self::Null
                | Self::Zero
                | Self::Full
                | Self::Random
                | Self::Urandom
                | Self::Tty
                | Self::Ptmx
                | Self::Tun
                | Self::Fuse
        )
    }

    /// The name used in logs, JSON and the audit trail.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Null => "null",
            Self::Zero => "zero",
            Self::Full => "full",
            Self::Random => "random",
            Self::Urandom => "urandom",
            Self::Tty => "tty",
            Self::Ptmx => "ptmx",
            Self::Tun => "tun",
            Self::Fuse => "fuse",
            Self::TpuAccel => "tpu-accel",
            Self::TpuAccelLite => "tpu-accel-lite",
            Self::VfioContainer => "vfio-container",
            Self::VfioGroup => "vfio-group",
            Self::NvidiaGpu => "nvidia-gpu",
            Self::NvidiaCtl => "nvidia-ctl",
            Self::NvidiaUvm => "nvidia-uvm",
            Self::NvidiaUvmTools => "nvidia-uvm-tools",
            Self::NvidiaModeset => "nvidia-modeset",
            Self::NvidiaCap => "nvidia-cap",
        }
    }
}

impl fmt::Display for DeviceClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for DeviceClass {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}
