//! Device nodes and `/dev` symlinks.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};

use super::BootError;
use super::paths::clean_absolute;
use crate::pci::DevNode;
use crate::plan::{PlannedDevice, PlannedSymlink};
use crate::vfs::STANDARD_DEVICES;

/// The default devices every sandbox gets: null, zero, full, random, urandom and tty.
const DEFAULT_DEVICE_COUNT: usize = 6;

/// Permission bits of a device whose spec says none.
pub const DEFAULT_DEVICE_MODE: u32 = 0o666;

/// The device nodes and symlinks of a sandbox's `/dev`, keyed by path: a later entry at the
/// same path replaces the earlier one in place.
#[derive(Debug, Default)]
pub struct DevTree {
    devices: Vec<PlannedDevice>,
    symlinks: Vec<PlannedSymlink>,
}

impl DevTree {
    /// The defaults: the standard devices at 0666 and the `/dev` symlinks (`core` only when the
    /// host has `/proc/kcore`).
    pub fn with_defaults(has_kcore: bool) -> Self {
        let mut tree = Self::default();
        for (_, path, major, minor) in &STANDARD_DEVICES[..DEFAULT_DEVICE_COUNT] {
            tree.set_device(PlannedDevice {
                path: PathBuf::from(path),
                kind: 'c',
                major: *major,
                minor: *minor,
                mode: DEFAULT_DEVICE_MODE,
                uid: 0,
                gid: 0,
            });
        }
        let mut links = vec![
            ("/dev/fd", "/proc/self/fd"),
            ("/dev/stdin", "/proc/self/fd/0"),
            ("/dev/stdout", "/proc/self/fd/1"),
            ("/dev/stderr", "/proc/self/fd/2"),
            ("/dev/ptmx", "pts/ptmx"),
        ];
        if has_kcore {
            links.push(("/dev/core", "/proc/kcore"));
        }
        for (path, target) in links {
            tree.symlinks.push(PlannedSymlink {
                path: path.into(),
                target: target.into(),
            });
        }
        tree
    }

    /// Adds `device`, replacing any device or symlink at its path; returns what it replaced.
    pub fn set_device(&mut self, device: PlannedDevice) -> Option<String> {
        let replaced_link = self
            .symlinks
            .iter()
            .position(|l| l.path == device.path)
            .map(|i| {
                let link = self.symlinks.remove(i);
                format!("symlink -> {}", link.target.display())
            });
        match self.devices.iter_mut().find(|d| d.path == device.path) {
            Some(existing) => {
                let old = describe(existing);
                *existing = device;
                Some(old)
            }
            None => {
                self.devices.push(device);
                replaced_link
            }
        }
    }

    /// The devices and symlinks, in the order they were first added.
    pub fn into_parts(self) -> (Vec<PlannedDevice>, Vec<PlannedSymlink>) {
        (self.devices, self.symlinks)
    }
}

/// `c 195:255 0666`.
pub fn describe(device: &PlannedDevice) -> String {
    format!(
        "{} {}:{} {:04o}",
        device.kind, device.major, device.minor, device.mode
    )
}

/// A spec's `linux.devices[index]` as a planned device: `b` is a block device, `c` and `u`
/// character devices, `p` a FIFO; the path must be under `/dev`; the mode defaults to 0666.
pub fn spec_device(index: usize, device: &LinuxDevice) -> Result<PlannedDevice, BootError> {
    let field = |name: &str| format!("linux.devices[{index}].{name}");
    let raw_path = device.path().to_string_lossy();
    let path = clean_absolute(&raw_path).map_err(|reason| BootError::InvalidField {
        field: field("path"),
        reason: format!("{raw_path:?}: {reason}"),
    })?;
    if !path.starts_with("/dev") || path == Path::new("/dev") {
        return Err(BootError::InvalidField {
            field: field("path"),
            reason: format!("{}: device nodes must be under /dev", path.display()),
        });
    }
    let kind = match device.typ() {
        LinuxDeviceType::B => 'b',
        LinuxDeviceType::C | LinuxDeviceType::U => 'c',
        LinuxDeviceType::P => 'p',
        LinuxDeviceType::A => {
            return Err(BootError::InvalidField {
                field: field("type"),
                reason: format!(
                    "{}: type \"a\" is not a device type; use b, c, u or p",
                    path.display()
                ),
            });
        }
    };
    let number = |value: i64, name: &str| {
        u32::try_from(value).map_err(|_| BootError::InvalidField {
            field: field(name),
            reason: format!("{}: {value} is not a device number", path.display()),
        })
    };
    let (major, minor) = if kind == 'p' {
        (0, 0)
    } else {
        (
            number(device.major(), "major")?,
            number(device.minor(), "minor")?,
        )
    };
    Ok(PlannedDevice {
        path,
        kind,
        major,
        minor,
        mode: device
            .file_mode()
            .map_or(DEFAULT_DEVICE_MODE, |m| m & 0o7777),
        uid: device.uid().unwrap_or(0),
        gid: device.gid().unwrap_or(0),
    })
}

/// A host accelerator node as a planned device, with the host's numbers and mode.
pub fn host_device(node: &DevNode) -> PlannedDevice {
    PlannedDevice {
        path: node.path.clone(),
        kind: node.kind.letter(),
        major: node.major,
        minor: node.minor,
        mode: node.mode,
        uid: 0,
        gid: 0,
    }
}

#[cfg(test)]
mod tests {
    use oci_spec::runtime::LinuxDeviceBuilder;

    use super::*;

    fn device(path: &str, typ: LinuxDeviceType) -> LinuxDevice {
        LinuxDeviceBuilder::default()
            .path(path)
            .typ(typ)
            .major(10)
            .minor(200)
            .build()
            .unwrap()
    }

    #[test]
    fn defaults_are_the_standard_six_and_the_links() {
        let (devices, links) = DevTree::with_defaults(true).into_parts();
        let paths: Vec<_> = devices
            .iter()
            .map(|d| d.path.display().to_string())
            .collect();
        assert_eq!(
            paths,
            [
                "/dev/null",
                "/dev/zero",
                "/dev/full",
                "/dev/random",
                "/dev/urandom",
                "/dev/tty"
            ]
        );
        assert!(devices.iter().all(|d| d.mode == 0o666));
        assert_eq!(links.len(), 6);
        assert_eq!(DevTree::with_defaults(false).into_parts().1.len(), 5);
    }

    #[test]
    fn device_types_map_and_bad_ones_name_the_path() {
        assert_eq!(
            spec_device(0, &device("/dev/sda", LinuxDeviceType::B))
                .unwrap()
                .kind,
            'b'
        );
        assert_eq!(
            spec_device(0, &device("/dev/tun", LinuxDeviceType::U))
                .unwrap()
                .kind,
            'c'
        );
        let fifo = spec_device(0, &device("/dev/pipe", LinuxDeviceType::P)).unwrap();
        assert_eq!((fifo.kind, fifo.major, fifo.mode), ('p', 0, 0o666));
        let err = spec_device(3, &device("/dev/all", LinuxDeviceType::A))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("linux.devices[3].type") && err.contains("/dev/all"),
            "{err}"
        );
        let err = spec_device(1, &device("/etc/shadow", LinuxDeviceType::C))
            .unwrap_err()
            .to_string();
        assert!(err.contains("under /dev"), "{err}");
    }

    #[test]
    fn a_spec_device_overrides_a_default_in_place() {
        let mut tree = DevTree::with_defaults(false);
        let mut tty = spec_device(0, &device("/dev/tty", LinuxDeviceType::C)).unwrap();
        tty.mode = 0o620;
        assert_eq!(tree.set_device(tty).as_deref(), Some("c 5:0 0666"));
        let ptmx = spec_device(0, &device("/dev/ptmx", LinuxDeviceType::C)).unwrap();
        assert_eq!(
            tree.set_device(ptmx).as_deref(),
            Some("symlink -> pts/ptmx")
        );
        let (devices, links) = tree.into_parts();
        assert_eq!(devices[5].mode, 0o620);
        assert!(links.iter().all(|l| l.path != Path::new("/dev/ptmx")));
    }
}
