//! Receiving notifications: threads that block in `SECCOMP_IOCTL_NOTIF_RECV` on one listener
//! and serve each notification to the end themselves, emulated calls included (one hop).
//!
//! Since Linux 6.6 a blocked RECV returns (ENOENT) once no process is left behind the filter,
//! and several threads may wait on one listener: each notification wakes one to serve it. On
//! older kernels RECV would block forever after the last process, so one thread polls for
//! readiness (and hang-up) before each RECV instead.
//!
//! A listener has one thread (threads blocked together in RECV would all wake for every
//! notification, which costs more than the call). A slow call (a driver that takes its time,
//! or a workload that makes the supervisor wait: a FUSE file to stat, a faulting page to read)
//! must not hold up the sandbox's other calls, so the supervisor's [`Monitor`] adds a thread,
//! up to a bound, to a listener that has a notification waiting while no thread has been
//! receiving for longer than [`SLOW_CALL`]; a thread that finds another one receiving when it
//! is done leaves.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak, mpsc};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::abi::{SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP, SeccompNotif};
use super::credentials;
use super::gate::{Gate, Sandbox, Serving, Threads};
use super::handle;
use super::sys;

/// A listener and what serving it needs.
pub struct Listener {
    fd: OwnedFd,
    /// The gate.
    pub gate: Arc<Gate>,
    /// The sandbox behind it.
    pub sandbox: Arc<Sandbox>,
    /// RECV returns once the listener has no process left (Linux 6.6).
    blocking: bool,
    max_threads: usize,
    initial_threads: usize,
    running: Arc<AtomicUsize>,
    /// Threads inside [`Listener::next`].
    receiving: AtomicUsize,
    /// When a thread last took a notification, in nanoseconds since `epoch`.
    last_taken: AtomicU64,
    epoch: Instant,
    done: Mutex<mpsc::Sender<()>>,
    done_receiver: Mutex<Option<mpsc::Receiver<()>>>,
}

impl Listener {
    /// Prepares `fd` for serving: SYNC_WAKE_UP when asked for and available.
    pub fn new(
        fd: OwnedFd,
        gate: Arc<Gate>,
        sandbox: Arc<Sandbox>,
        threads: Threads,
    ) -> std::io::Result<Self> {
        // SET_FLAGS came with the blocking RECV that returns on hang-up (both Linux 6.6).
        let blocking = sys::set_flags(fd.as_fd(), 0).is_ok();
        if blocking && threads.sync_wake_up {
            match sys::set_flags(fd.as_fd(), SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP) {
                Ok(()) => tracing::debug!("SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP set"),
                Err(e) => tracing::debug!(%e, "no SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP"),
            }
        }
        let (done, done_receiver) = mpsc::channel();
        let (initial_threads, max_threads) = if blocking {
            (
                threads.initial.max(1),
                threads.max.max(threads.initial).max(1),
            )
        } else {
            (1, 1)
        };
        Ok(Self {
            fd,
            gate,
            sandbox,
            blocking,
            max_threads,
            initial_threads,
            running: Arc::new(AtomicUsize::new(0)),
            receiving: AtomicUsize::new(0),
            last_taken: AtomicU64::new(0),
            epoch: Instant::now(),
            done: Mutex::new(done),
            done_receiver: Mutex::new(Some(done_receiver)),
        })
    }

    /// The listener fd.
    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The next notification; None once no process is left behind the listener.
    fn next(&self) -> Option<SeccompNotif> {
        self.receiving.fetch_add(1, Ordering::AcqRel);
        let notif = self.receive();
        if notif.is_some() {
            let now = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
            self.last_taken.store(now, Ordering::Release);
        }
        self.receiving.fetch_sub(1, Ordering::AcqRel);
        notif
    }

    fn receive(&self) -> Option<SeccompNotif> {
        loop {
            if !self.blocking {
                let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
                match poll(&mut fds, PollTimeout::NONE) {
                    Ok(_) => {}
                    Err(Errno::EINTR) => continue,
                    Err(e) => {
                        tracing::error!(%e, "poll on a seccomp listener");
                        return None;
                    }
                }
                let events = fds[0].revents().unwrap_or(PollFlags::empty());
                if !events.contains(PollFlags::POLLIN) {
                    return None;
                }
            }
            match sys::recv(self.fd.as_fd()) {
                Ok(notif) => return Some(notif),
                // ENOENT: the caller was interrupted or died before we got it, or (blocking)
                // no process is left.
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    if self.blocking && self.hung_up() {
                        return None;
                    }
                }
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                Err(e) => {
                    tracing::error!(%e, "receive a seccomp notification");
                    return None;
                }
            }
        }
    }

    fn hung_up(&self) -> bool {
        let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::empty())];
        matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
            && fds[0]
                .revents()
                .is_some_and(|e| e.intersects(PollFlags::POLLHUP | PollFlags::POLLERR))
    }
}

/// Starts serving `listener`; fails when no serving thread could drop its privileges.
pub fn start(listener: &Arc<Listener>) -> std::io::Result<Serving> {
    let done = listener
        .done_receiver
        .lock()
        .ok()
        .and_then(|mut r| r.take())
        .ok_or_else(|| std::io::Error::other("a listener is served once"))?;
    let (ready_tx, ready_rx) = mpsc::channel();
    for _ in 0..listener.initial_threads {
        spawn(listener, Some(ready_tx.clone()))?;
    }
    drop(ready_tx);
    let ready = ready_rx.iter().filter(|ok| *ok).count();
    if ready < listener.initial_threads {
        return Err(std::io::Error::other(
            "a serving thread could not drop CAP_SYS_ADMIN, CAP_PERFMON and CAP_SYS_NICE",
        ));
    }
    Ok(Serving::new(done, Arc::clone(&listener.running)))
}

fn spawn(listener: &Arc<Listener>, ready: Option<mpsc::Sender<bool>>) -> std::io::Result<()> {
    let Ok(done) = listener.done.lock().map(|d| d.clone()) else {
        return Err(std::io::Error::other("the listener's state is poisoned"));
    };
    let number = listener.running.fetch_add(1, Ordering::AcqRel);
    let this = Arc::clone(listener);
    let spawned = std::thread::Builder::new()
        .name(format!("accelgate-gate-{number}"))
        .spawn(move || {
            let ok = credentials::drop_privileges();
            if let Some(ready) = ready {
                let _ = ready.send(ok);
            }
            if !(ok && serve(&this)) {
                this.running.fetch_sub(1, Ordering::AcqRel);
            }
            let _ = done.send(());
        });
    if let Err(e) = spawned {
        listener.running.fetch_sub(1, Ordering::AcqRel);
        return Err(e);
    }
    Ok(())
}

/// Serves notifications until the listener has no process left (false), or until this thread
/// is surplus (true: it has counted itself out).
fn serve(listener: &Arc<Listener>) -> bool {
    while let Some(notif) = listener.next() {
        handle::notification(listener, notif);
        if listener.leave_if_surplus() {
            return true;
        }
    }
    false
}

impl Listener {
    /// Counts this thread out when another one is receiving and the listener has more than it
    /// started with. (Should that one take a notification at once and get stuck with it, the
    /// monitor adds a thread again.)
    fn leave_if_surplus(&self) -> bool {
        self.running
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |running| {
                (running > self.initial_threads && self.receiving.load(Ordering::Acquire) > 0)
                    .then(|| running - 1)
            })
            .is_ok()
    }

    /// Whether a notification has waited while no thread was receiving for longer than `slow`.
    fn stuck(&self, slow: Duration) -> bool {
        let running = self.running.load(Ordering::Acquire);
        if running == 0 || running >= self.max_threads || self.receiving.load(Ordering::Acquire) > 0
        {
            return false;
        }
        let since = Duration::from_nanos(self.last_taken.load(Ordering::Acquire));
        if self.epoch.elapsed().saturating_sub(since) <= slow {
            return false;
        }
        let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
        matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
            && fds[0]
                .revents()
                .is_some_and(|e| e.contains(PollFlags::POLLIN))
    }
}

/// How long a notification may wait with no thread receiving before the listener gets another.
pub const SLOW_CALL: Duration = Duration::from_millis(2);

/// Watches a supervisor's listeners and adds a thread to one whose threads are all held up by
/// slow calls. It runs while there are listeners and stops when the last one ends.
#[derive(Default)]
pub struct Monitor {
    listeners: Mutex<Vec<Weak<Listener>>>,
    running: AtomicBool,
}

impl Monitor {
    /// Watches `listener`, starting the monitor thread when it is not running.
    pub fn watch(self: &Arc<Self>, listener: &Arc<Listener>) {
        if let Ok(mut listeners) = self.listeners.lock() {
            listeners.push(Arc::downgrade(listener));
        }
        if self.running.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("accelgate-gate-monitor".into())
            .spawn(move || this.run());
        if let Err(e) = spawned {
            self.running.store(false, Ordering::Release);
            tracing::warn!(%e, "cannot start the gate's monitor; slow calls will hold up others");
        }
    }

    fn run(&self) {
        loop {
            std::thread::sleep(SLOW_CALL);
            let Ok(mut listeners) = self.listeners.lock() else {
                return;
            };
            listeners.retain(|l| l.strong_count() > 0);
            if listeners.is_empty() {
                self.running.store(false, Ordering::Release);
                return;
            }
            for listener in listeners.iter().filter_map(Weak::upgrade) {
                if listener.stuck(SLOW_CALL) {
                    if let Err(e) = spawn(&listener, None) {
                        tracing::warn!(%e, "cannot start another serving thread");
                    }
                }
            }
        }
    }
}
