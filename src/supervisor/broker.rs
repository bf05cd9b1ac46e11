//! Brokered opens of simulated devices: `open`/`openat`/`openat2` of a simulated node (known
//! by its inode in the sandbox's `/dev`) gets a fresh carrier installed in its place; every
//! other open continues.

use std::collections::HashMap;
use std::os::fd::AsFd;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2};
use nix::sys::stat::fstat;
use nix::unistd::Pid;

use super::abi::SeccompNotif;
use super::credentials::as_supervisor;
use super::filter::OPENAT2;
use super::gate::Sandbox;
use super::identity::{caller_of, thread_pidfd};
use super::memory::NotifMemory;
use super::receive::Listener;
use super::reply::{answer, continue_call, install};
use super::stats::Verdict;
use crate::family::{FileKey, Memory, field_u64};

/// Serves an open notification.
pub fn open(listener: &Listener, notif: &SeccompNotif) {
    let (id, tid) = (notif.id, notif.pid as i32);
    let args = notif.data.args;
    let sandbox = &listener.sandbox;
    let memory = NotifMemory::new(Pid::from_raw(tid), id, listener.fd());
    // The filter routes openat and openat2 everywhere, and x86_64's open (2).
    let (path_ptr, flags) = match u32::try_from(notif.data.nr) {
        Ok(OPENAT2) => {
            // `struct open_how` starts with the u64 flags.
            let how = memory.read(args[2], 8).ok().and_then(|b| field_u64(&b, 0));
            let Some(flags) = how else {
                return continue_call(listener.fd(), id);
            };
            (args[1], flags as i32)
        }
        Ok(2) if cfg!(target_arch = "x86_64") => (args[0], args[1] as i32),
        _ => (args[1], args[2] as i32),
    };
    // An O_PATH fd can neither read, write, mmap nor ioctl: the node itself serves.
    if flags & libc::O_PATH != 0 {
        return continue_call(listener.fd(), id);
    }
    let Ok(path) = memory.read_cstr(path_ptr, libc::PATH_MAX as usize) else {
        return continue_call(listener.fd(), id);
    };
    let (Some(sim), Ok(path)) = (sandbox.simulator.as_ref(), String::from_utf8(path)) else {
        return continue_call(listener.fd(), id);
    };
    // Relative paths (against the cwd or an openat dirfd) are left alone: TPU runtimes and the
    // probe open devices by absolute path.
    if !path.starts_with('/') {
        return continue_call(listener.fd(), id);
    }
    // The lookups below are the gate's own business: they must see every node and every fd,
    // whoever the last caller this thread acted for was.
    if let Err(e) = as_supervisor() {
        tracing::error!(%e, "a serving thread cannot take the supervisor's ids back");
        return answer(listener.fd(), id, Err(Errno::EPERM));
    }
    let Some(index) = sim_node(sandbox, tid, &path) else {
        return continue_call(listener.fd(), id);
    };
    // From here on the path names a simulated node: a failure is an error, never a continue
    // onto the node itself.
    let Some(caller) = caller_of(tid, thread_pidfd(tid).ok().as_ref()) else {
        return answer(listener.fd(), id, Err(Errno::ESRCH));
    };
    let in_use = |keys: &[FileKey]| holds_any(caller.tgid, keys);
    let opened = sim
        .lock()
        .map_err(|_| Errno::EIO)
        .and_then(|mut s| s.open(index, flags, caller, &in_use));
    match opened {
        Ok((kind, file)) => {
            sandbox.count(kind.name(), "open", Verdict::Brokered);
            install(listener.fd(), id, &file, flags & libc::O_CLOEXEC != 0);
        }
        Err(errno) => answer(listener.fd(), id, Err(errno)),
    }
}

/// Whether process `tgid` holds a file with one of `keys` open; true when its fds cannot be
/// listed (an exclusive node is then refused with EBUSY rather than opened twice).
fn holds_any(tgid: i32, keys: &[FileKey]) -> bool {
    if keys.is_empty() {
        return false;
    }
    let Ok(entries) = std::fs::read_dir(format!("/proc/{tgid}/fd")) else {
        return true;
    };
    entries.flatten().any(|entry| {
        nix::sys::stat::stat(&entry.path()).is_ok_and(|st| keys.contains(&(st.st_dev, st.st_ino)))
    })
}

/// The simulated node `path` names inside the caller's root, by inode. The inode table of the
/// sandbox's simulated nodes is built on first use, from the same root.
fn sim_node(sandbox: &Sandbox, tid: i32, path: &str) -> Option<usize> {
    let sim = sandbox.simulator.as_ref()?;
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
    let mut table = sandbox.sim_nodes.lock().ok()?;
    if table.is_none() {
        let paths: Vec<_> = sim.lock().ok()?.nodes().map(|n| n.path.clone()).collect();
        let found: HashMap<FileKey, usize> = paths
            .iter()
            .enumerate()
            .filter_map(|(i, p)| Some((key(p)?, i)))
            .collect();
        *table = Some(found);
    }
    let wanted = key(Path::new(path))?;
    table.as_ref()?.get(&wanted).copied()
}
