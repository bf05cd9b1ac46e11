//! The daemon: a long-running supervisor for containers that other runtimes start. runc and
//! crun send it each container's seccomp listener over the OCI seccomp agent socket
//! (`linux.seccomp.listenerPath`); it works out the container's accelerators from its bundle
//! and serves the listener with the gate, one sandbox (policy, simulated devices, counters) per
//! container. A control socket answers `accelgate ps` and `accelgate stats`.
//! `accelgate seccomp-profile` writes the profile that sends a container's accelerator calls
//! here. The daemon knows no ioctl layout: it hands listeners to the gate, and the routing to
//! the profile.

mod agent;
mod containers;
mod control;
mod devices;
mod error;
mod profile;
mod server;
mod state;

pub use containers::{ContainerInfo, KEPT_EXITED, PS_SCHEMA, Ps};
pub use control::{DEFAULT_CONTROL, Request, Response, request};
pub use error::DaemonError;
pub use profile::{ProfileOptions, profile};
pub use server::{DaemonConfig, run};
pub use state::{Metadata, ProcessState, SECCOMP_FD_NAME};
