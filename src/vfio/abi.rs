//! Numbers of the VFIO uapi (`include/uapi/linux/vfio.h`, `include/linux/miscdevice.h`).

/// Host path of the VFIO container node.
pub const CONTAINER_PATH: &str = "/dev/vfio/vfio";

/// The container node is a misc device: char 10:196 (`VFIO_MINOR`).
pub const MISC_MAJOR: u32 = 10;

/// Minor of `/dev/vfio/vfio` under the misc major.
pub const VFIO_MINOR: u32 = 196;

/// `/proc/devices` name of the dynamic major that VFIO group nodes use.
pub const GROUP_MAJOR_NAME: &str = "vfio";

/// The PCI driver a function must be bound to for VFIO passthrough.
pub const PCI_DRIVER: &str = "vfio-pci";
