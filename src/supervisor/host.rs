//! The host backend: an emulated call issued on the real driver, on a dup of the workload's
//! fd, with the gate's checked copy of the argument, by the serving thread under the caller's
//! ids.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Arc;

use nix::errno::Errno;
use nix::unistd::Pid;

use super::credentials::take_ids;
use super::handle::{Outcome, Pending};
use super::memory::NotifMemory;
use super::receive::Listener;
use super::sys;
use crate::family::Memory;

/// Runs `pending` on `file` with `copy`, its eventfd fields pointing at the gate's dups of the
/// eventfds that were checked; then what the driver changed goes back to the workload, after a
/// check that the call is still pending.
pub fn run(
    listener: &Listener,
    file: &OwnedFd,
    pending: &Pending<'_>,
    copy: Vec<u8>,
    eventfds: Vec<(usize, Arc<OwnedFd>)>,
) -> Result<Outcome, Errno> {
    take_ids(pending.caller)
        .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EPERM)))?;
    // A call whose caller was interrupted or died is not issued.
    if !sys::id_valid(listener.fd(), pending.id) {
        return Err(Errno::ESRCH);
    }
    let mut work = copy.clone();
    for (offset, eventfd) in &eventfds {
        let number = u64::try_from(eventfd.as_raw_fd()).map_err(|_| Errno::EBADF)?;
        work[*offset..*offset + 8].copy_from_slice(&number.to_ne_bytes());
    }
    let value = sys::ioctl_on_copy(file.as_fd(), pending.ruling.ioctl.request, &mut work)
        .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
    // The workload sees its own fd numbers again.
    for (offset, _) in &eventfds {
        work[*offset..*offset + 8].copy_from_slice(&copy[*offset..*offset + 8]);
    }
    NotifMemory::new(Pid::from_raw(pending.tid), pending.id, listener.fd()).write_changes(
        pending.arg,
        &copy,
        &work,
    )?;
    Ok(Outcome::Value(value))
}
