//! NVIDIA GPU requests: does the spec ask for GPUs, which ones, with which capabilities.

use std::path::Path;

use oci_spec::runtime::Spec;

use super::BootError;
use crate::discovery::Discovery;
use crate::nvproxy::abi::gpu_node_minor;
use crate::nvproxy::{DriverCaps, NvidiaGpu};

/// Whether `path` is one of the NVIDIA container toolkit's hooks (the legacy prestart hook or
/// the CDI hook), whose job, the GPU's device nodes, the plan does itself.
pub fn nvidia_toolkit_hook(path: &std::path::Path) -> bool {
    let path = path.to_string_lossy();
    path.ends_with(LEGACY_HOOK) || path.ends_with(CDI_HOOK)
}

/// `NVIDIA_VISIBLE_DEVICES`: which GPUs the NVIDIA toolkit's hooks should inject.
pub const VISIBLE_DEVICES: &str = "NVIDIA_VISIBLE_DEVICES";

/// `NVIDIA_DRIVER_CAPABILITIES`: which driver features the workload needs.
pub const DRIVER_CAPABILITIES: &str = "NVIDIA_DRIVER_CAPABILITIES";

/// The capabilities `all` stands for.
pub const ALL_CAPABILITIES: [&str; 7] = DriverCaps::ALL;

/// The capabilities when the spec names none.
pub const DEFAULT_CAPABILITIES: [&str; 2] = ["compute", "utility"];

const LEGACY_HOOK: &str = "/nvidia-container-runtime-hook";
const CDI_HOOK: &str = "/nvidia-cdi-hook";

/// What a spec asks of NVIDIA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuRequest {
    /// How the request was made, for messages and the plan's rules.
    pub why: String,
    /// Which GPUs by index; empty for driver-only (`none`).
    pub gpus: Vec<usize>,
    /// Driver capabilities.
    pub capabilities: Vec<String>,
    /// Whether `/dev/nvidia-uvm-tools` was asked for (a spec device).
    pub uvm_tools: bool,
}

/// The values of `name` in `env`, in order (a spec may set a variable twice; the last wins).
fn env_values<'a>(env: &'a [String], name: &str) -> Vec<&'a str> {
    env.iter()
        .filter_map(|entry| entry.split_once('='))
        .filter(|(key, _)| *key == name)
        .map(|(_, value)| value)
        .collect()
}

/// Decides whether `spec` asks for NVIDIA GPUs, as gVisor's `GPUFunctionalityRequested` does:
/// a spec device `/dev/nvidiactl` (or `/dev/nvidiaN`); or the legacy
/// `nvidia-container-runtime-hook` prestart hook, or the CDI `nvidia-cdi-hook`
/// createContainer hook, with `NVIDIA_VISIBLE_DEVICES` neither empty nor `void` (CDI appends a
/// trailing `void`, which is skipped). The host must have the NVIDIA driver.
pub fn gpu_request(spec: &Spec, host: &Discovery) -> Result<Option<GpuRequest>, BootError> {
    let gpus = &host.gpus;
    let env = spec
        .process()
        .as_ref()
        .and_then(|p| p.env().clone())
        .unwrap_or_default();
    let device_paths: Vec<String> = spec
        .linux()
        .as_ref()
        .and_then(|l| l.devices().clone())
        .unwrap_or_default()
        .iter()
        .map(|d| d.path().to_string_lossy().into_owned())
        .collect();
    let hooks = spec.hooks().as_ref();
    let ends_with = |list: Option<&Vec<oci_spec::runtime::Hook>>, suffix: &str| {
        list.is_some_and(|hooks| {
            hooks
                .iter()
                .any(|h| h.path().to_string_lossy().ends_with(suffix))
        })
    };
    let legacy_hook = ends_with(hooks.and_then(|h| h.prestart().as_ref()), LEGACY_HOOK);
    let cdi_hook = ends_with(hooks.and_then(|h| h.create_container().as_ref()), CDI_HOOK);

    let mut visible = env_values(&env, VISIBLE_DEVICES);
    if cdi_hook {
        while visible.last() == Some(&"void") && visible.len() > 1 {
            visible.pop();
        }
    }
    let visible = visible
        .last()
        .copied()
        .filter(|v| !v.is_empty() && *v != "void");
    let spec_gpu_minors: Vec<u32> = device_paths
        .iter()
        .filter_map(|p| gpu_node_minor(Path::new(p)))
        .collect();
    let has_ctl = device_paths.iter().any(|p| p == "/dev/nvidiactl");

    let why = if has_ctl {
        "linux.devices /dev/nvidiactl".to_owned()
    } else if !spec_gpu_minors.is_empty() {
        "linux.devices /dev/nvidiaN".to_owned()
    } else if visible.is_some() && legacy_hook {
        format!("the prestart hook ...{LEGACY_HOOK} with {VISIBLE_DEVICES}")
    } else if visible.is_some() && cdi_hook {
        format!("the createContainer hook ...{CDI_HOOK} with {VISIBLE_DEVICES}")
    } else {
        return Ok(None);
    };

    if host.nvidia.is_none() {
        return Err(BootError::MissingAccelerator {
            requested: why,
            what: "an NVIDIA driver".into(),
        });
    }
    let mut selected = match visible {
        Some(value) => parse_visible_devices(value, gpus)?,
        None => Vec::new(),
    };
    for minor in spec_gpu_minors {
        let gpu = gpus.iter().find(|g| g.minor == minor).ok_or_else(|| {
            BootError::MissingAccelerator {
                requested: format!("linux.devices /dev/nvidia{minor}"),
                what: format!("a GPU with minor {minor}"),
            }
        })?;
        selected.push(gpu.index);
    }
    selected.sort_unstable();
    selected.dedup();

    let capabilities = match env_values(&env, DRIVER_CAPABILITIES).last() {
        Some(value) if !value.trim().is_empty() => parse_capabilities(value)?,
        _ => DEFAULT_CAPABILITIES
            .iter()
            .map(|c| (*c).to_owned())
            .collect(),
    };
    let uvm_tools = device_paths.iter().any(|p| p == "/dev/nvidia-uvm-tools");
    Ok(Some(GpuRequest {
        why,
        gpus: selected,
        capabilities,
        uvm_tools,
    }))
}

fn invalid(value: &str, reason: String) -> BootError {
    BootError::InvalidField {
        field: format!("process.env {VISIBLE_DEVICES}={value}"),
        reason,
    }
}

/// Parses `NVIDIA_VISIBLE_DEVICES`: `all`, `none` (the driver without GPUs), or a list of
/// indices in PCI bus order (NVML's and `nvidia-smi`'s numbering, not minors) and `GPU-<uuid>`
/// entries (a unique prefix is enough). MIG devices are refused.
pub fn parse_visible_devices(value: &str, gpus: &[NvidiaGpu]) -> Result<Vec<usize>, BootError> {
    match value.trim() {
        "all" => return Ok(gpus.iter().map(|g| g.index).collect()),
        "none" => return Ok(Vec::new()),
        _ => {}
    }
    let mut selected = Vec::new();
    for entry in value.split(',').map(str::trim) {
        if entry.starts_with("MIG-") {
            return Err(invalid(
                value,
                format!(
                    "{entry}: MIG devices are not supported; give whole GPUs by index or GPU-<uuid>"
                ),
            ));
        }
        if entry.starts_with("GPU-") {
            let matches: Vec<&NvidiaGpu> = gpus
                .iter()
                .filter(|g| {
                    g.uuid
                        .as_deref()
                        .is_some_and(|u| u.eq_ignore_ascii_case(entry) || u.starts_with(entry))
                })
                .collect();
            match matches.as_slice() {
                [gpu] => selected.push(gpu.index),
                [] => {
                    return Err(BootError::MissingAccelerator {
                        requested: format!("{VISIBLE_DEVICES}={value}"),
                        what: format!("GPU {entry}"),
                    });
                }
                _ => {
                    return Err(invalid(
                        value,
                        format!(
                            "{entry} matches {} GPUs; give more of the UUID",
                            matches.len()
                        ),
                    ));
                }
            }
        } else if !entry.is_empty() && entry.bytes().all(|b| b.is_ascii_digit()) {
            let index: usize = entry
                .parse()
                .map_err(|_| invalid(value, format!("{entry} is too large")))?;
            if index >= gpus.len() {
                return Err(BootError::MissingAccelerator {
                    requested: format!("{VISIBLE_DEVICES}={value}"),
                    what: format!("GPU {index} (it has {} GPU(s))", gpus.len()),
                });
            }
            selected.push(index);
        } else {
            return Err(invalid(
                value,
                format!("{entry:?} is not `all`, `none`, a GPU index or GPU-<uuid>"),
            ));
        }
    }
    Ok(selected)
}

/// Parses `NVIDIA_DRIVER_CAPABILITIES` (`compute,utility`, `all`); an unknown capability is an
/// error naming it.
pub fn parse_capabilities(value: &str) -> Result<Vec<String>, BootError> {
    let mut caps: Vec<String> = Vec::new();
    for cap in value.split(',').map(str::trim).filter(|c| !c.is_empty()) {
        if cap == "all" {
            return Ok(ALL_CAPABILITIES.iter().map(|c| (*c).to_owned()).collect());
        }
        if DriverCaps::named(cap).is_none() {
            let known: Vec<&str> = DriverCaps::NAMED.iter().map(|(name, _)| *name).collect();
            return Err(BootError::InvalidField {
                field: format!("process.env {DRIVER_CAPABILITIES}={value}"),
                reason: format!(
                    "unknown capability {cap:?}; known: {}, all",
                    known.join(", ")
                ),
            });
        }
        if !caps.iter().any(|c| c == cap) {
            caps.push(cap.to_owned());
        }
    }
    Ok(caps)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::pci::Bdf;

    fn gpus() -> Vec<NvidiaGpu> {
        (0..4)
            .map(|i| NvidiaGpu {
                index: i,
                bdf: Bdf::new(0, 0x1b + i as u8, 0, 0).unwrap(),
                device_id: 0x2330,
                minor: [2, 3, 0, 1][i],
                numa_node: Some(0),
                model: None,
                uuid: Some(format!("GPU-{i}a4e2b3c-0000-0000-0000-00000000000{i}")),
                nodes: Vec::new(),
                sysfs_path: PathBuf::new(),
            })
            .collect()
    }

    #[test]
    fn visible_devices_are_indices_uuids_all_or_none() {
        let gpus = gpus();
        assert_eq!(parse_visible_devices("all", &gpus).unwrap(), [0, 1, 2, 3]);
        assert!(parse_visible_devices("none", &gpus).unwrap().is_empty());
        assert_eq!(parse_visible_devices("3,1", &gpus).unwrap(), [3, 1]);
        assert_eq!(
            parse_visible_devices("GPU-2a4e2b3c-0000-0000-0000-000000000002", &gpus).unwrap(),
            [2]
        );
        assert_eq!(parse_visible_devices("GPU-1a4e", &gpus).unwrap(), [1]);
    }

    #[test]
    fn bad_visible_devices_are_named() {
        let gpus = gpus();
        let err = parse_visible_devices("MIG-5c1e3b2a-0000", &gpus)
            .unwrap_err()
            .to_string();
        assert!(err.contains("MIG devices are not supported"), "{err}");
        let err = parse_visible_devices("7", &gpus).unwrap_err().to_string();
        assert!(
            err.contains("NVIDIA_VISIBLE_DEVICES=7") && err.contains("GPU 7"),
            "{err}"
        );
        assert!(parse_visible_devices("0,,1", &gpus).is_err());
        assert!(parse_visible_devices("first", &gpus).is_err());
        assert!(
            parse_visible_devices("GPU-deadbeef", &gpus)
                .unwrap_err()
                .to_string()
                .contains("GPU-deadbeef")
        );
        assert!(
            parse_visible_devices("GPU-", &gpus)
                .unwrap_err()
                .to_string()
                .contains("matches 4")
        );
    }

    #[test]
    fn capabilities() {
        assert_eq!(
            parse_capabilities("compute, video,compute").unwrap(),
            ["compute", "video"]
        );
        assert_eq!(parse_capabilities("all").unwrap().len(), 7);
        assert!(
            parse_capabilities("compute,teleport")
                .unwrap_err()
                .to_string()
                .contains("teleport")
        );
    }
}
