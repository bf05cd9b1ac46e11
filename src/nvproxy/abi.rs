//! Device numbers and names of the NVIDIA kernel driver
//! (open-gpu-kernel-modules `kernel-open/common/inc/nv.h`, `nv-ioctl-numbers.h`).

/// PCI vendor ID of NVIDIA.
pub const NVIDIA_VENDOR_ID: u16 = 0x10de;

/// The frontend's fixed character major: `/dev/nvidiactl` and `/dev/nvidiaN`.
pub const FRONTEND_MAJOR: u32 = 195;

/// Minor of `/dev/nvidiactl`.
pub const CTL_MINOR: u32 = 255;

/// Minor of `/dev/nvidia-modeset`.
pub const MODESET_MINOR: u32 = 254;

/// The highest minor of a per-GPU node `/dev/nvidiaN`; the minors above are control nodes.
pub const MAX_GPU_MINOR: u32 = 247;

/// `/proc/devices` names of the frontend major; some setups register the short one.
pub const FRONTEND_MAJOR_NAMES: [&str; 2] = ["nvidia-frontend", "nvidia"];

/// `/proc/devices` name of the (dynamic) UVM major.
pub const UVM_MAJOR_NAME: &str = "nvidia-uvm";

/// `/proc/devices` name of the (dynamic) capabilities major.
pub const CAPS_MAJOR_NAME: &str = "nvidia-caps";

/// Host path of the control node.
pub const CTL_PATH: &str = "/dev/nvidiactl";

/// Host path of the UVM node.
pub const UVM_PATH: &str = "/dev/nvidia-uvm";

/// Host path of the UVM tools node.
pub const UVM_TOOLS_PATH: &str = "/dev/nvidia-uvm-tools";

/// Host path of the modeset node.
pub const MODESET_PATH: &str = "/dev/nvidia-modeset";

/// Host directory of the capability nodes (MIG, IMEX).
pub const CAPS_DIR: &str = "/dev/nvidia-caps";

/// N when `path` is a per-GPU node `/dev/nvidiaN`.
pub fn gpu_node_minor(path: &std::path::Path) -> Option<u32> {
    crate::pci::node_number(path, "/dev/nvidia")
}
