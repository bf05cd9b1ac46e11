//! The seccomp filter: classic BPF that looks only at registers (syscall number, arch, the low
//! 32 bits of an ioctl request). It decides in the kernel what the routing places there
//! (allow, or refuse with an errno) by a binary search over each family's sorted request
//! ranges, and sends the rest of the accelerator ioctls, and (with simulated devices) opens,
//! to the supervisor.
//!
//! Shaped for the kernel's seccomp action cache (Linux 5.11): every path that does not load an
//! argument ends in ALLOW, so the kernel proves every syscall but ioctl (and the routed opens)
//! always allowed and skips the program for them.
//!
//! Generated for an [`Arch`] given as an argument, not chosen by `cfg`, so that the x86_64 and
//! aarch64 programs are both built and tested on any host.

use std::collections::BTreeMap;

use super::abi::{
    AUDIT_ARCH_AARCH64, AUDIT_ARCH_ARM, AUDIT_ARCH_I386, AUDIT_ARCH_X86_64, BPF_MAXINSNS,
    SECCOMP_DATA_ARCH, SECCOMP_DATA_NR, SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO,
    SECCOMP_RET_USER_NOTIF, SockFilter, X32_SYSCALL_BIT, op, seccomp_data_arg_low,
};
use super::routing::{FamilyRoute, Placement, Segment};
use crate::family::{Decode, Owned};

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

    /// The native syscall numbers of `open`, `openat` and `openat2` that exist here.
    pub fn opens(self) -> &'static [u32] {
        self.native_abi().opens
    }
}

/// What the filter decides, and what it sends to the supervisor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilterSpec {
    /// Each family's numbers and where each is decided.
    pub routes: Vec<FamilyRoute>,
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
    Or(u32),
    Jump {
        op: u16,
        k: u32,
        yes: Label,
        no: Label,
    },
    Goto(Label),
    Ret(u32),
    Mark(Label),
    /// Instructions that only jump among themselves and end every path in a return or at the
    /// instruction after them.
    Block(Vec<SockFilter>),
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

    /// Instructions each entry takes: a conditional jump to a target beyond its 8-bit reach
    /// becomes three (the condition, then a long jump to each target).
    fn positions(&self, far: &[bool]) -> (BTreeMap<Label, usize>, usize) {
        let mut positions = BTreeMap::new();
        let mut index = 0usize;
        for (insn, far) in self.insns.iter().zip(far) {
            match insn {
                Insn::Mark(label) => {
                    positions.insert(*label, index);
                }
                Insn::Block(block) => index += block.len(),
                Insn::Jump { .. } if *far => index += 3,
                _ => index += 1,
            }
        }
        (positions, index)
    }

    fn assemble(self) -> Vec<SockFilter> {
        // Jumps only grow, so marking the ones out of reach until none is left ends.
        let mut far = vec![false; self.insns.len()];
        let (positions, length) = loop {
            let (positions, length) = self.positions(&far);
            let mut here = 0usize;
            let mut out_of_reach = Vec::new();
            for (i, insn) in self.insns.iter().enumerate() {
                match insn {
                    Insn::Mark(_) => {}
                    Insn::Block(block) => here += block.len(),
                    Insn::Jump { yes, no, .. } => {
                        let reach = |label: &Label| positions[label] - (here + 1) <= 255;
                        let near = reach(yes) && reach(no);
                        if !far[i] && !near {
                            out_of_reach.push(i);
                        }
                        here += if far[i] { 3 } else { 1 };
                    }
                    _ => here += 1,
                }
            }
            if out_of_reach.is_empty() {
                break (positions, length);
            }
            for i in out_of_reach {
                far[i] = true;
            }
        };
        let mut out = Vec::with_capacity(length);
        let long_jump = |from: usize, label: Label| SockFilter {
            code: op::JA,
            jt: 0,
            jf: 0,
            k: u32::try_from(positions[&label] - from - 1)
                .expect("a program under 4096 instructions"),
        };
        for (insn, far) in self.insns.into_iter().zip(far) {
            let here = out.len();
            let offset = |label: Label| {
                let target = positions[&label];
                let distance = target.checked_sub(here + 1).expect("jumps only go forward");
                u8::try_from(distance).expect("a near jump")
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
                Insn::Or(k) => out.push(SockFilter {
                    code: op::ALU_OR_K,
                    jt: 0,
                    jf: 0,
                    k,
                }),
                Insn::Jump { op, k, yes, no } if far => {
                    out.push(SockFilter {
                        code: op,
                        jt: 0,
                        jf: 1,
                        k,
                    });
                    out.push(long_jump(here + 1, yes));
                    out.push(long_jump(here + 2, no));
                }
                Insn::Jump { op, k, yes, no } => out.push(SockFilter {
                    code: op,
                    jt: offset(yes),
                    jf: offset(no),
                    k,
                }),
                Insn::Goto(label) => out.push(long_jump(here, label)),
                Insn::Ret(k) => out.push(SockFilter {
                    code: op::RET_K,
                    jt: 0,
                    jf: 0,
                    k,
                }),
                Insn::Mark(_) => {}
                Insn::Block(block) => out.extend(block),
            }
        }
        out
    }
}

/// Emits a test of A: jumps to `yes` when `low <= A <= high`, else to `no`.
fn within(p: &mut Program, low: u32, high: u32, yes: Label, no: Label) {
    let above_low = p.label();
    p.push(Insn::Jump {
        op: op::JGE_K,
        k: low,
        yes: above_low,
        no,
    });
    p.mark(above_low);
    p.push(Insn::Jump {
        op: op::JGT_K,
        k: high,
        yes: no,
        no: yes,
    });
}

/// Runs of consecutive values in `nrs`, as inclusive ranges.
fn runs(nrs: &[u8]) -> Vec<(u32, u32)> {
    let mut sorted = nrs.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out: Vec<(u32, u32)> = Vec::new();
    for nr in sorted.into_iter().map(u32::from) {
        match out.last_mut() {
            Some((_, high)) if *high + 1 == nr => *high = nr,
            _ => out.push((nr, nr)),
        }
    }
    out
}

/// Emits a test of the request: jumps to `yes` when one of `owned` has it, else to `no`.
fn ownership(p: &mut Program, owned: &[Owned], yes: Label, no: Label) {
    for numbers in owned {
        p.push(Insn::Load(seccomp_data_arg_low(1)));
        match *numbers {
            Owned::Magic(magic) => {
                let next = p.label();
                p.push(Insn::And(0xff00));
                p.jeq(u32::from(magic) << 8, yes, next);
                p.mark(next);
            }
            Owned::Range(low, high) => {
                let next = p.label();
                within(p, low, high, yes, next);
                p.mark(next);
            }
            Owned::Nrs(nrs) => {
                p.push(Insn::And(0xff));
                for (low, high) in runs(nrs) {
                    let next = p.label();
                    within(p, low, high, yes, next);
                    p.mark(next);
                }
            }
        }
    }
    p.push(Insn::Goto(no));
}

/// A decision tree for a family that decodes only nr and size: as [`decision_tree`], except
/// that where the kernel may allow a number the program falls through (to the instruction
/// after the block), so that the other families' routing decides it.
fn fallthrough_tree(segments: &[Segment]) -> Vec<SockFilter> {
    let mut tree = decision_tree(segments);
    let length = tree.len();
    for (index, insn) in tree.iter_mut().enumerate() {
        if insn.code == op::RET_K && insn.k == SECCOMP_RET_ALLOW {
            let skip =
                u32::try_from(length - index - 1).expect("a program under 4096 instructions");
            *insn = insn_ja(skip);
        }
    }
    tree
}

const fn insn_ja(k: u32) -> SockFilter {
    SockFilter {
        code: op::JA,
        jt: 0,
        jf: 0,
        k,
    }
}

const fn ret_of(placement: Placement) -> u32 {
    match placement {
        Placement::Allow => SECCOMP_RET_ALLOW,
        Placement::Refuse(errno) => SECCOMP_RET_ERRNO | (errno as u32 & 0xffff),
        Placement::Supervisor => SECCOMP_RET_USER_NOTIF,
    }
}

fn insn(code: u16, jt: u8, jf: u8, k: u32) -> SockFilter {
    SockFilter { code, jt, jf, k }
}

/// A binary search over `segments` (sorted, adjacent) for the request in A, returning each
/// segment's action: about log2(segments) comparisons.
fn decision_tree(segments: &[Segment]) -> Vec<SockFilter> {
    if let [only] = segments {
        return vec![insn(op::RET_K, 0, 0, ret_of(only.placement))];
    }
    let mid = segments.len() / 2;
    let (left, right) = (
        decision_tree(&segments[..mid]),
        decision_tree(&segments[mid..]),
    );
    let pivot = segments[mid].low;
    let mut out = Vec::with_capacity(left.len() + right.len() + 2);
    match u8::try_from(left.len()) {
        // Greater or equal: over the left half.
        Ok(skip) => out.push(insn(op::JGE_K, skip, 0, pivot)),
        // Too far for a conditional jump: through a JA.
        Err(_) => {
            let skip = u32::try_from(left.len()).expect("a short program");
            out.push(insn(op::JGE_K, 0, 1, pivot));
            out.push(insn(op::JA, 0, 0, skip));
        }
    }
    out.extend(left);
    out.extend(right);
    out
}

/// Emits the checks of one ABI, with the syscall number in A. Native (`refuse` is None): each
/// family's ioctls are decided by its tree, routed opens go to the supervisor. Compat and x32
/// (`refuse` is the errno action): every accelerator ioctl and routed open is refused.
/// Everything else is allowed.
fn abi_block(p: &mut Program, abi: &Abi, spec: &FilterSpec, refuse: Option<u32>) {
    let ioctl = p.label();
    let opened = p.label();
    let allow = p.label();
    for nr in abi.ioctl {
        let next = p.label();
        p.jeq(*nr, ioctl, next);
        p.mark(next);
    }
    if spec.route_opens {
        for nr in abi.opens {
            let next = p.label();
            p.jeq(*nr, opened, next);
            p.mark(next);
        }
    }
    p.push(Insn::Goto(allow));
    p.mark(ioctl);
    match refuse {
        None => {
            // Families that decode only nr and size first: what they send to the supervisor
            // goes there whatever the others would do with the same bits.
            let (blind, full): (Vec<&FamilyRoute>, Vec<&FamilyRoute>) = spec
                .routes
                .iter()
                .partition(|route| route.decode != Decode::Full);
            for route in blind {
                let tree = p.label();
                let next = p.label();
                ownership(p, route.owned, tree, next);
                p.mark(tree);
                p.push(Insn::Load(seccomp_data_arg_low(1)));
                if let Decode::NrAndSize { canonical_type } = route.decode {
                    p.push(Insn::And(0x3fff_00ff));
                    p.push(Insn::Or(0xc000_0000 | (u32::from(canonical_type) << 8)));
                }
                p.push(Insn::Block(fallthrough_tree(&route.segments)));
                p.mark(next);
            }
            for route in full {
                let tree = p.label();
                let next = p.label();
                ownership(p, route.owned, tree, next);
                p.mark(tree);
                p.push(Insn::Load(seccomp_data_arg_low(1)));
                p.push(Insn::Block(decision_tree(&route.segments)));
                p.mark(next);
            }
            p.push(Insn::Goto(allow));
        }
        Some(errno) => {
            let owned: Vec<Owned> = spec
                .routes
                .iter()
                .flat_map(|r| r.owned.iter().copied())
                .collect();
            let refused = p.label();
            ownership(p, &owned, refused, allow);
            p.mark(refused);
            p.push(Insn::Ret(errno));
        }
    }
    p.mark(opened);
    p.push(Insn::Ret(refuse.unwrap_or(SECCOMP_RET_USER_NOTIF)));
    p.mark(allow);
    p.push(Insn::Ret(SECCOMP_RET_ALLOW));
}

/// Builds the filter for `arch`.
///
/// The arch is checked first: native accelerator calls are decided by the routing (in the
/// kernel, or by the supervisor through `SECCOMP_RET_USER_NOTIF`); the same calls through the compat ABI or x32 are refused with
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
        abi_block(&mut p, &arch.native_abi(), spec, None);
        p.mark(x32_label);
        p.push(Insn::And(!X32_SYSCALL_BIT));
        abi_block(&mut p, &x32, spec, Some(errno));
    } else {
        abi_block(&mut p, &arch.native_abi(), spec, None);
    }

    p.mark(not_native);
    p.jeq(arch.compat_abi().audit, compat, foreign);
    p.mark(compat);
    p.push(Insn::Load(SECCOMP_DATA_NR));
    abi_block(&mut p, &arch.compat_abi(), spec, Some(errno));
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

/// A program as bytes (`struct sock_filter` records, native endian): how a sandbox's filter is
/// kept beside its gate service, for the processes exec'd into it later.
pub fn encode(program: &[SockFilter]) -> Vec<u8> {
    program
        .iter()
        .flat_map(|insn| {
            let mut record = [0u8; 8];
            record[..2].copy_from_slice(&insn.code.to_ne_bytes());
            record[2] = insn.jt;
            record[3] = insn.jf;
            record[4..].copy_from_slice(&insn.k.to_ne_bytes());
            record
        })
        .collect()
}

/// The program [`encode`] wrote; None for bytes that are not whole records of a program the
/// kernel would take.
pub fn decode(bytes: &[u8]) -> Option<Vec<SockFilter>> {
    if bytes.is_empty() || bytes.len() % 8 != 0 || bytes.len() / 8 > BPF_MAXINSNS {
        return None;
    }
    bytes
        .chunks_exact(8)
        .map(|record| {
            Some(SockFilter {
                code: u16::from_ne_bytes(record[..2].try_into().ok()?),
                jt: record[2],
                jf: record[3],
                k: u32::from_ne_bytes(record[4..].try_into().ok()?),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use nix::errno::Errno;

    use super::*;
    use crate::family::{Action, Decode, Family, FdKind, IoctlDef, Request};
    use crate::supervisor::abi::{SECCOMP_RET_ACTION_FULL, SECCOMP_RET_DATA, SeccompData};
    use crate::supervisor::interpret::{always_allows, interpret};
    use crate::supervisor::mode::Mode;
    use crate::supervisor::routing::{RouteOptions, route};

    const DEV: FdKind = FdKind::new("magic", "dev");
    const CTL: FdKind = FdKind::new("magic", "ctl");
    const PLAIN: FdKind = FdKind::new("plain", "plain");
    const BLIND: FdKind = FdKind::new("blind", "blind");

    const ALLOWED: u32 = 0x8008_dc01;
    const REFUSED: u32 = 0x8008_dc02;
    const EMULATED: u32 = 0xc020_dc03;
    const TWO_MEANINGS: u32 = 0x0000_dc04;
    const ONE_KIND_DENIES: u32 = 0x0000_dc05;
    const UNKNOWN: u32 = 0xc008_dc30;
    const PLAIN_ALLOWED: u32 = 0x3000_0002;
    const PLAIN_UNKNOWN: u32 = 0x3000_0003;
    const TCGETS: u32 = 0x5401;
    /// The blind family's: its driver reads only nr and size.
    const BLIND_EMULATED: u32 = 0xc020_462a;
    const BLIND_CONTINUED: u32 = 0xc010_462b;

    fn pass(_: FdKind, _: &[u8]) -> Result<(), Errno> {
        Ok(())
    }

    fn row(kind: FdKind, request: u32, action: Action) -> Request {
        Request {
            kind,
            ioctl: IoctlDef {
                name: "TEST",
                request,
                arg_size: 8,
            },
            action,
        }
    }

    /// A family with one of each placement, owning a magic; and one owning a plain range.
    fn families() -> Vec<Family> {
        let emulate = Action::Emulate {
            check: pass,
            eventfd_fields: &[],
        };
        let deny = Action::Deny(Errno::EPERM);
        vec![
            Family {
                name: "magic",
                kinds: &[DEV, CTL],
                devices: &[],
                anon_inodes: &[],
                owned: &[Owned::Magic(0xdc)],
                decode: Decode::Full,
                unknown_errno: Errno::EINVAL,
                requests: vec![
                    row(DEV, ALLOWED, Action::Continue),
                    row(DEV, REFUSED, deny),
                    row(CTL, REFUSED, deny),
                    row(DEV, EMULATED, emulate),
                    row(DEV, TWO_MEANINGS, Action::Continue),
                    row(CTL, TWO_MEANINGS, deny),
                    row(DEV, ONE_KIND_DENIES, deny),
                ],
            },
            Family {
                name: "plain",
                kinds: &[PLAIN],
                devices: &[],
                anon_inodes: &[],
                owned: &[Owned::Range(0x3000_0001, 0x3000_00ff)],
                decode: Decode::Full,
                unknown_errno: Errno::ENOTTY,
                requests: vec![row(PLAIN, PLAIN_ALLOWED, Action::Continue)],
            },
            Family {
                name: "blind",
                kinds: &[BLIND],
                devices: &[],
                anon_inodes: &[],
                owned: &[Owned::Nrs(&[0x2a, 0x2b])],
                decode: Decode::NrAndSize {
                    canonical_type: b'F',
                },
                unknown_errno: Errno::EINVAL,
                requests: vec![
                    row(BLIND, BLIND_EMULATED, emulate),
                    row(BLIND, BLIND_CONTINUED, Action::Continue),
                ],
            },
        ]
    }

    fn spec(mode: Mode, simulated: bool) -> FilterSpec {
        FilterSpec {
            routes: route(&families(), RouteOptions { mode, simulated }),
            route_opens: simulated,
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

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Ret {
        Allow,
        Notify,
        Errno(i32),
    }

    fn ret(value: u32) -> Ret {
        match value & SECCOMP_RET_ACTION_FULL {
            SECCOMP_RET_ALLOW => Ret::Allow,
            SECCOMP_RET_USER_NOTIF => Ret::Notify,
            SECCOMP_RET_ERRNO => Ret::Errno((value & SECCOMP_RET_DATA) as i32),
            other => panic!("unexpected action {other:#x}"),
        }
    }

    const EPERM: Ret = Ret::Errno(libc::EPERM);

    #[test]
    fn programs_round_trip_through_bytes() {
        let program = build(Arch::X86_64, &spec(Mode::Enforce, true));
        assert_eq!(decode(&encode(&program)), Some(program));
        assert_eq!(decode(&[0; 12]), None);
        assert_eq!(decode(&[]), None);
    }

    #[test]
    fn native_ioctls_are_decided_where_the_routing_places_them() {
        // (request, enforce on host devices, enforce simulated, audit)
        let table = [
            (ALLOWED, Ret::Allow, Ret::Notify, Ret::Notify),
            (REFUSED, EPERM, EPERM, Ret::Notify),
            (EMULATED, Ret::Notify, Ret::Notify, Ret::Notify),
            (TWO_MEANINGS, Ret::Notify, Ret::Notify, Ret::Notify),
            (ONE_KIND_DENIES, Ret::Notify, Ret::Notify, Ret::Notify),
            (
                UNKNOWN,
                Ret::Errno(libc::EINVAL),
                Ret::Errno(libc::EINVAL),
                Ret::Notify,
            ),
            (PLAIN_ALLOWED, Ret::Allow, Ret::Notify, Ret::Notify),
            // Plain numbers may be other files' requests: the supervisor answers.
            (PLAIN_UNKNOWN, Ret::Notify, Ret::Notify, Ret::Notify),
            // A driver that reads only nr and size: whatever the type and direction bits.
            (BLIND_EMULATED, Ret::Notify, Ret::Notify, Ret::Notify),
            (0x0020_002a, Ret::Notify, Ret::Notify, Ret::Notify),
            (0x4020_dc2a, Ret::Notify, Ret::Notify, Ret::Notify),
            // A size the table does not list: the supervisor, which knows the file.
            (0xc008_462a, Ret::Notify, Ret::Notify, Ret::Notify),
            (BLIND_CONTINUED, Ret::Allow, Ret::Notify, Ret::Notify),
            (0x0010_002b, Ret::Allow, Ret::Notify, Ret::Notify),
            // Allowed by the blind family, then decided by the family owning its type.
            (
                0x0010_dc2b,
                Ret::Errno(libc::EINVAL),
                Ret::Notify,
                Ret::Notify,
            ),
            (0x3000_0100, Ret::Allow, Ret::Allow, Ret::Allow),
            (TCGETS, Ret::Allow, Ret::Allow, Ret::Allow),
        ];
        for arch in [Arch::X86_64, Arch::Aarch64] {
            let ioctl = arch.ioctl_nr();
            let programs = [
                build(arch, &spec(Mode::Enforce, false)),
                build(arch, &spec(Mode::Enforce, true)),
                build(arch, &spec(Mode::Audit, false)),
            ];
            for (request, host, simulated, audit) in table {
                for (program, expected) in programs.iter().zip([host, simulated, audit]) {
                    let data = call(arch.audit(), ioctl, u64::from(request));
                    assert_eq!(
                        ret(interpret(program, &data)),
                        expected,
                        "{arch:?} {request:#x}"
                    );
                    // The kernel takes `unsigned int cmd`: the high half is ignored.
                    let garbage = call(
                        arch.audit(),
                        ioctl,
                        0xdead_beef_0000_0000 | u64::from(request),
                    );
                    assert_eq!(
                        ret(interpret(program, &garbage)),
                        expected,
                        "{arch:?} {request:#x}"
                    );
                }
            }
        }
    }

    /// (name, call, whether the expectation holds only when opens are routed (else the call is
    /// allowed), expected action), for the other ABIs and syscalls.
    fn cases(arch: Arch) -> Vec<(&'static str, SeccompData, bool, Ret)> {
        let native = arch.audit();
        let compat = arch.compat_abi().audit;
        let openat = *arch.native_abi().opens.last().unwrap();
        let mut table = vec![
            (
                "high bits do not make a match",
                call(native, arch.ioctl_nr(), 0x0000_dc00_0000_5401),
                false,
                Ret::Allow,
            ),
            (
                "openat with simulation",
                call(native, openat, 0),
                true,
                Ret::Notify,
            ),
            (
                "openat2 with simulation",
                call(native, OPENAT2, 0),
                true,
                Ret::Notify,
            ),
            (
                "not a syscall of interest",
                call(native, 39, u64::from(EMULATED)),
                true,
                Ret::Allow,
            ),
            (
                "compat accelerator ioctl",
                call(compat, 54, u64::from(EMULATED)),
                false,
                EPERM,
            ),
            (
                "compat allowed ioctl",
                call(compat, 54, u64::from(ALLOWED)),
                false,
                EPERM,
            ),
            (
                "compat plain ioctl",
                call(compat, 54, u64::from(PLAIN_ALLOWED)),
                false,
                EPERM,
            ),
            (
                "compat tty ioctl",
                call(compat, 54, u64::from(TCGETS)),
                false,
                Ret::Allow,
            ),
            (
                "compat open with simulation",
                call(compat, 5, 0),
                true,
                EPERM,
            ),
            ("compat getpid", call(compat, 20, 0), true, Ret::Allow),
            (
                "foreign arch",
                call(0x4000_0001, 54, u64::from(EMULATED)),
                false,
                Ret::Errno(libc::ENOSYS),
            ),
        ];
        if arch == Arch::X86_64 {
            let x32 = X32_SYSCALL_BIT;
            table.extend([
                (
                    "x32 ioctl",
                    call(native, x32 | 16, u64::from(EMULATED)),
                    false,
                    EPERM,
                ),
                (
                    "x32 compat ioctl",
                    call(native, x32 | 514, u64::from(REFUSED)),
                    false,
                    EPERM,
                ),
                (
                    "x32 tty ioctl",
                    call(native, x32 | 514, u64::from(TCGETS)),
                    false,
                    Ret::Allow,
                ),
                (
                    "x32 openat with simulation",
                    call(native, x32 | 257, 0),
                    true,
                    EPERM,
                ),
                ("x32 write", call(native, x32 | 1, 0), true, Ret::Allow),
                (
                    "native open with simulation",
                    call(native, 2, 0),
                    true,
                    Ret::Notify,
                ),
            ]);
        }
        table
    }

    #[test]
    fn other_abis_and_syscalls() {
        for arch in [Arch::X86_64, Arch::Aarch64] {
            for simulated in [false, true] {
                let program = build(arch, &spec(Mode::Enforce, simulated));
                assert!(program.len() <= BPF_MAXINSNS);
                for (name, data, needs_opens, expected) in cases(arch) {
                    let expected = if needs_opens && !simulated {
                        Ret::Allow
                    } else {
                        expected
                    };
                    let got = ret(interpret(&program, &data));
                    assert_eq!(got, expected, "{arch:?} {name} (simulated={simulated})");
                }
            }
        }
    }

    #[test]
    fn the_action_cache_proves_every_other_syscall_allowed() {
        for arch in [Arch::X86_64, Arch::Aarch64] {
            for simulated in [false, true] {
                let program = build(arch, &spec(Mode::Enforce, simulated));
                let routed: Vec<u32> = arch
                    .native_abi()
                    .ioctl
                    .iter()
                    .chain(if simulated {
                        arch.native_abi().opens
                    } else {
                        &[]
                    })
                    .copied()
                    .collect();
                for nr in 0..600 {
                    assert_eq!(
                        always_allows(&program, arch.audit(), nr),
                        !routed.contains(&nr),
                        "{arch:?} syscall {nr} (simulated={simulated})"
                    );
                }
                let compat = arch.compat_abi();
                assert!(always_allows(&program, compat.audit, 20));
                assert!(!always_allows(&program, compat.audit, compat.ioctl[0]));
            }
        }
    }

    #[test]
    fn a_large_table_searches_in_log_steps_with_far_jumps() {
        let segments: Vec<Segment> = (0..1000u32)
            .map(|i| Segment {
                low: i * 2,
                high: i * 2 + 1,
                placement: if i % 2 == 0 {
                    Placement::Allow
                } else {
                    Placement::Supervisor
                },
            })
            .chain(std::iter::once(Segment {
                low: 2000,
                high: u32::MAX,
                placement: Placement::Refuse(Errno::EINVAL),
            }))
            .collect();
        let tree = decision_tree(&segments);
        let mut program = vec![insn(op::LD_W_ABS, 0, 0, seccomp_data_arg_low(1))];
        program.extend(tree);
        for (request, expected) in [
            (0u32, Ret::Allow),
            (3, Ret::Notify),
            (1998, Ret::Notify),
            (1996, Ret::Allow),
            (2000, Ret::Errno(libc::EINVAL)),
            (u32::MAX, Ret::Errno(libc::EINVAL)),
        ] {
            let data = call(0, 0, u64::from(request));
            assert_eq!(ret(interpret(&program, &data)), expected, "{request}");
        }
    }

    #[test]
    fn a_family_of_a_thousand_requests_builds_and_decides() {
        let deny = Action::Deny(Errno::EPERM);
        let emulate = Action::Emulate {
            check: pass,
            eventfd_fields: &[],
        };
        let mut big = families();
        big[0].requests = (0..1000u32)
            .map(|i| {
                let request = 0xc000_dc00 | ((i % 0x40) << 16) | (i / 0x40);
                let action = match i % 3 {
                    0 => Action::Continue,
                    1 => deny,
                    _ => emulate,
                };
                row(DEV, request, action)
            })
            .collect();
        let spec = FilterSpec {
            routes: route(
                &big,
                RouteOptions {
                    mode: Mode::Enforce,
                    simulated: false,
                },
            ),
            route_opens: true,
        };
        for arch in [Arch::X86_64, Arch::Aarch64] {
            let program = build(arch, &spec);
            assert!(program.len() > 256, "{} instructions", program.len());
            let options = RouteOptions {
                mode: Mode::Enforce,
                simulated: false,
            };
            for row in &big[0].requests {
                let request = row.ioctl.request;
                let wanted = match crate::supervisor::routing::placement(&big[0], request, options)
                {
                    Placement::Allow => Ret::Allow,
                    Placement::Refuse(errno) => Ret::Errno(errno as i32),
                    Placement::Supervisor => Ret::Notify,
                };
                let data = call(arch.audit(), arch.ioctl_nr(), u64::from(request));
                assert_eq!(
                    ret(interpret(&program, &data)),
                    wanted,
                    "{arch:?} {request:#x}"
                );
            }
            let compat = arch.compat_abi();
            let data = call(compat.audit, compat.ioctl[0], 0xc000_dc00);
            assert_eq!(ret(interpret(&program, &data)), EPERM, "{arch:?} compat");
            assert!(always_allows(&program, arch.audit(), 39));
        }
    }

    #[test]
    fn jumps_go_forward_and_stay_inside() {
        for arch in [Arch::X86_64, Arch::Aarch64] {
            let program = build(arch, &spec(Mode::Enforce, true));
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
}
