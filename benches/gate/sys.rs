//! The raw ioctls the benchmark's workload issues, timed in a loop.
#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, BorrowedFd};

use accelgate::supervisor::abi::{
    KCMP_FILE, PIDFD_GET_INFO, PIDFD_INFO_PID_AND_CREDS, PidfdInfo, SECCOMP_IOCTL_NOTIF_RECV,
    SECCOMP_IOCTL_NOTIF_SEND, SECCOMP_IOCTL_NOTIF_SET_FLAGS, SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP,
    SECCOMP_USER_NOTIF_FLAG_CONTINUE, SeccompNotif, SeccompNotifResp,
};

/// Issues `ioctl(fd, request, arg)` and returns its raw result (errors are expected and
/// ignored: several measured calls end in ENOTTY by design).
pub fn ioctl(fd: BorrowedFd<'_>, request: u32, arg: *mut u8) -> libc::c_long {
    // SAFETY: every request the benchmark issues either takes no argument or gets a pointer to
    // a live buffer at least as large as its `_IOC_SIZE`.
    unsafe {
        libc::syscall(
            libc::SYS_ioctl,
            fd.as_raw_fd(),
            request as libc::c_ulong,
            arg,
        )
    }
}

/// `fork` from the scenario process, which is single-threaded at that point.
pub fn fork() -> nix::unistd::ForkResult {
    // SAFETY: the scenario process forks before it starts any thread, so the child's copy of
    // every lock and allocator state is consistent.
    unsafe { nix::unistd::fork() }.expect("fork the workload")
}

/// The floor: answers every notification on `listener` with CONTINUE from a thread blocked in
/// `NOTIF_RECV`, with nothing in between. Returns when the listener fails.
pub fn continue_everything(listener: BorrowedFd<'_>, sync_wake_up: bool) {
    let fd = listener.as_raw_fd();
    if sync_wake_up {
        // SAFETY: SET_FLAGS takes the flags by value; no memory is passed.
        let set = unsafe {
            libc::ioctl(
                fd,
                SECCOMP_IOCTL_NOTIF_SET_FLAGS as libc::c_ulong,
                SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP as libc::c_ulong,
            )
        };
        assert_eq!(set, 0, "SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (Linux 6.6)");
    }
    loop {
        let mut notif = SeccompNotif::default();
        // SAFETY: RECV writes one zeroed `struct seccomp_notif`, which `notif` is.
        if unsafe { libc::ioctl(fd, SECCOMP_IOCTL_NOTIF_RECV as libc::c_ulong, &mut notif) } < 0 {
            return;
        }
        let mut response = SeccompNotifResp {
            id: notif.id,
            val: 0,
            error: 0,
            flags: SECCOMP_USER_NOTIF_FLAG_CONTINUE,
        };
        // SAFETY: SEND reads one `struct seccomp_notif_resp`, which `response` is.
        unsafe { libc::ioctl(fd, SECCOMP_IOCTL_NOTIF_SEND as libc::c_ulong, &mut response) };
    }
}

/// Installs `program` as a plain filter (no listener), the way any seccomp user does.
pub fn install_plain_filter(
    program: &[accelgate::supervisor::abi::SockFilter],
) -> Result<(), String> {
    let len = u16::try_from(program.len()).map_err(|_| "a filter this long".to_owned())?;
    let fprog = libc::sock_fprog {
        len,
        filter: program.as_ptr().cast_mut().cast(),
    };
    // SAFETY: `fprog` points at `program`, which outlives the call; the kernel copies it.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0,
            &fprog as *const libc::sock_fprog,
        )
    };
    if ret == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error().to_string())
    }
}

/// `NVOS54_PARAMETERS`.
#[repr(C)]
#[derive(Default)]
struct Nvos54 {
    client: u32,
    object: u32,
    cmd: u32,
    flags: u32,
    params: u64,
    params_size: u32,
    status: u32,
}

/// `NVOS64_PARAMETERS`.
#[repr(C)]
#[derive(Default)]
struct Nvos64 {
    root: u32,
    parent: u32,
    new: u32,
    class: u32,
    params: u64,
    rights: u64,
    params_size: u32,
    flags: u32,
    status: u32,
    pad: u32,
}

/// `_IOWR('F', nr, size)`.
const fn nv_ioctl(nr: u32, size: usize) -> u32 {
    0xc000_0000 | ((size as u32) << 16) | (0x46 << 8) | nr
}

/// An RM client on a control file, for timing `RM_CONTROL`.
pub struct NvControl<'a> {
    ctl: BorrowedFd<'a>,
    client: u32,
    ids: [u32; 32],
}

impl<'a> NvControl<'a> {
    /// Allocates a root client on `ctl`.
    pub fn new(ctl: BorrowedFd<'a>) -> Option<Self> {
        let mut handle = [0u8; 128];
        let mut alloc = Nvos64 {
            class: 0x41,
            params: handle.as_mut_ptr() as u64,
            status: u32::MAX,
            ..Nvos64::default()
        };
        let request = nv_ioctl(0x2b, size_of::<Nvos64>());
        // SAFETY: `alloc` is a live NVOS64 (48 bytes, the request's size), and its parameter
        // pointer names `handle`, which outlives the call and exceeds the root class's size.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_ioctl,
                ctl.as_raw_fd(),
                request as libc::c_ulong,
                &mut alloc,
            )
        };
        (ret == 0 && alloc.status == 0).then_some(Self {
            ctl,
            client: alloc.new,
            ids: [0; 32],
        })
    }

    /// `NV0000_CTRL_CMD_GPU_GET_ATTACHED_IDS` on the client.
    pub fn attached_ids(&mut self) -> libc::c_long {
        let mut control = Nvos54 {
            client: self.client,
            object: self.client,
            cmd: 0x201,
            params: self.ids.as_mut_ptr() as u64,
            params_size: 128,
            ..Nvos54::default()
        };
        let request = nv_ioctl(0x2a, size_of::<Nvos54>());
        // SAFETY: `control` is a live NVOS54 (32 bytes, the request's size), and its parameter
        // pointer names `ids`, 128 bytes as `params_size` says, which outlives the call.
        unsafe {
            libc::syscall(
                libc::SYS_ioctl,
                self.ctl.as_raw_fd(),
                request as libc::c_ulong,
                &mut control,
            )
        }
    }
}

/// `PIDFD_GET_INFO` with the pid and credentials, as the supervisor asks for a caller's ids.
pub fn pidfd_get_info(pidfd: BorrowedFd<'_>) -> libc::c_long {
    let mut info = PidfdInfo {
        mask: PIDFD_INFO_PID_AND_CREDS,
        ..PidfdInfo::default()
    };
    // SAFETY: PIDFD_GET_INFO reads and writes one `struct pidfd_info`, which `info` is.
    unsafe {
        libc::syscall(
            libc::SYS_ioctl,
            pidfd.as_raw_fd(),
            PIDFD_GET_INFO as libc::c_ulong,
            &mut info,
        )
    }
}

/// `kcmp(task, me, KCMP_FILE, fd, ours)`, as the supervisor recognises a caller's file.
pub fn kcmp_file(task: i32, fd: i32, me: i32, ours: BorrowedFd<'_>) -> libc::c_long {
    // SAFETY: kcmp takes plain integers.
    unsafe { libc::syscall(libc::SYS_kcmp, task, me, KCMP_FILE, fd, ours.as_raw_fd()) }
}
