//! accelgate gives sandboxed workloads GPUs and TPUs safely.
//!
//! The data path: [`pci::scan`] reads the host (real, or a fixture tree behind
//! [`pci::HostRoot`]); [`tpuproxy`] and [`nvproxy`] pick out the accelerators;
//! [`discovery::discover`] assembles the picture that `accelgate discover` prints; and
//! [`vfs::DeviceRegistry`] keeps the device numbers a sandbox may see.
#![deny(unsafe_code)]

pub mod accel;
pub mod boot;
pub mod cdi;
pub mod cli;
pub mod daemon;
pub mod deviceplugin;
pub mod discovery;
pub mod family;
pub mod fixture;
pub mod nvproxy;
pub mod pci;
pub mod plan;
pub mod runtime;
pub mod supervisor;
pub mod tpuproxy;
pub mod vfio;
pub mod vfs;
