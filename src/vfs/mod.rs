//! The sandbox's view of devices: which device numbers exist and what they are.
//!
//! [`DeviceRegistry`] maps (kind, major, minor) to a [`DeviceClass`], like the kernel's char
//! and block device tables, and hands out dynamic majors in the kernel's order. [`RootDir`]
//! resolves paths inside a rootfs through file descriptors, never by joining strings.

mod error;
mod majors;
mod registry;
mod rootdir;

pub use error::VfsError;
pub use majors::DynamicMajors;
pub use registry::{DeviceClass, DeviceRegistry, RegisteredDevice, STANDARD_DEVICES};
pub use rootdir::{FileInfo, FileKind, Resolver, RootDir};
