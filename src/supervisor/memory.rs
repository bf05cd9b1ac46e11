//! The workload's memory as the supervisor reaches it: `process_vm_readv`/`writev` on the
//! calling thread, with `SECCOMP_IOCTL_NOTIF_ID_VALID` after every read, so that bytes read from
//! a thread that was interrupted (and whose memory may since have been reused) are never acted on.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::BorrowedFd;

use nix::errno::Errno;
use nix::sys::uio::{RemoteIoVec, process_vm_readv, process_vm_writev};
use nix::unistd::Pid;

use super::sys;
use crate::family::Memory;

/// The memory of the thread behind a pending notification.
pub struct NotifMemory<'a> {
    tid: Pid,
    id: u64,
    listener: BorrowedFd<'a>,
    /// Whether each read is followed by `ID_VALID`.
    checked_reads: bool,
}

impl<'a> NotifMemory<'a> {
    /// Memory of thread `tid`, valid while notification `id` on `listener` is pending.
    pub fn new(tid: Pid, id: u64, listener: BorrowedFd<'a>) -> Self {
        Self {
            tid,
            id,
            listener,
            checked_reads: true,
        }
    }

    /// The same, for reads that only inform a decision, without the `ID_VALID` after each
    /// read: whoever acts on what was read (a backend) checks right before it acts.
    pub fn for_decision(tid: Pid, id: u64, listener: BorrowedFd<'a>) -> Self {
        Self {
            checked_reads: false,
            ..Self::new(tid, id, listener)
        }
    }

    /// Whether the notification is still pending.
    pub fn still_pending(&self) -> bool {
        sys::id_valid(self.listener, self.id)
    }
}

impl Memory for NotifMemory<'_> {
    fn read(&self, addr: u64, len: usize) -> Result<Vec<u8>, Errno> {
        let mut buffer = vec![0u8; len];
        if len > 0 {
            let remote = [RemoteIoVec {
                base: addr as usize,
                len,
            }];
            let read = process_vm_readv(self.tid, &mut [IoSliceMut::new(&mut buffer)], &remote)
                .map_err(|e| {
                    if e == Errno::ESRCH {
                        Errno::ESRCH
                    } else {
                        Errno::EFAULT
                    }
                })?;
            if read != len {
                return Err(Errno::EFAULT);
            }
        }
        if self.checked_reads && !self.still_pending() {
            return Err(Errno::ESRCH);
        }
        Ok(buffer)
    }

    fn write(&self, addr: u64, data: &[u8]) -> Result<(), Errno> {
        if data.is_empty() {
            return Ok(());
        }
        if !self.still_pending() {
            return Err(Errno::ESRCH);
        }
        let remote = [RemoteIoVec {
            base: addr as usize,
            len: data.len(),
        }];
        let written = process_vm_writev(self.tid, &[IoSlice::new(data)], &remote)
            .map_err(|_| Errno::EFAULT)?;
        if written == data.len() {
            Ok(())
        } else {
            Err(Errno::EFAULT)
        }
    }
}
