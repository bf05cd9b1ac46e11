//! The ioctl gate: a seccomp filter that sends accelerator ioctls to a supervisor, which
//! classifies the file, asks the device family's policy, and continues, emulates or denies.
//! The supervisor knows no ioctl layouts; the policies of [`crate::accel`] and [`crate::vfio`]
//! do.

pub mod abi;
pub mod backend;
pub mod classify;
pub mod executor;
pub mod filter;
pub mod gate;
pub mod handoff;
pub mod ioctl;
pub mod memory;
pub mod policy;
pub mod simulator;
pub mod stats;
mod sys;
