//! Simulated devices inside a sandbox: the device nodes a plan grants, served by brokered open
//! (a memfd "carrier" installed with `SECCOMP_IOCTL_NOTIF_ADDFD` in place of the node) and by
//! the family simulators, keyed by the carrier's inode.

use std::collections::HashMap;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::memfd::{MFdFlags, memfd_create};
use serde::Serialize;

use super::backend::{Call, Caller, FileKey, SimReply};
use super::policy::FdKind;
use crate::accel::sim::AccelSim;
use crate::discovery::Discovery;
use crate::tpuproxy::{DriverModel, Generation};
use crate::vfio::sim::{GroupSpec, VfioSim};

/// Carriers one sandbox may open in all (each costs the simulator a map entry, no fd).
///
/// The simulator keeps no reference to a carrier once it is installed, so a sandbox that
/// closes them holds the supervisor's fd table to nothing. A key stays unique after its file is
/// gone because the kernel hands out memfd inode numbers from a counter that reuses a number
/// only after it wraps (2^32 inodes later); a stale key could then only name another memfd.
const MAX_CARRIERS: usize = 65_536;

/// What a simulated device node stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimTarget {
    /// TPU chip `chip` on the accel driver.
    Accel {
        /// Discovery index.
        chip: usize,
        /// v4 lite.
        lite: bool,
    },
    /// `/dev/vfio/vfio`.
    VfioContainer,
    /// `/dev/vfio/<group>`.
    VfioGroup(u32),
}

impl SimTarget {
    /// The kind of file an open of it yields.
    pub const fn kind(&self) -> FdKind {
        match self {
            Self::Accel { lite, .. } => FdKind::Accel { lite: *lite },
            Self::VfioContainer => FdKind::VfioContainer,
            Self::VfioGroup(_) => FdKind::VfioGroup,
        }
    }
}

/// A device node of the sandbox that the simulator serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimNode {
    /// Path inside the sandbox.
    pub path: PathBuf,
    /// What it is.
    pub target: SimTarget,
}

struct Carrier {
    kind: FdKind,
    handle: u64,
    group: Option<u32>,
}

/// One record of the simulator's log: what it was asked, by whom, from which thread
/// credentials, and what it answered.
#[derive(Debug, Serialize)]
pub struct SimRecord<'a> {
    /// File kind.
    pub device: &'a str,
    /// Request name.
    pub request: &'a str,
    /// The argument register.
    pub arg: u64,
    /// The argument struct as the simulator read it (the checked copy, for emulated calls),
    /// hex, for calls that carry one.
    pub received: Option<String>,
    /// Return value, or `-errno`.
    pub result: i64,
    /// The calling thread group.
    pub caller_tgid: i32,
    /// Effective uid of the thread that ran the call (the executor's).
    pub executor_euid: u32,
    /// Effective capabilities of that thread, as a hex mask.
    pub executor_effective_caps: String,
    /// Whether that thread had CAP_SYS_ADMIN in effect.
    pub executor_cap_sys_admin: bool,
}

/// The simulated devices of one sandbox.
pub struct Simulator {
    nodes: Vec<SimNode>,
    accel: AccelSim,
    vfio: VfioSim,
    carriers: HashMap<FileKey, Carrier>,
    log: Option<std::fs::File>,
}

impl Simulator {
    /// Simulators for the devices of `granted` chips of `host`, logging to `log` when given.
    pub fn new(host: &Discovery, granted: &[usize], log: Option<std::fs::File>) -> Self {
        let mut sim = Self {
            nodes: Vec::new(),
            accel: AccelSim::default(),
            vfio: VfioSim::default(),
            carriers: HashMap::new(),
            log,
        };
        let mut vfio = false;
        for chip in host.tpus.iter().filter(|c| granted.contains(&c.index)) {
            match chip.driver {
                DriverModel::Accel => {
                    let lite = chip.generation == Generation::V4Lite;
                    sim.accel.add_chip(chip.index, lite);
                    for node in &chip.nodes {
                        sim.nodes.push(SimNode {
                            path: node.path.clone(),
                            target: SimTarget::Accel {
                                chip: chip.index,
                                lite,
                            },
                        });
                    }
                }
                DriverModel::Vfio => {
                    vfio = true;
                    for (i, group) in chip.iommu_groups.iter().enumerate() {
                        let bdfs: Vec<_> = chip.bdfs.get(i).copied().into_iter().collect();
                        sim.vfio.add_group(GroupSpec {
                            number: *group,
                            bdfs,
                            ids: (crate::tpuproxy::GOOGLE_VENDOR_ID, chip.device_id),
                        });
                        sim.nodes.push(SimNode {
                            path: crate::vfio::group_node_path(*group),
                            target: SimTarget::VfioGroup(*group),
                        });
                    }
                }
            }
        }
        if vfio {
            sim.nodes.push(SimNode {
                path: crate::vfio::abi::CONTAINER_PATH.into(),
                target: SimTarget::VfioContainer,
            });
        }
        sim
    }

    /// The nodes this simulator serves.
    pub fn nodes(&self) -> &[SimNode] {
        &self.nodes
    }

    /// Opens node `index` for `caller` with open flags `flags`: a new carrier. `in_use(group)`
    /// says whether the caller already holds that VFIO group open (a second open is EBUSY).
    pub fn open(
        &mut self,
        index: usize,
        flags: i32,
        caller: Caller,
        in_use: &dyn Fn(&[FileKey]) -> bool,
    ) -> Result<OwnedFd, Errno> {
        let node = self.nodes.get(index).ok_or(Errno::ENODEV)?.clone();
        let writer = flags & libc::O_ACCMODE != libc::O_RDONLY;
        let (kind, handle, group, size) = match node.target {
            SimTarget::Accel { chip, lite } => {
                let handle = self.accel.open(chip, writer, caller.tgid)?;
                (
                    FdKind::Accel { lite },
                    handle,
                    None,
                    crate::accel::abi::BAR2_BASE + crate::accel::abi::BAR2_SIZE,
                )
            }
            SimTarget::VfioContainer => {
                (FdKind::VfioContainer, self.vfio.open_container(), None, 0)
            }
            SimTarget::VfioGroup(number) => {
                let held: Vec<FileKey> = self
                    .carriers
                    .iter()
                    .filter(|(_, c)| c.group == Some(number))
                    .map(|(k, _)| *k)
                    .collect();
                if in_use(&held) {
                    return Err(Errno::EBUSY);
                }
                (
                    FdKind::VfioGroup,
                    self.vfio.open_group(number)?,
                    Some(number),
                    0,
                )
            }
        };
        self.carrier(
            kind,
            handle,
            group,
            size,
            &[],
            &node.path.display().to_string(),
        )
    }

    fn carrier(
        &mut self,
        kind: FdKind,
        handle: u64,
        group: Option<u32>,
        size: u64,
        contents: &[(u64, Vec<u8>)],
        name: &str,
    ) -> Result<OwnedFd, Errno> {
        let file = memfd_create(
            format!("accelgate-sim:{name}").as_str(),
            MFdFlags::MFD_CLOEXEC,
        )?;
        nix::unistd::ftruncate(&file, i64::try_from(size).map_err(|_| Errno::EFBIG)?)?;
        for (offset, bytes) in contents {
            nix::sys::uio::pwrite(
                &file,
                bytes,
                i64::try_from(*offset).map_err(|_| Errno::EFBIG)?,
            )?;
        }
        if self.carriers.len() >= MAX_CARRIERS {
            return Err(Errno::EMFILE);
        }
        let st = nix::sys::stat::fstat(file.as_fd())?;
        self.carriers.insert(
            (st.st_dev, st.st_ino),
            Carrier {
                kind,
                handle,
                group,
            },
        );
        Ok(file)
    }

    /// What a file is, if it is one of this simulator's carriers.
    pub fn classify(&self, key: FileKey) -> Option<(FdKind, u64)> {
        self.carriers.get(&key).map(|c| (c.kind, c.handle))
    }

    /// Runs `call` on carrier `key`; a new file (a VFIO device) comes back as a carrier.
    pub fn ioctl(&mut self, key: FileKey, call: &mut Call<'_>) -> Result<SimOutcome, Errno> {
        let (kind, handle) = self.classify(key).ok_or(Errno::EBADF)?;
        let carriers = &self.carriers;
        let lookup = |key: FileKey| carriers.get(&key).map(|c| (c.kind, c.handle));
        let reply = match kind {
            FdKind::Accel { .. } => self.accel.ioctl(handle, call),
            _ => self.vfio.ioctl(kind, handle, call, &lookup),
        };
        let outcome = match reply {
            Ok(SimReply::Value(value)) => Ok(SimOutcome::Value(value)),
            Ok(SimReply::NewFile {
                kind,
                handle,
                size,
                contents,
            }) => self
                .carrier(kind, handle, None, size, &contents, kind.name())
                .map(SimOutcome::NewFile),
            Err(e) => Err(e),
        };
        let result = match &outcome {
            Ok(SimOutcome::Value(v)) => *v,
            Ok(SimOutcome::NewFile(_)) => 0,
            Err(e) => -(*e as i64),
        };
        let received = call.received.borrow().as_deref().map(hex);
        self.record(kind, call, received, result);
        outcome
    }

    fn record(&mut self, kind: FdKind, call: &Call<'_>, received: Option<String>, result: i64) {
        let Some(log) = self.log.as_mut() else {
            return;
        };
        let effective = caps::read(None, caps::CapSet::Effective).unwrap_or_default();
        let mask = effective.iter().fold(0u64, |m, c| m | (1u64 << c.index()));
        let record = SimRecord {
            device: kind.name(),
            request: call.ioctl.name,
            arg: call.arg,
            received,
            result,
            caller_tgid: call.caller.tgid,
            executor_euid: nix::unistd::geteuid().as_raw(),
            executor_effective_caps: format!("{mask:#x}"),
            executor_cap_sys_admin: effective.contains(&caps::Capability::CAP_SYS_ADMIN),
        };
        if let Ok(line) = serde_json::to_string(&record) {
            let _ = writeln!(log, "{line}");
        }
    }
}

/// The fixture's TPU nodes among `granted` whose device numbers name a real device on the
/// machine whose sysfs is `real_sys` (`/sys/dev/char/MAJOR:MINOR` exists): the sandbox's node
/// carries the fixture's numbers, so an open that slipped past the broker (a path rewritten
/// after the check, a `/proc/self/fd` reopen, `creat`) would reach that device. The VFIO
/// container is left out: a real one without groups reaches no hardware.
pub fn real_devices_behind(host: &Discovery, granted: &[usize], real_sys: &Path) -> Vec<String> {
    host.tpus
        .iter()
        .filter(|chip| granted.contains(&chip.index))
        .flat_map(|chip| &chip.nodes)
        .filter(|node| {
            real_sys
                .join(format!("dev/char/{}:{}", node.major, node.minor))
                .exists()
        })
        .map(|node| format!("{} ({}:{})", node.path.display(), node.major, node.minor))
        .collect()
}

/// What a simulated call produced.
#[derive(Debug)]
pub enum SimOutcome {
    /// A return value.
    Value(i64),
    /// A new carrier to install in the caller.
    NewFile(OwnedFd),
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_that_are_real_devices_here_are_named() {
        let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/sysfs/tpu-v4-8");
        let host = crate::discovery::discover(&crate::pci::HostRoot::at(fixture).unwrap()).unwrap();
        let sys = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(sys.path().join("dev/char/121:2")).unwrap();
        std::fs::create_dir_all(sys.path().join("dev/char/10:196")).unwrap();
        assert_eq!(
            real_devices_behind(&host, &[0, 1, 2, 3], sys.path()),
            ["/dev/accel2 (121:2)"]
        );
        assert!(real_devices_behind(&host, &[0, 1], sys.path()).is_empty());
    }
}
