//! NVIDIA GPUs: discovery, driver version and device numbers.
//!
//! GPUs are vendor `0x10de` display controllers that the driver lists under
//! `/proc/driver/nvidia/gpus`. Their index is their position in PCI bus order, which is what
//! NVML, `nvidia-smi` and `NVIDIA_VISIBLE_DEVICES` mean; their minor is whatever the driver
//! assigned. The versioned ioctl tables join this module with the ioctl gate.

pub mod abi;
mod discover;
mod gpu_info;
mod version;

pub use discover::{NvidiaDiscovery, NvidiaDriver, NvidiaGpu, discover};
pub use gpu_info::{GpuInformation, parse_information};
pub use version::{DriverVersion, parse_proc_version};
