//! The sandbox's view of devices: which device numbers exist and what they are.
//!
//! [`DeviceRegistry`] maps (kind, major, minor) to a [`DeviceClass`], like the kernel's char
//! and block device tables, and hands out dynamic majors in the kernel's order. [`RootDir`]
//! resolves paths inside a rootfs through file descriptors, never by joining strings.

pub mod abi;
mod apply;
mod error;
mod majors;
pub mod recording;
mod registry;
mod rootdir;
mod sys;
mod system;

pub use crate::family::DeviceClass;
pub use apply::{ApplyOptions, apply};
pub use error::VfsError;
pub use majors::DynamicMajors;
pub use registry::{DeviceRegistry, RegisteredDevice, STANDARD_DEVICES};
pub use rootdir::{FileInfo, FileKind, Resolver, RootDir, fstat_info};
pub use sys::RealSys;
pub use system::{MountFlags, NodeType, Sys, proc_fd_path};
