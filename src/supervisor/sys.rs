//! The seccomp system calls and the few others `nix`/`rustix` do not wrap with the semantics the
//! gate needs: installing a filter with a listener, the notification ioctls, the host backend's
//! ioctl on a copy, and per-thread credential changes for the executor.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::abi::{
    KCMP_FILE, KCMP_FILES, PIDFD_GET_INFO, PIDFD_INFO_PID_AND_CREDS, PidfdInfo,
    SECCOMP_GET_ACTION_AVAIL, SECCOMP_GET_NOTIF_SIZES, SECCOMP_IOCTL_NOTIF_ADDFD,
    SECCOMP_IOCTL_NOTIF_ID_VALID, SECCOMP_IOCTL_NOTIF_RECV, SECCOMP_IOCTL_NOTIF_SEND,
    SECCOMP_IOCTL_NOTIF_SET_FLAGS, SECCOMP_SET_MODE_FILTER, SeccompNotif, SeccompNotifAddfd,
    SeccompNotifResp, SeccompNotifSizes, SockFilter,
};

/// `struct sock_fprog`.
#[repr(C)]
struct SockFprog {
    len: u16,
    filter: *const SockFilter,
}

fn check(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Installs `program` on the calling thread with `flags` and returns the listener.
///
/// Allocation-free, so it may run between `fork` and `exec`. The caller has set
/// `no_new_privs` or holds `CAP_SYS_ADMIN`.
pub fn install_filter(program: &[SockFilter], flags: u32) -> io::Result<OwnedFd> {
    let fprog = SockFprog {
        len: program.len() as u16,
        filter: program.as_ptr(),
    };
    // SAFETY: `fprog` points at `program`, which outlives the call; the kernel copies the
    // program before returning.
    let fd = check(unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_SET_MODE_FILTER,
            flags,
            &fprog as *const SockFprog,
        )
    })?;
    // SAFETY: with NEW_LISTENER, a successful seccomp() returns a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Whether the kernel knows filter return action `action` (`SECCOMP_GET_ACTION_AVAIL`, 4.14).
pub fn action_available(action: u32) -> io::Result<()> {
    let mut action = action;
    // SAFETY: the kernel reads one u32 from `action`, which lives across the call.
    check(unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_GET_ACTION_AVAIL,
            0,
            &mut action as *mut u32,
        )
    })
    .map(drop)
}

/// The kernel's notification struct sizes (Linux 5.0).
pub fn notif_sizes() -> io::Result<SeccompNotifSizes> {
    let mut sizes = SeccompNotifSizes::default();
    // SAFETY: the kernel writes a `struct seccomp_notif_sizes` into `sizes`, which is that struct.
    check(unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_GET_NOTIF_SIZES,
            0,
            &mut sizes as *mut SeccompNotifSizes,
        )
    })?;
    Ok(sizes)
}

fn notif_ioctl<T>(listener: BorrowedFd<'_>, request: u32, arg: *mut T) -> io::Result<libc::c_long> {
    // SAFETY: the callers pass a request whose argument type is `T`, and `arg` points at a live
    // `T` for the duration of the call.
    check(unsafe {
        libc::syscall(
            libc::SYS_ioctl,
            listener.as_raw_fd(),
            request as libc::c_ulong,
            arg,
        )
    })
}

/// `SECCOMP_IOCTL_NOTIF_RECV`: blocks until a notification arrives.
pub fn recv(listener: BorrowedFd<'_>) -> io::Result<SeccompNotif> {
    // Linux 5.5+ refuses a non-zeroed struct.
    let mut notif = SeccompNotif::default();
    notif_ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, &mut notif)?;
    Ok(notif)
}

/// Whether tasks `a` and `b` share one file table (`kcmp(KCMP_FILES)`, Linux 3.5).
pub fn same_file_table(a: i32, b: i32) -> io::Result<bool> {
    // SAFETY: kcmp takes plain integers.
    check(unsafe { libc::syscall(libc::SYS_kcmp, a, b, KCMP_FILES, 0, 0) }).map(|order| order == 0)
}

/// Whether fd `fd` of task `task` is the same open file as our fd `ours` (`kcmp(KCMP_FILE)`;
/// `me` is our process id): a comparison of the kernel's file objects, so a task id reused by
/// another process cannot fool it while we hold `ours`.
pub fn same_file(task: i32, fd: i32, me: u32, ours: BorrowedFd<'_>) -> io::Result<bool> {
    // SAFETY: kcmp takes plain integers.
    check(unsafe { libc::syscall(libc::SYS_kcmp, task, me, KCMP_FILE, fd, ours.as_raw_fd()) })
        .map(|order| order == 0)
}

/// `PIDFD_GET_INFO` (Linux 6.13): the task's ids and credentials.
pub fn pidfd_info(pidfd: BorrowedFd<'_>) -> io::Result<PidfdInfo> {
    let mut info = PidfdInfo {
        mask: PIDFD_INFO_PID_AND_CREDS,
        ..PidfdInfo::default()
    };
    // SAFETY: PIDFD_GET_INFO reads and writes one `struct pidfd_info`, which `info` is.
    check(unsafe {
        libc::syscall(
            libc::SYS_ioctl,
            pidfd.as_raw_fd(),
            PIDFD_GET_INFO as libc::c_ulong,
            &mut info as *mut PidfdInfo,
        )
    })?;
    Ok(info)
}

/// `SECCOMP_IOCTL_NOTIF_SEND`.
pub fn send(listener: BorrowedFd<'_>, mut response: SeccompNotifResp) -> io::Result<()> {
    notif_ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, &mut response).map(drop)
}

/// `SECCOMP_IOCTL_NOTIF_ID_VALID`: whether the notification is still pending (the target has not
/// been interrupted or died). Every read of the target's memory is followed by this check.
pub fn id_valid(listener: BorrowedFd<'_>, id: u64) -> bool {
    let mut id = id;
    notif_ioctl(listener, SECCOMP_IOCTL_NOTIF_ID_VALID, &mut id).is_ok()
}

/// `SECCOMP_IOCTL_NOTIF_ADDFD`: installs `request.srcfd` in the target; with
/// `SECCOMP_ADDFD_FLAG_SEND` it also answers the notification with the new number.
pub fn addfd(listener: BorrowedFd<'_>, mut request: SeccompNotifAddfd) -> io::Result<i32> {
    notif_ioctl(listener, SECCOMP_IOCTL_NOTIF_ADDFD, &mut request).map(|fd| fd as i32)
}

/// `SECCOMP_IOCTL_NOTIF_SET_FLAGS` (Linux 6.6).
///
/// The flags travel by value in the argument register, although the request number is
/// encoded as `_IOW(.., __u64)`.
pub fn set_flags(listener: BorrowedFd<'_>, flags: u64) -> io::Result<()> {
    // SAFETY: SET_FLAGS reads its argument as a plain integer; no memory is passed.
    check(unsafe {
        libc::syscall(
            libc::SYS_ioctl,
            listener.as_raw_fd(),
            SECCOMP_IOCTL_NOTIF_SET_FLAGS as libc::c_ulong,
            flags as libc::c_ulong,
        )
    })
    .map(drop)
}

/// Issues `request` on `fd` with `arg` (the daemon's own copy of the argument) as the pointer.
/// The host backend runs emulated calls through this on a dup of the workload's fd.
pub fn ioctl_on_copy(fd: BorrowedFd<'_>, request: u32, arg: &mut [u8]) -> io::Result<i64> {
    // SAFETY: `arg` is a live buffer of the size the policy table gives for `request`, so the
    // driver's copy_from_user/copy_to_user stay inside it.
    check(unsafe {
        libc::syscall(
            libc::SYS_ioctl,
            fd.as_raw_fd(),
            request as libc::c_ulong,
            arg.as_mut_ptr(),
        )
    })
}

/// Issues `request` on `fd` with the first of `staging`'s buffers as the argument: a call a
/// family translated, whose argument's pointers the translator pointed at the other buffers.
/// Refused (EINVAL) when the request's `_IOC_SIZE` exceeds that buffer.
pub fn ioctl_on_staging(
    fd: BorrowedFd<'_>,
    request: u32,
    staging: &crate::family::Staging,
) -> io::Result<i64> {
    let (address, length) = staging
        .top()
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EFAULT))?;
    if crate::family::ioc_size(request) > length {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: `address` is the start of a live heap buffer of `length` bytes that `staging`
    // owns and keeps in place for the call, and the request's size (what the driver copies in
    // and out there) was checked against it above. The pointers inside it were set by the
    // family's translator to other buffers of `staging`, each with the length field the driver
    // sizes its copy by set to that buffer's length.
    check(unsafe {
        libc::syscall(
            libc::SYS_ioctl,
            fd.as_raw_fd(),
            request as libc::c_ulong,
            address as usize as *mut libc::c_void,
        )
    })
}

/// Sets this thread's effective uid and gid only (the raw syscalls; glibc's wrappers would change
/// every thread of the daemon).
pub fn set_thread_effective_ids(euid: u32, egid: u32) -> io::Result<()> {
    let keep = u32::MAX;
    // SAFETY: setresgid/setresuid take plain integers; -1 keeps a field.
    check(unsafe { libc::syscall(libc::SYS_setresgid, keep, egid, keep) })?;
    // SAFETY: as above.
    check(unsafe { libc::syscall(libc::SYS_setresuid, keep, euid, keep) })?;
    Ok(())
}

/// Sends `fd` over the unix socket `socket` with `SCM_RIGHTS` (and one byte of data).
pub fn send_fd(socket: BorrowedFd<'_>, fd: BorrowedFd<'_>) -> io::Result<()> {
    use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
    let fds = [fd.as_raw_fd()];
    sendmsg::<()>(
        socket.as_raw_fd(),
        &[io::IoSlice::new(b"L")],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .map(drop)
    .map_err(io::Error::from)
}

/// Fds accepted with one message; more are closed.
const MAX_FDS: usize = 8;

/// One `recvmsg` on `socket`: the bytes read into `buffer` (0 at end of stream) and the fds
/// that came with them, owned (so that unwanted ones are closed).
pub fn recv_with_fds(
    socket: BorrowedFd<'_>,
    buffer: &mut [u8],
) -> io::Result<(usize, Vec<OwnedFd>)> {
    let mut iov = [io::IoSliceMut::new(buffer)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; MAX_FDS]);
    let message = loop {
        match nix::sys::socket::recvmsg::<()>(
            socket.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            nix::sys::socket::MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Err(nix::errno::Errno::EINTR) => {}
            other => break other?,
        }
    };
    let mut fds = Vec::new();
    for cmsg in message.cmsgs()? {
        if let nix::sys::socket::ControlMessageOwned::ScmRights(received) = cmsg {
            for fd in received {
                // SAFETY: SCM_RIGHTS installed `fd` in this process just now; nothing else
                // owns it.
                fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    Ok((message.bytes, fds))
}

/// Receives one fd sent with [`send_fd`]; `None` at end of file (the sender closed its end).
/// Extra fds (none are sent) are closed.
pub fn recv_fd(socket: BorrowedFd<'_>) -> io::Result<Option<OwnedFd>> {
    let (_, fds) = recv_with_fds(socket, &mut [0u8; 1])?;
    Ok(fds.into_iter().next())
}
