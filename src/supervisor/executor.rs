//! The executor: threads that run emulated driver calls without the daemon's privileges.
//!
//! The NVIDIA driver takes privilege from the caller's `CAP_SYS_ADMIN` on every call and caches
//! it in what the call creates; `CAP_PERFMON` and `CAP_SYS_NICE` also open doors. A call run by
//! the root daemon on the workload's behalf must therefore not carry them. Each executor thread
//! drops all three from its effective, permitted and inheritable sets at start (capabilities are
//! per thread, so the daemon's other threads keep theirs), takes on the caller's effective uid
//! and gid for each call, and keeps nothing in effect but CAP_SYS_PTRACE (to reach the caller's
//! memory and fds).

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;

use tokio::sync::oneshot;

use super::backend::Caller;
use super::sys;

/// Capabilities an executor thread never has.
pub const DROPPED: [caps::Capability; 3] = [
    caps::Capability::CAP_SYS_ADMIN,
    caps::Capability::CAP_PERFMON,
    caps::Capability::CAP_SYS_NICE,
];

type Job = Box<dyn FnOnce() + Send>;

/// A pool of unprivileged threads running jobs in the caller's effective ids.
pub struct Executor {
    jobs: mpsc::Sender<Job>,
}

/// A job could not run: the pool is gone.
#[derive(Debug, thiserror::Error)]
#[error("the executor pool is gone")]
pub struct ExecutorGone;

/// Drops [`DROPPED`] from every set of this thread; false when it could not.
fn drop_privileges() -> bool {
    for set in [
        caps::CapSet::Effective,
        caps::CapSet::Inheritable,
        caps::CapSet::Permitted,
    ] {
        for cap in DROPPED {
            if let Err(e) = caps::drop(None, set, cap) {
                tracing::error!(?cap, ?set, %e, "cannot drop a capability in the executor; stopping the thread");
                return false;
            }
        }
    }
    true
}

thread_local! {
    /// The (euid, egid) this executor thread runs with now.
    static IDS: std::cell::Cell<Option<(u32, u32)>> = const { std::cell::Cell::new(None) };
}

/// Gives this thread `caller`'s effective ids, unless it has them already.
fn take_ids(caller: Caller) -> std::io::Result<()> {
    let wanted = (caller.euid, caller.egid);
    if IDS.get() == Some(wanted) {
        return Ok(());
    }
    IDS.set(None);
    // Back to root first (always allowed: the real uid is 0), which lets the thread take any
    // effective id; CAP_SYS_ADMIN and friends stay dropped from the permitted set.
    sys::set_thread_effective_ids(0, 0)?;
    sys::set_thread_effective_ids(caller.euid, caller.egid)?;
    // The driver sees no capability at all in effect, whatever the caller's euid: only
    // CAP_SYS_PTRACE, which reaching the caller's memory and fds takes and no driver consults.
    // (An euid change to or from 0 rewrites the effective set, so this follows every switch.)
    let effective = std::collections::HashSet::from([caps::Capability::CAP_SYS_PTRACE]);
    caps::set(None, caps::CapSet::Effective, &effective).map_err(std::io::Error::other)?;
    IDS.set(Some(wanted));
    Ok(())
}

impl Executor {
    /// Starts `threads` executor threads.
    pub fn start(threads: usize) -> Self {
        let (jobs, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        for n in 0..threads.max(1) {
            let receiver = Arc::clone(&receiver);
            let spawned = thread::Builder::new()
                .name(format!("accelgate-exec-{n}"))
                .spawn(move || {
                    // A thread that kept them must not run jobs; with none left, jobs wait forever
                    // and hit their deadline (ETIMEDOUT), which fails closed.
                    if !drop_privileges() {
                        return;
                    }
                    loop {
                        let job = match receiver.lock() {
                            Ok(receiver) => receiver.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(%e, "cannot start an executor thread");
            }
        }
        Self { jobs }
    }

    /// Runs `job` on an executor thread with `caller`'s effective uid and gid.
    pub async fn run<R: Send + 'static>(
        &self,
        caller: Caller,
        job: impl FnOnce() -> R + Send + 'static,
    ) -> Result<R, ExecutorGone> {
        let (done, result) = oneshot::channel();
        let wrapped: Job = Box::new(move || {
            // Its caller stopped waiting (the deadline passed): a late call must not run.
            if done.is_closed() {
                return;
            }
            if let Err(e) = take_ids(caller) {
                tracing::warn!(%e, euid = caller.euid, "executor cannot take the caller's ids");
                return;
            }
            let _ = done.send(job());
        });
        self.jobs.send(wrapped).map_err(|_| ExecutorGone)?;
        result.await.map_err(|_| ExecutorGone)
    }
}
