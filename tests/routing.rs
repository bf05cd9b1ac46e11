//! The routing of every family's table: the generated filter decides each request exactly where
//! the routing places it, the routing places in the kernel only what the table decides the same
//! way on every fd kind, and `docs/gate.md` shows the routing as it is.

mod common;

use accelgate::boot::{NvidiaTables, families as all_families};
use accelgate::family::Action;
use accelgate::family::Family;
use accelgate::nvproxy::DriverCaps;
use accelgate::supervisor::Gate;
use accelgate::supervisor::Mode;
use accelgate::supervisor::abi::{
    SECCOMP_RET_ACTION_FULL, SECCOMP_RET_ALLOW, SECCOMP_RET_DATA, SECCOMP_RET_ERRNO,
    SECCOMP_RET_USER_NOTIF, SeccompData,
};
use accelgate::supervisor::filter::{Arch, FilterSpec, build};
use accelgate::supervisor::interpret::interpret;
use accelgate::supervisor::routing::{
    Placement, RouteOptions, decided as routed, placement, route, table,
};
use accelgate::vfs::DeviceRegistry;

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

/// Every family, NVIDIA's at the version the docs show.
fn families() -> Vec<Family> {
    let abi = accelgate::nvproxy::tree::abi("580.65.06".parse().unwrap()).unwrap();
    all_families(Some(NvidiaTables {
        abi,
        caps: DriverCaps::DEFAULT,
    }))
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
                    let expected = routed(&spec.routes, request);
                    // Where the family alone decides, that is its own placement.
                    let others = families
                        .iter()
                        .filter(|f| f.name != family.name)
                        .any(|f| f.owns(request));
                    let listed = family
                        .kinds
                        .iter()
                        .any(|k| family.request(*k, request).is_some());
                    if family.owns(request) && !others && listed {
                        let own = placement(family, request, options);
                        assert_eq!(expected, own, "{} {request:#x}", family.name);
                    }
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

/// The other half of the property: a placement in the kernel is what the table says on every
/// fd kind of the family, whatever the argument. Allowed there: every row is a plain continue
/// (a kind without a row leaves the number to the driver, which answers it as unknown, as the
/// gate would). Refused there: every kind gets the same denial, by row or as an unknown number.
#[test]
fn every_kernel_placement_is_what_the_table_says() {
    let families = families();
    let gate = Gate::new(families.clone(), DeviceRegistry::with_standard_devices())
        .expect("consistent tables");
    for (mode, simulated) in [
        (Mode::Enforce, false),
        (Mode::Enforce, true),
        (Mode::Passthrough, false),
        (Mode::Audit, false),
    ] {
        let options = RouteOptions { mode, simulated };
        let mut seed = 0x9e37_79b9_u32;
        for (index, family) in families.iter().enumerate() {
            let listed = family.requests.iter().map(|r| r.ioctl.request);
            let sampled = (0..2000).map(|_| {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                seed
            });
            for request in listed.chain(sampled).filter(|r| family.owns(*r)) {
                let at = placement(family, request, options);
                for kind in family.kinds {
                    let row = family.request(*kind, request).map(|r| r.action);
                    let context = format!(
                        "{} {kind} {request:#x} {mode} simulated={simulated}",
                        family.name
                    );
                    match at {
                        Placement::Allow => assert!(
                            mode != Mode::Audit
                                && !simulated
                                && matches!(row, None | Some(Action::Continue)),
                            "{context}: allowed in the kernel, the row is {row:?}"
                        ),
                        Placement::Refuse(errno) => {
                            assert_ne!(mode, Mode::Audit, "{context}");
                            for arg in [0, 1, 0x7f00_0000_0000, u64::MAX] {
                                let ruling = gate.rule(index, *kind, request, arg);
                                assert!(
                                    matches!(ruling.action, Action::Deny(e) if e == errno),
                                    "{context}: refused {errno} in the kernel, the gate rules {:?}",
                                    ruling.action
                                );
                            }
                        }
                        Placement::Supervisor => {}
                    }
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
