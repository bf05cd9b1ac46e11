//! The seccomp filter: classic BPF that looks only at registers (syscall number, arch, the low
//! 32 bits of an ioctl request) and sends accelerator ioctls, and (with simulated devices)
//! opens, to the supervisor. Everything else never leaves the kernel.
//!
//! Generated for an [`Arch`] given as an argument, not chosen by `cfg`, so that the x86_64 and
//! aarch64 programs are both built and tested on any host.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;

use super::abi::{
    AUDIT_ARCH_AARCH64, AUDIT_ARCH_ARM, AUDIT_ARCH_I386, AUDIT_ARCH_X86_64, BPF_MAXINSNS,
    SECCOMP_DATA_ARCH, SECCOMP_DATA_NR, SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO,
    SECCOMP_RET_USER_NOTIF, SockFilter, X32_SYSCALL_BIT, op, seccomp_data_arg_low,
};

/// A CPU architecture a filter is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// x86_64, with the i386 compat ABI and the x32 ABI.
    X86_64,
    /// aarch64, with the arm32 compat ABI.
    Aarch64,
}

/// `openat2`: the same number in every ABI here (the unified syscall table, Linux 5.6).
pub const OPENAT2: u32 = 437;

/// Syscall numbers of one ABI; `opens` ends with `openat`.
struct Abi {
    audit: u32,
    ioctl: &'static [u32],
    opens: &'static [u32],
}

impl Arch {
    /// The architecture this binary runs on, if the filter knows it.
    pub fn native() -> Option<Self> {
        if cfg!(target_arch = "x86_64") {
            Some(Self::X86_64)
        } else if cfg!(target_arch = "aarch64") {
            Some(Self::Aarch64)
        } else {
            None
        }
    }

    /// `AUDIT_ARCH_*` of the native ABI.
    pub const fn audit(self) -> u32 {
        self.native_abi().audit
    }

    const fn native_abi(self) -> Abi {
        match self {
            Self::X86_64 => Abi {
                audit: AUDIT_ARCH_X86_64,
                ioctl: &[16],
                opens: &[2, OPENAT2, 257],
            },
            Self::Aarch64 => Abi {
                audit: AUDIT_ARCH_AARCH64,
                ioctl: &[29],
                opens: &[OPENAT2, 56],
            },
        }
    }

    const fn compat_abi(self) -> Abi {
        match self {
            Self::X86_64 => Abi {
                audit: AUDIT_ARCH_I386,
                ioctl: &[54],
                opens: &[5, OPENAT2, 295],
            },
            Self::Aarch64 => Abi {
                audit: AUDIT_ARCH_ARM,
                ioctl: &[54],
                opens: &[5, OPENAT2, 322],
            },
        }
    }

    /// The x32 ABI's ioctl numbers (without the x32 bit): the common one and the compat one.
    const fn x32_abi(self) -> Option<Abi> {
        match self {
            Self::X86_64 => Some(Abi {
                audit: AUDIT_ARCH_X86_64,
                ioctl: &[16, 514],
                opens: &[2, OPENAT2, 257],
            }),
            Self::Aarch64 => None,
        }
    }

    /// The native `ioctl` syscall number.
    pub fn ioctl_nr(self) -> u32 {
        self.native_abi().ioctl[0]
    }
}

/// What the filter sends to the supervisor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilterSpec {
    /// ioctl magics (`_IOC_TYPE`, bits 8..16 of the request): 0xDC gasket, 0x3B VFIO, and the
    /// NVIDIA frontend's later.
    pub magics: Vec<u8>,
    /// Requests routed whatever their magic, as ranges of the low 32 bits (NVIDIA UVM's plain
    /// numbers, later).
    pub plain_requests: Vec<RangeInclusive<u32>>,
    /// Whether `open`/`openat` go to the supervisor (brokered open of simulated devices).
    pub route_opens: bool,
}

/// The errno a compat (i386, arm32) or x32 accelerator call gets: they are refused, never
/// killed (a 32-bit helper that does not touch accelerators keeps working).
pub const COMPAT_ERRNO: u16 = libc::EPERM as u16;

/// The errno for a syscall from an ABI the filter does not know.
pub const FOREIGN_ERRNO: u16 = libc::ENOSYS as u16;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Label(u32);

enum Insn {
    Load(u32),
    And(u32),
    Jump {
        op: u16,
        k: u32,
        yes: Label,
        no: Label,
    },
    Goto(Label),
    Ret(u32),
    Mark(Label),
}

/// A tiny assembler: forward jumps to labels.
#[derive(Default)]
struct Program {
    insns: Vec<Insn>,
    next_label: u32,
}

impl Program {
    fn label(&mut self) -> Label {
        self.next_label += 1;
        Label(self.next_label)
    }

    fn push(&mut self, insn: Insn) {
        self.insns.push(insn);
    }

    fn jeq(&mut self, k: u32, yes: Label, no: Label) {
        self.push(Insn::Jump {
            op: op::JEQ_K,
            k,
            yes,
            no,
        });
    }

    fn mark(&mut self, label: Label) {
        self.push(Insn::Mark(label));
    }

    fn assemble(self) -> Vec<SockFilter> {
        let mut positions = BTreeMap::new();
        let mut index = 0usize;
        for insn in &self.insns {
            match insn {
                Insn::Mark(label) => {
                    positions.insert(*label, index);
                }
                _ => index += 1,
            }
        }
        let mut out = Vec::with_capacity(index);
        for insn in self.insns {
            let here = out.len();
            let offset = |label: Label| {
                let target = positions[&label];
                let distance = target.checked_sub(here + 1).expect("jumps only go forward");
                u8::try_from(distance).expect("jumps span at most 255 instructions")
            };
            match insn {
                Insn::Load(k) => out.push(SockFilter {
                    code: op::LD_W_ABS,
                    jt: 0,
                    jf: 0,
                    k,
                }),
                Insn::And(k) => out.push(SockFilter {
                    code: op::ALU_AND_K,
                    jt: 0,
                    jf: 0,
                    k,
                }),
                Insn::Jump { op, k, yes, no } => out.push(SockFilter {
                    code: op,
                    jt: offset(yes),
                    jf: offset(no),
                    k,
                }),
                Insn::Goto(label) => {
                    let target = positions[&label];
                    let k = u32::try_from(target - here - 1).expect("short program");
                    out.push(SockFilter {
                        code: op::JA,
                        jt: 0,
                        jf: 0,
                        k,
                    });
                }
                Insn::Ret(k) => out.push(SockFilter {
                    code: op::RET_K,
                    jt: 0,
                    jf: 0,
                    k,
                }),
                Insn::Mark(_) => {}
            }
        }
        out
    }
}

/// Emits a test of the request in A: jumps to `hit` when it matches `spec`, else to `miss`.
fn match_request(p: &mut Program, spec: &FilterSpec, hit: Label, miss: Label) {
    p.push(Insn::Load(seccomp_data_arg_low(1)));
    for range in &spec.plain_requests {
        let above_low = p.label();
        let next = p.label();
        p.push(Insn::Jump {
            op: op::JGE_K,
            k: *range.start(),
            yes: above_low,
            no: next,
        });
        p.mark(above_low);
        p.push(Insn::Jump {
            op: op::JGT_K,
            k: *range.end(),
            yes: next,
            no: hit,
        });
        p.mark(next);
    }
    p.push(Insn::And(0xff00));
    for magic in &spec.magics {
        let next = p.label();
        p.jeq(u32::from(*magic) << 8, hit, next);
        p.mark(next);
    }
    p.push(Insn::Goto(miss));
}

/// Emits the checks of one ABI, with the syscall number in A: ioctls matching `spec` (and opens
/// when routed) return `on_match`; everything else is allowed.
fn abi_block(p: &mut Program, abi: &Abi, spec: &FilterSpec, on_match: u32) {
    let ioctl = p.label();
    let matched = p.label();
    let allow = p.label();
    for nr in abi.ioctl {
        let next = p.label();
        p.jeq(*nr, ioctl, next);
        p.mark(next);
    }
    if spec.route_opens {
        for nr in abi.opens {
            let next = p.label();
            p.jeq(*nr, matched, next);
            p.mark(next);
        }
    }
    p.push(Insn::Goto(allow));
    p.mark(ioctl);
    match_request(p, spec, matched, allow);
    p.mark(matched);
    p.push(Insn::Ret(on_match));
    p.mark(allow);
    p.push(Insn::Ret(SECCOMP_RET_ALLOW));
}

/// Builds the filter for `arch`.
///
/// The arch is checked first: native accelerator calls go to the supervisor
/// (`SECCOMP_RET_USER_NOTIF`); the same calls through the compat ABI or x32 are refused with
/// [`COMPAT_ERRNO`] (an `int 0x80` ioctl would otherwise slip past a filter that only knows the
/// native number); an unknown arch gets [`FOREIGN_ERRNO`]. Only the low 32 bits of the request
/// are compared, as the kernel takes `unsigned int cmd`.
pub fn build(arch: Arch, spec: &FilterSpec) -> Vec<SockFilter> {
    let mut p = Program::default();
    let native = p.label();
    let not_native = p.label();
    let compat = p.label();
    let foreign = p.label();
    p.push(Insn::Load(SECCOMP_DATA_ARCH));
    p.jeq(arch.audit(), native, not_native);

    p.mark(native);
    p.push(Insn::Load(SECCOMP_DATA_NR));
    let errno = SECCOMP_RET_ERRNO | u32::from(COMPAT_ERRNO);
    if let Some(x32) = arch.x32_abi() {
        let x32_label = p.label();
        let native_nr = p.label();
        p.push(Insn::Jump {
            op: op::JSET_K,
            k: X32_SYSCALL_BIT,
            yes: x32_label,
            no: native_nr,
        });
        p.mark(native_nr);
        abi_block(&mut p, &arch.native_abi(), spec, SECCOMP_RET_USER_NOTIF);
        p.mark(x32_label);
        p.push(Insn::And(!X32_SYSCALL_BIT));
        abi_block(&mut p, &x32, spec, errno);
    } else {
        abi_block(&mut p, &arch.native_abi(), spec, SECCOMP_RET_USER_NOTIF);
    }

    p.mark(not_native);
    p.jeq(arch.compat_abi().audit, compat, foreign);
    p.mark(compat);
    p.push(Insn::Load(SECCOMP_DATA_NR));
    abi_block(&mut p, &arch.compat_abi(), spec, errno);
    p.mark(foreign);
    p.push(Insn::Ret(SECCOMP_RET_ERRNO | u32::from(FOREIGN_ERRNO)));

    let program = p.assemble();
    assert!(
        program.len() <= BPF_MAXINSNS,
        "the filter has {} instructions",
        program.len()
    );
    program
}

/// A classic BPF interpreter for `seccomp_data`, enough for the filters above; tests run every
/// generated program through it.
#[cfg(test)]
pub(crate) fn interpret(program: &[SockFilter], data: &super::abi::SeccompData) -> u32 {
    let mut bytes = [0u8; 64];
    bytes[0..4].copy_from_slice(&data.nr.to_le_bytes());
    bytes[4..8].copy_from_slice(&data.arch.to_le_bytes());
    bytes[8..16].copy_from_slice(&data.instruction_pointer.to_le_bytes());
    for (i, arg) in data.args.iter().enumerate() {
        bytes[16 + 8 * i..24 + 8 * i].copy_from_slice(&arg.to_le_bytes());
    }
    let mut a: u32 = 0;
    let mut pc = 0usize;
    loop {
        let insn = program[pc];
        pc += 1;
        match insn.code {
            op::LD_W_ABS => {
                let k = insn.k as usize;
                a = u32::from_le_bytes(bytes[k..k + 4].try_into().unwrap());
            }
            op::ALU_AND_K => a &= insn.k,
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
            op::RET_K => return insn.k,
            other => panic!("opcode {other:#x} is not interpreted"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervisor::abi::{SECCOMP_RET_ACTION_FULL, SECCOMP_RET_DATA, SeccompData};

    const GASKET: u32 = 0x8008_dc04;
    const VFIO: u32 = 0x3b6e;
    const TCGETS: u32 = 0x5401;

    fn spec(route_opens: bool) -> FilterSpec {
        FilterSpec {
            magics: vec![0xdc, 0x3b],
            plain_requests: Vec::new(),
            route_opens,
        }
    }

    fn call(arch: u32, nr: u32, request: u64) -> SeccompData {
        SeccompData {
            nr: nr as i32,
            arch,
            instruction_pointer: 0,
            args: [3, request, 0x7fff_0000, 0, 0, 0],
        }
    }

    #[derive(Debug, PartialEq, Eq)]
    enum Action {
        Allow,
        Notify,
        Errno(u32),
    }

    fn action(ret: u32) -> Action {
        match ret & SECCOMP_RET_ACTION_FULL {
            SECCOMP_RET_ALLOW => Action::Allow,
            SECCOMP_RET_USER_NOTIF => Action::Notify,
            SECCOMP_RET_ERRNO => Action::Errno(ret & SECCOMP_RET_DATA),
            other => panic!("unexpected action {other:#x}"),
        }
    }

    /// The table every generated filter is run against: (name, call, whether the expectation
    /// holds only when opens are routed (else the call is allowed), expected action).
    fn cases(arch: Arch) -> Vec<(&'static str, SeccompData, bool, Action)> {
        let native = arch.audit();
        let compat = arch.compat_abi().audit;
        let ioctl = arch.native_abi().ioctl[0];
        let openat = *arch.native_abi().opens.last().unwrap();
        let eperm = Action::Errno(libc::EPERM as u32);
        let mut table = vec![
            (
                "native gasket ioctl",
                call(native, ioctl, u64::from(GASKET)),
                false,
                Action::Notify,
            ),
            (
                "native vfio ioctl",
                call(native, ioctl, u64::from(VFIO)),
                false,
                Action::Notify,
            ),
            (
                "garbage in the high 32 bits",
                call(native, ioctl, 0xdead_beef_0000_0000 | u64::from(GASKET)),
                false,
                Action::Notify,
            ),
            (
                "high bits do not make a match",
                call(native, ioctl, 0x0000_dc00_0000_5401),
                false,
                Action::Allow,
            ),
            (
                "a tty ioctl",
                call(native, ioctl, u64::from(TCGETS)),
                false,
                Action::Allow,
            ),
            (
                "openat with simulation",
                call(native, openat, 0),
                true,
                Action::Notify,
            ),
            (
                "openat2 with simulation",
                call(native, OPENAT2, 0),
                true,
                Action::Notify,
            ),
            (
                "not a syscall of interest",
                call(native, 39, u64::from(GASKET)),
                true,
                Action::Allow,
            ),
            (
                "compat gasket ioctl",
                call(compat, 54, u64::from(GASKET)),
                false,
                eperm,
            ),
            (
                "compat vfio ioctl",
                call(compat, 54, u64::from(VFIO)),
                false,
                Action::Errno(libc::EPERM as u32),
            ),
            (
                "compat tty ioctl",
                call(compat, 54, u64::from(TCGETS)),
                false,
                Action::Allow,
            ),
            (
                "compat open with simulation",
                call(compat, 5, 0),
                true,
                Action::Errno(libc::EPERM as u32),
            ),
            ("compat getpid", call(compat, 20, 0), true, Action::Allow),
            (
                "foreign arch",
                call(0x4000_0001, 54, u64::from(GASKET)),
                false,
                Action::Errno(libc::ENOSYS as u32),
            ),
        ];
        if arch == Arch::X86_64 {
            let x32 = X32_SYSCALL_BIT;
            table.extend([
                (
                    "x32 ioctl",
                    call(native, x32 | 16, u64::from(GASKET)),
                    false,
                    Action::Errno(libc::EPERM as u32),
                ),
                (
                    "x32 compat ioctl",
                    call(native, x32 | 514, u64::from(VFIO)),
                    false,
                    Action::Errno(libc::EPERM as u32),
                ),
                (
                    "x32 tty ioctl",
                    call(native, x32 | 514, u64::from(TCGETS)),
                    false,
                    Action::Allow,
                ),
                (
                    "x32 openat with simulation",
                    call(native, x32 | 257, 0),
                    true,
                    Action::Errno(libc::EPERM as u32),
                ),
                ("x32 write", call(native, x32 | 1, 0), true, Action::Allow),
                (
                    "native open with simulation",
                    call(native, 2, 0),
                    true,
                    Action::Notify,
                ),
            ]);
        }
        table
    }

    #[test]
    fn every_generated_filter_decides_the_table() {
        for arch in [Arch::X86_64, Arch::Aarch64] {
            for route_opens in [false, true] {
                let program = build(arch, &spec(route_opens));
                assert!(program.len() <= BPF_MAXINSNS);
                for (name, data, needs_opens, expected) in cases(arch) {
                    let got = action(interpret(&program, &data));
                    let expected = if needs_opens && !route_opens {
                        Action::Allow
                    } else {
                        expected
                    };
                    assert_eq!(got, expected, "{arch:?} {name} (route_opens={route_opens})");
                }
            }
        }
    }

    #[test]
    fn jumps_go_forward_and_stay_inside() {
        for arch in [Arch::X86_64, Arch::Aarch64] {
            let program = build(arch, &spec(true));
            for (i, insn) in program.iter().enumerate() {
                let targets: Vec<usize> = match insn.code {
                    op::JA => vec![i + 1 + insn.k as usize],
                    op::JEQ_K | op::JGE_K | op::JGT_K | op::JSET_K => {
                        vec![i + 1 + usize::from(insn.jt), i + 1 + usize::from(insn.jf)]
                    }
                    _ => vec![],
                };
                assert!(
                    targets.iter().all(|t| *t < program.len()),
                    "{arch:?} insn {i}"
                );
            }
            assert_eq!(program.last().unwrap().code, op::RET_K);
        }
    }

    #[test]
    fn plain_request_ranges_are_routed() {
        let spec = FilterSpec {
            magics: vec![],
            plain_requests: vec![1..=0xff, 0x3000_0001..=0x3000_0002],
            route_opens: false,
        };
        let program = build(Arch::X86_64, &spec);
        let native = Arch::X86_64.audit();
        for (request, expected) in [
            (1u32, Action::Notify),
            (0xff, Action::Notify),
            (0x100, Action::Allow),
            (0x3000_0002, Action::Notify),
            (0, Action::Allow),
        ] {
            assert_eq!(
                action(interpret(&program, &call(native, 16, u64::from(request)))),
                expected,
                "{request:#x}"
            );
        }
    }
}
