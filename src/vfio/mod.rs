//! VFIO: IOMMU groups and their `/dev/vfio` nodes.
//!
//! A function bound to `vfio-pci` is reached through `/dev/vfio/vfio` (the container) and
//! `/dev/vfio/<iommu group>`. The VFIO ioctl ABI and policy join this module with the ioctl
//! gate. Nothing here knows TPU generations.

pub mod abi;
mod group;
pub mod policy;
pub mod sim;

pub use group::{container_node, group_node_path};
