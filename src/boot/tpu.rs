//! TPU requests: which chips a spec asks for, by device node, annotation or flag.

use std::path::Path;

use super::BootError;
use super::config::Selection;
use crate::discovery::Discovery;
use crate::pci::node_number;
use crate::tpuproxy::GOOGLE_VENDOR_ID;

/// What a spec asks of TPUs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TpuRequest {
    /// Where the request came from, for the plan's rules.
    pub why: Vec<String>,
    /// The chips by discovery index, ascending.
    pub chips: Vec<usize>,
}

/// Which TPU chips the sandbox gets: those whose nodes the spec lists (`/dev/accelN`,
/// `/dev/vfio/<group>`; `/dev/vfio/vfio` alone asks for nothing), plus the selection of
/// `dev.accelgate.tpu` or `--tpu` (`from` names which).
///
/// A chip the host lacks is an error naming it, and so is a VFIO group that holds no Google
/// device: `/dev/vfio/N` is not necessarily a TPU.
pub fn tpu_request(
    device_paths: &[&Path],
    selection: Option<(&Selection, &str)>,
    host: &Discovery,
) -> Result<Option<TpuRequest>, BootError> {
    let mut chips = Vec::new();
    let mut why = Vec::new();
    for path in device_paths {
        let requested = || format!("linux.devices {}", path.display());
        if let Some(index) = accel_index(path) {
            let chip = host
                .tpus
                .iter()
                .find(|c| c.nodes.iter().any(|n| n.path == *path))
                .ok_or_else(|| BootError::MissingAccelerator {
                    requested: requested(),
                    what: format!("TPU accel{index}"),
                })?;
            chips.push(chip.index);
            why.push(requested());
        } else if let Some(group) = vfio_group(path) {
            match host.tpus.iter().find(|c| c.iommu_groups.contains(&group)) {
                Some(chip) => {
                    chips.push(chip.index);
                    why.push(requested());
                }
                None => return Err(group_error(group, host, requested())),
            }
        }
    }
    if let Some((selection, from)) = selection {
        match selection {
            Selection::All if host.tpus.is_empty() => {
                return Err(BootError::MissingAccelerator {
                    requested: format!("{from}=all"),
                    what: "TPU chips".into(),
                });
            }
            Selection::All => chips.extend(host.tpus.iter().map(|c| c.index)),
            Selection::Indices(indices) => {
                for index in indices {
                    if *index >= host.tpus.len() {
                        let list = indices
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(",");
                        return Err(BootError::MissingAccelerator {
                            requested: format!("{from}={list}"),
                            what: format!("TPU chip {index} (it has {} chip(s))", host.tpus.len()),
                        });
                    }
                    chips.push(*index);
                }
            }
        }
        why.push(from.to_owned());
    }
    if why.is_empty() {
        return Ok(None);
    }
    chips.sort_unstable();
    chips.dedup();
    Ok(Some(TpuRequest { why, chips }))
}

/// Why `/dev/vfio/<group>` is refused: a group of a non-Google device, or no such group.
fn group_error(group: u32, host: &Discovery, requested: String) -> BootError {
    let members: Vec<String> = host
        .pci
        .devices
        .iter()
        .filter(|d| d.iommu_group == Some(group))
        .map(|d| format!("{} ({:04x}:{:04x})", d.bdf, d.vendor, d.device))
        .collect();
    let google = host
        .pci
        .devices
        .iter()
        .any(|d| d.iommu_group == Some(group) && d.vendor == GOOGLE_VENDOR_ID);
    if members.is_empty() || google {
        BootError::MissingAccelerator {
            requested,
            what: format!("a TPU in IOMMU group {group}"),
        }
    } else {
        BootError::InvalidField {
            field: requested,
            reason: format!(
                "IOMMU group {group} holds no Google TPU, only {}; refused",
                members.join(", ")
            ),
        }
    }
}

/// N when `path` is `/dev/accelN` (the Google accel class; DRM's `/dev/accel/accelN` is not).
fn accel_index(path: &Path) -> Option<u32> {
    node_number(path, "/dev/accel")
}

/// N when `path` is `/dev/vfio/N` (not the container `/dev/vfio/vfio`).
fn vfio_group(path: &Path) -> Option<u32> {
    node_number(path, "/dev/vfio/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names() {
        assert_eq!(accel_index(Path::new("/dev/accel/accel0")), None);
        assert_eq!(vfio_group(Path::new("/dev/vfio/vfio")), None);
        assert_eq!(vfio_group(Path::new("/dev/vfio/noiommu-0")), None);
    }
}
