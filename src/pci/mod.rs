//! The host's PCI functions, read from sysfs beneath an injected root.
//!
//! [`HostRoot`] stands for the host's `/sys`, `/proc` and `/dev` (the real ones, or a fixture
//! tree); [`scan`] lists every function through `/sys/bus/pci/devices`. Nothing here knows
//! about TPUs or GPUs.

pub mod attr;
mod bdf;
mod dev_nodes;
mod device;
mod error;
mod host_root;
mod proc_devices;
mod scan;
mod tree;
mod unsupported;
mod warning;

pub use bdf::Bdf;
pub use dev_nodes::{DevNode, DevSource, NodeKind, check_major, node_number, parse_manifest};
pub use device::{CLASS_DISPLAY, PciDevice};
pub use error::PciError;
pub use host_root::HostRoot;
pub use proc_devices::ProcDevices;
pub use scan::{PciScan, scan};
pub use tree::{HostTree, MAX_SYMLINKS};
pub use unsupported::UnsupportedDevice;
pub use warning::{Warning, error_chain, or_warn};
