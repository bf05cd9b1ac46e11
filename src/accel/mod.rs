//! The Google accel class: TPU v4 and v4lite, char major 121, gasket driver.
//!
//! Maps `/sys/class/accel/accelN` to its PCI function and `/dev/accelN`. The gasket ioctl ABI
//! and policy join this module with the ioctl gate.

pub mod abi;
mod class;
pub mod policy;
pub mod sim;

pub use class::{AccelDevice, scan_class};
