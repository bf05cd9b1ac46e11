//! Who made a call, and the caller's files: thread pidfds (cached), caller credentials, and
//! duplicates of the caller's fds.

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use nix::errno::Errno;
use nix::sys::stat::fstat;

use super::classify::anon_inode_name;
use super::sys;
use crate::family::{Caller, FdKind, FileKey};

/// The thread group and effective ids of thread `tid`: from its pidfd (`PIDFD_GET_INFO`,
/// Linux 6.13), else from `/proc/<tid>/status`.
pub fn caller_of(tid: i32, pidfd: Option<&OwnedFd>) -> Option<Caller> {
    if let Some(caller) = pidfd.and_then(|p| caller_via(p, tid)) {
        return Some(caller);
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
        tgid: i32::try_from(field("Tgid:", 0)?).ok()?,
        euid: field("Uid:", 1)?,
        egid: field("Gid:", 1)?,
    })
}

/// The thread group and effective ids of thread `tid` from `pidfd`, if that pidfd is still
/// the thread's (`PIDFD_GET_INFO`, Linux 6.13).
pub fn caller_via(pidfd: &OwnedFd, tid: i32) -> Option<Caller> {
    let info = sys::pidfd_info(pidfd.as_fd()).ok()?;
    (i32::try_from(info.pid).ok() == Some(tid)).then_some(())?;
    Some(Caller {
        tgid: i32::try_from(info.tgid).ok()?,
        euid: info.euid,
        egid: info.egid,
    })
}

/// Pidfds of the threads that made calls, by thread id: opening one costs about as much as the
/// rest of a CONTINUE. An entry is never wrong for long: a pidfd names one thread, so once that
/// thread is gone (and its id perhaps reused) `pidfd_getfd` through it fails with ESRCH, and
/// the entry is replaced.
#[derive(Default)]
pub struct PidfdCache(Mutex<HashMap<i32, Arc<OwnedFd>>>);

impl PidfdCache {
    /// Entries kept before the cache starts over: well below any fd limit, and more threads
    /// than an accelerator runtime makes gated calls from.
    const CAPACITY: usize = 256;

    /// Thread `tid`'s pidfd, if it is cached.
    pub fn cached(&self, tid: i32) -> Option<Arc<OwnedFd>> {
        self.0.lock().ok().and_then(|c| c.get(&tid).cloned())
    }

    /// Thread `tid`'s pidfd and its fd `fd`, duplicated.
    pub fn dup(&self, tid: i32, fd: i32) -> Result<(Arc<OwnedFd>, OwnedFd), Errno> {
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
pub fn thread_pidfd(tid: i32) -> Result<OwnedFd, Errno> {
    let open = |pid: i32, flags: u32| {
        let pid = rustix::process::Pid::from_raw(pid).ok_or(Errno::ESRCH)?;
        rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::from_bits_retain(flags))
            .map_err(|e| Errno::from_raw(e.raw_os_error()))
    };
    if THREAD_PIDFDS.load(Ordering::Relaxed) {
        match open(tid, super::abi::PIDFD_THREAD) {
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

/// The caller's fd `fd`, duplicated into the supervisor (`pidfd_getfd`).
pub fn dup_of(pidfd: &OwnedFd, fd: i32) -> Result<OwnedFd, Errno> {
    rustix::process::pidfd_getfd(pidfd, fd, rustix::process::PidfdGetfdFlags::empty())
        .map_err(|e| Errno::from_raw(e.raw_os_error()))
}

/// The caller's fd `fd`, duplicated, if it is an eventfd.
fn eventfd_dup(pidfd: &OwnedFd, fd: i32) -> Option<OwnedFd> {
    dup_of(pidfd, fd)
        .ok()
        .filter(|dup| anon_inode_name(dup).as_deref() == Some("[eventfd]"))
}

/// Simulated carriers a sandbox's calls were made on, held (a dup each) by the number the
/// caller used: a call on the same open file again is recognised with one `kcmp` instead of a
/// dup, an fstat and a close. Only carriers are held: they are the simulator's memfds, so
/// holding one past the caller's close keeps nothing of the host open. Bounded.
pub struct CarrierCache {
    held: Mutex<HashMap<i32, HeldCarrier>>,
    me: u32,
}

#[derive(Clone)]
struct HeldCarrier {
    file: Arc<OwnedFd>,
    family: usize,
    kind: FdKind,
    key: FileKey,
}

impl Default for CarrierCache {
    fn default() -> Self {
        Self {
            held: Mutex::default(),
            me: std::process::id(),
        }
    }
}

impl CarrierCache {
    /// Carriers held at most, per sandbox.
    const CAPACITY: usize = 64;

    /// The family, kind and key of the carrier the caller's fd `fd` (of thread `tid`) is, if
    /// it is one held here.
    pub fn find(&self, tid: i32, fd: i32) -> Option<(usize, FdKind, FileKey)> {
        let held = self.held.lock().ok()?.get(&fd).cloned()?;
        sys::same_file(tid, fd, self.me, held.file.as_fd())
            .unwrap_or(false)
            .then_some((held.family, held.kind, held.key))
    }

    /// Holds `file`, the caller's fd `fd`, a carrier of `kind`.
    pub fn hold(&self, fd: i32, file: OwnedFd, family: usize, kind: FdKind, key: FileKey) {
        if let Ok(mut cache) = self.held.lock() {
            if cache.len() >= Self::CAPACITY {
                cache.clear();
            }
            let held = HeldCarrier {
                file: Arc::new(file),
                family,
                kind,
                key,
            };
            cache.insert(fd, held);
        }
    }
}

/// Eventfds a sandbox's calls named, held once checked, by the number the caller used: an
/// emulated call that names one again is checked with one `kcmp` (the same open file as the
/// one held) instead of a dup, a readlink and a close. The cost of holding: an eventfd the
/// caller closes stays open here until its number names another file in a later call, the
/// cache fills (64) or the sandbox ends, so its waiters see its hang-up only then. The
/// eventfds here are the ones gasket interrupts signal, which their runtime closes itself.
pub struct EventfdCache {
    held: Mutex<HashMap<i32, Arc<OwnedFd>>>,
    /// The supervisor's process id, for kcmp (it does not fork once it serves).
    me: u32,
}

impl Default for EventfdCache {
    fn default() -> Self {
        Self {
            held: Mutex::default(),
            me: std::process::id(),
        }
    }
}

impl EventfdCache {
    /// Eventfds held at most, per sandbox.
    const CAPACITY: usize = 64;

    /// The caller's fd `fd` (of thread `tid`, reached through `pidfd`), if it is an eventfd.
    pub fn check(&self, tid: i32, pidfd: &OwnedFd, fd: i32) -> Option<Arc<OwnedFd>> {
        let held = self.held.lock().ok().and_then(|c| c.get(&fd).cloned());
        if let Some(held) = held {
            if sys::same_file(tid, fd, self.me, held.as_fd()).unwrap_or(false) {
                return Some(held);
            }
        }
        let file = Arc::new(eventfd_dup(pidfd, fd)?);
        if let Ok(mut cache) = self.held.lock() {
            if cache.len() >= Self::CAPACITY {
                cache.clear();
            }
            cache.insert(fd, Arc::clone(&file));
        }
        Some(file)
    }
}

/// The identity of the caller's fd `fd`.
pub fn key_of(pidfd: &OwnedFd, fd: i32) -> Option<FileKey> {
    let dup = dup_of(pidfd, fd).ok()?;
    fstat(dup.as_fd()).ok().map(|st| (st.st_dev, st.st_ino))
}
