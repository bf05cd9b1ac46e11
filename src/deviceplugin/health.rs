//! What the host says of each device right now: present and usable, or why not.

use super::inventory::{Health, Tracked};
use crate::boot::{gpu_device_id, tpu_device_id};
use crate::cdi::Kind;
use crate::discovery::Discovery;
use crate::nvproxy::abi as nv;
use crate::tpuproxy::DriverModel;

/// The devices of `kind` that discovery found on the host, each judged.
///
/// Discovery leaves out a chip whose PCI function vanished or lost its driver (`vfio-pci`, the
/// TPU driver) and a GPU the NVIDIA driver no longer lists; the inventory reports those as
/// unhealthy by their absence. Judged here: a device without its device node, a VFIO chip
/// without `/dev/vfio/vfio`, a GPU without `/dev/nvidiactl`.
pub fn observe(kind: Kind, discovery: &Discovery) -> Vec<Tracked> {
    match kind {
        Kind::Tpu => discovery
            .tpus
            .iter()
            .map(|chip| {
                let health = if chip.nodes.len() < chip.bdfs.len() {
                    Health::Unhealthy(format!(
                        "{} of its {} device node(s) missing",
                        chip.bdfs.len() - chip.nodes.len(),
                        chip.bdfs.len()
                    ))
                } else if chip.driver == DriverModel::Vfio && discovery.vfio.is_none() {
                    Health::Unhealthy(format!(
                        "the host has no {}",
                        crate::vfio::abi::CONTAINER_PATH
                    ))
                } else {
                    Health::Healthy
                };
                Tracked {
                    id: tpu_device_id(chip),
                    bdf: chip.bdfs[0],
                    numa_node: chip.numa_node,
                    generation: Some(chip.generation),
                    health,
                }
            })
            .collect(),
        Kind::Gpu => {
            let has_ctl = discovery.nvidia.as_ref().is_some_and(|driver| {
                driver
                    .nodes
                    .iter()
                    .any(|n| n.path.to_str() == Some(nv::CTL_PATH))
            });
            discovery
                .gpus
                .iter()
                .map(|gpu| {
                    let health = if gpu.nodes.is_empty() {
                        Health::Unhealthy(format!("no /dev/nvidia{} on the host", gpu.minor))
                    } else if !has_ctl {
                        Health::Unhealthy(format!("the host has no {}", nv::CTL_PATH))
                    } else {
                        Health::Healthy
                    };
                    Tracked {
                        id: gpu_device_id(gpu),
                        bdf: gpu.bdf,
                        numa_node: gpu.numa_node,
                        generation: None,
                        health,
                    }
                })
                .collect()
        }
    }
}
