//! Process creation for the launcher: `clone3` into new namespaces and a cgroup, `fork` and
//! `signal`, the calls `nix` marks unsafe, and `close_range` and `seccomp`, which it does not
//! wrap.
#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::unistd::{ForkResult, Pid};

use super::abi::{CLONE_INTO_CGROUP, CloneArgs};
use crate::supervisor::abi::{
    SECCOMP_FILTER_FLAG_NEW_LISTENER, SECCOMP_SET_MODE_FILTER, SockFilter,
};

/// Starts `child` in a new process with `flags` (new namespaces) and, with `cgroup`, in that
/// cgroup2 directory from its first instruction (`clone3` with `CLONE_INTO_CGROUP`: no
/// migration, which would wait for an RCU grace period). The child is a copy of this process,
/// as with `fork`: it runs `child` on its own copy of the stack and heap and exits with the
/// closure's return value.
///
/// The caller must be single-threaded (the launcher checks): after `clone3` only the calling
/// thread exists in the child, and any lock another thread held would stay held.
pub fn clone_child(
    flags: CloneFlags,
    cgroup: Option<BorrowedFd<'_>>,
    mut child: impl FnMut() -> isize,
) -> nix::Result<Pid> {
    let mut args = CloneArgs {
        flags: flags.bits() as u64,
        exit_signal: Signal::SIGCHLD as u64,
        ..Default::default()
    };
    if let Some(cgroup) = cgroup {
        args.flags |= CLONE_INTO_CGROUP;
        // fds are non-negative.
        args.cgroup = cgroup.as_raw_fd() as u64;
    }
    // SAFETY: `args` is a `clone_args` of the size passed, which the kernel reads before
    // returning; without CLONE_VM and with no stack given, the child gets a copy of this
    // process's memory, stack included, as after `fork`, and the launcher guarantees a
    // single-threaded caller (`ensure_single_threaded`), so the copied state is consistent.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            size_of::<CloneArgs>(),
        )
    };
    match ret {
        ..0 => Err(nix::errno::Errno::last()),
        0 => {
            let status = child();
            // SAFETY: `_exit` ends this process at once, running nothing of the parent's
            // copied state (no atexit handlers, no buffered output of the launcher's).
            unsafe { libc::_exit(status as libc::c_int) }
        }
        pid => Ok(Pid::from_raw(pid as libc::pid_t)),
    }
}

/// `fork`, for the launcher to start the ioctl gate's supervisor.
///
/// The caller must be single-threaded: the launcher checks that it is.
pub fn fork_process() -> nix::Result<ForkResult> {
    // SAFETY: the launcher is single-threaded, so the child's copy of every lock and allocator state is
    // consistent; the child goes on to serve the gate.
    unsafe { nix::unistd::fork() }
}

/// Ignores `signal` in this process.
pub fn ignore_signal(signal: Signal) -> nix::Result<()> {
    // SAFETY: SIG_IGN runs no code in this process, so no handler can break an invariant.
    unsafe { nix::sys::signal::signal(signal, nix::sys::signal::SigHandler::SigIgn) }.map(drop)
}

/// Marks every descriptor from `first` up close-on-exec (`close_range(CLOSE_RANGE_CLOEXEC)`),
/// so that nothing but stdio reaches the workload (CVE-2024-21626 leaked a host directory fd).
pub fn cloexec_from(first: u32) -> std::io::Result<()> {
    // SAFETY: close_range takes plain integers and only changes descriptor flags.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            crate::vfs::abi::CLOSE_RANGE_CLOEXEC,
        )
    };
    if ret < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `KEYCTL_JOIN_SESSION_KEYRING` (`linux/keyctl.h`), which `libc` does not name.
const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;

/// Gives this process a new session keyring called `name`, so that the workload cannot reach
/// the caller's keys (as runc does). Returns `Ok(false)` where the kernel has no keyrings.
pub fn join_session_keyring(name: &std::ffi::CStr) -> std::io::Result<bool> {
    // SAFETY: keyctl reads the NUL-terminated name, which outlives the call, and nothing else.
    let ret =
        unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name.as_ptr()) };
    if ret >= 0 {
        return Ok(true);
    }
    let error = std::io::Error::last_os_error();
    if error.raw_os_error() == Some(libc::ENOSYS) {
        Ok(false)
    } else {
        Err(error)
    }
}

/// `BPF_MAXINSNS` (`linux/bpf_common.h`): the longest classic BPF program the kernel takes.
pub const BPF_MAXINSNS: usize = 4096;

/// `struct sock_fprog`.
#[repr(C)]
struct SockFprog {
    len: u16,
    filter: *const SockFilter,
}

/// Installs `program` as a seccomp filter on this thread with `flags`
/// (`SECCOMP_SET_MODE_FILTER`); returns the listener when `flags` has `NEW_LISTENER`.
///
/// The caller has set `no_new_privs` or holds `CAP_SYS_ADMIN`.
pub fn install_seccomp_filter(
    program: &[SockFilter],
    flags: u32,
) -> std::io::Result<Option<OwnedFd>> {
    if program.is_empty() || program.len() > BPF_MAXINSNS {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "a filter of {} instructions (1 to {BPF_MAXINSNS})",
                program.len()
            ),
        ));
    }
    let fprog = SockFprog {
        // Checked above: at most BPF_MAXINSNS.
        len: program.len() as u16,
        filter: program.as_ptr(),
    };
    // SAFETY: `fprog` describes `program`, whose length was checked, and both outlive the
    // call; the kernel copies the program before returning.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_SET_MODE_FILTER,
            flags,
            &fprog as *const SockFprog,
        )
    };
    if ret < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if flags & SECCOMP_FILTER_FLAG_NEW_LISTENER == 0 {
        return Ok(None);
    }
    // SAFETY: with NEW_LISTENER, a successful seccomp() returns a new fd that nothing else
    // owns.
    Ok(Some(unsafe { OwnedFd::from_raw_fd(ret as RawFd) }))
}
