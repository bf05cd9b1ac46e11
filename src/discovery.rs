//! The whole picture of a host's accelerators: what `accelgate discover` prints.
//!
//! The JSON form is the versioned schema [`SCHEMA`], documented in `docs/discovery.md`.

use std::path::Path;

use serde::Serialize;

use crate::accel::abi::ACCEL_MAJOR;
use crate::nvproxy::{self, NvidiaDriver, NvidiaGpu, abi as nv};
use crate::pci::{
    self, DevNode, HostRoot, NodeKind, PciError, PciScan, ProcDevices, UnsupportedDevice, Warning,
};
use crate::tpuproxy::{self, DriverModel, Generation, TpuChip};
use crate::vfio::abi::{CONTAINER_PATH, GROUP_MAJOR_NAME, MISC_MAJOR, VFIO_MINOR};
use crate::vfs::{DeviceClass, DeviceRegistry, RegisteredDevice, VfsError};

/// Name and version of the JSON schema.
pub const SCHEMA: &str = "accelgate.discovery/v1";

/// The host's VFIO container node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VfioNodes {
    /// `/dev/vfio/vfio`.
    pub nodes: Vec<DevNode>,
}

/// Everything discovery found on a host.
#[derive(Debug, Clone, Serialize)]
pub struct Discovery {
    /// Always [`SCHEMA`].
    pub schema: &'static str,
    /// TPU chips in PCI bus order.
    pub tpus: Vec<TpuChip>,
    /// NVIDIA GPUs in PCI bus order.
    pub gpus: Vec<NvidiaGpu>,
    /// The NVIDIA driver; `null` without NVIDIA.
    pub nvidia: Option<NvidiaDriver>,
    /// The VFIO container; `null` without VFIO TPUs.
    pub vfio: Option<VfioNodes>,
    /// Accelerators present but not offered, in PCI bus order.
    pub unsupported: Vec<UnsupportedDevice>,
    /// What was odd, each naming its file.
    pub warnings: Vec<Warning>,
    /// Every PCI function.
    #[serde(skip)]
    pub pci: PciScan,
    /// The host's `/proc/devices`.
    #[serde(skip)]
    pub proc_devices: Option<ProcDevices>,
}

/// Reads the host's accelerators.
///
/// Errors only when the host cannot be read at all (no `/sys/bus/pci/devices` listing);
/// anything wrong with one device or file is a warning in the result.
pub fn discover(host: &HostRoot) -> Result<Discovery, PciError> {
    let mut pci = pci::scan(host)?;
    let mut warnings = std::mem::take(&mut pci.warnings);
    let proc_devices = host.proc_devices().unwrap_or_else(|e| {
        warnings.push(Warning::from_error(&e, "device majors not checked"));
        None
    });
    let tpus = tpuproxy::discover(host, &pci, proc_devices.as_ref());
    let nvidia = nvproxy::discover(host, &pci, proc_devices.as_ref());
    warnings.extend(tpus.warnings);
    warnings.extend(nvidia.warnings);
    let mut unsupported = tpus.unsupported;
    unsupported.extend(nvidia.unsupported);
    unsupported.sort_by_key(|u| u.bdf);
    Ok(Discovery {
        schema: SCHEMA,
        tpus: tpus.chips,
        gpus: nvidia.gpus,
        nvidia: nvidia.driver,
        vfio: tpus
            .vfio_container
            .map(|node| VfioNodes { nodes: vec![node] }),
        unsupported,
        warnings,
        pci,
        proc_devices,
    })
}

impl Discovery {
    /// A registry with the standard devices and every discovered accelerator node, with the
    /// host's majors kept out of the dynamic pool.
    pub fn registry(&self) -> Result<DeviceRegistry, VfsError> {
        let mut registry = DeviceRegistry::with_standard_devices();
        if let Some(host) = &self.proc_devices {
            registry.reserve_host_majors(host);
        }
        // Numbers fixed by Linux or by the host's driver stand for their class wherever a node
        // with them shows up, discovered or not (a node made with CAP_MKNOD, a chip discovery
        // skipped): the gate classifies files by these.
        registry.register_major(NodeKind::Char, ACCEL_MAJOR, DeviceClass::TpuAccel);
        if let Some(major) = self
            .proc_devices
            .as_ref()
            .and_then(|d| d.char_major(GROUP_MAJOR_NAME))
        {
            registry.register_major(NodeKind::Char, major, DeviceClass::VfioGroup);
        }
        for chip in &self.tpus {
            let class = match chip.driver {
                DriverModel::Accel if chip.generation == Generation::V4Lite => {
                    DeviceClass::TpuAccelLite
                }
                DriverModel::Accel => DeviceClass::TpuAccel,
                DriverModel::Vfio => DeviceClass::VfioGroup,
            };
            for node in &chip.nodes {
                registry.register_node(node, class)?;
            }
        }
        if self.vfio.is_none() {
            let container = RegisteredDevice {
                class: DeviceClass::VfioContainer,
                path: CONTAINER_PATH.into(),
                mode: 0o666,
            };
            registry.register(NodeKind::Char, MISC_MAJOR, VFIO_MINOR, container)?;
        }
        for node in self.vfio.iter().flat_map(|v| &v.nodes) {
            registry.register_node(node, DeviceClass::VfioContainer)?;
        }
        if self.nvidia.is_some() {
            // A frontend number the discovery did not see is a GPU (the control and modeset
            // minors are discovered nodes); a UVM number other than the discovered two gets
            // nothing through the gate.
            registry.register_major(NodeKind::Char, nv::FRONTEND_MAJOR, DeviceClass::NvidiaGpu);
            if let Some(major) = self
                .proc_devices
                .as_ref()
                .and_then(|d| d.char_major(nv::UVM_MAJOR_NAME))
            {
                registry.register_major(NodeKind::Char, major, DeviceClass::NvidiaUvmTools);
            }
        }
        for node in self.gpus.iter().flat_map(|g| &g.nodes) {
            registry.register_node(node, DeviceClass::NvidiaGpu)?;
        }
        for node in self.nvidia.iter().flat_map(|n| &n.nodes) {
            registry.register_node(node, nvidia_class(&node.path))?;
        }
        Ok(registry)
    }
}

fn nvidia_class(path: &Path) -> DeviceClass {
    match path.to_str() {
        Some(nv::CTL_PATH) => DeviceClass::NvidiaCtl,
        Some(nv::UVM_PATH) => DeviceClass::NvidiaUvm,
        Some(nv::UVM_TOOLS_PATH) => DeviceClass::NvidiaUvmTools,
        Some(nv::MODESET_PATH) => DeviceClass::NvidiaModeset,
        _ => DeviceClass::NvidiaCap,
    }
}
