use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::abi::{
    CAPS_DIR, CAPS_MAJOR_NAME, CTL_MINOR, CTL_PATH, FRONTEND_MAJOR, FRONTEND_MAJOR_NAMES,
    MAX_GPU_MINOR, MODESET_MINOR, MODESET_PATH, NVIDIA_VENDOR_ID, UVM_MAJOR_NAME, UVM_PATH,
    UVM_TOOLS_PATH,
};
use super::gpu_info::{GpuInformation, parse_information};
use super::version::{DriverVersion, parse_proc_version};
use crate::pci::attr::serialize_hex_id;
use crate::pci::{
    Bdf, DevNode, HostRoot, HostTree, PciDevice, PciError, PciScan, ProcDevices, UnsupportedDevice,
    Warning, check_major, or_warn,
};

/// One NVIDIA GPU a sandbox can be given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NvidiaGpu {
    /// Position in PCI bus order: NVML's and `nvidia-smi`'s index, and what
    /// `NVIDIA_VISIBLE_DEVICES=1` means. Not the minor.
    pub index: usize,
    /// Its PCI address.
    pub bdf: Bdf,
    /// PCI device ID.
    #[serde(serialize_with = "serialize_hex_id")]
    pub device_id: u16,
    /// N of `/dev/nvidiaN`, from the driver's `Device Minor`.
    pub minor: u32,
    /// NUMA node.
    pub numa_node: Option<i32>,
    /// Marketing name, from the driver.
    pub model: Option<String>,
    /// `GPU-...` UUID, from the driver.
    pub uuid: Option<String>,
    /// `/dev/nvidiaN`, when the node exists.
    pub nodes: Vec<DevNode>,
    /// Host sysfs directory.
    #[serde(skip)]
    pub sysfs_path: PathBuf,
}

/// The host's NVIDIA driver: its version, majors and control nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NvidiaDriver {
    /// Loaded driver version; `None` when it could not be read.
    pub driver_version: Option<DriverVersion>,
    /// Driver-wide nodes present on the host: `/dev/nvidiactl`, `/dev/nvidia-uvm`,
    /// `/dev/nvidia-uvm-tools`, `/dev/nvidia-modeset`, `/dev/nvidia-caps/*`.
    pub nodes: Vec<DevNode>,
    /// Every `nvidia*` character major in `/proc/devices`, by name.
    pub majors: BTreeMap<String, u32>,
}

/// The host's NVIDIA GPUs and driver.
#[derive(Debug, Clone, Default)]
pub struct NvidiaDiscovery {
    /// Usable GPUs in PCI bus order.
    pub gpus: Vec<NvidiaGpu>,
    /// The driver, `None` on a host without NVIDIA.
    pub driver: Option<NvidiaDriver>,
    /// NVIDIA GPUs the driver does not manage, with the reason.
    pub unsupported: Vec<UnsupportedDevice>,
    /// What was odd, each naming its file.
    pub warnings: Vec<Warning>,
}

/// Finds NVIDIA GPUs (vendor `0x10de` display controllers) and the driver state around them.
///
/// GPU ↔ minor ↔ model ↔ UUID comes from `/proc/driver/nvidia/gpus/<bdf>/information`; the
/// driver version from `/proc/driver/nvidia/version`, else `/sys/module/nvidia/version`; the
/// majors from `/proc/devices`. A node whose numbers disagree is kept and warned about.
pub fn discover(
    host: &HostRoot,
    pci: &PciScan,
    proc_devices: Option<&ProcDevices>,
) -> NvidiaDiscovery {
    let mut found = NvidiaDiscovery::default();
    let candidates: Vec<&PciDevice> = pci
        .devices
        .iter()
        .filter(|d| d.vendor == NVIDIA_VENDOR_ID && d.is_display_controller())
        .collect();
    let majors: BTreeMap<String, u32> = proc_devices
        .into_iter()
        .flat_map(ProcDevices::char_majors)
        .filter(|(_, name)| name.starts_with("nvidia"))
        .map(|(major, name)| (name.to_owned(), major))
        .collect();
    let driver_loaded = !majors.is_empty() || exists(host.proc(), "driver/nvidia");
    if candidates.is_empty() && !driver_loaded {
        return found;
    }
    let frontend_major = FRONTEND_MAJOR_NAMES
        .iter()
        .find_map(|name| majors.get(*name).copied())
        .unwrap_or(FRONTEND_MAJOR);

    for device in candidates {
        match read_information(host, device.bdf) {
            Ok(Some(info)) => {
                if let Some(gpu) = usable_gpu(
                    host,
                    device,
                    &info,
                    frontend_major,
                    found.gpus.len(),
                    &mut found.warnings,
                ) {
                    found.gpus.push(gpu);
                }
            }
            Ok(None) => found.unsupported.push(UnsupportedDevice {
                bdf: device.bdf,
                kind: "gpu",
                vendor: device.vendor,
                device_id: device.device,
                reason: format!(
                    "the NVIDIA driver does not manage it (no /proc/driver/nvidia/gpus/{}; {})",
                    device.bdf,
                    match &device.driver {
                        Some(driver) => format!("bound to {driver}"),
                        None => "not bound to a driver".to_owned(),
                    }
                ),
            }),
            Err(e) => found.warnings.push(Warning::from_error(
                &e,
                &format!("GPU {} skipped", device.bdf),
            )),
        }
    }
    warn_orphan_gpu_nodes(host, &found.gpus, &mut found.warnings);

    if driver_loaded {
        let driver_version = read_version(host, &mut found.warnings);
        let nodes = driver_nodes(
            host,
            &majors,
            frontend_major,
            !found.gpus.is_empty(),
            &mut found.warnings,
        );
        found.driver = Some(NvidiaDriver {
            driver_version,
            nodes,
            majors,
        });
    } else {
        for gpu in &found.gpus {
            found.warnings.push(Warning::new(
                &gpu.sysfs_path,
                "NVIDIA GPU reported but no NVIDIA driver is loaded",
            ));
        }
    }
    found
}

fn exists(tree: &HostTree, rel: &str) -> bool {
    tree.resolve(rel).is_ok()
}

fn read_information(host: &HostRoot, bdf: Bdf) -> Result<Option<GpuInformation>, PciError> {
    let tree = host.proc();
    let Some(dir) = tree.resolve_optional(format!("driver/nvidia/gpus/{bdf}"))? else {
        return Ok(None);
    };
    let path = dir.join("information");
    let text = tree.read(&path)?;
    parse_information(&text)
        .map(Some)
        .map_err(|reason| PciError::Invalid {
            path: tree.host_path(&path),
            value: text.clone(),
            reason,
        })
}

fn usable_gpu(
    host: &HostRoot,
    device: &PciDevice,
    info: &GpuInformation,
    frontend_major: u32,
    index: usize,
    warnings: &mut Vec<Warning>,
) -> Option<NvidiaGpu> {
    let info_path = PathBuf::from(format!(
        "/proc/driver/nvidia/gpus/{}/information",
        device.bdf
    ));
    if info
        .bus_location
        .is_some_and(|location| location != device.bdf)
    {
        warnings.push(Warning::new(
            &info_path,
            format!(
                "Bus Location disagrees with the directory name {}",
                device.bdf
            ),
        ));
    }
    if info.device_minor > MAX_GPU_MINOR {
        warnings.push(Warning::new(
            &info_path,
            format!(
                "Device Minor {} is above {MAX_GPU_MINOR}; GPU skipped",
                info.device_minor
            ),
        ));
        return None;
    }
    let path = PathBuf::from(format!("/dev/nvidia{}", info.device_minor));
    let what = format!("GPU {} (minor {})", device.bdf, info.device_minor);
    let node = host
        .dev()
        .char_node(&path, &what, warnings)
        .inspect(|node| {
            check_major(
                node,
                frontend_major,
                "/proc/devices nvidia-frontend",
                warnings,
            );
            if node.minor != info.device_minor {
                warnings.push(Warning::new(
                    &node.path,
                    format!(
                        "minor {} disagrees with the driver's Device Minor {}",
                        node.minor, info.device_minor
                    ),
                ));
            }
        });
    Some(NvidiaGpu {
        index,
        bdf: device.bdf,
        device_id: device.device,
        minor: info.device_minor,
        numa_node: device.numa_node,
        model: info.model.clone(),
        uuid: info.uuid.clone(),
        nodes: node.into_iter().collect(),
        sysfs_path: device.sysfs_path.clone(),
    })
}

/// `/dev/nvidiaN` nodes that no GPU claims: a stale node or a GPU the driver lost.
fn warn_orphan_gpu_nodes(host: &HostRoot, gpus: &[NvidiaGpu], warnings: &mut Vec<Warning>) {
    let nodes = match host.dev().children(Path::new("/dev")) {
        Ok(nodes) => nodes,
        Err(e) => {
            warnings.push(Warning::from_error(&e, "GPU nodes not listed"));
            return;
        }
    };
    for node in nodes {
        let Some(minor) = super::abi::gpu_node_minor(&node.path) else {
            continue;
        };
        if !gpus.iter().any(|gpu| gpu.minor == minor) {
            warnings.push(Warning::new(
                &node.path,
                format!("no NVIDIA GPU has minor {minor}"),
            ));
        }
    }
}

fn read_version(host: &HostRoot, warnings: &mut Vec<Warning>) -> Option<DriverVersion> {
    let version = version_from(
        host.proc(),
        "driver/nvidia/version",
        parse_proc_version,
        warnings,
    )
    .or_else(|| {
        let parse = |text: &str| DriverVersion::parse(text.trim());
        version_from(host.sys(), "module/nvidia/version", parse, warnings)
    });
    if version.is_none() {
        warnings.push(Warning::new(
            "/proc/driver/nvidia/version",
            "NVIDIA driver version unknown (neither it nor /sys/module/nvidia/version is readable)",
        ));
    }
    version
}

/// The version in one file; a file that is there but does not parse is a warning.
fn version_from(
    tree: &HostTree,
    rel: &str,
    parse: impl Fn(&str) -> Result<DriverVersion, &'static str>,
    warnings: &mut Vec<Warning>,
) -> Option<DriverVersion> {
    or_warn(
        tree.read_parsed(&tree.root().join(rel), parse),
        "ignored",
        warnings,
    )
}

fn driver_nodes(
    host: &HostRoot,
    majors: &BTreeMap<String, u32>,
    frontend_major: u32,
    have_gpus: bool,
    warnings: &mut Vec<Warning>,
) -> Vec<DevNode> {
    let uvm_major = majors.get(UVM_MAJOR_NAME).copied();
    let caps_major = majors.get(CAPS_MAJOR_NAME).copied();
    let mut nodes = Vec::new();
    let optional = |path: &str, warnings: &mut Vec<Warning>| {
        or_warn(host.dev().node(Path::new(path)), "ignored", warnings)
    };

    let ctl = if have_gpus {
        host.dev()
            .char_node(Path::new(CTL_PATH), "the NVIDIA control device", warnings)
    } else {
        optional(CTL_PATH, warnings)
    };
    if let Some(node) = ctl {
        expect_numbers(&node, frontend_major, CTL_MINOR, warnings);
        nodes.push(node);
    }
    for path in [UVM_PATH, UVM_TOOLS_PATH] {
        if let Some(node) = optional(path, warnings) {
            match uvm_major {
                Some(major) => check_major(&node, major, "/proc/devices nvidia-uvm", warnings),
                None => warnings.push(Warning::new(
                    &node.path,
                    "no nvidia-uvm major in /proc/devices to check it against",
                )),
            }
            nodes.push(node);
        }
    }
    if let Some(node) = optional(MODESET_PATH, warnings) {
        expect_numbers(&node, frontend_major, MODESET_MINOR, warnings);
        nodes.push(node);
    }
    match host.dev().children(Path::new(CAPS_DIR)) {
        Ok(caps) => {
            for node in caps {
                if let Some(major) = caps_major {
                    check_major(&node, major, "/proc/devices nvidia-caps", warnings);
                }
                nodes.push(node);
            }
        }
        Err(e) => warnings.push(Warning::from_error(&e, "capability nodes not listed")),
    }
    nodes
}

fn expect_numbers(node: &DevNode, major: u32, minor: u32, warnings: &mut Vec<Warning>) {
    check_major(node, major, "/proc/devices nvidia-frontend", warnings);
    if node.minor != minor {
        warnings.push(Warning::new(
            &node.path,
            format!("minor {} is not the driver's {minor}", node.minor),
        ));
    }
}
