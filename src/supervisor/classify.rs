//! What file an intercepted call targets: the caller's fd duplicated with `pidfd_getfd`, then
//! `fstat` (device numbers, looked up in the device registry; or a simulator's carrier) and,
//! for anon-inode files, the inode's name. The families say which classes are theirs.

use std::os::fd::{AsFd, OwnedFd};

use nix::sys::stat::{SFlag, fstat, major, minor};

use crate::family::{Family, FdKind, FileKey};
use crate::pci::NodeKind;
use crate::vfs::DeviceRegistry;

/// What a file is to the gate.
#[derive(Debug)]
pub enum Class {
    /// A host accelerator file of family `family` (an index into the gate's families); the
    /// dup stays open for emulated calls.
    Host {
        /// Index of the family.
        family: usize,
        /// Its kind.
        kind: FdKind,
        /// Its device number (char major:minor), for a device node.
        device: Option<(u32, u32)>,
        /// The caller's file.
        file: OwnedFd,
    },
    /// A simulated device's carrier.
    Simulated {
        /// Index of the family.
        family: usize,
        /// Its kind.
        kind: FdKind,
        /// The carrier's identity.
        key: FileKey,
        /// The caller's file.
        file: OwnedFd,
    },
    /// Not an accelerator: the call is not the gate's business.
    NotOurs,
}

/// Classifies files by the registry's device classes and the families' kinds.
pub struct Classifier<'a> {
    /// The families, in the gate's order.
    pub families: &'a [Family],
    /// Device numbers to classes.
    pub registry: &'a DeviceRegistry,
}

/// The name `/proc/self/fd/N` shows for an anon-inode file (`anon_inode:[vfio-device]`).
pub fn anon_inode_name(fd: &OwnedFd) -> Option<String> {
    let link = std::fs::read_link(crate::vfs::proc_fd_path(fd.as_fd())).ok()?;
    link.to_str()?
        .strip_prefix("anon_inode:")
        .map(str::to_owned)
}

impl Classifier<'_> {
    /// The family that has `kind`.
    pub fn family_of(&self, kind: FdKind) -> Option<usize> {
        self.families.iter().position(|f| f.kinds.contains(&kind))
    }

    /// Classifies `dup`, a duplicate of the caller's fd; `simulated` says whether a file is
    /// one of the simulator's carriers, and of which kind.
    pub fn classify(&self, dup: OwnedFd, simulated: &dyn Fn(FileKey) -> Option<FdKind>) -> Class {
        let Ok(st) = fstat(dup.as_fd()) else {
            return Class::NotOurs;
        };
        let key = (st.st_dev, st.st_ino);
        if let Some(kind) = simulated(key) {
            return match self.family_of(kind) {
                Some(family) => Class::Simulated {
                    family,
                    kind,
                    key,
                    file: dup,
                },
                None => Class::NotOurs,
            };
        }
        let format = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits());
        let found = if format == SFlag::S_IFCHR {
            let (maj, min) = (major(st.st_rdev), minor(st.st_rdev));
            let (Ok(maj), Ok(min)) = (u32::try_from(maj), u32::try_from(min)) else {
                return Class::NotOurs;
            };
            self.registry
                .class_of(NodeKind::Char, maj, min)
                .filter(|class| class.is_accelerator())
                .and_then(|class| {
                    self.families
                        .iter()
                        .enumerate()
                        .find_map(|(i, f)| Some((i, f.kind_of_device(class)?, Some((maj, min)))))
                })
        } else if self.families.iter().any(|f| !f.anon_inodes.is_empty()) {
            anon_inode_name(&dup).and_then(|name| {
                self.families
                    .iter()
                    .enumerate()
                    .find_map(|(i, f)| Some((i, f.kind_of_anon_inode(&name)?, None)))
            })
        } else {
            None
        };
        match found {
            Some((family, kind, device)) => Class::Host {
                family,
                kind,
                device,
                file: dup,
            },
            None => Class::NotOurs,
        }
    }
}
