use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{DynamicMajors, VfsError};
use crate::family::DeviceClass;
use crate::pci::{DevNode, NodeKind, ProcDevices};

/// A device a sandbox may be given: its class, its path and its permission bits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegisteredDevice {
    /// What it is.
    pub class: DeviceClass,
    /// Its path inside a sandbox (the same as on the host).
    pub path: PathBuf,
    /// Permission bits.
    pub mode: u32,
}

/// The character devices every sandbox gets, with their fixed Linux numbers
/// (`Documentation/admin-guide/devices.txt`).
pub const STANDARD_DEVICES: [(DeviceClass, &str, u32, u32); 9] = [
    (DeviceClass::Null, "/dev/null", 1, 3),
    (DeviceClass::Zero, "/dev/zero", 1, 5),
    (DeviceClass::Full, "/dev/full", 1, 7),
    (DeviceClass::Random, "/dev/random", 1, 8),
    (DeviceClass::Urandom, "/dev/urandom", 1, 9),
    (DeviceClass::Tty, "/dev/tty", 5, 0),
    (DeviceClass::Ptmx, "/dev/ptmx", 5, 2),
    (DeviceClass::Tun, "/dev/net/tun", 10, 200),
    (DeviceClass::Fuse, "/dev/fuse", 10, 229),
];

/// Device numbers → device classes, plus the dynamic majors handed out for sandbox-side
/// devices.
///
/// Registration is exclusive: a second claim on a (kind, major, minor) fails and names the
/// device that holds it.
#[derive(Debug, Clone, Default)]
pub struct DeviceRegistry {
    devices: BTreeMap<(NodeKind, u32, u32), RegisteredDevice>,
    /// Whole majors of one class (every VFIO group under the `vfio` major, whether or not
    /// discovery saw it): consulted when no single number matches.
    majors_of_class: BTreeMap<(NodeKind, u32), DeviceClass>,
    majors: DynamicMajors,
}

impl DeviceRegistry {
    /// A registry holding the [`STANDARD_DEVICES`], all mode 0666.
    pub fn with_standard_devices() -> Self {
        let mut registry = Self::default();
        for (class, path, major, minor) in STANDARD_DEVICES {
            let device = RegisteredDevice {
                class,
                path: path.into(),
                mode: 0o666,
            };
            // The table has distinct numbers (a unit test checks), so this cannot collide.
            let _ = registry.register(NodeKind::Char, major, minor, device);
        }
        registry
    }

    /// Claims (kind, major, minor) for `device`.
    pub fn register(
        &mut self,
        kind: NodeKind,
        major: u32,
        minor: u32,
        device: RegisteredDevice,
    ) -> Result<(), VfsError> {
        if let Some(existing) = self.devices.get(&(kind, major, minor)) {
            return Err(VfsError::Duplicate {
                kind: kind.letter(),
                major,
                minor,
                path: device.path,
                class: device.class,
                existing_path: existing.path.clone(),
                existing_class: existing.class,
            });
        }
        tracing::debug!(%major, %minor, path = %device.path.display(), class = %device.class, "registered device");
        self.devices.insert((kind, major, minor), device);
        Ok(())
    }

    /// Registers a host node as `class`, keeping its path, numbers and mode.
    pub fn register_node(&mut self, node: &DevNode, class: DeviceClass) -> Result<(), VfsError> {
        let device = RegisteredDevice {
            class,
            path: node.path.clone(),
            mode: node.mode,
        };
        self.register(node.kind, node.major, node.minor, device)
    }

    /// The device registered at (kind, major, minor).
    pub fn lookup(&self, kind: NodeKind, major: u32, minor: u32) -> Option<&RegisteredDevice> {
        self.devices.get(&(kind, major, minor))
    }

    /// Makes every device number under `major` of `kind` a `class` device, unless a single
    /// number says otherwise.
    pub fn register_major(&mut self, kind: NodeKind, major: u32, class: DeviceClass) {
        self.majors_of_class.insert((kind, major), class);
    }

    /// The class of device number `major:minor` of `kind`: its own entry, else its major's.
    pub fn class_of(&self, kind: NodeKind, major: u32, minor: u32) -> Option<DeviceClass> {
        self.lookup(kind, major, minor)
            .map(|device| device.class)
            .or_else(|| self.majors_of_class.get(&(kind, major)).copied())
    }

    /// The registered device at `path`, with its number.
    pub fn by_path(&self, path: &Path) -> Option<((NodeKind, u32, u32), &RegisteredDevice)> {
        self.iter().find(|(_, device)| device.path == path)
    }

    /// Every registered device, ordered by (kind, major, minor).
    pub fn iter(&self) -> impl Iterator<Item = ((NodeKind, u32, u32), &RegisteredDevice)> {
        self.devices.iter().map(|(key, device)| (*key, device))
    }

    /// Keeps every character major in `/proc/devices` out of the dynamic pool.
    pub fn reserve_host_majors(&mut self, host: &ProcDevices) {
        for (major, _) in host.char_majors() {
            self.majors.reserve(major);
        }
    }

    /// A fresh dynamic character major, in `find_dynamic_major()` order.
    pub fn dynamic_char_major(&mut self) -> Result<u32, VfsError> {
        self.majors.allocate()
    }

    /// The dynamic character major shared by all devices of family `key`.
    pub fn shared_char_major(&mut self, key: &str) -> Result<u32, VfsError> {
        self.majors.shared(key)
    }

    /// Returns a dynamic major to the pool.
    pub fn release_char_major(&mut self, major: u32) -> Result<(), VfsError> {
        self.majors.release(major)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn standard_devices_are_registered_with_linux_numbers() {
        let registry = DeviceRegistry::with_standard_devices();
        assert_eq!(registry.iter().count(), STANDARD_DEVICES.len());
        let null = registry.lookup(NodeKind::Char, 1, 3).unwrap();
        assert_eq!(
            (null.class, null.path.as_path()),
            (DeviceClass::Null, Path::new("/dev/null"))
        );
        assert_eq!(
            registry.lookup(NodeKind::Char, 10, 229).unwrap().class,
            DeviceClass::Fuse
        );
        assert_eq!(
            registry.lookup(NodeKind::Char, 5, 2).unwrap().class,
            DeviceClass::Ptmx
        );
        assert!(registry.lookup(NodeKind::Block, 1, 3).is_none());
    }

    #[test]
    fn a_duplicate_names_the_owner() {
        let mut registry = DeviceRegistry::with_standard_devices();
        let impostor = RegisteredDevice {
            class: DeviceClass::TpuAccel,
            path: "/dev/accel0".into(),
            mode: 0o666,
        };
        let err = registry
            .register(NodeKind::Char, 1, 3, impostor)
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("/dev/null") && text.contains("null") && text.contains("1:3"),
            "{text}"
        );
        let block = RegisteredDevice {
            class: DeviceClass::Null,
            path: "/dev/b".into(),
            mode: 0o600,
        };
        registry.register(NodeKind::Block, 1, 3, block).unwrap();
    }

    #[test]
    fn dynamic_majors_skip_the_hosts() {
        let mut registry = DeviceRegistry::default();
        let host = ProcDevices::parse(
            "Character devices:\n254 gpiochip\n253 tpm\n",
            Path::new("/proc/devices"),
        )
        .unwrap();
        registry.reserve_host_majors(&host);
        assert_eq!(registry.dynamic_char_major().unwrap(), 252);
        let shared = registry.shared_char_major("vfio").unwrap();
        assert_eq!(shared, 251);
        assert_eq!(registry.shared_char_major("vfio").unwrap(), 251);
        registry.release_char_major(252).unwrap();
        assert_eq!(registry.dynamic_char_major().unwrap(), 252);
    }

    #[test]
    fn classes_print_their_names() {
        assert_eq!(DeviceClass::NvidiaUvmTools.to_string(), "nvidia-uvm-tools");
        assert_eq!(DeviceClass::VfioGroup.to_string(), "vfio-group");
    }
}
