use std::path::{Component, Path, PathBuf};

use serde::Serialize;

use super::attr::{parse_decimal_u32, parse_hex_u16, parse_hex_u32, parse_numa_node};
use super::{Bdf, HostTree, PciError, Warning, or_warn};

/// PCI base class of display controllers (VGA 0x0300, 3D 0x0302): where GPUs live.
pub const CLASS_DISPLAY: u8 = 0x03;

/// One PCI function as sysfs describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PciDevice {
    /// Its address.
    pub bdf: Bdf,
    /// Vendor ID (`vendor`).
    pub vendor: u16,
    /// Device ID (`device`).
    pub device: u16,
    /// Subsystem vendor ID, when sysfs has it.
    pub subsystem_vendor: Option<u16>,
    /// Subsystem device ID, when sysfs has it.
    pub subsystem_device: Option<u16>,
    /// Class code, 24 bits (`0x030200` for a 3D controller).
    pub class: Option<u32>,
    /// Revision ID.
    pub revision: Option<u8>,
    /// NUMA node; `None` when sysfs says `-1` (no affinity) or has no `numa_node`.
    pub numa_node: Option<i32>,
    /// IOMMU group, from the `iommu_group` link.
    pub iommu_group: Option<u32>,
    /// The bound driver's name, from the `driver` link.
    pub driver: Option<String>,
    /// Host path of its sysfs directory (`/sys/devices/pci0000:00/0000:00:04.0`).
    pub sysfs_path: PathBuf,
    /// The bridges above it, root port first.
    pub bridges: Vec<Bdf>,
    /// The physical function, when this is an SR-IOV virtual function.
    pub physfn: Option<Bdf>,
    /// Its virtual functions, by VF number, when this is an SR-IOV physical function.
    pub virtfns: Vec<Bdf>,
}

impl PciDevice {
    /// Reads the function whose resolved sysfs directory is `dir`.
    ///
    /// `vendor` and `device` are required; a bad optional attribute becomes a warning and
    /// reads as absent.
    pub fn read(
        tree: &HostTree,
        bdf: Bdf,
        dir: &Path,
        warnings: &mut Vec<Warning>,
    ) -> Result<Self, PciError> {
        let required = |name: &str| -> Result<u16, PciError> {
            let path = dir.join(name);
            let text = tree.read(&path)?;
            parse_hex_u16(&text).map_err(|reason| invalid(tree, &path, &text, reason))
        };
        let vendor = required("vendor")?;
        let device = required("device")?;

        let subsystem_vendor =
            optional_attr(tree, dir, "subsystem_vendor", parse_hex_u16, warnings);
        let subsystem_device =
            optional_attr(tree, dir, "subsystem_device", parse_hex_u16, warnings);
        let class = optional_attr(tree, dir, "class", parse_class, warnings);
        let revision = optional_attr(tree, dir, "revision", parse_revision, warnings);
        let numa_node = optional_attr(tree, dir, "numa_node", parse_numa_node, warnings).flatten();

        let driver = link_attr(tree, dir, "driver", |name| Ok(name.to_owned()), warnings);
        let iommu_group = link_attr(tree, dir, "iommu_group", parse_decimal_u32, warnings);
        let physfn = link_attr(tree, dir, "physfn", Bdf::parse, warnings);
        let virtfns = read_virtfns(tree, dir, warnings);

        let sysfs_path = tree.host_path(dir);
        let bridges = bridges_above(&sysfs_path, bdf);
        Ok(Self {
            bdf,
            vendor,
            device,
            subsystem_vendor,
            subsystem_device,
            class,
            revision,
            numa_node,
            iommu_group,
            driver,
            sysfs_path,
            bridges,
            physfn,
            virtfns,
        })
    }

    /// Whether the class code says display controller (VGA or 3D): a GPU.
    pub fn is_display_controller(&self) -> bool {
        self.class
            .is_some_and(|class| (class >> 16) as u8 == CLASS_DISPLAY)
    }
}

/// Reads an attribute that real sysfs always has but a fixture or odd driver may lack: a bad
/// value becomes a warning and reads as absent.
fn optional_attr<T>(
    tree: &HostTree,
    dir: &Path,
    name: &str,
    parse: impl Fn(&str) -> Result<T, &'static str>,
    warnings: &mut Vec<Warning>,
) -> Option<T> {
    let consequence = format!("{name} treated as unknown");
    or_warn(
        tree.read_parsed(&dir.join(name), parse),
        &consequence,
        warnings,
    )
}

/// Reads the name a link points at (`driver`, `iommu_group`); a bad link becomes a warning and
/// reads as absent.
fn link_attr<T>(
    tree: &HostTree,
    dir: &Path,
    name: &str,
    parse: impl Fn(&str) -> Result<T, &'static str>,
    warnings: &mut Vec<Warning>,
) -> Option<T> {
    let consequence = format!("{name} link ignored");
    or_warn(tree.link_parsed(dir, name, parse), &consequence, warnings)
}

fn parse_class(text: &str) -> Result<u32, &'static str> {
    parse_hex_u32(text).and_then(|c| {
        if c <= 0xff_ffff {
            Ok(c)
        } else {
            Err("wider than 24 bits")
        }
    })
}

fn parse_revision(text: &str) -> Result<u8, &'static str> {
    parse_hex_u32(text).and_then(|r| u8::try_from(r).map_err(|_| "wider than 8 bits"))
}

fn invalid(tree: &HostTree, disk: &Path, text: &str, reason: &'static str) -> PciError {
    PciError::Invalid {
        path: tree.host_path(disk),
        value: text.to_owned(),
        reason,
    }
}

/// `virtfnN` links in VF-number order.
fn read_virtfns(tree: &HostTree, dir: &Path, warnings: &mut Vec<Warning>) -> Vec<Bdf> {
    let names =
        or_warn(tree.list(dir), "virtual functions not listed", warnings).unwrap_or_default();
    let mut numbered: Vec<(u32, Bdf)> = names
        .iter()
        .filter_map(|name| Some((name.strip_prefix("virtfn")?.parse().ok()?, name)))
        .filter_map(|(number, name)| match tree.link_name(dir, name) {
            Ok(Some(target)) => Bdf::parse(&target).ok().map(|bdf| (number, bdf)),
            Ok(None) => None,
            Err(e) => {
                warnings.push(Warning::from_error(&e, "virtual function ignored"));
                None
            }
        })
        .collect();
    numbered.sort();
    numbered.into_iter().map(|(_, bdf)| bdf).collect()
}

/// The BDF-named directories between the root complex and the device itself.
fn bridges_above(sysfs_path: &Path, bdf: Bdf) -> Vec<Bdf> {
    sysfs_path
        .components()
        .filter_map(|component| match component {
            Component::Normal(name) => Bdf::parse(name.to_str()?).ok(),
            _ => None,
        })
        .filter(|found| *found != bdf)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bridges_come_from_the_path() {
        let path = Path::new(
            "/sys/devices/pci0000:18/0000:18:01.0/0000:19:00.0/0000:1a:00.0/0000:1b:00.0",
        );
        let bdf = Bdf::parse("0000:1b:00.0").unwrap();
        let names: Vec<String> = bridges_above(path, bdf)
            .iter()
            .map(Bdf::to_string)
            .collect();
        assert_eq!(names, ["0000:18:01.0", "0000:19:00.0", "0000:1a:00.0"]);
        let flat = Path::new("/sys/devices/pci0000:00/0000:00:04.0");
        assert!(bridges_above(flat, Bdf::parse("0000:00:04.0").unwrap()).is_empty());
    }
}
