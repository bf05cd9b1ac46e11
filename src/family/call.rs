//! What a backend (the host driver, or a simulator) gets to run a call, and what it answers.

use super::ioctl::IoctlDef;
use super::kind::FdKind;
use super::memory::Memory;

/// Who made a call: its thread group and effective ids, which the executor takes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// Thread group (process) id, in the supervisor's pid namespace.
    pub tgid: i32,
    /// Effective uid.
    pub euid: u32,
    /// Effective gid.
    pub egid: u32,
}

/// Identity of a file: (device, inode).
pub type FileKey = (u64, u64);

/// Looks up a file descriptor of the calling process: the identity of its file, if it is one.
pub type FdResolver<'a> = &'a dyn Fn(i32) -> Option<FileKey>;

/// Looks up a simulated file by identity: its kind and the simulator's handle.
pub type CarrierLookup<'a> = &'a dyn Fn(FileKey) -> Option<(FdKind, u64)>;

/// Whether a file descriptor of the calling process is an eventfd.
pub type EventfdCheck<'a> = &'a dyn Fn(i32) -> bool;

/// One call for a backend to run.
pub struct Call<'a> {
    /// The file's kind.
    pub kind: FdKind,
    /// The request, named.
    pub ioctl: IoctlDef,
    /// The argument register.
    pub arg: u64,
    /// The argument copied in and checked, for emulated calls: the backend uses it and never
    /// the workload's memory, and the supervisor copies it back out.
    pub copy: Option<&'a mut Vec<u8>>,
    /// The caller's memory, for calls that are not emulated.
    pub memory: &'a dyn Memory,
    /// Who called.
    pub caller: Caller,
    /// Resolves the caller's other fds (a container passed to `GROUP_SET_CONTAINER`).
    pub fd_key: FdResolver<'a>,
    /// Checks that a caller fd is an eventfd.
    pub is_eventfd: EventfdCheck<'a>,
    /// The argument struct as the backend first read it (for the simulator's log).
    pub received: std::cell::RefCell<Option<Vec<u8>>>,
}

impl Call<'_> {
    /// The argument struct: the checked copy when there is one, else `len` bytes of the caller's
    /// memory at the argument pointer.
    pub fn read_arg(&self, len: usize) -> Result<Vec<u8>, nix::errno::Errno> {
        let bytes = match &self.copy {
            Some(copy) if copy.len() >= len => copy[..len].to_vec(),
            Some(_) => return Err(nix::errno::Errno::EFAULT),
            None => self.memory.read(self.arg, len)?,
        };
        self.received
            .borrow_mut()
            .get_or_insert_with(|| bytes.clone());
        Ok(bytes)
    }

    /// Writes `bytes` at `offset` of the argument struct (into the copy, or the caller's memory).
    pub fn write_arg(&mut self, offset: usize, bytes: &[u8]) -> Result<(), nix::errno::Errno> {
        match &mut self.copy {
            Some(copy) => {
                let end = offset + bytes.len();
                copy.get_mut(offset..end)
                    .ok_or(nix::errno::Errno::EFAULT)?
                    .copy_from_slice(bytes);
                Ok(())
            }
            None => self.memory.write(self.arg + offset as u64, bytes),
        }
    }
}

/// What a simulator answers.
#[derive(Debug)]
pub enum SimReply {
    /// The syscall's return value.
    Value(i64),
    /// A new file: a carrier of `kind` for simulator handle `handle`, `size` bytes long (sparse)
    /// with `contents` written at their offsets, installed in the caller and returned as the
    /// call's value (`VFIO_GROUP_GET_DEVICE_FD`).
    NewFile {
        /// Kind of the new file.
        kind: FdKind,
        /// The simulator's handle for it.
        handle: u64,
        /// Carrier size (so that mmaps of its regions work).
        size: u64,
        /// Bytes to place in the carrier.
        contents: Vec<(u64, Vec<u8>)>,
    },
}
