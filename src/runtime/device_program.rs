//! cgroup v2 device access: an eBPF program (`BPF_PROG_TYPE_CGROUP_DEVICE`) made of the same
//! rules as a v1 device cgroup, attached to the sandbox's cgroup. The kernel runs it for every
//! device open and `mknod` of the cgroup's processes; 1 allows, 0 denies (EPERM).
//!
//! The program is assembled here, instruction by instruction, as runc and crun do: it is a
//! handful of compares per rule, and no crate assembles eBPF without an LLVM toolchain or a
//! loader far larger than the program (aya, libbpf-rs).

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use super::RuntimeError;
use super::abi::{
    BPF_DEVCG_ACC_MKNOD, BPF_DEVCG_ACC_READ, BPF_DEVCG_ACC_WRITE, BPF_DEVCG_DEV_BLOCK,
    BPF_DEVCG_DEV_CHAR, BpfInsn, DEV_CTX_ACCESS_TYPE, DEV_CTX_MAJOR, DEV_CTX_MINOR, op,
};
use super::devices::DeviceRule;
use super::sys;

/// Registers: the context, then what the prologue loads from it.
const CTX: u8 = 1;
const KIND: u8 = 2;
const ACCESS: u8 = 3;
const MAJOR: u8 = 4;
const MINOR: u8 = 5;
/// Scratch, once the context has been read.
const SCRATCH: u8 = 1;
const RESULT: u8 = 0;

/// Every access bit.
const ALL_ACCESS: i32 = BPF_DEVCG_ACC_MKNOD | BPF_DEVCG_ACC_READ | BPF_DEVCG_ACC_WRITE;

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> BpfInsn {
    BpfInsn {
        code,
        regs: dst | (src << 4),
        off,
        imm,
    }
}

fn access_bits(access: &str) -> i32 {
    access.chars().fold(0, |bits, c| {
        bits | match c {
            'r' => BPF_DEVCG_ACC_READ,
            'w' => BPF_DEVCG_ACC_WRITE,
            'm' => BPF_DEVCG_ACC_MKNOD,
            _ => 0,
        }
    })
}

/// A device program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceProgram(Vec<BpfInsn>);

impl DeviceProgram {
    /// The program for `rules`, where a later rule overrides an earlier one (as in a v1
    /// device cgroup): the rules are tried last to first, the first that matches decides, and
    /// none matching denies. An allow rule matches when it grants every access asked for; a
    /// deny rule when it names any of them.
    pub fn new(rules: &[DeviceRule]) -> Self {
        let mut program = vec![
            insn(op::LDX_MEM_W, KIND, CTX, DEV_CTX_ACCESS_TYPE, 0),
            insn(op::AND32_K, KIND, 0, 0, 0xffff),
            insn(op::LDX_MEM_W, ACCESS, CTX, DEV_CTX_ACCESS_TYPE, 0),
            insn(op::RSH32_K, ACCESS, 0, 0, 16),
            insn(op::LDX_MEM_W, MAJOR, CTX, DEV_CTX_MAJOR, 0),
            insn(op::LDX_MEM_W, MINOR, CTX, DEV_CTX_MINOR, 0),
        ];
        for rule in rules.iter().rev() {
            let mut block = Vec::new();
            // Jumps to the next rule, patched once the block's length is known.
            let mut to_next = Vec::new();
            let mut jump_unless = |block: &mut Vec<BpfInsn>, code: u8, register: u8, imm: i32| {
                to_next.push(block.len());
                block.push(insn(code, register, 0, 0, imm));
            };
            if let Some(kind) = rule.kind {
                let kind = if kind == 'b' {
                    BPF_DEVCG_DEV_BLOCK
                } else {
                    BPF_DEVCG_DEV_CHAR
                };
                jump_unless(&mut block, op::JNE_K, KIND, kind);
            }
            let bits = access_bits(&rule.access);
            if bits != ALL_ACCESS {
                block.push(insn(op::MOV32_X, SCRATCH, ACCESS, 0, 0));
                if rule.allow {
                    // Anything asked for beyond the rule's access: not this rule.
                    block.push(insn(op::AND32_K, SCRATCH, 0, 0, ALL_ACCESS & !bits));
                    jump_unless(&mut block, op::JNE_K, SCRATCH, 0);
                } else {
                    // Nothing asked for of what the rule denies: not this rule.
                    block.push(insn(op::AND32_K, SCRATCH, 0, 0, bits));
                    jump_unless(&mut block, op::JEQ_K, SCRATCH, 0);
                }
            }
            // Device numbers fit (12-bit majors, 20-bit minors: `devices::rules` checks).
            if let Some(major) = rule.major {
                jump_unless(&mut block, op::JNE_K, MAJOR, major as i32);
            }
            if let Some(minor) = rule.minor {
                jump_unless(&mut block, op::JNE_K, MINOR, minor as i32);
            }
            block.push(insn(op::MOV64_K, RESULT, 0, 0, i32::from(rule.allow)));
            block.push(insn(op::EXIT, 0, 0, 0, 0));
            let length = block.len();
            for at in to_next {
                // A block is a few instructions per rule: far from i16's range.
                block[at].off = (length - at - 1) as i16;
            }
            let decides_all = block.len() == 2;
            program.extend(block);
            // A rule for every device and access hides the rules before it.
            if decides_all {
                return Self(program);
            }
        }
        program.push(insn(op::MOV64_K, RESULT, 0, 0, 0));
        program.push(insn(op::EXIT, 0, 0, 0, 0));
        Self(program)
    }

    /// The instructions.
    pub fn instructions(&self) -> &[BpfInsn] {
        &self.0
    }

    /// Loads the program into the kernel and attaches it to the cgroup directory `cgroup`
    /// (beside any its ancestors have: all of them must allow). It stays attached as long
    /// as the cgroup exists.
    pub fn attach(&self, cgroup: &Path) -> Result<(), RuntimeError> {
        let error = |what: &str, source: std::io::Error| RuntimeError::Cgroup {
            path: cgroup.to_path_buf(),
            what: what.into(),
            source,
        };
        let program: OwnedFd =
            sys::load_device_program(&self.0).map_err(|e| error("load the device program", e))?;
        let directory = std::fs::File::open(cgroup).map_err(|e| error("open", e))?;
        sys::attach_device_program(directory.as_fd(), program.as_fd())
            .map_err(|e| error("attach the device program", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the program the way the kernel would, for the instructions it uses.
    fn run(program: &DeviceProgram, kind: i32, access: i32, major: u32, minor: u32) -> u64 {
        let context = [((access as u32) << 16) | kind as u32, major, minor];
        let mut registers = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = program.0[pc];
            let (dst, src) = (usize::from(i.regs & 0xf), usize::from(i.regs >> 4));
            pc += 1;
            let jump = |taken: bool, pc: &mut usize| {
                if taken {
                    *pc = (*pc as i64 + i64::from(i.off)) as usize;
                }
            };
            match i.code {
                op::LDX_MEM_W => {
                    assert_eq!(src, usize::from(CTX));
                    registers[dst] = u64::from(context[i.off as usize / 4]);
                }
                op::AND32_K => registers[dst] = (registers[dst] as u32 & i.imm as u32).into(),
                op::RSH32_K => registers[dst] = (registers[dst] as u32 >> i.imm).into(),
                op::MOV32_X => registers[dst] = u64::from(registers[src] as u32),
                op::MOV64_K => registers[dst] = i64::from(i.imm) as u64,
                op::JNE_K => jump(registers[dst] != i64::from(i.imm) as u64, &mut pc),
                op::JEQ_K => jump(registers[dst] == i64::from(i.imm) as u64, &mut pc),
                op::EXIT => return registers[0],
                other => panic!("opcode {other:#x}"),
            }
        }
    }

    fn rule(
        allow: bool,
        kind: Option<char>,
        major: Option<u32>,
        minor: Option<u32>,
        access: &str,
    ) -> DeviceRule {
        DeviceRule {
            allow,
            kind,
            major,
            minor,
            access: access.into(),
        }
    }

    const C: i32 = BPF_DEVCG_DEV_CHAR;
    const B: i32 = BPF_DEVCG_DEV_BLOCK;
    const R: i32 = BPF_DEVCG_ACC_READ;
    const W: i32 = BPF_DEVCG_ACC_WRITE;
    const M: i32 = BPF_DEVCG_ACC_MKNOD;

    #[test]
    fn later_rules_override_and_nothing_unlisted_passes() {
        let program = DeviceProgram::new(&[
            rule(false, None, None, None, "rwm"),
            rule(true, Some('c'), Some(1), Some(3), "rwm"),
            rule(true, Some('c'), Some(136), None, "rwm"),
            rule(true, Some('c'), Some(10), None, "r"),
            rule(false, Some('c'), Some(10), Some(200), "w"),
            rule(true, None, Some(7), None, "m"),
        ]);
        let cases = [
            (C, R | W, 1, 3, 1),
            (C, R, 1, 1, 0),        // /dev/mem
            (C, R | W, 1, 11, 0),   // /dev/kmsg
            (B, R | W, 8, 0, 0),    // a disk
            (B, R, 1, 3, 0),        // the right numbers, the wrong kind
            (C, W, 136, 4, 1),      // a pty
            (C, R, 10, 229, 1),     // read only...
            (C, R | W, 10, 229, 0), // ...not write
            (C, R, 10, 200, 1),     // write denied, read still allowed
            (C, R | W, 10, 200, 0),
            (B, M, 7, 1, 1), // mknod of loop devices, both kinds
            (C, M, 7, 1, 1),
            (B, R, 7, 1, 0),
        ];
        for (kind, access, major, minor, expected) in cases {
            assert_eq!(
                run(&program, kind, access, major, minor),
                expected,
                "{kind} {access} {major}:{minor}"
            );
        }
    }

    #[test]
    fn an_allow_all_rule_ends_the_program() {
        let program = DeviceProgram::new(&[
            rule(true, Some('c'), Some(1), Some(3), "rwm"),
            rule(true, None, None, None, "rwm"),
        ]);
        assert_eq!(program.0.len(), 6 + 2);
        assert_eq!(run(&program, B, R, 8, 0), 1);
    }
}
