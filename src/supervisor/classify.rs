//! What file an intercepted call targets: the caller's fd duplicated with `pidfd_getfd`, then
//! `fstat` (device numbers) and, for VFIO device fds, the anon inode's name.

use std::os::fd::{AsFd, OwnedFd};

use nix::sys::stat::{SFlag, fstat, major, minor};

use super::backend::FileKey;
use super::policy::FdKind;
use crate::accel::abi::ACCEL_MAJOR;
use crate::vfio::abi::{MISC_MAJOR, VFIO_MINOR};

/// What a file is to the gate.
#[derive(Debug)]
pub enum Class {
    /// A host accelerator file of this kind; the dup stays open for emulated calls.
    Host(FdKind, OwnedFd),
    /// A simulated device's carrier.
    Simulated(FdKind, FileKey),
    /// Not an accelerator: the call continues untouched.
    NotOurs,
}

/// The device numbers that identify the host's accelerator files.
#[derive(Debug, Clone, Default)]
pub struct HostDevices {
    /// The dynamic `vfio` major (group nodes).
    pub vfio_major: Option<u32>,
    /// Accel minors of TPU v4 lite chips (others are v4).
    pub lite_minors: Vec<u32>,
}

impl HostDevices {
    /// The device numbers of the accelerators `host` found.
    pub fn of(host: &crate::discovery::Discovery) -> Self {
        let lite_minors = host
            .tpus
            .iter()
            .filter(|chip| chip.generation == crate::tpuproxy::Generation::V4Lite)
            .flat_map(|chip| {
                chip.nodes
                    .iter()
                    .filter(|n| n.major == ACCEL_MAJOR)
                    .map(|n| n.minor)
            })
            .collect();
        Self {
            vfio_major: host
                .proc_devices
                .as_ref()
                .and_then(|d| d.char_major("vfio")),
            lite_minors,
        }
    }
}

/// The name `/proc/self/fd/N` shows for an anon-inode file (`anon_inode:[vfio-device]`).
pub fn anon_inode_name(fd: &OwnedFd) -> Option<String> {
    let link = std::fs::read_link(crate::vfs::proc_fd_path(fd.as_fd())).ok()?;
    link.to_str()?
        .strip_prefix("anon_inode:")
        .map(str::to_owned)
}

/// Classifies `dup`, a duplicate of the caller's fd; `simulated` says whether a file is one of
/// the simulator's carriers.
pub fn classify(
    dup: OwnedFd,
    host: &HostDevices,
    simulated: &dyn Fn(FileKey) -> Option<FdKind>,
) -> Class {
    let Ok(st) = fstat(dup.as_fd()) else {
        return Class::NotOurs;
    };
    if let Some(kind) = simulated((st.st_dev, st.st_ino)) {
        return Class::Simulated(kind, (st.st_dev, st.st_ino));
    }
    let format = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits());
    if format == SFlag::S_IFCHR {
        let (maj, min) = (major(st.st_rdev) as u32, minor(st.st_rdev) as u32);
        let kind = if maj == ACCEL_MAJOR {
            Some(FdKind::Accel {
                lite: host.lite_minors.contains(&min),
            })
        } else if (maj, min) == (MISC_MAJOR, VFIO_MINOR) {
            Some(FdKind::VfioContainer)
        } else if Some(maj) == host.vfio_major {
            Some(FdKind::VfioGroup)
        } else {
            None
        };
        return kind.map_or(Class::NotOurs, |k| Class::Host(k, dup));
    }
    if anon_inode_name(&dup).as_deref() == Some("[vfio-device]") {
        return Class::Host(FdKind::VfioDevice, dup);
    }
    Class::NotOurs
}
