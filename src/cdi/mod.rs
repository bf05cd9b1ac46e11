//! CDI (Container Device Interface) specs from discovery: what podman, containerd, CRI-O,
//! Docker and the kubelet read to give a container devices by name
//! (`--device nvidia.com/gpu=0`, `google.com/tpu=all`).
//!
//! [`generate`] turns a [`Discovery`](crate::discovery::Discovery) into the spec of one
//! [`Kind`] (pure, so a device plugin can call it), [`write_atomically`] puts it where engines
//! look, and [`check`] names every entry of the specs on disk that the host no longer matches.
//! `docs/cdi.md` describes the output.

mod check;
mod error;
mod generate;
mod kind;
mod nodes;
mod spec;
mod version;
mod write;

pub use check::{CheckReport, Stale, check};
pub use error::CdiError;
pub use generate::{ALL_DEVICES, generate};
pub use kind::Kind;
pub use spec::{ContainerEdits, Device, DeviceNode, Hook, Mount, Spec};
pub use version::minimum_version;
pub use write::write_atomically;

/// Where engines look for specs: static ones first, then generated ones (which win).
pub const SPEC_DIRS: [&str; 2] = ["/etc/cdi", "/var/run/cdi"];

/// Where `accelgate cdi generate` writes by default: the directory for generated specs.
pub const DYNAMIC_SPEC_DIR: &str = "/var/run/cdi";

/// CDI cannot set resource limits, and TPUs pin DMA buffers against `RLIMIT_MEMLOCK`.
pub const TPU_MEMLOCK_NOTE: &str = "google.com/tpu: CDI cannot raise RLIMIT_MEMLOCK, and TPUs \
pin their DMA buffers against it; start TPU containers with an unlimited memlock limit \
(podman/docker --ulimit memlock=-1:-1, a Kubernetes node's containerd/CRI-O default ulimits)";
