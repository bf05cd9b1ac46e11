//! The supervisor's notification loop: one receiver per listener, a task per notification,
//! decisions from the device policies, emulated calls on the executor, replies.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::stat::fstat;
use nix::unistd::Pid;
use tokio::sync::Semaphore;

use super::abi::{
    PIDFD_THREAD, SECCOMP_ADDFD_FLAG_SEND, SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP,
    SECCOMP_USER_NOTIF_FLAG_CONTINUE, SeccompNotif, SeccompNotifAddfd, SeccompNotifResp,
};
use super::backend::{Call, Caller, FileKey};
use super::classify::{Class, HostDevices, anon_inode_name, classify};
use super::executor::Executor;
use super::filter::FilterSpec;
use super::memory::{Memory, NotifMemory};
use super::policy::{Action, FdKind, Mode, Ruling};
use super::simulator::{SimOutcome, Simulator};
use super::stats::{Counters, Stats, Verdict};
use super::sys;
use crate::accel::abi::GASKET_MAGIC;
use crate::vfio::abi::VFIO_MAGIC;

/// How a sandbox's gate runs.
pub struct GateConfig {
    /// The sandbox's name, for logs and stats.
    pub sandbox: String,
    /// How strictly rulings apply.
    pub mode: Mode,
    /// The host's accelerator device numbers.
    pub host: HostDevices,
    /// Simulated devices (`--simulate`), served instead of the host's.
    pub simulator: Option<Simulator>,
    /// Executor threads.
    pub executor_threads: usize,
    /// Emulated calls in flight at once for this sandbox.
    pub max_in_flight: usize,
    /// How long an emulated call may take before the workload gets ETIMEDOUT.
    pub deadline: Duration,
    /// Ask for `SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP` (Linux 6.6): the kernel wakes the
    /// supervisor on the workload's CPU, which saves a cross-CPU wakeup per call.
    pub sync_wake_up: bool,
}

impl GateConfig {
    /// What the filter must route for this gate: gasket and VFIO ioctls, and opens when devices
    /// are simulated.
    pub fn filter_spec(&self) -> FilterSpec {
        FilterSpec {
            magics: vec![GASKET_MAGIC, VFIO_MAGIC],
            plain_requests: Vec::new(),
            route_opens: self.simulator.is_some(),
        }
    }
}

struct Shared {
    listener: Arc<OwnedFd>,
    sandbox: String,
    mode: Mode,
    host: HostDevices,
    simulator: Option<Arc<Mutex<Simulator>>>,
    sim_nodes: Mutex<Option<HashMap<FileKey, usize>>>,
    pidfds: PidfdCache,
    executor: Executor,
    slots: Semaphore,
    deadline: Duration,
    sync_wake_up: bool,
    counters: Mutex<Counters>,
}

/// Serves `listener` until every process of the sandbox is gone, then returns the counts.
pub fn serve(listener: OwnedFd, config: GateConfig) -> std::io::Result<Stats> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let shared = Arc::new(Shared {
        listener: Arc::new(listener),
        sandbox: config.sandbox.clone(),
        mode: config.mode,
        host: config.host,
        simulator: config.simulator.map(|s| Arc::new(Mutex::new(s))),
        sim_nodes: Mutex::new(None),
        pidfds: PidfdCache::default(),
        executor: Executor::start(config.executor_threads),
        slots: Semaphore::new(config.max_in_flight.max(1)),
        deadline: config.deadline,
        sync_wake_up: config.sync_wake_up,
        counters: Mutex::new(Counters::default()),
    });
    runtime.block_on(receive(Arc::clone(&shared)))?;
    let counters = shared
        .counters
        .lock()
        .map(|c| c.clone())
        .unwrap_or_default();
    Ok(Stats::new(&config.sandbox, config.mode, &counters))
}

/// One receiver per listener: on readiness, drain with a zero-timeout poll before clearing it
/// (RECV has no non-blocking mode), and stop when the listener hangs up (no targets left).
async fn receive(shared: Arc<Shared>) -> std::io::Result<()> {
    if shared.sync_wake_up {
        match sys::set_flags(shared.listener.as_fd(), SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP) {
            Ok(()) => tracing::debug!("SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP set"),
            Err(e) => tracing::debug!(%e, "no SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (Linux 6.6)"),
        }
    }
    let readiness = sys::register_listener(Arc::clone(&shared.listener))?;
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let mut guard = readiness.readable().await?;
        let mut hung_up = false;
        loop {
            let mut fds = [PollFd::new(shared.listener.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::ZERO) {
                Ok(0) => break,
                Ok(_) => {}
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
            let events = fds[0].revents().unwrap_or(PollFlags::empty());
            if events.contains(PollFlags::POLLIN) {
                match sys::recv(shared.listener.as_fd()) {
                    Ok(notif) => {
                        tasks.spawn(handle(Arc::clone(&shared), notif));
                    }
                    Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::EINTR)) => {}
                    Err(e) => return Err(e),
                }
            } else if events.intersects(PollFlags::POLLHUP | PollFlags::POLLERR) {
                hung_up = true;
                break;
            }
        }
        guard.clear_ready();
        while tasks.try_join_next().is_some() {}
        if hung_up {
            while tasks.join_next().await.is_some() {}
            return Ok(());
        }
    }
}

fn reply(shared: &Shared, id: u64, result: Result<i64, Errno>) {
    let response = match result {
        Ok(val) => SeccompNotifResp {
            id,
            val,
            error: 0,
            flags: 0,
        },
        Err(e) => SeccompNotifResp {
            id,
            val: 0,
            error: -(e as i32),
            flags: 0,
        },
    };
    // ENOENT: the target was interrupted or died; nothing to answer.
    let _ = sys::send(shared.listener.as_fd(), response);
}

fn reply_continue(shared: &Shared, id: u64) {
    let response = SeccompNotifResp {
        id,
        val: 0,
        error: 0,
        flags: SECCOMP_USER_NOTIF_FLAG_CONTINUE,
    };
    let _ = sys::send(shared.listener.as_fd(), response);
}

/// The thread group and effective ids of thread `tid`: from its pidfd (`PIDFD_GET_INFO`,
/// Linux 6.13), else from `/proc/<tid>/status`.
fn caller_of(tid: i32, pidfd: Option<&OwnedFd>) -> Option<Caller> {
    if let Some(info) = pidfd.and_then(|p| sys::pidfd_info(p.as_fd()).ok()) {
        if info.pid == tid as u32 {
            return Some(Caller {
                tgid: info.tgid as i32,
                euid: info.euid,
                egid: info.egid,
            });
        }
    }
    let status = std::fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    let field = |name: &str, index: usize| -> Option<u32> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))?
            .split_whitespace()
            .nth(index)?
            .parse()
            .ok()
    };
    Some(Caller {
        tgid: field("Tgid:", 0)? as i32,
        euid: field("Uid:", 1)?,
        egid: field("Gid:", 1)?,
    })
}

/// Pidfds of the threads that made calls, by thread id: opening one costs about as much as the
/// rest of a CONTINUE. An entry is never wrong for long: a pidfd names one thread, so once that thread
/// is gone (and its id perhaps reused) `pidfd_getfd` through it fails with ESRCH, and the entry
/// is replaced.
#[derive(Default)]
struct PidfdCache(Mutex<HashMap<i32, Arc<OwnedFd>>>);

impl PidfdCache {
    /// Entries kept before the cache starts over: well below any fd limit, and more threads
    /// than a TPU runtime makes gated calls from.
    const CAPACITY: usize = 256;

    /// Thread `tid`'s pidfd and its fd `fd`, duplicated.
    fn dup(&self, tid: i32, fd: i32) -> Result<(Arc<OwnedFd>, OwnedFd), Errno> {
        let cached = self.0.lock().ok().and_then(|c| c.get(&tid).cloned());
        if let Some(pidfd) = cached {
            match dup_of(&pidfd, fd) {
                Err(Errno::ESRCH) => {}
                other => return other.map(|dup| (pidfd, dup)),
            }
        }
        let pidfd = Arc::new(thread_pidfd(tid)?);
        let dup = dup_of(&pidfd, fd)?;
        // A thread group's pidfd (kernels before 6.9) outlives the thread whose id is the key,
        // so it could answer for another process that reuses the id: not cached.
        if !THREAD_PIDFDS.load(Ordering::Relaxed) {
            return Ok((pidfd, dup));
        }
        if let Ok(mut cache) = self.0.lock() {
            if cache.len() >= Self::CAPACITY {
                cache.clear();
            }
            cache.insert(tid, Arc::clone(&pidfd));
        }
        Ok((pidfd, dup))
    }
}

/// Whether `pidfd_open` takes `PIDFD_THREAD` here (Linux 6.9); cleared at the first EINVAL.
static THREAD_PIDFDS: AtomicBool = AtomicBool::new(true);

/// A pidfd through which thread `tid`'s files are reached: the thread's own (Linux 6.9), or its
/// thread group's, found through `/proc/<tid>/status`, which costs several times more.
fn thread_pidfd(tid: i32) -> Result<OwnedFd, Errno> {
    let open = |pid: i32, flags: u32| {
        let pid = rustix::process::Pid::from_raw(pid).ok_or(Errno::ESRCH)?;
        rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::from_bits_retain(flags))
            .map_err(|e| Errno::from_raw(e.raw_os_error()))
    };
    if THREAD_PIDFDS.load(Ordering::Relaxed) {
        match open(tid, PIDFD_THREAD) {
            Err(Errno::EINVAL) => THREAD_PIDFDS.store(false, Ordering::Relaxed),
            other => return other,
        }
    }
    // A thread group's pidfd reaches the leader's file table; a thread made without
    // CLONE_FILES (or after unshare) has its own, so its numbers would name other files.
    let tgid = caller_of(tid, None).ok_or(Errno::ESRCH)?.tgid;
    if tgid != tid
        && !sys::same_file_table(tid, tgid)
            .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EPERM)))?
    {
        return Err(Errno::EPERM);
    }
    open(tgid, 0)
}

fn getfd(pidfd: &OwnedFd, fd: i32) -> Option<OwnedFd> {
    dup_of(pidfd, fd).ok()
}

/// The caller's fd `fd`, duplicated into the supervisor (`pidfd_getfd`).
fn dup_of(pidfd: &OwnedFd, fd: i32) -> Result<OwnedFd, Errno> {
    rustix::process::pidfd_getfd(pidfd, fd, rustix::process::PidfdGetfdFlags::empty())
        .map_err(|e| Errno::from_raw(e.raw_os_error()))
}

/// The caller's fd `fd`, duplicated, if it is an eventfd.
fn eventfd_dup(pidfd: &OwnedFd, fd: i32) -> Option<OwnedFd> {
    getfd(pidfd, fd).filter(|dup| anon_inode_name(dup).as_deref() == Some("[eventfd]"))
}

fn is_eventfd(pidfd: &OwnedFd, fd: i32) -> bool {
    eventfd_dup(pidfd, fd).is_some()
}

fn key_of(pidfd: &OwnedFd, fd: i32) -> Option<FileKey> {
    let dup = getfd(pidfd, fd)?;
    fstat(dup.as_fd()).ok().map(|st| (st.st_dev, st.st_ino))
}

fn policy(kind: FdKind, request: u32, arg: u64) -> Ruling {
    match kind {
        FdKind::Accel { .. } => crate::accel::policy::rule(request),
        _ => crate::vfio::policy::rule(kind, request, arg),
    }
}

async fn handle(shared: Arc<Shared>, notif: SeccompNotif) {
    let nr = notif.data.nr as u32;
    let ioctl_nr = super::filter::Arch::native().map(super::filter::Arch::ioctl_nr);
    if Some(nr) == ioctl_nr {
        ioctl(&shared, notif).await;
    } else {
        open(&shared, notif).await;
    }
}

/// What the gate will do, after the mode is applied.
#[derive(Debug, PartialEq, Eq)]
enum Plan {
    Deny(Errno),
    Continue,
    Emulate {
        copy: Vec<u8>,
        eventfd_fields: &'static [usize],
    },
}

async fn ioctl(shared: &Arc<Shared>, notif: SeccompNotif) {
    let id = notif.id;
    let tid = notif.pid as i32;
    let (fd, request, arg) = (
        notif.data.args[0] as i32,
        notif.data.args[1] as u32,
        notif.data.args[2],
    );
    // Failures answer the call rather than continue it: an fd that cannot be inspected is not
    // let through. (EBADF is what the kernel would answer; ESRCH means the caller is gone.)
    let (pidfd, dup) = match shared.pidfds.dup(tid, fd) {
        Ok(found) => found,
        Err(e) => return reply(shared, id, Err(e)),
    };
    let sim = shared.simulator.clone();
    let class = {
        let lookup = |key: FileKey| {
            sim.as_ref()
                .and_then(|s| s.lock().ok()?.classify(key).map(|(k, _)| k))
        };
        classify(dup, &shared.host, &lookup)
    };
    let (kind, target) = match class {
        // A gasket or VFIO number on another file: what the kernel would answer, without the
        // window in which another thread could put an accelerator file under `fd`.
        Class::NotOurs
            if crate::accel::policy::owns(request) || crate::vfio::policy::owns(request) =>
        {
            return reply(shared, id, Err(Errno::ENOTTY));
        }
        Class::NotOurs => return reply_continue(shared, id),
        Class::Host(kind, dup) => (kind, Target::Host(dup)),
        Class::Simulated(kind, key) => (kind, Target::Sim(key)),
    };
    let ruling = policy(kind, request, arg);
    let memory = NotifMemory::new(Pid::from_raw(tid), id, shared.listener.as_fd());
    let (mut plan, mut verdict) = decide(shared.mode, &shared.sandbox, kind, &ruling, arg, &memory);
    // The driver would take any fd; only the caller's eventfds may reach it, and the files
    // checked here are the ones it gets (not whatever the numbers name later).
    let mut eventfds = Vec::new();
    if let Plan::Emulate {
        copy,
        eventfd_fields,
    } = &plan
    {
        for offset in eventfd_fields.iter() {
            let fd = super::policy::field_u64(copy, *offset).and_then(|v| i32::try_from(v).ok());
            match fd.and_then(|fd| eventfd_dup(&pidfd, fd)) {
                Some(file) => eventfds.push((*offset, file)),
                None => {
                    tracing::debug!(ioctl = ruling.ioctl.name, field = offset, "not an eventfd");
                    (plan, verdict) = (Plan::Deny(Errno::EINVAL), Verdict::Denied);
                    break;
                }
            }
        }
    }
    if let Ok(mut counters) = shared.counters.lock() {
        counters.add(kind.name(), ruling.ioctl.name, verdict);
    }
    let copy = match plan {
        Plan::Deny(errno) => {
            tracing::info!(sandbox = %shared.sandbox, device = %kind, ioctl = ruling.ioctl.name, request = format_args!("{request:#x}"), errno = %errno, "denied");
            return reply(shared, id, Err(errno));
        }
        Plan::Continue => None,
        Plan::Emulate { copy, .. } => Some(copy),
    };
    let result = match (target, copy) {
        (Target::Host(_), None) => return reply_continue(shared, id),
        (Target::Host(dup), Some(copy)) => match pending(&ruling, pidfd, tid, id, arg) {
            Ok(pending) => run_on_host(shared, HostCall { dup, pending }, copy, eventfds).await,
            Err(e) => Err(e),
        },
        (Target::Sim(key), copy) => match pending(&ruling, pidfd, tid, id, arg) {
            Ok(pending) => run_simulated(shared, SimCall { key, kind, pending }, copy).await,
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(Outcome::Value(v)) => reply(shared, id, Ok(v)),
        Ok(Outcome::Install(file)) => install(shared, id, file, true),
        Err(e) => reply(shared, id, Err(e)),
    }
}

enum Target {
    Host(OwnedFd),
    Sim(FileKey),
}

enum Outcome {
    Value(i64),
    Install(OwnedFd),
}

/// Applies the mode to a ruling, reading and checking argument copies where it must.
fn decide(
    mode: Mode,
    sandbox: &str,
    kind: FdKind,
    ruling: &Ruling,
    arg: u64,
    memory: &dyn Memory,
) -> (Plan, Verdict) {
    let audit = |what: &str, errno: Errno| {
        tracing::info!(sandbox, device = %kind, ioctl = ruling.ioctl.name, errno = %errno, mode = %mode, "{what}: enforce would refuse this");
    };
    let checked = |check: super::policy::Check| -> Result<Vec<u8>, Errno> {
        let copy = memory.read(arg, ruling.ioctl.arg_size)?;
        check(kind, &copy)?;
        Ok(copy)
    };
    match (mode, ruling.action) {
        (Mode::Audit, Action::Deny(errno)) => {
            audit("allowed (audit)", errno);
            (Plan::Continue, Verdict::Audited)
        }
        (_, Action::Deny(errno)) => (Plan::Deny(errno), Verdict::Denied),
        (_, Action::Continue) => (Plan::Continue, Verdict::Allowed),
        (Mode::Enforce, Action::CheckThenContinue(check)) => match checked(check) {
            Ok(_) => (Plan::Continue, Verdict::Allowed),
            Err(errno) => (Plan::Deny(errno), Verdict::Denied),
        },
        (
            Mode::Enforce,
            Action::Emulate {
                check,
                eventfd_fields,
            },
        ) => match checked(check) {
            Ok(copy) => (
                Plan::Emulate {
                    copy,
                    eventfd_fields,
                },
                Verdict::Emulated,
            ),
            Err(errno) => (Plan::Deny(errno), Verdict::Denied),
        },
        (_, Action::CheckThenContinue(check) | Action::Emulate { check, .. }) => {
            match checked(check) {
                Ok(_) => (Plan::Continue, Verdict::Allowed),
                Err(errno) => {
                    audit("continued unchecked", errno);
                    (Plan::Continue, Verdict::Audited)
                }
            }
        }
    }
}

/// The notification a backend call answers: who, on which thread, with what argument.
struct Pending<'a> {
    ruling: &'a Ruling,
    caller: Caller,
    pidfd: Arc<OwnedFd>,
    tid: i32,
    id: u64,
    arg: u64,
}

/// The pending call, with the caller's ids, which backends run as (read only for them).
fn pending(
    ruling: &Ruling,
    pidfd: Arc<OwnedFd>,
    tid: i32,
    id: u64,
    arg: u64,
) -> Result<Pending<'_>, Errno> {
    let caller = caller_of(tid, Some(&pidfd)).ok_or(Errno::ESRCH)?;
    Ok(Pending {
        ruling,
        caller,
        pidfd,
        tid,
        id,
        arg,
    })
}

/// A call for the host driver, on a dup of the caller's fd.
struct HostCall<'a> {
    dup: OwnedFd,
    pending: Pending<'a>,
}

/// A call for the simulator, on carrier `key`.
struct SimCall<'a> {
    key: FileKey,
    kind: FdKind,
    pending: Pending<'a>,
}

/// Emulates on the host driver: the executor issues the call on a dup of the workload's fd
/// with the daemon's checked copy, its eventfd fields pointing at the daemon's dups of the
/// eventfds that were checked; then what the driver changed goes back to the workload, after a
/// check that the call is still pending.
async fn run_on_host(
    shared: &Arc<Shared>,
    call: HostCall<'_>,
    copy: Vec<u8>,
    eventfds: Vec<(usize, OwnedFd)>,
) -> Result<Outcome, Errno> {
    let Ok(_slot) = shared.slots.acquire().await else {
        return Err(Errno::EAGAIN);
    };
    let HostCall { dup, pending } = call;
    let request = pending.ruling.ioctl.request;
    let listener = Arc::clone(&shared.listener);
    let (tid, id) = (pending.tid, pending.id);
    let job = move || -> Result<(i64, Vec<u8>, Vec<u8>), Errno> {
        // A call whose caller was interrupted or died is not issued.
        if !sys::id_valid(listener.as_fd(), id) {
            return Err(Errno::ESRCH);
        }
        let mut work = copy.clone();
        for (offset, file) in &eventfds {
            work[*offset..*offset + 8].copy_from_slice(&(file.as_raw_fd() as u64).to_ne_bytes());
        }
        let value = sys::ioctl_on_copy(dup.as_fd(), request, &mut work)
            .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
        // The workload sees its own fd numbers again.
        for (offset, _) in &eventfds {
            work[*offset..*offset + 8].copy_from_slice(&copy[*offset..*offset + 8]);
        }
        Ok((value, copy, work))
    };
    let (value, before, after) = timed(shared, pending.caller, job).await??;
    NotifMemory::new(Pid::from_raw(tid), id, shared.listener.as_fd()).write_changes(
        pending.arg,
        &before,
        &after,
    )?;
    Ok(Outcome::Value(value))
}

async fn timed<R: Send + 'static>(
    shared: &Arc<Shared>,
    caller: Caller,
    job: impl FnOnce() -> R + Send + 'static,
) -> Result<R, Errno> {
    match tokio::time::timeout(shared.deadline, shared.executor.run(caller, job)).await {
        Ok(Ok(result)) => Ok(result),
        Ok(Err(_)) => Err(Errno::EIO),
        Err(_) => {
            tracing::warn!(sandbox = %shared.sandbox, deadline = ?shared.deadline, "an emulated call ran past its deadline");
            Err(Errno::ETIMEDOUT)
        }
    }
}

/// Runs a call on the simulator, on the executor: with the checked copy for emulated calls
/// (copied back out afterwards), else reading and writing the workload's memory as a driver
/// would.
async fn run_simulated(
    shared: &Arc<Shared>,
    call: SimCall<'_>,
    copy: Option<Vec<u8>>,
) -> Result<Outcome, Errno> {
    let Some(sim) = shared.simulator.clone() else {
        return Err(Errno::ENODEV);
    };
    let Ok(_slot) = shared.slots.acquire().await else {
        return Err(Errno::EAGAIN);
    };
    let SimCall { key, kind, pending } = call;
    let listener = Arc::clone(&shared.listener);
    let (ioctl, caller, tid, id, arg) = (
        pending.ruling.ioctl,
        pending.caller,
        pending.tid,
        pending.id,
        pending.arg,
    );
    let pidfd = Arc::clone(&pending.pidfd);
    let before = copy.clone();
    let job = move || -> Result<(SimOutcome, Option<Vec<u8>>), Errno> {
        let memory = NotifMemory::new(Pid::from_raw(tid), id, listener.as_fd());
        // A call whose caller was interrupted or died is not run.
        if !memory.still_pending() {
            return Err(Errno::ESRCH);
        }
        let mut copy = copy;
        let fd_key = |fd: i32| key_of(&pidfd, fd);
        let eventfd = |fd: i32| is_eventfd(&pidfd, fd);
        let mut call = Call {
            kind,
            ioctl,
            arg,
            copy: copy.as_mut(),
            memory: &memory,
            caller,
            fd_key: &fd_key,
            is_eventfd: &eventfd,
            received: Default::default(),
        };
        let outcome = sim.lock().map_err(|_| Errno::EIO)?.ioctl(key, &mut call)?;
        Ok((outcome, copy))
    };
    let (outcome, after) = timed(shared, caller, job).await??;
    if let (Some(before), Some(after)) = (before, after) {
        NotifMemory::new(Pid::from_raw(tid), id, shared.listener.as_fd())
            .write_changes(arg, &before, &after)?;
    }
    Ok(match outcome {
        SimOutcome::Value(v) => Outcome::Value(v),
        SimOutcome::NewFile(file) => Outcome::Install(file),
    })
}

/// Installs `file` in the target and answers the call with its number, atomically.
fn install(shared: &Shared, id: u64, file: OwnedFd, cloexec: bool) {
    let request = SeccompNotifAddfd {
        id,
        flags: SECCOMP_ADDFD_FLAG_SEND,
        srcfd: file.as_raw_fd() as u32,
        newfd: 0,
        newfd_flags: if cloexec { libc::O_CLOEXEC as u32 } else { 0 },
    };
    if let Err(e) = sys::addfd(shared.listener.as_fd(), request) {
        if e.raw_os_error() != Some(libc::ENOENT) {
            reply(
                shared,
                id,
                Err(Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))),
            );
        }
    }
}

/// `open`/`openat` with simulated devices: a simulated node (by its inode in the sandbox's
/// `/dev`) gets a fresh carrier installed in its place; every other open continues.
async fn open(shared: &Arc<Shared>, notif: SeccompNotif) {
    let id = notif.id;
    let tid = notif.pid as i32;
    let args = notif.data.args;
    let memory = NotifMemory::new(Pid::from_raw(tid), id, shared.listener.as_fd());
    // The filter routes openat and openat2 everywhere, and x86_64's open (2).
    let (path_ptr, flags) = match notif.data.nr as u32 {
        super::filter::OPENAT2 => {
            // `struct open_how` starts with the u64 flags.
            let how = memory
                .read(args[2], 8)
                .ok()
                .and_then(|b| super::policy::field_u64(&b, 0));
            let Some(flags) = how else {
                return reply_continue(shared, id);
            };
            (args[1], flags as i32)
        }
        2 if cfg!(target_arch = "x86_64") => (args[0], args[1] as i32),
        _ => (args[1], args[2] as i32),
    };
    // An O_PATH fd can neither read, write, mmap nor ioctl: the node itself serves.
    if flags & libc::O_PATH != 0 {
        return reply_continue(shared, id);
    }
    let Ok(path) = memory.read_cstr(path_ptr, libc::PATH_MAX as usize) else {
        return reply_continue(shared, id);
    };
    let (Some(sim), Ok(path)) = (shared.simulator.clone(), String::from_utf8(path)) else {
        return reply_continue(shared, id);
    };
    // Relative paths (against the cwd or an openat dirfd) are left alone: libtpu and the probe
    // open devices by absolute path.
    if !path.starts_with('/') {
        return reply_continue(shared, id);
    }
    let Some(index) = sim_node(shared, &sim, tid, &path) else {
        return reply_continue(shared, id);
    };
    // From here on the path names a simulated node: a failure is an error, never a continue
    // onto the node itself.
    let Some(caller) = caller_of(tid, thread_pidfd(tid).ok().as_ref()) else {
        return reply(shared, id, Err(Errno::ESRCH));
    };
    let tgid = caller.tgid;
    let in_use = |keys: &[FileKey]| holds_any(tgid, keys);
    let opened = sim.lock().map_err(|_| Errno::EIO).and_then(|mut s| {
        let kind = s.nodes()[index].target.kind();
        let file = s.open(index, flags, caller, &in_use)?;
        Ok((kind, file))
    });
    match opened {
        Ok((kind, file)) => {
            if let Ok(mut counters) = shared.counters.lock() {
                counters.add(kind.name(), "open", Verdict::Brokered);
            }
            install(shared, id, file, flags & libc::O_CLOEXEC != 0);
        }
        Err(errno) => reply(shared, id, Err(errno)),
    }
}

/// Whether process `tgid` holds a file with one of `keys` open.
fn holds_any(tgid: i32, keys: &[FileKey]) -> bool {
    if keys.is_empty() {
        return false;
    }
    let Ok(entries) = std::fs::read_dir(format!("/proc/{tgid}/fd")) else {
        return false;
    };
    entries.flatten().any(|entry| {
        nix::sys::stat::stat(&entry.path()).is_ok_and(|st| keys.contains(&(st.st_dev, st.st_ino)))
    })
}

/// The simulated node `path` names inside the caller's root, by inode. The inode table of the
/// sandbox's simulated nodes is built on first use, from the same root.
fn sim_node(shared: &Shared, sim: &Arc<Mutex<Simulator>>, tid: i32, path: &str) -> Option<usize> {
    let root = nix::fcntl::open(
        format!("/proc/{tid}/root").as_str(),
        OFlag::O_PATH | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .ok()?;
    let key = |path: &Path| -> Option<FileKey> {
        let how = OpenHow::new()
            .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        let fd = openat2(root.as_fd(), path, how).ok()?;
        fstat(fd.as_fd()).ok().map(|st| (st.st_dev, st.st_ino))
    };
    let mut table = shared.sim_nodes.lock().ok()?;
    if table.is_none() {
        let nodes: Vec<_> = sim
            .lock()
            .ok()?
            .nodes()
            .iter()
            .map(|n| n.path.clone())
            .collect();
        *table = Some(
            nodes
                .iter()
                .enumerate()
                .filter_map(|(i, p)| Some((key(p)?, i)))
                .collect(),
        );
    }
    let wanted = key(Path::new(path))?;
    table.as_ref()?.get(&wanted).copied()
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;
    use crate::accel::abi::{MAP_BUFFER, REGISTER_INTERRUPT, SET_EVENTFD};
    use crate::supervisor::memory::FakeMemory;

    const ARG: u64 = 0x1000;
    const ACCEL: FdKind = FdKind::Accel { lite: false };

    fn memory(words: [u64; 4]) -> FakeMemory {
        let bytes = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
        FakeMemory {
            base: ARG,
            bytes: RefCell::new(bytes),
        }
    }

    fn verdicts(mode: Mode, request: u32, words: [u64; 4]) -> (Plan, Verdict) {
        let ruling = crate::accel::policy::rule(request);
        decide(mode, "test", ACCEL, &ruling, ARG, &memory(words))
    }

    #[test]
    fn enforce_emulates_good_copies_and_denies_bad_ones() {
        let good = [0, 7, 2, 0x472_0000];
        match verdicts(Mode::Enforce, REGISTER_INTERRUPT.request, good) {
            (
                Plan::Emulate {
                    copy,
                    eventfd_fields,
                },
                Verdict::Emulated,
            ) => {
                assert_eq!(copy, memory(good).bytes.into_inner());
                assert_eq!(eventfd_fields, [8]);
            }
            other => panic!("{other:?}"),
        }
        let bad = [0, 7, 2, 0x1000];
        assert_eq!(
            verdicts(Mode::Enforce, REGISTER_INTERRUPT.request, bad),
            (Plan::Deny(Errno::EINVAL), Verdict::Denied)
        );
        assert_eq!(
            verdicts(Mode::Enforce, MAP_BUFFER.request, [1, 4096, 0, 0]),
            (Plan::Deny(Errno::EFAULT), Verdict::Denied)
        );
        assert_eq!(
            verdicts(Mode::Enforce, SET_EVENTFD.request, [0; 4]),
            (Plan::Deny(Errno::EPERM), Verdict::Denied)
        );
    }

    #[test]
    fn passthrough_and_audit_loosen_what_they_should() {
        let (good, bad) = ([0, 7, 2, 0x472_0000], [0, 7, 2, 0x1000]);
        let (interrupt, map, set) = (
            REGISTER_INTERRUPT.request,
            MAP_BUFFER.request,
            SET_EVENTFD.request,
        );
        let cases = [
            // Passthrough: content checks only audited, denials kept.
            (
                Mode::Passthrough,
                interrupt,
                bad,
                Plan::Continue,
                Verdict::Audited,
            ),
            (
                Mode::Passthrough,
                interrupt,
                good,
                Plan::Continue,
                Verdict::Allowed,
            ),
            (
                Mode::Passthrough,
                set,
                [0; 4],
                Plan::Deny(Errno::EPERM),
                Verdict::Denied,
            ),
            // Audit: everything allowed, what enforce would refuse marked.
            (Mode::Audit, set, [0; 4], Plan::Continue, Verdict::Audited),
            (
                Mode::Audit,
                map,
                [1, 4096, 0, 0],
                Plan::Continue,
                Verdict::Audited,
            ),
            (
                Mode::Audit,
                map,
                [0, 4096, 0, 0],
                Plan::Continue,
                Verdict::Allowed,
            ),
        ];
        for (mode, request, words, plan, verdict) in cases {
            assert_eq!(
                verdicts(mode, request, words),
                (plan, verdict),
                "{mode} {request:#x}"
            );
        }
    }

    #[test]
    fn an_unreadable_argument_is_refused_in_enforce_mode() {
        let ruling = crate::accel::policy::rule(REGISTER_INTERRUPT.request);
        let empty = FakeMemory {
            base: ARG,
            bytes: RefCell::new(Vec::new()),
        };
        assert_eq!(
            decide(Mode::Enforce, "test", ACCEL, &ruling, ARG, &empty),
            (Plan::Deny(Errno::EFAULT), Verdict::Denied)
        );
    }
}
