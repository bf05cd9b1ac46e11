//! The ioctl gate: a seccomp filter that decides in the kernel what the device families'
//! tables let it decide and sends the rest to a supervisor, which classifies the file, takes
//! the family's ruling, and continues, emulates or denies. The gate names no family: it works
//! from the [`crate::family`] interface that `accel` and `vfio` implement.

pub mod abi;
mod broker;
pub mod classify;
pub mod credentials;
pub mod decide;
pub mod filter;
pub mod gate;
mod handle;
pub mod handoff;
mod host;
mod identity;
pub mod interpret;
pub mod memory;
pub mod mode;
mod receive;
mod reply;
pub mod routing;
mod simulated;
pub mod simulator;
pub mod stats;
mod sys;
mod translated;

pub use gate::{Gate, GateConfig, Sandbox, SandboxConfig, Serving, Supervisor, Threads, serve};
pub use mode::Mode;
