//! The routing of every family's table: the generated filter decides each request exactly where
//! the routing places it, and `docs/gate.md` shows the routing as it is.

mod common;

use accelgate::boot::families;
use accelgate::supervisor::Mode;
use accelgate::supervisor::abi::{
    SECCOMP_RET_ACTION_FULL, SECCOMP_RET_ALLOW, SECCOMP_RET_DATA, SECCOMP_RET_ERRNO,
    SECCOMP_RET_USER_NOTIF, SeccompData,
};
use accelgate::supervisor::filter::{Arch, FilterSpec, build};
use accelgate::supervisor::interpret::interpret;
use accelgate::supervisor::routing::{Placement, RouteOptions, placement, route, table};

const BEGIN: &str = "<!-- routing table: generated from the family tables by tests/routing.rs; ACCELGATE_BLESS=1 rewrites it -->\n";
const END: &str = "<!-- end of the routing table -->";

fn decided(
    program: &[accelgate::supervisor::abi::SockFilter],
    arch: Arch,
    request: u32,
) -> Placement {
    let data = SeccompData {
        nr: arch.ioctl_nr() as i32,
        arch: arch.audit(),
        instruction_pointer: 0,
        args: [3, 0xffff_ffff_0000_0000 | u64::from(request), 0, 0, 0, 0],
    };
    let ret = interpret(program, &data);
    match ret & SECCOMP_RET_ACTION_FULL {
        SECCOMP_RET_ALLOW => Placement::Allow,
        SECCOMP_RET_USER_NOTIF => Placement::Supervisor,
        SECCOMP_RET_ERRNO => {
            Placement::Refuse(nix::errno::Errno::from_raw((ret & SECCOMP_RET_DATA) as i32))
        }
        other => panic!("action {other:#x}"),
    }
}

#[test]
fn the_families_tables_are_consistent() {
    accelgate::family::validate(&families()).unwrap();
}

#[test]
fn every_request_is_decided_where_the_routing_places_it() {
    let families = families();
    for (mode, simulated) in [
        (Mode::Enforce, false),
        (Mode::Enforce, true),
        (Mode::Passthrough, false),
        (Mode::Audit, false),
    ] {
        let options = RouteOptions { mode, simulated };
        let spec = FilterSpec {
            routes: route(&families, options),
            route_opens: simulated,
        };
        for arch in [Arch::X86_64, Arch::Aarch64] {
            let program = build(arch, &spec);
            // Every listed request, and a spread of other numbers each family owns.
            let mut seed = 0x2545_f491_u32;
            for family in &families {
                let listed = family.requests.iter().map(|r| r.ioctl.request);
                let sampled = (0..2000).map(|_| {
                    seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    seed
                });
                for request in listed.chain(sampled) {
                    let expected = if family.owns(request) {
                        placement(family, request, options)
                    } else if families.iter().any(|f| f.owns(request)) {
                        continue;
                    } else {
                        Placement::Allow
                    };
                    assert_eq!(
                        decided(&program, arch, request),
                        expected,
                        "{} {request:#x} {mode} simulated={simulated} {arch:?}",
                        family.name
                    );
                }
            }
        }
    }
}

#[test]
fn the_docs_show_the_routing_as_it_is() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/gate.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let (before, rest) = doc
        .split_once(BEGIN)
        .expect("the routing table's start marker");
    let (_, after) = rest
        .split_once(END)
        .expect("the routing table's end marker");
    let generated = table(&families());
    let wanted = format!("{before}{BEGIN}\n{generated}\n{END}{after}");
    if common::bless() {
        std::fs::write(&path, &wanted).unwrap();
    } else {
        assert!(
            doc == wanted,
            "docs/gate.md's routing table is stale: run ACCELGATE_BLESS=1 cargo test --test routing"
        );
    }
}
