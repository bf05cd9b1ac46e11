//! `Allocate`: what a container needs for the devices the kubelet picked.
//!
//! Per container: the device nodes of exactly those devices and the nodes every device of the
//! kind needs (`/dev/vfio/vfio`; `/dev/nvidiactl`, `/dev/nvidia-uvm`, `/dev/nvidia-uvm-tools`);
//! the environment the TPU or CUDA runtime reads; the grant annotation accelgate's runtime
//! bounds the sandbox by (`boot::GRANTED_TPUS_ANNOTATION`); and with `--cdi` the CDI device
//! names instead of the nodes, from a spec refreshed first. Every ID is checked before
//! anything is answered: an unknown or unhealthy one fails the whole request.

use std::collections::HashMap;
use std::path::Path;

use super::DevicePluginError;
use super::api::{ContainerAllocateResponse, DeviceSpec};
use super::inventory::{Health, HostView, Inventory};
use super::topology::bounds_text;
use crate::boot::{
    GRANTED_GPUS_ANNOTATION, GRANTED_TPUS_ANNOTATION, VISIBLE_DEVICES, gpu_device_id, tpu_device_id,
};
use crate::cdi::{self, Kind};
use crate::nvproxy::abi as nv;
use crate::pci::DevNode;
use crate::tpuproxy::DriverModel;

/// `TPU_VISIBLE_CHIPS`: the host's chips a TPU process may use, by index in bus order.
pub const TPU_VISIBLE_CHIPS: &str = "TPU_VISIBLE_CHIPS";

/// `TPU_CHIPS_PER_PROCESS_BOUNDS`: the shape of a process's chips when it has a sub-slice of
/// the host.
pub const TPU_CHIPS_PER_PROCESS_BOUNDS: &str = "TPU_CHIPS_PER_PROCESS_BOUNDS";

/// `TPU_PROCESS_BOUNDS`: how the host's processes are laid out; one sub-slice is one process.
pub const TPU_PROCESS_BOUNDS: &str = "TPU_PROCESS_BOUNDS";

/// The cgroup permissions device nodes are given with: read and write, no mknod.
const PERMISSIONS: &str = "rw";

/// The response for one container asking for `ids`, or why it cannot have them.
pub fn container_response(
    inventory: &Inventory,
    ids: &[String],
    cdi_dir: Option<&Path>,
) -> Result<ContainerAllocateResponse, DevicePluginError> {
    let kind = inventory.kind();
    check_ids(inventory, ids)?;
    let view = inventory
        .view()
        .expect("healthy devices come from a read of the host");
    let mut ordered: Vec<&str> = ids.iter().map(String::as_str).collect();
    ordered.sort_by_key(|id| inventory.position(id));
    let mut response = ContainerAllocateResponse {
        annotations: HashMap::from([(
            match kind {
                Kind::Tpu => GRANTED_TPUS_ANNOTATION,
                Kind::Gpu => GRANTED_GPUS_ANNOTATION,
            }
            .to_owned(),
            ordered.join(","),
        )]),
        ..Default::default()
    };
    // Device names in the CDI spec (index, or UUID for GPUs), and the nodes.
    let (names, nodes) = match kind {
        Kind::Tpu => tpus(inventory, view, &ordered, &mut response.envs),
        Kind::Gpu => gpus(view, &ordered, &mut response.envs),
    };
    match cdi_dir {
        Some(dir) => {
            let spec =
                cdi::generate(&view.discovery, &view.host, kind).map_err(DevicePluginError::Cdi)?;
            let path = cdi::write_atomically(dir, &spec).map_err(DevicePluginError::Cdi)?;
            tracing::debug!(spec = %path.display(), "CDI spec refreshed");
            response.cdi_devices = names
                .into_iter()
                .map(|name| super::api::CdiDevice {
                    name: format!("{}={name}", kind.name()),
                })
                .collect();
        }
        None => {
            response.devices = nodes
                .iter()
                .map(|node| DeviceSpec {
                    container_path: node.path.display().to_string(),
                    host_path: view.host.node_on_disk(&node.path).display().to_string(),
                    permissions: PERMISSIONS.to_owned(),
                })
                .collect();
        }
    }
    Ok(response)
}

/// Every ID known, healthy and listed once, and at least one.
fn check_ids(inventory: &Inventory, ids: &[String]) -> Result<(), DevicePluginError> {
    let resource = inventory.kind().name();
    if ids.is_empty() {
        return Err(DevicePluginError::BadRequest {
            reason: format!("devices_ids is empty: a container asks {resource} for no device"),
        });
    }
    for (i, id) in ids.iter().enumerate() {
        let device = inventory
            .get(id)
            .ok_or_else(|| DevicePluginError::UnknownDevice {
                id: id.clone(),
                resource,
                known: known_ids(inventory),
            })?;
        if let Health::Unhealthy(reason) = &device.health {
            return Err(DevicePluginError::Unhealthy {
                id: id.clone(),
                resource,
                reason: reason.clone(),
            });
        }
        if ids[..i].contains(id) {
            return Err(DevicePluginError::BadRequest {
                reason: format!("devices_ids lists {id} twice"),
            });
        }
    }
    Ok(())
}

/// The IDs of an inventory, for messages.
pub fn known_ids(inventory: &Inventory) -> String {
    let ids: Vec<&str> = inventory.devices().iter().map(|d| d.id.as_str()).collect();
    if ids.is_empty() {
        "no devices".to_owned()
    } else {
        ids.join(", ")
    }
}

/// TPU chips: their nodes and `/dev/vfio/vfio`; `TPU_VISIBLE_CHIPS`, and the process bounds
/// when the chips are a block smaller than the host. CDI names are chip indices.
fn tpus<'a>(
    inventory: &Inventory,
    view: &'a HostView,
    ids: &[&str],
    envs: &mut HashMap<String, String>,
) -> (Vec<String>, Vec<&'a DevNode>) {
    let chips: Vec<_> = view
        .discovery
        .tpus
        .iter()
        .filter(|chip| ids.contains(&tpu_device_id(chip).as_str()))
        .collect();
    let indices: Vec<String> = chips.iter().map(|c| c.index.to_string()).collect();
    envs.insert(TPU_VISIBLE_CHIPS.to_owned(), indices.join(","));
    if let Some(bounds) = inventory.tpu_bounds() {
        let positions: Vec<usize> = ids.iter().filter_map(|id| inventory.position(id)).collect();
        match bounds.block_shape(&positions) {
            Some(shape) if positions.len() < bounds.chips() => {
                envs.insert(TPU_CHIPS_PER_PROCESS_BOUNDS.to_owned(), bounds_text(shape));
                envs.insert(TPU_PROCESS_BOUNDS.to_owned(), bounds_text([1, 1, 1]));
            }
            Some(_) => {}
            None => tracing::info!(
                chips = %ids.join(","),
                "the chips are not one block of the host; TPU_VISIBLE_CHIPS alone is set"
            ),
        }
    }
    let mut nodes: Vec<&DevNode> = chips.iter().flat_map(|c| &c.nodes).collect();
    if chips.iter().any(|c| c.driver == DriverModel::Vfio) {
        nodes.extend(view.discovery.vfio.iter().flat_map(|v| &v.nodes));
    }
    (indices, nodes)
}

/// GPUs: their nodes and the driver's control and UVM nodes; `NVIDIA_VISIBLE_DEVICES` by UUID
/// (by index where the driver reports none), which CDI names them by too.
fn gpus<'a>(
    view: &'a HostView,
    ids: &[&str],
    envs: &mut HashMap<String, String>,
) -> (Vec<String>, Vec<&'a DevNode>) {
    let gpus: Vec<_> = view
        .discovery
        .gpus
        .iter()
        .filter(|gpu| ids.contains(&gpu_device_id(gpu).as_str()))
        .collect();
    let names: Vec<String> = gpus
        .iter()
        .map(|gpu| gpu.uuid.clone().unwrap_or_else(|| gpu.index.to_string()))
        .collect();
    envs.insert(VISIBLE_DEVICES.to_owned(), names.join(","));
    let shared = [nv::CTL_PATH, nv::UVM_PATH, nv::UVM_TOOLS_PATH];
    let mut nodes: Vec<&DevNode> = gpus.iter().flat_map(|g| &g.nodes).collect();
    nodes.extend(
        view.discovery
            .nvidia
            .iter()
            .flat_map(|driver| &driver.nodes)
            .filter(|node| shared.iter().any(|path| node.path == Path::new(path))),
    );
    (names, nodes)
}
