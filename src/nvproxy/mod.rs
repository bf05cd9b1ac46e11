//! NVIDIA GPUs: discovery, driver version and device numbers.
//!
//! GPUs are vendor `0x10de` display controllers that the driver lists under
//! `/proc/driver/nvidia/gpus`. Their index is their position in PCI bus order, which is what
//! NVML, `nvidia-smi` and `NVIDIA_VISIBLE_DEVICES` mean; their minor is whatever the driver
//! assigned. The versioned ioctl tables join this module with the ioctl gate.

pub mod abi;
mod caps;
mod discover;
mod gpu_info;
pub mod policy;
mod select;
pub mod sim;
mod sys;
pub mod table;
mod translate;
pub mod tree;
mod version;

pub use caps::DriverCaps;
pub use discover::{NvidiaDiscovery, NvidiaDriver, NvidiaGpu, discover};
pub use gpu_info::{GpuInformation, parse_information};
pub use select::{AbiChoice, SelectError, select};
pub use sys::device_version;
pub use version::{DriverVersion, parse_proc_version};
