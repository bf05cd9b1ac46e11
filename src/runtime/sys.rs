//! The `bpf(2)` calls of cgroup v2 device programs, which neither `nix` nor `rustix` wraps:
//! load a program, attach it to a cgroup.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::abi::{
    BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI, BPF_PROG_ATTACH, BPF_PROG_LOAD,
    BPF_PROG_TYPE_CGROUP_DEVICE, BpfInsn, BpfProgAttachAttr, BpfProgLoadAttr,
};

/// The most instructions the kernel verifies for a privileged loader
/// (`BPF_COMPLEXITY_LIMIT_INSNS`).
const MAX_INSNS: usize = 1_000_000;

/// The verifier's log, when a program is refused.
const LOG_SIZE: usize = 64 * 1024;

/// A device program declares no license-bound helper; any name will do.
const LICENSE: &std::ffi::CStr = c"Apache-2.0";

fn bpf<T>(command: libc::c_int, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a live `#[repr(C)]` prefix of `union bpf_attr` for `command`, and the
    // size passed is its own; the kernel reads at most that many bytes, and every pointer in
    // it was checked by the caller to describe a live buffer of the length given beside it.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            command,
            attr as *mut T,
            size_of::<T>() as libc::c_uint,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Loads `program` as a `BPF_PROG_TYPE_CGROUP_DEVICE` program. When the verifier refuses it,
/// the error carries the verifier's last words.
pub fn load_device_program(program: &[BpfInsn]) -> io::Result<OwnedFd> {
    if program.is_empty() || program.len() > MAX_INSNS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("a program of {} instructions", program.len()),
        ));
    }
    let mut name = [0u8; 16];
    name[..10].copy_from_slice(b"accelgate\0");
    let mut attr = BpfProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        // Checked above: at most MAX_INSNS.
        insn_cnt: program.len() as u32,
        insns: program.as_ptr() as u64,
        license: LICENSE.as_ptr() as u64,
        prog_name: name,
        expected_attach_type: BPF_CGROUP_DEVICE,
        ..Default::default()
    };
    let loaded = bpf(BPF_PROG_LOAD, &mut attr).or_else(|first| {
        // Again with a log, for a message that says why.
        let mut log = vec![0u8; LOG_SIZE];
        attr.log_level = 1;
        attr.log_size = LOG_SIZE as u32;
        attr.log_buf = log.as_mut_ptr() as u64;
        let retried = bpf(BPF_PROG_LOAD, &mut attr);
        attr.log_buf = 0;
        retried.map_err(|_| {
            let text = String::from_utf8_lossy(&log);
            let text = text.trim_end_matches('\0').trim();
            let last = text.lines().rev().take(3).collect::<Vec<_>>();
            io::Error::new(
                first.kind(),
                format!(
                    "{first} (verifier: {})",
                    last.into_iter().rev().collect::<Vec<_>>().join(" / ")
                ),
            )
        })
    })?;
    // SAFETY: a successful BPF_PROG_LOAD returns a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(loaded as i32) })
}

/// Attaches the device program `program` to the cgroup directory `cgroup`, beside its
/// ancestors' programs (`BPF_F_ALLOW_MULTI`).
pub fn attach_device_program(cgroup: BorrowedFd<'_>, program: BorrowedFd<'_>) -> io::Result<()> {
    let mut attr = BpfProgAttachAttr {
        // fds are non-negative.
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: program.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        replace_bpf_fd: 0,
    };
    bpf(BPF_PROG_ATTACH, &mut attr).map(drop)
}
