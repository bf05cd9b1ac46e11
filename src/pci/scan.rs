use std::path::Path;

use super::{Bdf, HostRoot, PciDevice, PciError, Warning};

/// Every PCI function on the host, in bus order, and what was odd about them.
#[derive(Debug, Clone, Default)]
pub struct PciScan {
    /// The functions that could be read, sorted by BDF.
    pub devices: Vec<PciDevice>,
    /// Functions skipped or attributes ignored, each naming its file.
    pub warnings: Vec<Warning>,
}

impl PciScan {
    /// The function at `bdf`.
    pub fn get(&self, bdf: Bdf) -> Option<&PciDevice> {
        self.devices
            .binary_search_by(|d| d.bdf.cmp(&bdf))
            .ok()
            .map(|i| &self.devices[i])
    }
}

/// Reads every function listed in `/sys/bus/pci/devices`.
///
/// That directory lists all functions of all domains, including those behind bridges, which a
/// walk of `/sys/devices/pci0000:00/*` would miss. A function that cannot be read is skipped
/// with a warning; only an unreadable `/sys/bus/pci/devices` itself is an error. A host with no
/// PCI bus (some micro-VMs) has no such directory and an empty scan.
pub fn scan(host: &HostRoot) -> Result<PciScan, PciError> {
    let tree = host.sys();
    let mut result = PciScan::default();
    let Some(listing) = tree.resolve_optional("bus/pci/devices")? else {
        tracing::debug!("no /sys/bus/pci/devices: a host without PCI");
        return Ok(result);
    };
    for name in tree.list(&listing)?.unwrap_or_default() {
        let entry = listing.join(&name);
        let bdf = match Bdf::parse(&name) {
            Ok(bdf) => bdf,
            Err(reason) => {
                let e = PciError::Invalid {
                    path: tree.host_path(&entry),
                    value: name,
                    reason,
                };
                result
                    .warnings
                    .push(Warning::from_error(&e, "entry skipped"));
                continue;
            }
        };
        match read_function(host, &listing, &name, bdf, &mut result.warnings) {
            Ok(device) => result.devices.push(device),
            Err(e) => result
                .warnings
                .push(Warning::from_error(&e, &format!("device {bdf} skipped"))),
        }
    }
    result.devices.sort_by_key(|d| d.bdf);
    tracing::debug!(functions = result.devices.len(), "scanned PCI functions");
    Ok(result)
}

fn read_function(
    host: &HostRoot,
    listing: &Path,
    name: &str,
    bdf: Bdf,
    warnings: &mut Vec<Warning>,
) -> Result<PciDevice, PciError> {
    let tree = host.sys();
    let dir = tree.resolve_under(listing, name)?;
    if dir.file_name().and_then(|n| n.to_str()) != Some(name) {
        return Err(PciError::Invalid {
            path: tree.host_path(&listing.join(name)),
            value: tree.host_path(&dir).display().to_string(),
            reason: "link does not lead to a directory of the same name",
        });
    }
    PciDevice::read(tree, bdf, &dir, warnings)
}
