use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use super::generation::{DriverModel, GOOGLE_VENDOR_ID, Generation, TpuModel, model_for};
use crate::accel::{self, AccelDevice};
use crate::pci::attr::serialize_hex_id;
use crate::pci::{
    Bdf, DevNode, HostRoot, PciDevice, PciScan, ProcDevices, UnsupportedDevice, Warning,
    check_major,
};
use crate::vfio;

/// One TPU chip a sandbox can be given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TpuChip {
    /// Position in PCI bus order among the host's chips: what `dev.accelgate.tpu=0,1` means.
    pub index: usize,
    /// Its generation.
    pub generation: Generation,
    /// How the host exposes it.
    pub driver: DriverModel,
    /// PCI device ID of its first function.
    #[serde(serialize_with = "serialize_hex_id")]
    pub device_id: u16,
    /// Its PCI functions: one, or one per core on TPU7x.
    pub bdfs: Vec<Bdf>,
    /// NUMA node of its first function.
    pub numa_node: Option<i32>,
    /// IOMMU group of its first function (VFIO chips).
    pub iommu_group: Option<u32>,
    /// Its device nodes: `/dev/accelN`, or `/dev/vfio/<group>` per function.
    pub nodes: Vec<DevNode>,
    /// Host sysfs directories of its functions.
    #[serde(skip)]
    pub sysfs_paths: Vec<PathBuf>,
    /// IOMMU groups of all its functions.
    #[serde(skip)]
    pub iommu_groups: Vec<u32>,
}

/// The host's TPUs.
#[derive(Debug, Clone, Default)]
pub struct TpuDiscovery {
    /// Usable chips in PCI bus order.
    pub chips: Vec<TpuChip>,
    /// `/dev/vfio/vfio`, when the host has VFIO chips and the node.
    pub vfio_container: Option<DevNode>,
    /// Google devices that cannot be offered, with the reason.
    pub unsupported: Vec<UnsupportedDevice>,
    /// What was odd, each naming its file.
    pub warnings: Vec<Warning>,
}

/// One usable PCI function of a chip.
struct Function<'a> {
    device: &'a PciDevice,
    model: &'static TpuModel,
    node: Option<DevNode>,
}

/// Finds the TPU chips among the scanned PCI functions.
///
/// Accel chips (v4, v4lite) are matched to `/sys/class/accel/accelN` through its `device`
/// link; VFIO chips (v5e and later) go from the function's `iommu_group` to
/// `/dev/vfio/<group>`, taking the node's own numbers. Only vendor `0x1ae0` functions in the
/// TPU table count: an unknown Google ID is reported as unsupported rather than guessed, and a
/// non-Google function bound to `vfio-pci` is never a TPU.
pub fn discover(
    host: &HostRoot,
    pci: &PciScan,
    proc_devices: Option<&ProcDevices>,
) -> TpuDiscovery {
    let mut found = TpuDiscovery::default();
    let mut accel_by_bdf: BTreeMap<Bdf, AccelDevice> = BTreeMap::new();
    for device in accel::scan_class(host, &mut found.warnings) {
        if let Some(earlier) = accel_by_bdf.get(&device.bdf) {
            found.warnings.push(Warning::new(
                format!("/sys/class/accel/accel{}", device.index),
                format!(
                    "same PCI function {} as accel{}; ignored",
                    device.bdf, earlier.index
                ),
            ));
        } else {
            accel_by_bdf.insert(device.bdf, device);
        }
    }
    let vfio_major = proc_devices.and_then(|p| p.char_major(vfio::abi::GROUP_MAJOR_NAME));

    let mut functions = Vec::new();
    for device in pci.devices.iter().filter(|d| d.vendor == GOOGLE_VENDOR_ID) {
        let unsupported = |reason: String| UnsupportedDevice {
            bdf: device.bdf,
            kind: "tpu",
            vendor: device.vendor,
            device_id: device.device,
            reason,
        };
        let Some(model) = model_for(device.device) else {
            found.warnings.push(Warning::new(
                device.sysfs_path.join("device"),
                format!(
                    "unknown Google device ID {:#06x}; listed as unsupported",
                    device.device
                ),
            ));
            found.unsupported.push(unsupported(format!(
                "unknown Google device ID {:#06x}; not guessed",
                device.device
            )));
            continue;
        };
        if !model.supported {
            found.unsupported.push(unsupported(format!(
                "TPU {} ({:#06x}) is known but not supported",
                model.generation, model.device_id
            )));
            continue;
        }
        let node = match model.driver {
            DriverModel::Accel => match accel_by_bdf.remove(&device.bdf) {
                Some(accel) => accel_node(host, &accel, &mut found.warnings),
                None => {
                    found.unsupported.push(unsupported(format!(
                        "TPU {} has no /sys/class/accel device ({}); is the TPU driver loaded?",
                        model.generation,
                        bound_to(device)
                    )));
                    continue;
                }
            },
            DriverModel::Vfio => {
                if serves_tpu_vfs(device, pci) {
                    tracing::debug!(bdf = %device.bdf, "physical function serving TPU VFs; the VFs are the chips");
                    continue;
                }
                if device.driver.as_deref() != Some(vfio::abi::PCI_DRIVER) {
                    found.unsupported.push(unsupported(format!(
                        "TPU {} must be bound to {} but is {}",
                        model.generation,
                        vfio::abi::PCI_DRIVER,
                        bound_to(device)
                    )));
                    continue;
                }
                let Some(group) = device.iommu_group else {
                    found.unsupported.push(unsupported(format!(
                        "TPU {} on {} has no IOMMU group",
                        model.generation,
                        vfio::abi::PCI_DRIVER
                    )));
                    continue;
                };
                group_node(host, device.bdf, group, vfio_major, &mut found.warnings)
            }
        };
        functions.push(Function {
            device,
            model,
            node,
        });
    }
    for leftover in accel_by_bdf.values() {
        found.warnings.push(Warning::new(
            format!("/sys/class/accel/accel{}", leftover.index),
            format!(
                "its PCI function {} is not a supported TPU; ignored",
                leftover.bdf
            ),
        ));
    }

    found.chips = assemble_chips(functions);
    if found.chips.iter().any(|c| c.driver == DriverModel::Vfio) {
        found.vfio_container = vfio::container_node(host, &mut found.warnings);
    }
    found
}

fn bound_to(device: &PciDevice) -> String {
    match &device.driver {
        Some(driver) => format!("bound to {driver}"),
        None => "not bound to a driver".to_owned(),
    }
}

/// An SR-IOV physical function whose virtual functions are TPUs: the VFs are the chips.
fn serves_tpu_vfs(device: &PciDevice, pci: &PciScan) -> bool {
    device
        .virtfns
        .iter()
        .filter_map(|vf| pci.get(*vf))
        .any(|vf| vf.vendor == GOOGLE_VENDOR_ID && model_for(vf.device).is_some())
}

fn accel_node(
    host: &HostRoot,
    accel: &AccelDevice,
    warnings: &mut Vec<Warning>,
) -> Option<DevNode> {
    let what = format!("TPU {} (accel{})", accel.bdf, accel.index);
    let node = host.dev().char_node(&accel.node_path, &what, warnings)?;
    let expected = (accel::abi::ACCEL_MAJOR, accel.minor);
    if (node.major, node.minor) != expected {
        warnings.push(Warning::new(
            &node.path,
            format!(
                "numbers {} disagree with sysfs /sys/class/accel/accel{}/dev {}:{}",
                node.numbers(),
                accel.index,
                expected.0,
                expected.1
            ),
        ));
    }
    Some(node)
}

fn group_node(
    host: &HostRoot,
    bdf: Bdf,
    group: u32,
    vfio_major: Option<u32>,
    warnings: &mut Vec<Warning>,
) -> Option<DevNode> {
    let what = format!("IOMMU group {group} of TPU {bdf}");
    let node = host
        .dev()
        .char_node(&vfio::group_node_path(group), &what, warnings)?;
    if let Some(major) = vfio_major {
        check_major(&node, major, "/proc/devices vfio", warnings);
    }
    Some(node)
}

/// Groups functions into chips (the functions of a TPU7x chip share a slot) in bus order.
fn assemble_chips(mut functions: Vec<Function<'_>>) -> Vec<TpuChip> {
    functions.sort_by_key(|f| f.device.bdf);
    let mut chips: Vec<TpuChip> = Vec::new();
    for Function {
        device,
        model,
        node,
    } in functions
    {
        let joins_last = chips.last().is_some_and(|chip| {
            model.functions_per_chip > 1
                && chip.generation == model.generation
                && chip.bdfs.len() < usize::from(model.functions_per_chip)
                && chip.bdfs[0].slot() == device.bdf.slot()
        });
        if !joins_last {
            chips.push(TpuChip {
                index: chips.len(),
                generation: model.generation,
                driver: model.driver,
                device_id: device.device,
                bdfs: Vec::new(),
                numa_node: device.numa_node,
                iommu_group: device.iommu_group,
                nodes: Vec::new(),
                sysfs_paths: Vec::new(),
                iommu_groups: Vec::new(),
            });
        }
        let chip = chips.last_mut().expect("a chip was just pushed or matched");
        chip.bdfs.push(device.bdf);
        chip.sysfs_paths.push(device.sysfs_path.clone());
        chip.iommu_groups.extend(device.iommu_group);
        chip.nodes.extend(node);
    }
    chips
}
