//! The sandbox's view of devices: which device numbers exist and what they are.
//!
//! [`DeviceRegistry`] maps (kind, major, minor) to a [`DeviceClass`], like the kernel's char
//! and block device tables, and hands out dynamic majors in the kernel's order. Mount and
//! device-node application inside a rootfs join this module with `accelgate run`.

mod error;
mod majors;
mod registry;

pub use error::VfsError;
pub use majors::DynamicMajors;
pub use registry::{DeviceClass, DeviceRegistry, RegisteredDevice, STANDARD_DEVICES};
