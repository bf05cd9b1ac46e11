//! Discovery → CDI specs.

use std::path::Path;

use super::nodes::{device_node, sysfs_bind};
use super::spec::{ContainerEdits, Device, Spec};
use super::version::minimum_version;
use super::{CdiError, Kind};
use crate::discovery::Discovery;
use crate::nvproxy::abi as nv;
use crate::pci::HostRoot;
use crate::tpuproxy::DriverModel;

/// Name of the device that holds every device of a spec.
pub const ALL_DEVICES: &str = "all";

/// The CDI spec of `kind` for the host `discovery` describes (`host` is where it was read).
///
/// Devices are named by index in PCI bus order (what `nvidia-smi` and `NVIDIA_VISIBLE_DEVICES`
/// number, and what `dev.accelgate.tpu` means), GPUs also by their `GPU-<uuid>`, and `all`
/// holds every device. Nodes every device needs (`/dev/nvidiactl`, `/dev/nvidia-uvm`,
/// `/dev/nvidia-uvm-tools`, `/dev/vfio/vfio`) are spec-wide edits. A chip or GPU without a
/// device node on the host is left out with a warning. Pure: reads nothing but `discovery`.
///
/// Errors when the host has no devices of `kind`.
pub fn generate(discovery: &Discovery, host: &HostRoot, kind: Kind) -> Result<Spec, CdiError> {
    let (mut devices, container_edits) = match kind {
        Kind::Gpu => gpu_devices(discovery, host),
        Kind::Tpu => tpu_devices(discovery, host),
    };
    if devices.is_empty() {
        return Err(CdiError::NoDevices {
            kind,
            host: host.origin().to_path_buf(),
        });
    }
    let mut all = ContainerEdits::default();
    for device in devices.iter().filter(|d| is_index(&d.name)) {
        all.device_nodes
            .extend(device.container_edits.device_nodes.iter().cloned());
        all.mounts
            .extend(device.container_edits.mounts.iter().cloned());
    }
    devices.push(device(ALL_DEVICES.to_owned(), all));
    let mut spec = Spec {
        cdi_version: String::new(),
        kind: kind.name().to_owned(),
        annotations: Default::default(),
        devices,
        container_edits,
    };
    spec.cdi_version = minimum_version(&spec).to_owned();
    Ok(spec)
}

fn is_index(name: &str) -> bool {
    name.bytes().all(|b| b.is_ascii_digit())
}

fn device(name: String, container_edits: ContainerEdits) -> Device {
    Device {
        name,
        annotations: Default::default(),
        container_edits,
    }
}

/// Per GPU `/dev/nvidiaN` under its index and its UUID; spec-wide the control and UVM nodes
/// (`/dev/nvidia-modeset` is for display and the capability nodes are MIG's: neither is given).
fn gpu_devices(discovery: &Discovery, host: &HostRoot) -> (Vec<Device>, ContainerEdits) {
    let mut devices = Vec::new();
    for gpu in &discovery.gpus {
        let Some(node) = gpu.nodes.first() else {
            tracing::warn!(bdf = %gpu.bdf, "GPU {} has no device node; left out of the spec", gpu.index);
            continue;
        };
        let edits = ContainerEdits {
            device_nodes: vec![device_node(node, discovery, host)],
            ..Default::default()
        };
        devices.push(device(gpu.index.to_string(), edits.clone()));
        if let Some(uuid) = &gpu.uuid {
            devices.push(device(uuid.clone(), edits));
        }
    }
    // Index names first, then UUIDs: the order `nvidia-smi -L` lists them in.
    devices.sort_by_key(|d| !is_index(&d.name));
    let shared = [nv::CTL_PATH, nv::UVM_PATH, nv::UVM_TOOLS_PATH];
    let device_nodes = discovery
        .nvidia
        .iter()
        .flat_map(|n| &n.nodes)
        .filter(|n| shared.iter().any(|path| n.path == Path::new(path)))
        .map(|n| device_node(n, discovery, host))
        .collect();
    let edits = ContainerEdits {
        device_nodes,
        ..Default::default()
    };
    (devices, edits)
}

/// Per chip its nodes and read-only binds of its sysfs directories (and, for VFIO chips, its
/// IOMMU groups), as the sandbox plan gives them; spec-wide `/dev/vfio/vfio` when a chip is on
/// VFIO. No environment: the plan sets none, and CDI keeps only the last device's value of a
/// variable, so a per-chip list could not add up.
fn tpu_devices(discovery: &Discovery, host: &HostRoot) -> (Vec<Device>, ContainerEdits) {
    let mut devices = Vec::new();
    for chip in &discovery.tpus {
        if chip.nodes.is_empty() {
            tracing::warn!(bdf = %chip.bdfs[0], "TPU chip {} has no device node; left out of the spec", chip.index);
            continue;
        }
        let mut mounts: Vec<_> = chip
            .sysfs_paths
            .iter()
            .map(|path| sysfs_bind(host, path))
            .collect();
        if chip.driver == DriverModel::Vfio {
            mounts.extend(chip.iommu_groups.iter().map(|group| {
                sysfs_bind(
                    host,
                    &Path::new("/sys/kernel/iommu_groups").join(group.to_string()),
                )
            }));
        }
        let edits = ContainerEdits {
            device_nodes: chip
                .nodes
                .iter()
                .map(|n| device_node(n, discovery, host))
                .collect(),
            mounts,
            ..Default::default()
        };
        devices.push(device(chip.index.to_string(), edits));
    }
    let on_vfio = discovery
        .tpus
        .iter()
        .any(|c| c.driver == DriverModel::Vfio && !c.nodes.is_empty());
    let device_nodes = discovery
        .vfio
        .iter()
        .flat_map(|v| &v.nodes)
        .filter(|_| on_vfio)
        .map(|n| device_node(n, discovery, host))
        .collect();
    let edits = ContainerEdits {
        device_nodes,
        ..Default::default()
    };
    (devices, edits)
}
