//! The seccomp ABI (`include/uapi/linux/seccomp.h`, `filter.h`, `audit.h`), hand-written: no
//! well-kept crate covers user notifications with ADDFD, SET_FLAGS and WAIT_KILLABLE_RECV, and
//! the filter is a few dozen instructions best kept in plain sight. Every number is pinned to the
//! kernel's in the tests below.

use crate::family::{iow, iowr};

/// `kcmp(2)` type: do two tasks share one file table (`include/uapi/linux/kcmp.h`).
pub const KCMP_FILES: u32 = 2;
/// `KCMP_FILE`: compare two open files (`include/uapi/linux/kcmp.h`).
pub const KCMP_FILE: u32 = 0;

/// `pidfd_open` flag: a pidfd for a thread rather than a thread group (Linux 6.9; `O_EXCL`).
pub const PIDFD_THREAD: u32 = 0o200;

/// `seccomp(2)` operation: install a filter.
pub const SECCOMP_SET_MODE_FILTER: u32 = 1;
/// `seccomp(2)` operation: whether the kernel knows a return action.
pub const SECCOMP_GET_ACTION_AVAIL: u32 = 2;
/// `seccomp(2)` operation: report the notification struct sizes.
pub const SECCOMP_GET_NOTIF_SIZES: u32 = 3;

/// Return a listener fd for the filter's user notifications (Linux 5.0).
pub const SECCOMP_FILTER_FLAG_NEW_LISTENER: u32 = 1 << 3;
/// Waiting for the supervisor is killable but not interruptible (Linux 5.19).
pub const SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV: u32 = 1 << 5;

/// Filter return actions (high 16 bits) and the data mask.
pub const SECCOMP_RET_KILL_PROCESS: u32 = 0x8000_0000;
/// Fail the syscall with the errno in the low 16 bits.
pub const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
/// Ask the supervisor.
pub const SECCOMP_RET_USER_NOTIF: u32 = 0x7fc0_0000;
/// Let the syscall run.
pub const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
/// Mask of the action part.
pub const SECCOMP_RET_ACTION_FULL: u32 = 0xffff_0000;
/// Mask of the data part.
pub const SECCOMP_RET_DATA: u32 = 0x0000_ffff;

/// `AUDIT_ARCH_X86_64`.
pub const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
/// `AUDIT_ARCH_I386` (the compat ABI on x86_64).
pub const AUDIT_ARCH_I386: u32 = 0x4000_0003;
/// `AUDIT_ARCH_AARCH64`.
pub const AUDIT_ARCH_AARCH64: u32 = 0xc000_00b7;
/// `AUDIT_ARCH_ARM` (the compat ABI on aarch64).
pub const AUDIT_ARCH_ARM: u32 = 0x4000_0028;
/// The x32 ABI marks its syscall numbers with this bit on x86_64.
pub const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// Offsets into `struct seccomp_data` (little-endian: an argument's low word first).
pub const SECCOMP_DATA_NR: u32 = 0;
/// `arch`.
pub const SECCOMP_DATA_ARCH: u32 = 4;
/// `args[i]`, low 32 bits.
pub const fn seccomp_data_arg_low(index: u32) -> u32 {
    16 + 8 * index
}

/// `struct seccomp_data`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeccompData {
    /// Syscall number.
    pub nr: i32,
    /// `AUDIT_ARCH_*`.
    pub arch: u32,
    /// Instruction pointer.
    pub instruction_pointer: u64,
    /// Arguments.
    pub args: [u64; 6],
}

/// `struct seccomp_notif`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct SeccompNotif {
    /// Cookie to reply with.
    pub id: u64,
    /// TID of the caller, in the supervisor's pid namespace.
    pub pid: u32,
    /// Flags (none defined).
    pub flags: u32,
    /// The syscall.
    pub data: SeccompData,
}

/// `struct seccomp_notif_resp`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct SeccompNotifResp {
    /// The notification's id.
    pub id: u64,
    /// Return value.
    pub val: i64,
    /// Negative errno, or 0.
    pub error: i32,
    /// `SECCOMP_USER_NOTIF_FLAG_CONTINUE` or 0.
    pub flags: u32,
}

/// `struct seccomp_notif_addfd`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct SeccompNotifAddfd {
    /// The notification's id.
    pub id: u64,
    /// `SECCOMP_ADDFD_FLAG_*`.
    pub flags: u32,
    /// The supervisor's fd to install.
    pub srcfd: u32,
    /// Number to install at with `SETFD`, else 0.
    pub newfd: u32,
    /// `O_CLOEXEC` or 0.
    pub newfd_flags: u32,
}

/// `struct seccomp_notif_sizes`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct SeccompNotifSizes {
    /// `sizeof(struct seccomp_notif)`.
    pub seccomp_notif: u16,
    /// `sizeof(struct seccomp_notif_resp)`.
    pub seccomp_notif_resp: u16,
    /// `sizeof(struct seccomp_data)`.
    pub seccomp_data: u16,
}

/// `struct pidfd_info` (`include/uapi/linux/pidfd.h`, Linux 6.13), the first version: who a
/// pidfd's task is, with its credentials, in one ioctl instead of a `/proc/<tid>/status` read.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct PidfdInfo {
    /// `PIDFD_INFO_*` fields requested, then returned.
    pub mask: u64,
    /// cgroup id.
    pub cgroupid: u64,
    /// Thread id, in the caller's pid namespace.
    pub pid: u32,
    /// Thread group id.
    pub tgid: u32,
    /// Parent's thread group id.
    pub ppid: u32,
    /// Real uid.
    pub ruid: u32,
    /// Real gid.
    pub rgid: u32,
    /// Effective uid.
    pub euid: u32,
    /// Effective gid.
    pub egid: u32,
    /// Saved uid.
    pub suid: u32,
    /// Saved gid.
    pub sgid: u32,
    /// Filesystem uid.
    pub fsuid: u32,
    /// Filesystem gid.
    pub fsgid: u32,
    /// Padding.
    pub spare0: u32,
}

/// `PIDFD_INFO_PID | PIDFD_INFO_CREDS`: ids and credentials (always returned).
pub const PIDFD_INFO_PID_AND_CREDS: u64 = 0b11;
/// `PIDFD_GET_INFO`: `_IOWR(PIDFS_IOCTL_MAGIC 0xFF, 11, struct pidfd_info)`.
pub const PIDFD_GET_INFO: u32 = iowr(0xff, 11, size_of::<PidfdInfo>());

const _: () = assert!(size_of::<PidfdInfo>() == 64);
const _: () = assert!(size_of::<SeccompData>() == 64);
const _: () = assert!(size_of::<SeccompNotif>() == 80);
const _: () = assert!(size_of::<SeccompNotifResp>() == 24);
const _: () = assert!(size_of::<SeccompNotifAddfd>() == 24);

/// Continue the syscall in the kernel (Linux 5.5).
pub const SECCOMP_USER_NOTIF_FLAG_CONTINUE: u32 = 1;
/// ADDFD: reply with the new fd atomically (Linux 5.14).
pub const SECCOMP_ADDFD_FLAG_SEND: u32 = 1 << 1;
/// SET_FLAGS: wake the target on the supervisor's CPU (Linux 6.6).
pub const SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP: u64 = 1;

const SECCOMP_IOC_MAGIC: u8 = b'!';

/// `SECCOMP_IOCTL_NOTIF_RECV` (`_IOWR('!', 0, struct seccomp_notif)`).
pub const SECCOMP_IOCTL_NOTIF_RECV: u32 = iowr(SECCOMP_IOC_MAGIC, 0, size_of::<SeccompNotif>());
/// `SECCOMP_IOCTL_NOTIF_SEND` (`_IOWR('!', 1, struct seccomp_notif_resp)`).
pub const SECCOMP_IOCTL_NOTIF_SEND: u32 = iowr(SECCOMP_IOC_MAGIC, 1, size_of::<SeccompNotifResp>());
/// `SECCOMP_IOCTL_NOTIF_ID_VALID` (`_IOW('!', 2, __u64)`).
pub const SECCOMP_IOCTL_NOTIF_ID_VALID: u32 = iow(SECCOMP_IOC_MAGIC, 2, size_of::<u64>());
/// `SECCOMP_IOCTL_NOTIF_ADDFD` (`_IOW('!', 3, struct seccomp_notif_addfd)`).
pub const SECCOMP_IOCTL_NOTIF_ADDFD: u32 =
    iow(SECCOMP_IOC_MAGIC, 3, size_of::<SeccompNotifAddfd>());
/// `SECCOMP_IOCTL_NOTIF_SET_FLAGS` (`_IOW('!', 4, __u64)`).
pub const SECCOMP_IOCTL_NOTIF_SET_FLAGS: u32 = iow(SECCOMP_IOC_MAGIC, 4, size_of::<u64>());

/// One classic BPF instruction (`struct sock_filter`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SockFilter {
    /// Opcode.
    pub code: u16,
    /// Jump offset if true.
    pub jt: u8,
    /// Jump offset if false.
    pub jf: u8,
    /// Operand.
    pub k: u32,
}

const _: () = assert!(size_of::<SockFilter>() == 8);

/// cBPF opcodes the filter uses (`linux/bpf_common.h`).
pub mod op {
    /// `BPF_LD | BPF_W | BPF_ABS`: A = data[k].
    pub const LD_W_ABS: u16 = 0x20;
    /// `BPF_ALU | BPF_AND | BPF_K`: A &= k.
    pub const ALU_AND_K: u16 = 0x54;
    /// `BPF_ALU | BPF_OR | BPF_K`: A |= k.
    pub const ALU_OR_K: u16 = 0x44;
    /// `BPF_JMP | BPF_JA`: pc += k.
    pub const JA: u16 = 0x05;
    /// `BPF_JMP | BPF_JEQ | BPF_K`.
    pub const JEQ_K: u16 = 0x15;
    /// `BPF_JMP | BPF_JGE | BPF_K`.
    pub const JGE_K: u16 = 0x35;
    /// `BPF_JMP | BPF_JGT | BPF_K`.
    pub const JGT_K: u16 = 0x25;
    /// `BPF_JMP | BPF_JSET | BPF_K`.
    pub const JSET_K: u16 = 0x45;
    /// `BPF_RET | BPF_K`.
    pub const RET_K: u16 = 0x06;
}

/// The most instructions a classic BPF program may have (`BPF_MAXINSNS`).
pub const BPF_MAXINSNS: usize = 4096;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_match_the_kernel_headers() {
        assert_eq!(SECCOMP_IOCTL_NOTIF_RECV, 0xc050_2100);
        assert_eq!(SECCOMP_IOCTL_NOTIF_SEND, 0xc018_2101);
        assert_eq!(SECCOMP_IOCTL_NOTIF_ID_VALID, 0x4008_2102);
        assert_eq!(SECCOMP_IOCTL_NOTIF_ADDFD, 0x4018_2103);
        assert_eq!(SECCOMP_IOCTL_NOTIF_SET_FLAGS, 0x4008_2104);
        assert_eq!(
            u64::from(SECCOMP_IOCTL_NOTIF_RECV),
            libc::SECCOMP_IOCTL_NOTIF_RECV
        );
        assert_eq!(
            u64::from(SECCOMP_IOCTL_NOTIF_SEND),
            libc::SECCOMP_IOCTL_NOTIF_SEND
        );
        assert_eq!(
            u64::from(SECCOMP_IOCTL_NOTIF_ADDFD),
            libc::SECCOMP_IOCTL_NOTIF_ADDFD
        );
        assert_eq!(PIDFD_THREAD, libc::O_EXCL as u32);
        assert_eq!(PIDFD_GET_INFO, 0xc040_ff0b);
        assert_eq!(SECCOMP_RET_USER_NOTIF, libc::SECCOMP_RET_USER_NOTIF);
        assert_eq!(SECCOMP_RET_ERRNO, libc::SECCOMP_RET_ERRNO);
        assert_eq!(SECCOMP_RET_ALLOW, libc::SECCOMP_RET_ALLOW);
        assert_eq!(SECCOMP_RET_KILL_PROCESS, libc::SECCOMP_RET_KILL_PROCESS);
        assert_eq!(
            SECCOMP_FILTER_FLAG_NEW_LISTENER,
            libc::SECCOMP_FILTER_FLAG_NEW_LISTENER as u32
        );
        assert_eq!(
            SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
            libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV as u32
        );
        assert_eq!(
            u64::from(SECCOMP_USER_NOTIF_FLAG_CONTINUE),
            libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE
        );
        assert_eq!(
            SECCOMP_ADDFD_FLAG_SEND,
            libc::SECCOMP_ADDFD_FLAG_SEND as u32
        );
        assert_eq!(
            op::LD_W_ABS,
            (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16
        );
        assert_eq!(
            op::JEQ_K,
            (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16
        );
        assert_eq!(
            op::JSET_K,
            (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16
        );
        assert_eq!(
            op::JGE_K,
            (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16
        );
        assert_eq!(
            op::JGT_K,
            (libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K) as u16
        );
        assert_eq!(
            op::ALU_AND_K,
            (libc::BPF_ALU | libc::BPF_AND | libc::BPF_K) as u16
        );
        assert_eq!(op::RET_K, (libc::BPF_RET | libc::BPF_K) as u16);
        assert_eq!(op::JA, (libc::BPF_JMP | libc::BPF_JA) as u16);
        assert_eq!(seccomp_data_arg_low(1), 24);
    }
}
