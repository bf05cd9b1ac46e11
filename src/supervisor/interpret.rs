//! A classic BPF interpreter for `seccomp_data`, enough for the gate's filters, and the
//! kernel's own test of which syscalls a filter always allows (the seccomp action cache). Tests
//! and fuzzers run every generated program through them.

use super::abi::{
    SECCOMP_DATA_ARCH, SECCOMP_DATA_NR, SECCOMP_RET_ALLOW, SeccompData, SockFilter, op,
};

/// Runs `program` with `load` answering its loads (by `seccomp_data` offset) and returns the
/// value it returns; None when a load has no answer, an instruction is not one the gate's
/// filters use (or the kernel's action-cache emulator knows), or it runs off its end.
fn run(program: &[SockFilter], load: impl Fn(u32) -> Option<u32>) -> Option<u32> {
    let mut a: u32 = 0;
    let mut pc = 0usize;
    while let Some(insn) = program.get(pc) {
        pc += 1;
        match insn.code {
            op::LD_W_ABS => a = load(insn.k)?,
            op::ALU_AND_K => a &= insn.k,
            op::ALU_OR_K => a |= insn.k,
            op::JA => pc += insn.k as usize,
            op::JEQ_K | op::JGE_K | op::JGT_K | op::JSET_K => {
                let taken = match insn.code {
                    op::JEQ_K => a == insn.k,
                    op::JGE_K => a >= insn.k,
                    op::JGT_K => a > insn.k,
                    _ => a & insn.k != 0,
                };
                pc += usize::from(if taken { insn.jt } else { insn.jf });
            }
            op::RET_K => return Some(insn.k),
            _ => return None,
        }
    }
    None
}

/// A classic BPF interpreter for `seccomp_data`, enough for the gate's filters: what `program`
/// returns for `data`.
///
/// # Panics
/// When the program loads outside `seccomp_data`, uses an instruction the gate's filters do
/// not, or runs off its end: none of which a generated filter may do.
pub fn interpret(program: &[SockFilter], data: &SeccompData) -> u32 {
    let mut bytes = [0u8; 64];
    bytes[0..4].copy_from_slice(&data.nr.to_le_bytes());
    bytes[4..8].copy_from_slice(&data.arch.to_le_bytes());
    bytes[8..16].copy_from_slice(&data.instruction_pointer.to_le_bytes());
    for (i, arg) in data.args.iter().enumerate() {
        bytes[16 + 8 * i..24 + 8 * i].copy_from_slice(&arg.to_le_bytes());
    }
    let load = |k: u32| {
        let k = usize::try_from(k).ok()?;
        Some(u32::from_le_bytes(bytes.get(k..k + 4)?.try_into().ok()?))
    };
    run(program, load).expect("a filter the interpreter can run to its end")
}

/// Whether the kernel's seccomp action cache (Linux 5.11, `seccomp_is_const_allow`) proves
/// `program` always allows syscall `nr` of `arch`: the program is run with only the syscall
/// number and arch known, and any load of another field, or any instruction the kernel's
/// emulator does not know, means "not provable".
pub fn always_allows(program: &[SockFilter], arch: u32, nr: u32) -> bool {
    let load = |k: u32| match k {
        SECCOMP_DATA_NR => Some(nr),
        SECCOMP_DATA_ARCH => Some(arch),
        _ => None,
    };
    run(program, load) == Some(SECCOMP_RET_ALLOW)
}
