//! Kernel ABI the runtime needs that `libc` does not name: seccomp filter flags, and the
//! `bpf(2)` structs and eBPF opcodes of cgroup v2 device programs.

/// `SECCOMP_FILTER_FLAG_LOG` (`linux/seccomp.h`, 4.14): log every action but `ALLOW`.
pub const SECCOMP_FILTER_FLAG_LOG: u32 = 1 << 1;
/// `SECCOMP_FILTER_FLAG_SPEC_ALLOW` (4.17): keep speculative store bypass unmitigated.
pub const SECCOMP_FILTER_FLAG_SPEC_ALLOW: u32 = 1 << 2;

/// `struct bpf_insn` (`linux/bpf.h`): one eBPF instruction.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BpfInsn {
    /// Opcode.
    pub code: u8,
    /// Destination register (low nibble) and source register (high nibble).
    pub regs: u8,
    /// Signed offset: of a memory access, or of a jump, in instructions.
    pub off: i16,
    /// Signed immediate.
    pub imm: i32,
}

const _: () = assert!(size_of::<BpfInsn>() == 8);

/// The `BPF_PROG_LOAD` part of `union bpf_attr`, up to `expected_attach_type` (the kernel
/// takes a prefix and zeroes the rest).
#[repr(C)]
#[derive(Debug, Default)]
pub struct BpfProgLoadAttr {
    /// `enum bpf_prog_type`.
    pub prog_type: u32,
    /// Instructions in `insns`.
    pub insn_cnt: u32,
    /// Pointer to the instructions.
    pub insns: u64,
    /// Pointer to a NUL-terminated license string.
    pub license: u64,
    /// Verifier log verbosity (0: none).
    pub log_level: u32,
    /// Size of `log_buf`.
    pub log_size: u32,
    /// Pointer to the verifier log buffer.
    pub log_buf: u64,
    /// Unused for these programs.
    pub kern_version: u32,
    /// `BPF_F_*` load flags.
    pub prog_flags: u32,
    /// The program's name, NUL-padded.
    pub prog_name: [u8; 16],
    /// Unused here.
    pub prog_ifindex: u32,
    /// `enum bpf_attach_type` the program is meant for.
    pub expected_attach_type: u32,
}

const _: () = assert!(size_of::<BpfProgLoadAttr>() == 72);

/// The `BPF_PROG_ATTACH` part of `union bpf_attr`.
#[repr(C)]
#[derive(Debug, Default)]
pub struct BpfProgAttachAttr {
    /// The cgroup directory's fd.
    pub target_fd: u32,
    /// The program's fd.
    pub attach_bpf_fd: u32,
    /// `enum bpf_attach_type`.
    pub attach_type: u32,
    /// `BPF_F_ALLOW_*`.
    pub attach_flags: u32,
    /// Unused here.
    pub replace_bpf_fd: u32,
}

const _: () = assert!(size_of::<BpfProgAttachAttr>() == 20);

/// `bpf(2)` commands.
pub const BPF_PROG_LOAD: libc::c_int = 5;
/// Attach a program to a cgroup.
pub const BPF_PROG_ATTACH: libc::c_int = 8;
/// `BPF_PROG_TYPE_CGROUP_DEVICE`: decides device access for a cgroup's processes.
pub const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
/// `BPF_CGROUP_DEVICE`, its attach type.
pub const BPF_CGROUP_DEVICE: u32 = 6;
/// Programs of the cgroup's ancestors keep running too; every one must allow.
pub const BPF_F_ALLOW_MULTI: u32 = 1 << 1;

/// `struct bpf_cgroup_dev_ctx` offsets: `access_type` (type in the low 16 bits, access above),
/// `major`, `minor`.
pub const DEV_CTX_ACCESS_TYPE: i16 = 0;
/// See [`DEV_CTX_ACCESS_TYPE`].
pub const DEV_CTX_MAJOR: i16 = 4;
/// See [`DEV_CTX_ACCESS_TYPE`].
pub const DEV_CTX_MINOR: i16 = 8;
/// `BPF_DEVCG_DEV_BLOCK`.
pub const BPF_DEVCG_DEV_BLOCK: i32 = 1;
/// `BPF_DEVCG_DEV_CHAR`.
pub const BPF_DEVCG_DEV_CHAR: i32 = 2;
/// `BPF_DEVCG_ACC_MKNOD`.
pub const BPF_DEVCG_ACC_MKNOD: i32 = 1;
/// `BPF_DEVCG_ACC_READ`.
pub const BPF_DEVCG_ACC_READ: i32 = 2;
/// `BPF_DEVCG_ACC_WRITE`.
pub const BPF_DEVCG_ACC_WRITE: i32 = 4;

/// eBPF opcodes the device program uses (`linux/bpf_common.h`, `linux/bpf.h`).
pub mod op {
    /// `BPF_LDX | BPF_MEM | BPF_W`: dst = *(u32 *)(src + off).
    pub const LDX_MEM_W: u8 = 0x61;
    /// `BPF_ALU | BPF_AND | BPF_K`: dst &= imm (32-bit).
    pub const AND32_K: u8 = 0x54;
    /// `BPF_ALU | BPF_RSH | BPF_K`: dst >>= imm (32-bit).
    pub const RSH32_K: u8 = 0x74;
    /// `BPF_ALU | BPF_MOV | BPF_X`: dst = src (32-bit).
    pub const MOV32_X: u8 = 0xbc;
    /// `BPF_ALU64 | BPF_MOV | BPF_K`: dst = imm.
    pub const MOV64_K: u8 = 0xb7;
    /// `BPF_JMP | BPF_JNE | BPF_K`: if dst != imm, pc += off.
    pub const JNE_K: u8 = 0x55;
    /// `BPF_JMP | BPF_JEQ | BPF_K`: if dst == imm, pc += off.
    pub const JEQ_K: u8 = 0x15;
    /// `BPF_JMP | BPF_EXIT`: return r0.
    pub const EXIT: u8 = 0x95;
}
