//! Device grants: the annotations with which a scheduler (accelgate's Kubernetes device plugin)
//! tells the runtime which accelerators a container was given.
//!
//! Under Kubernetes the kubelet asks the device plugin for devices and passes its answer on as
//! device nodes, environment and annotations; a pod may add nodes or environment of its own
//! (`NVIDIA_VISIBLE_DEVICES=all` is the classic way to reach GPUs nobody granted). With a grant
//! annotation the sandbox gets exactly the granted devices of that kind: any other device of
//! the kind the spec asks for is an error, and granted devices the spec does not list are
//! added. The gate then reaches no more than the grant.

use std::collections::HashMap;

use super::BootError;
use super::gpu::{DEFAULT_CAPABILITIES, GpuRequest};
use super::tpu::TpuRequest;
use crate::discovery::Discovery;
use crate::nvproxy::NvidiaGpu;
use crate::tpuproxy::TpuChip;

/// `dev.accelgate.granted-tpus`: the TPU chips granted, by [`tpu_device_id`], comma-separated.
pub const GRANTED_TPUS_ANNOTATION: &str = "dev.accelgate.granted-tpus";

/// `dev.accelgate.granted-gpus`: the NVIDIA GPUs granted, by [`gpu_device_id`],
/// comma-separated.
pub const GRANTED_GPUS_ANNOTATION: &str = "dev.accelgate.granted-gpus";

/// The name of a TPU chip that stays the same across restarts and reboots: the PCI address of
/// its first function (`0000:00:04.0`). Its index would shift when a chip before it vanished.
pub fn tpu_device_id(chip: &TpuChip) -> String {
    chip.bdfs[0].to_string()
}

/// The name of an NVIDIA GPU that stays the same across restarts and reboots: its `GPU-<uuid>`,
/// or, when the driver reports no UUID, its PCI address.
pub fn gpu_device_id(gpu: &NvidiaGpu) -> String {
    gpu.uuid.clone().unwrap_or_else(|| gpu.bdf.to_string())
}

/// The grants a spec's annotations carry, as discovery indices.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grant {
    /// TPU chips, when the spec has a TPU grant.
    pub tpus: Option<Vec<usize>>,
    /// NVIDIA GPUs, when the spec has a GPU grant.
    pub gpus: Option<Vec<usize>>,
}

impl Grant {
    /// Reads the grant annotations; an ID that names no device of the host is an error.
    pub fn read(
        annotations: &HashMap<String, String>,
        host: &Discovery,
    ) -> Result<Self, BootError> {
        let tpus = annotations
            .get(GRANTED_TPUS_ANNOTATION)
            .map(|value| {
                let ids: Vec<String> = host.tpus.iter().map(tpu_device_id).collect();
                indices(GRANTED_TPUS_ANNOTATION, value, &ids, "TPU chip")
            })
            .transpose()?;
        let gpus = annotations
            .get(GRANTED_GPUS_ANNOTATION)
            .map(|value| {
                let ids: Vec<String> = host.gpus.iter().map(gpu_device_id).collect();
                indices(GRANTED_GPUS_ANNOTATION, value, &ids, "NVIDIA GPU")
            })
            .transpose()?;
        Ok(Self { tpus, gpus })
    }

    /// The TPU request bounded by the grant: exactly the granted chips. A chip the spec asks
    /// for outside the grant is an error.
    pub fn bound_tpus(&self, request: Option<TpuRequest>) -> Result<Option<TpuRequest>, BootError> {
        let Some(granted) = &self.tpus else {
            return Ok(request);
        };
        let mut why = vec![GRANTED_TPUS_ANNOTATION.to_owned()];
        if let Some(request) = request {
            if let Some(extra) = request.chips.iter().find(|c| !granted.contains(c)) {
                return Err(outside(
                    request.why.join(", "),
                    format!("TPU chip {extra}"),
                    GRANTED_TPUS_ANNOTATION,
                ));
            }
            why.extend(request.why);
        }
        Ok(Some(TpuRequest {
            why,
            chips: granted.clone(),
        }))
    }

    /// The GPU request bounded by the grant: exactly the granted GPUs, with the capabilities
    /// the spec asks for (else the defaults). A GPU the spec asks for outside the grant
    /// (`NVIDIA_VISIBLE_DEVICES=all`, a `/dev/nvidiaN` node) is an error.
    pub fn bound_gpus(&self, request: Option<GpuRequest>) -> Result<Option<GpuRequest>, BootError> {
        let Some(granted) = &self.gpus else {
            return Ok(request);
        };
        let request = match request {
            Some(request) => {
                if let Some(extra) = request.gpus.iter().find(|g| !granted.contains(g)) {
                    return Err(outside(
                        request.why,
                        format!("GPU {extra}"),
                        GRANTED_GPUS_ANNOTATION,
                    ));
                }
                GpuRequest {
                    why: format!("{GRANTED_GPUS_ANNOTATION} and {}", request.why),
                    gpus: granted.clone(),
                    ..request
                }
            }
            None => GpuRequest {
                why: GRANTED_GPUS_ANNOTATION.to_owned(),
                gpus: granted.clone(),
                capabilities: DEFAULT_CAPABILITIES.map(str::to_owned).to_vec(),
                uvm_tools: false,
            },
        };
        Ok(Some(request))
    }
}

fn outside(requested: String, what: String, annotation: &str) -> BootError {
    BootError::InvalidField {
        field: requested,
        reason: format!("asks for {what}, which {annotation} does not grant; refused"),
    }
}

/// The discovery indices of the comma-separated `ids`, ascending.
fn indices(
    annotation: &str,
    value: &str,
    host_ids: &[String],
    what: &str,
) -> Result<Vec<usize>, BootError> {
    let mut found = Vec::new();
    for id in value.split(',').map(str::trim) {
        if id.is_empty() {
            return Err(BootError::InvalidConfig {
                name: annotation.to_owned(),
                value: value.to_owned(),
                reason: "an empty device ID; expected IDs separated by commas".into(),
            });
        }
        let index = host_ids
            .iter()
            .position(|known| known == id)
            .ok_or_else(|| BootError::MissingAccelerator {
                requested: format!("{annotation}={value}"),
                what: format!("{what} {id}"),
            })?;
        found.push(index);
    }
    found.sort_unstable();
    found.dedup();
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::discover;
    use crate::pci::HostRoot;

    fn host(name: &str) -> Discovery {
        let dir = format!("{}/fixtures/sysfs/{name}", env!("CARGO_MANIFEST_DIR"));
        discover(&HostRoot::at(dir).unwrap()).unwrap()
    }

    fn annotations(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn ids_are_pci_addresses_and_uuids() {
        let tpus = host("tpu-v5e-8");
        assert_eq!(tpu_device_id(&tpus.tpus[7]), "0000:00:0b.0");
        let gpus = host("nvidia-h100x8");
        assert!(gpu_device_id(&gpus.gpus[0]).starts_with("GPU-"));
    }

    #[test]
    fn a_grant_is_exactly_what_the_sandbox_gets() {
        let discovery = host("tpu-v5e-8");
        let grant = Grant::read(
            &annotations(&[(GRANTED_TPUS_ANNOTATION, "0000:00:09.0,0000:00:08.0")]),
            &discovery,
        )
        .unwrap();
        assert_eq!(grant.tpus, Some(vec![4, 5]));
        let added = grant.bound_tpus(None).unwrap().unwrap();
        assert_eq!(added.chips, [4, 5]);
        let within = TpuRequest {
            why: vec!["linux.devices /dev/vfio/4".into()],
            chips: vec![4],
        };
        assert_eq!(
            grant.bound_tpus(Some(within)).unwrap().unwrap().chips,
            [4, 5]
        );
        let beyond = TpuRequest {
            why: vec!["linux.devices /dev/vfio/0".into()],
            chips: vec![0, 4],
        };
        let err = grant.bound_tpus(Some(beyond)).unwrap_err().to_string();
        assert!(
            err.contains("/dev/vfio/0")
                && err.contains("TPU chip 0")
                && err.contains("granted-tpus"),
            "{err}"
        );
        assert_eq!(Grant::default().bound_tpus(None).unwrap(), None);
    }

    #[test]
    fn a_gpu_grant_refuses_visible_devices_all() {
        let discovery = host("nvidia-h100x8");
        let id = gpu_device_id(&discovery.gpus[5]);
        let grant =
            Grant::read(&annotations(&[(GRANTED_GPUS_ANNOTATION, &id)]), &discovery).unwrap();
        assert_eq!(grant.gpus, Some(vec![5]));
        let all = GpuRequest {
            why: "linux.devices /dev/nvidiactl".into(),
            gpus: (0..8).collect(),
            capabilities: vec!["compute".into()],
            uvm_tools: true,
        };
        let err = grant.bound_gpus(Some(all)).unwrap_err().to_string();
        assert!(
            err.contains("GPU 0") && err.contains("granted-gpus"),
            "{err}"
        );
        let driver_only = GpuRequest {
            why: "linux.devices /dev/nvidiactl".into(),
            gpus: Vec::new(),
            capabilities: vec!["compute".into()],
            uvm_tools: true,
        };
        let bounded = grant.bound_gpus(Some(driver_only)).unwrap().unwrap();
        assert_eq!((bounded.gpus, bounded.uvm_tools), (vec![5], true));
        let added = grant.bound_gpus(None).unwrap().unwrap();
        assert_eq!(added.capabilities, DEFAULT_CAPABILITIES);
    }

    #[test]
    fn unknown_and_empty_ids_are_errors() {
        let discovery = host("tpu-v5e-8");
        let err = Grant::read(
            &annotations(&[(GRANTED_TPUS_ANNOTATION, "0000:00:04.0,0000:00:1f.0")]),
            &discovery,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("TPU chip 0000:00:1f.0"), "{err}");
        let err = Grant::read(
            &annotations(&[(GRANTED_TPUS_ANNOTATION, "0000:00:04.0,")]),
            &discovery,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("empty device ID"), "{err}");
        let err = Grant::read(
            &annotations(&[(GRANTED_GPUS_ANNOTATION, "GPU-1")]),
            &discovery,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("NVIDIA GPU GPU-1"), "{err}");
    }
}
