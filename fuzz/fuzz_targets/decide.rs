//! The gate's decision on one ioctl, against a second, simple reading of the family tables
//! written here (a linear scan of `family.requests`):
//! - `Gate::rule` then `decide` with a `FakeMemory`: a request the tables deny is never allowed
//!   or continued in enforce or passthrough mode; a content check that fails is never
//!   continued in enforce mode; an emulated call's copy is exactly its layout's size
//!   (`ioctl.arg_size`) and what the memory holds;
//! - the generated BPF filter (`filter::build` of `routing::route`) run through `interpret`
//!   decides every request where `routing::placement` says, and a placement in the kernel is
//!   what the table says for every fd kind of the family.
#![no_main]

use std::cell::RefCell;
use std::sync::OnceLock;

use accelgate::boot::families;
use accelgate::family::{Action, FakeMemory, Family, FdKind, Memory};
use accelgate::supervisor::Gate;
use accelgate::supervisor::Mode;
use accelgate::supervisor::abi::{
    SECCOMP_RET_ACTION_FULL, SECCOMP_RET_ALLOW, SECCOMP_RET_DATA, SECCOMP_RET_ERRNO,
    SECCOMP_RET_USER_NOTIF, SeccompData, SockFilter,
};
use accelgate::supervisor::decide::{Plan, decide};
use accelgate::supervisor::filter::{Arch, FilterSpec, build};
use accelgate::supervisor::interpret::interpret;
use accelgate::supervisor::routing::{Placement, RouteOptions, placement, route};
use accelgate::supervisor::stats::Verdict;
use accelgate::vfs::DeviceRegistry;
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use nix::errno::Errno;

const MODES: [Mode; 3] = [Mode::Enforce, Mode::Passthrough, Mode::Audit];
const ARCHES: [Arch; 2] = [Arch::X86_64, Arch::Aarch64];
/// Where the fake memory starts: a pointer is usually near it, sometimes anywhere.
const BASE: u64 = 0x7f00_0000_0000;

/// How the request number is picked: a row of the tables, a number the family owns with the
/// fuzzer's low bits, or anything.
#[derive(Debug, Arbitrary)]
enum RequestChoice {
    Row(u16),
    NearRow(u16, u8),
    Raw(u32),
}

#[derive(Debug, Arbitrary)]
struct Call {
    family: u8,
    kind: u8,
    request: RequestChoice,
    /// The upper half of the request register, which the kernel ignores.
    request_high: u32,
    /// The argument register: near the memory (an offset into it) or a raw value.
    pointer: Option<u16>,
    raw_arg: u64,
    memory: Vec<u8>,
    mode: u8,
    simulated: bool,
    arch: bool,
}

struct World {
    gate: Gate,
    /// Filters by (mode, simulated, arch).
    programs: Vec<((Mode, bool, Arch), Vec<SockFilter>)>,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let gate = Gate::new(families(None), DeviceRegistry::with_standard_devices())
            .expect("the families' tables are consistent");
        let mut programs = Vec::new();
        for mode in MODES {
            for simulated in [false, true] {
                let spec = FilterSpec {
                    routes: route(&gate.families, RouteOptions { mode, simulated }),
                    route_opens: simulated,
                };
                for arch in ARCHES {
                    programs.push(((mode, simulated, arch), build(arch, &spec)));
                }
            }
        }
        World { gate, programs }
    })
}

/// The table's answer, read the simple way: the row for (kind, request), with a by-value
/// check applied to `arg`; no row is the family's unknown errno.
fn table_says(family: &Family, kind: FdKind, request: u32, arg: u64) -> Option<Action> {
    let row = family
        .requests
        .iter()
        .find(|r| r.kind == kind && r.ioctl.request == request)?;
    Some(match row.action {
        Action::ContinueIf(check) => match check(arg) {
            Ok(()) => Action::Continue,
            Err(errno) => Action::Deny(errno),
        },
        other => other,
    })
}

fn denial(family: &Family, action: Option<Action>) -> Option<Errno> {
    match action {
        None => Some(family.unknown_errno),
        Some(Action::Deny(errno)) => Some(errno),
        Some(_) => None,
    }
}

fn kernel_decides(program: &[SockFilter], arch: Arch, request: u64) -> Placement {
    let data = SeccompData {
        nr: arch.ioctl_nr() as i32,
        arch: arch.audit(),
        instruction_pointer: 0,
        args: [3, request, 0, 0, 0, 0],
    };
    let ret = interpret(program, &data);
    match ret & SECCOMP_RET_ACTION_FULL {
        SECCOMP_RET_ALLOW => Placement::Allow,
        SECCOMP_RET_USER_NOTIF => Placement::Supervisor,
        SECCOMP_RET_ERRNO => Placement::Refuse(Errno::from_raw((ret & SECCOMP_RET_DATA) as i32)),
        other => panic!("the filter answers an ioctl with action {other:#x}"),
    }
}

fuzz_target!(|call: Call| {
    let world = world();
    let families = &world.gate.families;
    let index = usize::from(call.family) % families.len();
    let family = &families[index];
    let kind = family.kinds[usize::from(call.kind) % family.kinds.len()];
    let rows = &family.requests;
    let request = match call.request {
        RequestChoice::Row(i) if !rows.is_empty() => {
            rows[usize::from(i) % rows.len()].ioctl.request
        }
        RequestChoice::NearRow(i, low) if !rows.is_empty() => {
            (rows[usize::from(i) % rows.len()].ioctl.request & !0xff) | u32::from(low)
        }
        RequestChoice::Row(i) | RequestChoice::NearRow(i, _) => u32::from(i),
        RequestChoice::Raw(raw) => raw,
    };
    let arg = match call.pointer {
        Some(offset) => BASE + u64::from(offset),
        None => call.raw_arg,
    };
    let mode = MODES[usize::from(call.mode) % MODES.len()];
    let memory = FakeMemory {
        base: BASE,
        bytes: RefCell::new(call.memory),
    };

    // The gate's ruling against the simple reading.
    let ruling = world.gate.rule(index, kind, request, arg);
    assert_eq!(
        ruling.ioctl.request, request,
        "the ruling names another request"
    );
    let expected = table_says(family, kind, request, arg);
    let denied = denial(family, expected);
    match (denied, ruling.action) {
        (Some(errno), Action::Deny(got)) => assert_eq!(got, errno, "{kind} {request:#x}"),
        (None, Action::Deny(got)) => {
            panic!("{kind} {request:#x}: the table allows, the gate denies {got}")
        }
        (Some(errno), other) => {
            panic!("{kind} {request:#x}: the table denies {errno}, the gate rules {other:?}")
        }
        (None, _) => {}
    }

    // The mode applied.
    let (plan, verdict) = decide(mode, "fuzz", kind, &ruling, arg, &memory);
    let size = ruling.ioctl.arg_size;
    let content = |check: accelgate::family::Check| {
        memory
            .read(arg, size)
            .and_then(|copy| check(kind, &copy).map(|()| copy))
    };
    match (mode, denied) {
        (Mode::Audit, Some(_)) => assert_eq!((&plan, verdict), (&Plan::Continue, Verdict::Audited)),
        (_, Some(errno)) => {
            assert_eq!(
                (&plan, verdict),
                (&Plan::Deny(errno), Verdict::Denied),
                "{kind} {request:#x} {mode}"
            );
        }
        (_, None) => {}
    }
    if let Plan::Emulate { copy, .. } = &plan {
        assert_eq!(mode, Mode::Enforce, "emulated outside enforce mode");
        assert_eq!(
            copy.len(),
            size,
            "{kind} {request:#x}: the copy is not the layout's size"
        );
        assert_eq!(
            Ok(copy.clone()),
            memory.read(arg, size),
            "the copy is not the memory"
        );
    }
    if mode == Mode::Enforce
        && let Some(Action::CheckThenContinue(check) | Action::Emulate { check, .. }) = expected
    {
        let passes = content(check).is_ok();
        assert_eq!(
            !matches!(plan, Plan::Deny(_)),
            passes,
            "{kind} {request:#x}: a content check decides, and the gate disagrees: {plan:?}"
        );
    }

    // Where the kernel decides, against the table.
    let simulated = call.simulated;
    let arch = ARCHES[usize::from(call.arch)];
    let options = RouteOptions { mode, simulated };
    let owner = families.iter().find(|f| f.owns(request));
    let expected_placement = owner.map_or(Placement::Allow, |f| placement(f, request, options));
    let program = &world
        .programs
        .iter()
        .find(|(key, _)| *key == (mode, simulated, arch))
        .expect("a program for every option")
        .1;
    let register = (u64::from(call.request_high) << 32) | u64::from(request);
    assert_eq!(
        kernel_decides(program, arch, register),
        expected_placement,
        "{request:#x} {mode} simulated={simulated} {arch:?}"
    );
    if let Some(owner) = owner {
        for kind in owner.kinds {
            let says = table_says(owner, *kind, request, arg);
            match expected_placement {
                Placement::Allow => assert!(
                    mode != Mode::Audit
                        && !simulated
                        && matches!(says, None | Some(Action::Continue)),
                    "{} {kind} {request:#x}: allowed in the kernel, the table says {says:?}",
                    owner.name
                ),
                Placement::Refuse(errno) => assert!(
                    mode != Mode::Audit && denial(owner, says) == Some(errno),
                    "{} {kind} {request:#x}: refused {errno} in the kernel, the table says {says:?}",
                    owner.name
                ),
                Placement::Supervisor => {}
            }
        }
    }
});
