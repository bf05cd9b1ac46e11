//! The simulator backend: a call run on the sandbox's simulated devices, by the serving thread
//! under the caller's ids, with the checked copy for emulated calls (copied back out
//! afterwards), else reading and writing the workload's memory as a driver would.

use nix::errno::Errno;
use nix::unistd::Pid;

use super::credentials::take_ids;
use super::handle::{Outcome, Pending};
use super::identity::key_of;
use super::memory::NotifMemory;
use super::receive::Listener;
use super::simulator::SimOutcome;
use crate::family::{Call, FdKind, FileKey, Memory};

/// Runs `pending` on carrier `key`, of `kind`; `checked_eventfds` are the caller's fd numbers
/// that the gate found to be eventfds.
pub fn run(
    listener: &Listener,
    key: FileKey,
    kind: FdKind,
    pending: &Pending<'_>,
    copy: Option<Vec<u8>>,
    checked_eventfds: &[i32],
) -> Result<Outcome, Errno> {
    let sim = listener.sandbox.simulator.as_ref().ok_or(Errno::ENODEV)?;
    take_ids(pending.caller)
        .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EPERM)))?;
    let memory = NotifMemory::new(Pid::from_raw(pending.tid), pending.id, listener.fd());
    // A call whose caller was interrupted or died is not run.
    if !memory.still_pending() {
        return Err(Errno::ESRCH);
    }
    let before = copy.clone();
    let mut copy = copy;
    let fd_key = |fd: i32| key_of(&pending.pidfd, fd);
    // The gate checked the eventfds of an emulated call's copy already.
    let eventfd = |fd: i32| {
        checked_eventfds.contains(&fd)
            || listener
                .sandbox
                .eventfds
                .check(pending.tid, &pending.pidfd, fd)
                .is_some()
    };
    let mut call = Call {
        kind,
        ioctl: pending.ruling.ioctl,
        arg: pending.arg,
        copy: copy.as_mut(),
        memory: &memory,
        caller: pending.caller,
        fd_key: &fd_key,
        is_eventfd: &eventfd,
        received: Default::default(),
    };
    let outcome = sim.lock().map_err(|_| Errno::EIO)?.ioctl(key, &mut call)?;
    if let (Some(before), Some(after)) = (before, copy) {
        memory.write_changes(pending.arg, &before, &after)?;
    }
    Ok(match outcome {
        SimOutcome::Value(v) => Outcome::Value(v),
        SimOutcome::NewFile(file) => Outcome::Install(file),
    })
}
