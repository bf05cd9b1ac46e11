//! One notification, from the caller's file to the answer: classify the file, take the
//! family's ruling, apply the mode, then deny, continue, or run the call on a backend.

use std::os::fd::OwnedFd;
use std::sync::Arc;

use nix::errno::Errno;
use nix::unistd::Pid;

use super::abi::SeccompNotif;
use super::broker;
use super::classify::{Class, Classifier};
use super::decide::{Plan, decide};
use super::filter::{Arch, COMPAT_ERRNO};
use super::host;
use super::identity::{caller_of, caller_via};
use super::memory::NotifMemory;
use super::receive::Listener;
use super::reply::{answer, continue_call, install};
use super::simulated;
use super::stats::Verdict;
use super::translated;
use crate::family::{Action, Caller, FdKind, FileKey, Ruling, field_u64};

/// Serves one notification: an ioctl, or (with simulated devices) an open.
///
/// A call from another ABI (i386 through `int 0x80`, x32) is refused with the filter's
/// [`COMPAT_ERRNO`]: accelgate's own filter never sends one, but an OCI profile cannot tell
/// libseccomp's architectures apart, so one may arrive from a runc or crun container.
pub fn notification(listener: &Listener, notif: SeccompNotif) {
    let native = Arch::native().filter(|arch| arch.audit() == notif.data.arch);
    let nr = u32::try_from(notif.data.nr).ok();
    match native {
        Some(arch) if nr == Some(arch.ioctl_nr()) => ioctl(listener, &notif),
        Some(arch) if nr.is_some_and(|nr| arch.opens().contains(&nr)) => {
            broker::open(listener, &notif);
        }
        _ => {
            let errno = Errno::from_raw(i32::from(COMPAT_ERRNO));
            answer(listener.fd(), notif.id, Err(errno));
        }
    }
}

/// The call a backend runs: who, on which thread, with what argument.
pub struct Pending<'a> {
    /// The family's ruling.
    pub ruling: &'a Ruling,
    /// The caller's process and ids.
    pub caller: Caller,
    /// The calling thread's pidfd.
    pub pidfd: Arc<OwnedFd>,
    /// The calling thread.
    pub tid: i32,
    /// The notification.
    pub id: u64,
    /// The argument register.
    pub arg: u64,
}

enum Target {
    Host(OwnedFd),
    Sim(FileKey),
}

/// What a backend produced.
pub enum Outcome {
    /// The call's return value.
    Value(i64),
    /// A new file for the caller, installed as the call's value.
    Install(OwnedFd),
}

/// The caller's file `fd`: the calling thread's pidfd, the file's family and kind, and the
/// backend for it; None when the call has been answered already (the file could not be
/// inspected, or it is not an accelerator's).
fn classify(
    listener: &Listener,
    id: u64,
    tid: i32,
    fd: i32,
    request: u32,
) -> Option<(Arc<OwnedFd>, usize, FdKind, Target)> {
    let (sandbox, gate) = (&listener.sandbox, &listener.gate);
    // Failures answer the call rather than continue it: an fd that cannot be inspected is not
    // let through. (EBADF is what the kernel would answer; ESRCH means the caller is gone.)
    let (pidfd, dup) = match sandbox.pidfds.dup(tid, fd) {
        Ok(found) => found,
        Err(e) => {
            answer(listener.fd(), id, Err(e));
            return None;
        }
    };
    let simulated = |key: FileKey| -> Option<FdKind> {
        let sim = sandbox.simulator.as_ref()?;
        sim.lock().ok()?.classify(key).map(|(kind, _)| kind)
    };
    let classifier = Classifier {
        families: &gate.families,
        registry: &gate.registry,
    };
    match classifier.classify(dup, &simulated) {
        // An accelerator number on another file: what the kernel would answer, without the
        // window in which another thread could put an accelerator file under `fd`.
        Class::NotOurs if gate.claims(request) => {
            answer(listener.fd(), id, Err(Errno::ENOTTY));
            None
        }
        Class::NotOurs => {
            continue_call(listener.fd(), id);
            None
        }
        // An accelerator node the sandbox was not given (made with CAP_MKNOD, say): none of
        // its calls that reach the supervisor run.
        Class::Host {
            kind,
            device: Some(device),
            ..
        } if sandbox
            .granted
            .as_ref()
            .is_some_and(|g| !g.contains(&device)) =>
        {
            tracing::warn!(sandbox = %sandbox.name, device = %kind, number = ?device, "an ioctl on an accelerator node the sandbox was not given");
            sandbox.count(kind.name(), "not granted", Verdict::Denied);
            answer(listener.fd(), id, Err(Errno::EPERM));
            None
        }
        Class::Host {
            family, kind, file, ..
        } => Some((pidfd, family, kind, Target::Host(file))),
        Class::Simulated {
            family,
            kind,
            key,
            file,
        } => {
            sandbox.carriers.hold(fd, file, family, kind, key);
            Some((pidfd, family, kind, Target::Sim(key)))
        }
    }
}

/// The call for a backend to run, with its caller's ids (`known`, or read now); None when the
/// caller is gone, and the call has been answered.
fn pending<'a>(
    listener: &Listener,
    ruling: &'a Ruling,
    known: Option<Caller>,
    pidfd: Arc<OwnedFd>,
    tid: i32,
    id: u64,
    arg: u64,
) -> Option<Pending<'a>> {
    let Some(caller) = known.or_else(|| caller_of(tid, Some(&pidfd))) else {
        answer(listener.fd(), id, Err(Errno::ESRCH));
        return None;
    };
    Some(Pending {
        ruling,
        caller,
        pidfd,
        tid,
        id,
        arg,
    })
}

fn ioctl(listener: &Listener, notif: &SeccompNotif) {
    let (id, tid) = (notif.id, notif.pid as i32);
    let fd = notif.data.args[0] as i32;
    // The kernel takes the request as `unsigned int`: only the low 32 bits count.
    let request = notif.data.args[1] as u32;
    let arg = notif.data.args[2];
    let sandbox = &listener.sandbox;
    let gate = &listener.gate;
    // A carrier this sandbox used before, recognised without a dup, through a cached pidfd
    // that still answers for this thread (not one of a thread whose id was reused).
    let known = sandbox.simulator.as_ref().and_then(|_| {
        let pidfd = sandbox.pidfds.cached(tid)?;
        let caller = caller_via(&pidfd, tid)?;
        Some((pidfd, sandbox.carriers.find(tid, fd)?, caller))
    });
    let (pidfd, family, kind, target, known_caller) = match known {
        Some((pidfd, (family, kind, key), caller)) => {
            (pidfd, family, kind, Target::Sim(key), Some(caller))
        }
        None => match classify(listener, id, tid, fd, request) {
            Some((pidfd, family, kind, target)) => (pidfd, family, kind, target, None),
            None => return,
        },
    };
    let ruling = gate.rule(family, kind, request, arg);
    if let Action::Translate(translator) = ruling.action {
        let Some(pending) = pending(listener, &ruling, known_caller, pidfd, tid, id, arg) else {
            return;
        };
        let backend = match &target {
            Target::Host(file) => translated::Backend::Host(file),
            Target::Sim(key) => translated::Backend::Sim(*key),
        };
        translated::serve(listener, kind, &pending, backend, translator);
        return;
    }
    // Read for the decision only: a backend checks that the call is still pending right before
    // it acts, and an answer to a call that is gone goes nowhere.
    let memory = NotifMemory::for_decision(Pid::from_raw(tid), id, listener.fd());
    let (mut plan, mut verdict) = decide(sandbox.mode, &sandbox.name, kind, &ruling, arg, &memory);
    // The driver would take any fd; only the caller's eventfds may reach it, and the files
    // checked here are the ones it gets (not whatever the numbers name later).
    let mut eventfds = Vec::new();
    if let Plan::Emulate {
        copy,
        eventfd_fields,
    } = &plan
    {
        for offset in eventfd_fields.iter() {
            let fd = field_u64(copy, *offset).and_then(|v| i32::try_from(v).ok());
            match fd.and_then(|fd| sandbox.eventfds.check(tid, &pidfd, fd)) {
                Some(file) => eventfds.push((*offset, fd.unwrap_or(-1), file)),
                None => {
                    tracing::debug!(ioctl = ruling.ioctl.name, field = offset, "not an eventfd");
                    (plan, verdict) = (Plan::Deny(Errno::EINVAL), Verdict::Denied);
                    break;
                }
            }
        }
    }
    sandbox.count(kind.name(), ruling.ioctl.name, verdict);
    let copy = match plan {
        Plan::Deny(errno) => {
            tracing::info!(sandbox = %sandbox.name, device = %kind, ioctl = ruling.ioctl.name, request = format_args!("{request:#x}"), errno = %errno, "denied");
            {
                answer(listener.fd(), id, Err(errno));
                return;
            }
        }
        Plan::Continue => None,
        Plan::Emulate { copy, .. } => Some(copy),
        // Handled above, before the mode was applied.
        Plan::Translate => None,
    };
    if let (Target::Host(_), None) = (&target, &copy) {
        continue_call(listener.fd(), id);
        return;
    }
    let Some(pending) = pending(listener, &ruling, known_caller, pidfd, tid, id, arg) else {
        return;
    };
    let result = match (target, copy) {
        (Target::Host(file), Some(copy)) => {
            let files = eventfds
                .into_iter()
                .map(|(at, _, file)| (at, file))
                .collect();
            host::run(listener, &file, &pending, copy, files)
        }
        (Target::Sim(key), copy) => {
            let numbers: Vec<i32> = eventfds.iter().map(|(_, fd, _)| *fd).collect();
            simulated::run(listener, key, kind, &pending, copy, &numbers)
        }
        (Target::Host(_), None) => {
            continue_call(listener.fd(), id);
            return;
        }
    };
    match result {
        Ok(Outcome::Value(v)) => answer(listener.fd(), id, Ok(v)),
        Ok(Outcome::Install(file)) => install(listener.fd(), id, &file, true),
        Err(e) => answer(listener.fd(), id, Err(e)),
    }
}
