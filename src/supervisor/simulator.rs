//! Simulated devices inside a sandbox: the device nodes a plan grants, served by brokered open
//! (a memfd "carrier" installed with `SECCOMP_IOCTL_NOTIF_ADDFD` in place of the node) and by
//! the family simulators, keyed by the carrier's inode.

use std::collections::HashMap;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::memfd::{MFdFlags, memfd_create};
use serde::Serialize;

use crate::family::{Call, Caller, DeviceSim, FdKind, FileKey, SimNode, SimReply};

/// Carriers one sandbox may open in all (each costs the simulator a map entry, no fd).
///
/// The simulator keeps no reference to a carrier once it is installed, so a sandbox that
/// closes them holds the supervisor's fd table to nothing. A key stays unique after its file is
/// gone because the kernel hands out memfd inode numbers from a counter that reuses a number
/// only after it wraps (2^32 inodes later); a stale key could then only name another memfd.
const MAX_CARRIERS: usize = 65_536;

/// What the simulator knows of a file it handed out.
#[derive(Debug, Clone, Copy)]
struct Carrier {
    /// Index of the simulator that serves it.
    sim: usize,
    kind: FdKind,
    handle: u64,
    /// The node it was opened from (none for files that calls made).
    node: Option<usize>,
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
    sims: Vec<Box<dyn DeviceSim>>,
    /// Every served node, with the index of its simulator.
    nodes: Vec<(usize, SimNode)>,
    carriers: HashMap<FileKey, Carrier>,
    log: Option<std::fs::File>,
}

impl Simulator {
    /// Serves the nodes of `sims`, logging every call to `log` when given.
    pub fn new(sims: Vec<Box<dyn DeviceSim>>, log: Option<std::fs::File>) -> Self {
        let nodes = sims
            .iter()
            .enumerate()
            .flat_map(|(index, sim)| sim.nodes().into_iter().map(move |node| (index, node)))
            .collect();
        Self {
            sims,
            nodes,
            carriers: HashMap::new(),
            log,
        }
    }

    /// The nodes this simulator serves.
    pub fn nodes(&self) -> impl Iterator<Item = &SimNode> {
        self.nodes.iter().map(|(_, node)| node)
    }

    /// Opens node `index` (of [`Self::nodes`]) for `caller` with open flags `flags`: a new
    /// carrier. `in_use(keys)` says whether the caller holds one of these files open already,
    /// which an exclusive node refuses with EBUSY.
    pub fn open(
        &mut self,
        index: usize,
        flags: i32,
        caller: Caller,
        in_use: &dyn Fn(&[FileKey]) -> bool,
    ) -> Result<(FdKind, OwnedFd), Errno> {
        let (sim, node) = self.nodes.get(index).cloned().ok_or(Errno::ENODEV)?;
        if node.exclusive {
            let held: Vec<FileKey> = self
                .carriers
                .iter()
                .filter(|(_, c)| c.node == Some(index))
                .map(|(k, _)| *k)
                .collect();
            if in_use(&held) {
                return Err(Errno::EBUSY);
            }
        }
        let opened = self.sims[sim].open(&node, flags, caller)?;
        let carrier = Carrier {
            sim,
            kind: node.kind,
            handle: opened.handle,
            node: Some(index),
        };
        let file = self.carrier(carrier, opened.size, &[], &node.path.display().to_string())?;
        Ok((node.kind, file))
    }

    fn carrier(
        &mut self,
        carrier: Carrier,
        size: u64,
        contents: &[(u64, Vec<u8>)],
        name: &str,
    ) -> Result<OwnedFd, Errno> {
        if self.carriers.len() >= MAX_CARRIERS {
            return Err(Errno::EMFILE);
        }
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
        let st = nix::sys::stat::fstat(file.as_fd())?;
        self.carriers.insert((st.st_dev, st.st_ino), carrier);
        Ok(file)
    }

    /// What a file is, if it is one of this simulator's carriers: its kind and handle.
    pub fn classify(&self, key: FileKey) -> Option<(FdKind, u64)> {
        self.carriers.get(&key).map(|c| (c.kind, c.handle))
    }

    /// Runs `call` on carrier `key`; a new file (a VFIO device) comes back as a carrier.
    pub fn ioctl(&mut self, key: FileKey, call: &mut Call<'_>) -> Result<SimOutcome, Errno> {
        let Carrier {
            sim, kind, handle, ..
        } = *self.carriers.get(&key).ok_or(Errno::EBADF)?;
        let carriers = &self.carriers;
        let lookup = |key: FileKey| carriers.get(&key).map(|c| (c.kind, c.handle));
        let reply = self.sims[sim].ioctl(handle, call, &lookup);
        let outcome = match reply {
            Ok(SimReply::Value(value)) => Ok(SimOutcome::Value(value)),
            Ok(SimReply::NewFile {
                kind,
                handle,
                size,
                contents,
            }) => {
                let carrier = Carrier {
                    sim,
                    kind,
                    handle,
                    node: None,
                };
                self.carrier(carrier, size, &contents, kind.name())
                    .map(SimOutcome::NewFile)
            }
            Err(e) => Err(e),
        };
        let result = match &outcome {
            Ok(SimOutcome::Value(v)) => *v,
            Ok(SimOutcome::NewFile(_)) => 0,
            Err(e) => -(*e as i64),
        };
        if self.log.is_some() {
            let received = call.received.borrow().as_deref().map(hex);
            self.record(kind, call, received, result);
        }
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
