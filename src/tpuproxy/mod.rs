//! TPUs: the one device-ID table, and chip discovery over the accel and VFIO drivers.
//!
//! v4 and v4lite are reached through the accel driver ([`crate::accel`]); v5e, v5p, v6e and
//! 7x through `vfio-pci` ([`crate::vfio`]). This module decides which PCI functions are chips
//! and which nodes belong to them; ioctl decoding stays with `accel` and `vfio`.

mod discover;
mod generation;
mod simulate;

pub use discover::{TpuChip, TpuDiscovery, discover};
pub use generation::{DriverModel, GOOGLE_VENDOR_ID, Generation, TPU_MODELS, TpuModel, model_for};
pub use simulate::simulated_devices;
