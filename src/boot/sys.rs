//! Process creation for the launcher: `clone` into new namespaces, `fork` and `signal`, the
//! calls `nix` marks unsafe, and `close_range` and `seccomp`, which it does not wrap.
#![allow(unsafe_code)]

use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::unistd::{ForkResult, Pid};

use crate::supervisor::abi::{
    SECCOMP_FILTER_FLAG_NEW_LISTENER, SECCOMP_SET_MODE_FILTER, SockFilter,
};

/// The child's stack. It runs all of sandbox setup (mounts, device nodes, process set-up), so
/// it gets a normal thread's worth; the pages are only touched as used.
const CHILD_STACK: usize = 8 << 20;

/// Starts `child` in a new process with `flags` (new namespaces). The child gets a copy of the
/// address space (no `CLONE_VM`), so the stack buffer and everything `child` borrows are its own
/// copies; its exit status is the closure's return value.
///
/// The caller must be single-threaded (the launcher checks): after `clone` only the calling
/// thread exists in the child, and any lock another thread held would stay held.
pub fn clone_child(flags: CloneFlags, child: Box<dyn FnMut() -> isize + '_>) -> nix::Result<Pid> {
    let mut stack = vec![0u8; CHILD_STACK];
    // SAFETY: without CLONE_VM the child runs `child` on its own copy of `stack` and of the
    // heap, so nothing is shared with the parent; the launcher guarantees a single-threaded
    // caller (`ensure_single_threaded`), which makes the copied process state consistent.
    unsafe { nix::sched::clone(child, &mut stack, flags, Some(Signal::SIGCHLD as i32)) }
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
