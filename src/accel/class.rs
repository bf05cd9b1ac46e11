use std::path::{Path, PathBuf};

use super::abi::{ACCEL_CLASS, ACCEL_MAJOR, DRM_ACCEL_MAJOR};
use crate::pci::{Bdf, HostRoot, PciError, Warning, attr::parse_dev_numbers, or_warn};

/// A Google accel-class device: `/sys/class/accel/accelN`, node `/dev/accelN`, char 121:N.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccelDevice {
    /// The accel id N.
    pub index: u32,
    /// Minor number from sysfs `dev`.
    pub minor: u32,
    /// The PCI function behind it, from the `device` link.
    pub bdf: Bdf,
    /// Host path of its device node, `/dev/accelN`.
    pub node_path: PathBuf,
}

/// Lists the Google accel-class devices (major 121).
///
/// A class entry with any other major, such as a DRM accel NPU on major 261, is not a TPU and
/// is skipped with a warning naming its `dev` file, as is any entry that cannot be read.
pub fn scan_class(host: &HostRoot, warnings: &mut Vec<Warning>) -> Vec<AccelDevice> {
    let tree = host.sys();
    let class_dir = tree.resolve_optional(Path::new("class").join(ACCEL_CLASS));
    let Some(class_dir) = or_warn(class_dir, "accel class not read", warnings) else {
        return Vec::new();
    };
    let Some(names) = or_warn(tree.list(&class_dir), "accel class not read", warnings) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for name in names {
        match read_entry(host, &class_dir, &name) {
            Ok(Entry::Tpu(device)) => found.push(device),
            Ok(Entry::Foreign { dev_path, major }) => {
                let what = if major == DRM_ACCEL_MAJOR {
                    format!("a DRM accel device (major {DRM_ACCEL_MAJOR}), not a TPU; ignored")
                } else {
                    format!("major {major} is not the TPU accel major {ACCEL_MAJOR}; ignored")
                };
                warnings.push(Warning::new(dev_path, what));
            }
            Err(e) => warnings.push(Warning::from_error(
                &e,
                &format!("accel device {name} ignored"),
            )),
        }
    }
    found
}

enum Entry {
    Tpu(AccelDevice),
    Foreign { dev_path: PathBuf, major: u32 },
}

fn read_entry(host: &HostRoot, class_dir: &Path, name: &str) -> Result<Entry, PciError> {
    let tree = host.sys();
    let entry_path = tree.host_path(&class_dir.join(name));
    let index = name
        .strip_prefix("accel")
        .and_then(|n| n.parse::<u32>().ok())
        .ok_or_else(|| PciError::Invalid {
            path: entry_path.clone(),
            value: name.to_owned(),
            reason: "not an accelN name",
        })?;
    let dir = tree.resolve_under(class_dir, name)?;
    let dev_file = dir.join("dev");
    let text = tree.read(&dev_file)?;
    let (major, minor) = parse_dev_numbers(&text).map_err(|reason| PciError::Invalid {
        path: tree.host_path(&dev_file),
        value: text.clone(),
        reason,
    })?;
    if major != ACCEL_MAJOR {
        return Ok(Entry::Foreign {
            dev_path: tree.host_path(&dev_file),
            major,
        });
    }
    let pci_dir = tree.resolve_under(&dir, "device")?;
    let pci_name = pci_dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let bdf = Bdf::parse(pci_name).map_err(|reason| PciError::Invalid {
        path: tree.host_path(&dir.join("device")),
        value: pci_name.to_owned(),
        reason,
    })?;
    Ok(Entry::Tpu(AccelDevice {
        index,
        minor,
        bdf,
        node_path: PathBuf::from(format!("/dev/{name}")),
    }))
}
