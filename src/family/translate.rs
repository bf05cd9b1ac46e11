//! Calls whose checks rest on memory the argument points to, beyond the argument struct itself
//! (NVIDIA's `RM_CONTROL`: the command is in the struct, its parameters behind a pointer in it,
//! and more pointers inside those). The family reads what it needs from the workload, decides,
//! stages copies of every buffer the driver will read or write, runs the call on the copies
//! through the gate's backend, and copies the results out. Nothing the workload changes after
//! the copy reaches the driver.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Mutex;

use nix::errno::Errno;

use super::kind::FdKind;
use super::memory::Memory;

/// What a sandbox was given, as a translator needs it to narrow a driver's answers.
pub struct Grant<'a> {
    /// Device numbers (char major:minor) of the sandbox's accelerator nodes; None when no plan
    /// says (a container another runtime set up).
    pub devices: Option<&'a HashSet<(u32, u32)>>,
    /// A driver's own ids of devices, learned from its answers (NVIDIA's GPU ids, from
    /// `CARD_INFO`), with the device number each stands for.
    pub ids: &'a Mutex<HashMap<u32, (u32, u32)>>,
}

impl Grant<'_> {
    /// Whether the sandbox may see the device with number `device`.
    pub fn allows(&self, device: (u32, u32)) -> bool {
        self.devices.is_none_or(|granted| granted.contains(&device))
    }

    /// Records that the driver calls `device` by `id`.
    pub fn learn(&self, id: u32, device: (u32, u32)) {
        if let Ok(mut ids) = self.ids.lock() {
            ids.insert(id, device);
        }
    }

    /// The learned ids of the devices the sandbox may see, in order.
    pub fn granted_ids(&self) -> Vec<u32> {
        let ids = self.ids.lock().map(|ids| ids.clone()).unwrap_or_default();
        let mut granted: Vec<u32> = ids
            .into_iter()
            .filter(|(_, device)| self.allows(*device))
            .map(|(id, _)| id)
            .collect();
        granted.sort_unstable();
        granted
    }

    /// Whether the driver's id `id` names a device the sandbox may see: one learned, and
    /// granted.
    pub fn allows_id(&self, id: u32) -> bool {
        let device = self.ids.lock().ok().and_then(|ids| ids.get(&id).copied());
        device.is_some_and(|d| self.allows(d))
    }
}

/// One call as a translator sees it.
pub struct Translation<'a> {
    /// The file's kind.
    pub kind: FdKind,
    /// The request as the workload issued it.
    pub request: u32,
    /// The argument register.
    pub arg: u64,
    /// The workload's memory.
    pub memory: &'a dyn Memory,
    /// What the sandbox was given.
    pub grant: &'a Grant<'a>,
    /// Duplicates one of the caller's fds into the gate (for parameters that carry one).
    pub dup_fd: &'a dyn Fn(i32) -> Result<std::os::fd::OwnedFd, Errno>,
}

/// What a call is, at the level a translator knows it (an RM control by its command).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inspection {
    /// Its name, from the tables (`unknown` ones are named for their level).
    pub name: &'static str,
    /// The number at that level (a command, a class) when the tables do not know it: what an
    /// audit reports.
    pub number: Option<u32>,
    /// Why `enforce` refuses it, if it does.
    pub refusal: Option<&'static str>,
}

/// What running a call through a translator gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Translated {
    /// What the call was.
    pub inspection: Inspection,
    /// The syscall's return value (a refusal may still return 0 with a status in memory, as the
    /// driver does).
    pub value: i64,
}

/// Runs staged calls: the real driver on a dup of the workload's file, or a simulator.
pub trait Driver {
    /// Issues `request` with the argument at the start of `staging`'s first buffer.
    fn ioctl(&mut self, request: u32, staging: &Staging) -> Result<i64, Errno>;
}

/// A family's handling of calls whose argument points to more memory.
pub trait Translator: Send + Sync + fmt::Debug {
    /// What the call is, read from the workload's memory: for counting and audit only, since
    /// the workload may change that memory at any time.
    fn inspect(&self, call: &Translation<'_>) -> Result<Inspection, Errno>;

    /// Copies in, checks the copies, runs the call on them through `driver` (or answers it as
    /// the driver answers what it refuses), and copies the results out.
    fn run(&self, call: &Translation<'_>, driver: &mut dyn Driver) -> Result<Translated, Errno>;
}

/// Buffers staged for a driver: the argument struct first, then the buffers its pointers
/// (rewritten to point at these) name. Each is a separate heap allocation that never moves
/// while the staging lives, so an address handed to the driver stays valid for the call.
#[derive(Default)]
pub struct Staging {
    buffers: RefCell<Vec<Box<[u8]>>>,
}

impl Staging {
    /// Stages `bytes`; returns its index and its address.
    pub fn add(&self, bytes: Vec<u8>) -> (usize, u64) {
        let mut buffers = self.buffers.borrow_mut();
        let mut boxed = bytes.into_boxed_slice();
        let address = boxed.as_mut_ptr() as u64;
        buffers.push(boxed);
        (buffers.len() - 1, address)
    }

    /// The address of buffer `index`.
    pub fn address(&self, index: usize) -> Option<u64> {
        self.buffers
            .borrow_mut()
            .get_mut(index)
            .map(|b| b.as_mut_ptr() as u64)
    }

    /// A copy of buffer `index`.
    pub fn get(&self, index: usize) -> Option<Vec<u8>> {
        self.buffers.borrow().get(index).map(|b| b.to_vec())
    }

    /// Overwrites the start of buffer `index` with `bytes`.
    pub fn set(&self, index: usize, at: usize, bytes: &[u8]) -> Result<(), Errno> {
        let mut buffers = self.buffers.borrow_mut();
        let end = at.checked_add(bytes.len()).ok_or(Errno::EFAULT)?;
        buffers
            .get_mut(index)
            .and_then(|b| b.get_mut(at..end))
            .ok_or(Errno::EFAULT)?
            .copy_from_slice(bytes);
        Ok(())
    }

    /// The first buffer's address and length: what the driver gets as its argument.
    pub fn top(&self) -> Option<(u64, usize)> {
        let mut buffers = self.buffers.borrow_mut();
        buffers
            .first_mut()
            .map(|b| (b.as_mut_ptr() as u64, b.len()))
    }

    /// Every buffer's address and length.
    pub fn spans(&self) -> Vec<(u64, usize)> {
        self.buffers
            .borrow_mut()
            .iter_mut()
            .map(|b| (b.as_mut_ptr() as u64, b.len()))
            .collect()
    }
}

/// The staged buffers as memory at their addresses: what a simulator reads and writes in place
/// of the workload's memory, exactly as the driver would through the staged pointers.
impl Memory for Staging {
    fn read(&self, addr: u64, len: usize) -> Result<Vec<u8>, Errno> {
        let buffers = self.buffers.borrow();
        for buffer in buffers.iter() {
            let base = buffer.as_ptr() as u64;
            if let Some(start) = addr.checked_sub(base) {
                let start = usize::try_from(start).map_err(|_| Errno::EFAULT)?;
                if let Some(bytes) = start
                    .checked_add(len)
                    .and_then(|end| buffer.get(start..end))
                {
                    return Ok(bytes.to_vec());
                }
            }
        }
        Err(Errno::EFAULT)
    }

    fn write(&self, addr: u64, data: &[u8]) -> Result<(), Errno> {
        let mut buffers = self.buffers.borrow_mut();
        for buffer in buffers.iter_mut() {
            let base = buffer.as_ptr() as u64;
            if let Some(start) = addr.checked_sub(base) {
                let start = usize::try_from(start).map_err(|_| Errno::EFAULT)?;
                if let Some(bytes) = start
                    .checked_add(data.len())
                    .and_then(|end| buffer.get_mut(start..end))
                {
                    bytes.copy_from_slice(data);
                    return Ok(());
                }
            }
        }
        Err(Errno::EFAULT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staged_buffers_are_memory_at_their_addresses() {
        let staging = Staging::default();
        let (_, first) = staging.add(vec![1, 2, 3, 4]);
        let (second_index, second) = staging.add(vec![0; 8]);
        // Adding more never moves what was staged.
        for _ in 0..64 {
            staging.add(vec![0; 3]);
        }
        assert_eq!(staging.address(0), Some(first));
        assert_eq!(staging.read(first + 1, 3).unwrap(), [2, 3, 4]);
        assert_eq!(staging.read(first + 2, 3), Err(Errno::EFAULT));
        staging.write(second + 4, &[9, 9]).unwrap();
        assert_eq!(staging.get(second_index).unwrap(), [0, 0, 0, 0, 9, 9, 0, 0]);
        assert_eq!(staging.write(second + 7, &[1, 1]), Err(Errno::EFAULT));
        assert_eq!(staging.read(0x10, 1), Err(Errno::EFAULT));
    }
}
