//! Calls a family translates (deep copies, see [`crate::family::Translator`]): the mode
//! applied, the translator run against the host driver or the simulator, and the call counted
//! by what it is at the family's level (an RM control by its command), not only by its ioctl.

use std::os::fd::{AsFd, OwnedFd};

use nix::errno::Errno;
use nix::unistd::Pid;

use super::credentials::take_ids;
use super::handle::{Outcome, Pending};
use super::identity::key_of;
use super::memory::NotifMemory;
use super::mode::Mode;
use super::receive::Listener;
use super::reply::{answer, continue_call};
use super::simulated;
use super::stats::Verdict;
use super::sys;
use crate::family::{
    Call, Driver, FdKind, FileKey, Grant, Inspection, Memory, Staging, Translation, Translator,
};

/// Where a translated call runs.
pub enum Backend<'a> {
    /// The real driver, on this dup of the caller's file.
    Host(&'a OwnedFd),
    /// The simulator, on this carrier.
    Sim(FileKey),
}

/// Serves one call whose ruling is `translator`'s.
pub fn serve(
    listener: &Listener,
    kind: FdKind,
    pending: &Pending<'_>,
    backend: Backend<'_>,
    translator: &dyn Translator,
) {
    let sandbox = &listener.sandbox;
    let grant = Grant {
        devices: sandbox.granted.as_ref(),
        ids: &sandbox.device_ids,
    };
    let request = pending.ruling.ioctl.request;
    let dup_fd = |fd: i32| sandbox.pidfds.dup(pending.tid, fd).map(|(_, file)| file);
    // Reads only inform what the driver gets (or the report): each driver checks that the call
    // is still pending right before it acts, and every write checks again.
    let memory = NotifMemory::for_decision(Pid::from_raw(pending.tid), pending.id, listener.fd());
    let call = Translation {
        kind,
        request,
        arg: pending.arg,
        memory: &memory,
        grant: &grant,
        dup_fd: &dup_fd,
    };
    if sandbox.mode != Mode::Enforce {
        // Passthrough and audit: what the call is, read once for the report; it runs as the
        // workload issued it.
        let inspection = translator.inspect(&call).unwrap_or(Inspection {
            name: pending.ruling.ioctl.name,
            number: None,
            refusal: Some("its argument could not be read"),
        });
        let verdict = match inspection.refusal {
            Some(why) => {
                tracing::info!(sandbox = %sandbox.name, device = %kind, ioctl = inspection.name, number = ?inspection.number, why, mode = %sandbox.mode, "allowed: enforce would refuse this");
                Verdict::Audited
            }
            None => Verdict::Allowed,
        };
        record(listener, kind, &inspection, verdict);
        match backend {
            Backend::Host(_) => continue_call(listener.fd(), pending.id),
            Backend::Sim(key) => {
                let result = simulated::run(listener, key, kind, pending, None, &[]);
                reply(listener, pending.id, result);
            }
        }
        return;
    }
    if let Err(e) = take_ids(pending.caller) {
        answer(
            listener.fd(),
            pending.id,
            Err(Errno::from_raw(e.raw_os_error().unwrap_or(libc::EPERM))),
        );
        return;
    }
    let result = match backend {
        Backend::Host(file) => translator.run(
            &call,
            &mut HostDriver {
                file,
                listener,
                id: pending.id,
            },
        ),
        Backend::Sim(key) => translator.run(
            &call,
            &mut SimDriver {
                listener,
                key,
                kind,
                pending,
            },
        ),
    };
    match result {
        Ok(done) => {
            let verdict = match done.inspection.refusal {
                Some(why) => {
                    tracing::info!(sandbox = %sandbox.name, device = %kind, ioctl = done.inspection.name, number = ?done.inspection.number, why, "denied");
                    Verdict::Denied
                }
                None => Verdict::Emulated,
            };
            record(listener, kind, &done.inspection, verdict);
            answer(listener.fd(), pending.id, Ok(done.value));
        }
        Err(errno) => {
            sandbox.count(kind.name(), pending.ruling.ioctl.name, Verdict::Denied);
            answer(listener.fd(), pending.id, Err(errno));
        }
    }
}

fn record(listener: &Listener, kind: FdKind, inspection: &Inspection, verdict: Verdict) {
    let sandbox = &listener.sandbox;
    sandbox.count(kind.name(), inspection.name, verdict);
    if let Some(number) = inspection.number {
        sandbox.count_unlisted(kind.name(), inspection.name, number);
    }
}

fn reply(listener: &Listener, id: u64, result: Result<Outcome, Errno>) {
    match result {
        Ok(Outcome::Value(v)) => answer(listener.fd(), id, Ok(v)),
        Ok(Outcome::Install(file)) => super::reply::install(listener.fd(), id, &file, true),
        Err(e) => answer(listener.fd(), id, Err(e)),
    }
}

/// The real driver: the staged call issued on the dup, by the serving thread under the caller's
/// ids, while the call is still pending.
struct HostDriver<'a> {
    file: &'a OwnedFd,
    listener: &'a Listener,
    id: u64,
}

impl Driver for HostDriver<'_> {
    fn ioctl(&mut self, request: u32, staging: &Staging) -> Result<i64, Errno> {
        if !sys::id_valid(self.listener.fd(), self.id) {
            return Err(Errno::ESRCH);
        }
        sys::ioctl_on_staging(self.file.as_fd(), request, staging)
            .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))
    }
}

/// The simulator: the staged call run on the carrier, the simulator reading and writing the
/// staged buffers where the driver would read and write through the staged pointers.
struct SimDriver<'a, 'p> {
    listener: &'a Listener,
    key: FileKey,
    kind: FdKind,
    pending: &'a Pending<'p>,
}

impl Driver for SimDriver<'_, '_> {
    fn ioctl(&mut self, request: u32, staging: &Staging) -> Result<i64, Errno> {
        if !sys::id_valid(self.listener.fd(), self.pending.id) {
            return Err(Errno::ESRCH);
        }
        let sim = self
            .listener
            .sandbox
            .simulator
            .as_ref()
            .ok_or(Errno::ENODEV)?;
        let (arg, _) = staging.top().ok_or(Errno::EFAULT)?;
        let memory: &dyn Memory = staging;
        let pidfd = &self.pending.pidfd;
        let fd_key = |fd: i32| key_of(pidfd, fd);
        let no_eventfds = |_: i32| false;
        let mut ioctl = self.pending.ruling.ioctl;
        ioctl.request = request;
        let mut call = Call {
            kind: self.kind,
            ioctl,
            arg,
            copy: None,
            memory,
            caller: self.pending.caller,
            fd_key: &fd_key,
            is_eventfd: &no_eventfds,
            received: Default::default(),
        };
        let outcome = sim
            .lock()
            .map_err(|_| Errno::EIO)?
            .ioctl(self.key, &mut call)?;
        match outcome {
            super::simulator::SimOutcome::Value(v) => Ok(v),
            // No translated call makes a file.
            super::simulator::SimOutcome::NewFile(_) => Err(Errno::EIO),
        }
    }
}
