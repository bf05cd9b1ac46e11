//! The Kubernetes device plugin: the host's TPU chips as `google.com/tpu` and its NVIDIA GPUs
//! as `nvidia.com/gpu`, served to the kubelet over its device plugin API `v1beta1` (gRPC on
//! unix sockets in `/var/lib/kubelet/device-plugins`).
//!
//! [`run`] serves each resource on its own socket, then registers it with `kubelet.sock`, and
//! does both again when the kubelet restarts. `ListAndWatch` streams one device per chip or GPU
//! under an ID that survives restarts and reboots (a chip's PCI address, a GPU's UUID: the IDs
//! of `boot`'s grant annotations), with its health and NUMA node, polling the host for changes
//! ([`Monitor`]). `GetPreferredAllocation` keeps chips in blocks of the host's TPU topology and
//! devices on one NUMA node. `Allocate` answers with the device nodes (or CDI names), the
//! environment the TPU or CUDA runtime reads, and the grant annotation with which accelgate's
//! runtime bounds the sandbox. `docs/kubernetes.md` says how to deploy it.
//!
//! Everything async lives here: the gate and the runtime use no tokio.

mod allocation;
pub mod api;
mod error;
mod health;
mod inventory;
mod monitor;
mod preference;
mod registration;
mod server;
mod service;
mod topology;

pub use allocation::{TPU_CHIPS_PER_PROCESS_BOUNDS, TPU_PROCESS_BOUNDS, TPU_VISIBLE_CHIPS};
pub use error::DevicePluginError;
pub use inventory::{HEALTHY, Health, Inventory, Tracked, UNHEALTHY};
pub use monitor::Monitor;
pub use preference::{Candidate, preferred};
pub use registration::{API_VERSION, KUBELET_SOCKET, connect_unix, endpoint, options};
pub use server::{DEFAULT_KUBELET_DIR, PluginConfig, Resources, run};
pub use topology::{Block, HostBounds};
