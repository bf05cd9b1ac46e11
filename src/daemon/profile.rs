//! `accelgate seccomp-profile`: the gate's routing as an OCI `linux.seccomp` object, for runc,
//! crun and the engines above them, with `listenerPath` naming the daemon's socket.
//!
//! The routing is the one the gate's own filter is built from ([`Gate::filter_spec`]); what an
//! OCI profile can say differs in three ways, each handled here:
//! - libseccomp compares 64-bit arguments, the kernel's ioctl takes a 32-bit cmd: every
//!   comparison is `SCMP_CMP_MASKED_EQ` on the low 32 bits (libseccomp then tests the high word
//!   against a zero mask), so high garbage bits neither escape a rule nor change its match.
//! - Rules apply to every architecture the profile lists, so the kernel cannot allow a number
//!   natively while refusing it through `int 0x80`: numbers the routing allows in the kernel go
//!   to the supervisor too, which continues native calls and refuses compat and x32 ones with
//!   EPERM, as the gate's filter does. No accelerator number is left to the default action.
//! - Rules are unordered: each family's magic gets one rule with the placement of the numbers
//!   its table does not list, and each listed number with another placement an exact rule.
//!   libseccomp 2.5 tests the exact ones first (it orders a level by datum, highest first, and
//!   an owned number is never below its magic's datum but for `_IO(magic, 0)`, which no family
//!   places apart). Were the order reversed, a listed number would be refused, never allowed:
//!   every owned number ends in a refusal or the supervisor, whatever the order.
//! - NVIDIA's frontend reads only a number's nr and size, so every number with one of its nrs
//!   goes to the supervisor (one masked rule per nr); UVM's plain numbers likewise. A number
//!   with another family's type byte and one of NVIDIA's nrs meets that family's rule first and
//!   is refused where the gate's own filter would ask the supervisor: on an NVIDIA file that is
//!   a call with a type byte no NVIDIA library uses, and it fails closed.

use std::path::Path;

use serde_json::{Value, json};

use super::DaemonError;
use super::state::Metadata;
use crate::family::Owned;
use crate::supervisor::filter::{Arch, FilterSpec};
use crate::supervisor::routing::Placement;
use crate::supervisor::{Gate, Mode};

/// The syscalls a profile routes besides ioctl (with simulated devices).
const OPENS: [&str; 3] = ["open", "openat", "openat2"];

/// What the profile is for.
#[derive(Debug, Clone)]
pub struct ProfileOptions<'a> {
    /// The daemon's agent socket.
    pub socket: &'a Path,
    /// The policy the daemon applies to the container.
    pub policy: Mode,
    /// Whether the daemon simulates the devices (opens are routed).
    pub simulate: bool,
    /// A profile to add the gate's rules to, with its path for messages.
    pub base: Option<(&'a Path, Value)>,
}

/// The `linux.seccomp` object for containers served by the daemon with `gate`.
pub fn profile(gate: &Gate, options: ProfileOptions<'_>) -> Result<Value, DaemonError> {
    let spec = gate.filter_spec(options.policy, options.simulate);
    let mut rules = ioctl_rules(&spec)?;
    if spec.route_opens {
        rules.push(json!({"names": OPENS, "action": "SCMP_ACT_NOTIFY"}));
    }
    let metadata = Metadata {
        policy: options.policy,
        simulate: options.simulate,
    };
    let mut profile = match options.base {
        Some((path, base)) => merge(path, base, &spec, rules)?,
        None => json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": architectures(),
            "syscalls": rules,
        }),
    };
    profile["listenerPath"] = json!(options.socket.display().to_string());
    profile["listenerMetadata"] = json!(metadata.render());
    Ok(profile)
}

/// The native and compat architectures, as runc and crun name them.
fn architectures() -> Vec<&'static str> {
    match Arch::native() {
        Some(Arch::X86_64) => vec!["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        Some(Arch::Aarch64) => vec!["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
        None => vec![],
    }
}

fn masked_eq(mask: u32, value: u32) -> Value {
    json!({"index": 1, "value": mask, "valueTwo": value, "op": "SCMP_CMP_MASKED_EQ"})
}

/// The rule for requests matching `mask`/`value` placed at `placement`.
fn rule(mask: u32, value: u32, placement: Placement) -> Value {
    let args = [masked_eq(mask, value)];
    match placement {
        Placement::Refuse(errno) => json!({
            "names": ["ioctl"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno as i32, "args": args,
        }),
        // Allowed numbers go to the supervisor too (see the module's docs).
        Placement::Allow | Placement::Supervisor => {
            json!({"names": ["ioctl"], "action": "SCMP_ACT_NOTIFY", "args": args})
        }
    }
}

/// Where the routing sends `placement`: allowed numbers reach the supervisor.
fn in_profile(placement: Placement) -> Placement {
    match placement {
        Placement::Allow => Placement::Supervisor,
        other => other,
    }
}

/// The most numbers one segment placed apart from its family's unknown ones may hold: they are
/// listed numbers, each a rule.
const MAX_LISTED: u64 = 4096;

/// The ioctl rules: per owned magic, its unknown numbers' placement, then the exceptions.
fn ioctl_rules(spec: &FilterSpec) -> Result<Vec<Value>, DaemonError> {
    let mut rules = Vec::new();
    for route in &spec.routes {
        // The placement of a number the table does not list: the segment holding 0 is one
        // unless the family lists 0, which no magic-numbered family can.
        let Some(unknown) = route.segments.first().map(|s| in_profile(s.placement)) else {
            continue;
        };
        for owned in route.owned {
            let magic = match *owned {
                Owned::Magic(magic) => magic,
                // A driver that reads only nr and size: every number with one of its nrs goes
                // to the supervisor, which knows the file (the same bits may be another file's
                // request, so nothing of it can be refused or allowed here).
                Owned::Nrs(nrs) => {
                    for nr in nrs {
                        rules.push(rule(0xff, u32::from(*nr), Placement::Supervisor));
                    }
                    continue;
                }
                Owned::Range(low, high) => {
                    rules.extend(range_rules(route.family, low, high)?);
                    continue;
                }
            };
            let base = u32::from(magic) << 8;
            rules.push(rule(0xff00, base, unknown));
            for segment in &route.segments {
                let placement = in_profile(segment.placement);
                if placement == unknown {
                    continue;
                }
                if u64::from(segment.high - segment.low) >= MAX_LISTED {
                    return Err(DaemonError::Profile(format!(
                        "family {}: {:#x}..={:#x} is too wide to list",
                        route.family, segment.low, segment.high
                    )));
                }
                for request in (segment.low..=segment.high).filter(|r| owned.contains(*r)) {
                    if request == base {
                        return Err(DaemonError::Profile(format!(
                            "family {}: {request:#x} would tie with its magic's rule",
                            route.family
                        )));
                    }
                    rules.push(rule(0xffff_ffff, request, placement));
                }
            }
        }
    }
    Ok(rules)
}

/// Rules sending a range of plain numbers (NVIDIA UVM's) to the supervisor: one masked rule
/// where the range is an aligned block, else one rule per number.
fn range_rules(family: &str, low: u32, high: u32) -> Result<Vec<Value>, DaemonError> {
    let count = u64::from(high - low) + 1;
    if count.is_power_of_two() && u64::from(low) % count == 0 {
        let mask = !u32::try_from(count - 1).unwrap_or(u32::MAX);
        return Ok(vec![rule(mask, low, Placement::Supervisor)]);
    }
    if count > MAX_LISTED {
        return Err(DaemonError::Profile(format!(
            "family {family}: {low:#x}..={high:#x} is too wide to list"
        )));
    }
    Ok((low..=high)
        .map(|request| rule(0xffff_ffff, request, Placement::Supervisor))
        .collect())
}

/// The `_IOC_TYPE` bytes no family owns, as masked patterns (aligned blocks): what a base
/// profile that allowed every ioctl still allows.
fn unowned_types(spec: &FilterSpec) -> Vec<(u32, u32)> {
    let owned: Vec<u8> = spec
        .routes
        .iter()
        .flat_map(|r| r.owned.iter())
        .filter_map(|o| match o {
            Owned::Magic(m) => Some(*m),
            Owned::Range(..) | Owned::Nrs(_) => None,
        })
        .collect();
    let free = |t: u32| !owned.iter().any(|m| u32::from(*m) == t);
    let mut patterns = Vec::new();
    let mut t = 0u32;
    while t < 256 {
        if !free(t) {
            t += 1;
            continue;
        }
        // The largest aligned block from t that is all free.
        let mut size = 1u32;
        while t % (size * 2) == 0 && t + size * 2 <= 256 && (t..t + size * 2).all(free) {
            size *= 2;
        }
        patterns.push((0xff00 & !((size - 1) << 8), t << 8));
        t += size;
    }
    patterns
}

/// The base profile with the gate's rules: the syscalls the gate routes are taken out of the
/// base's unconditional allow rules (libseccomp lets a syscall-wide rule override every rule
/// with arguments for that syscall), and where the base denies by default, the ioctls it
/// allowed that no family owns are allowed again by type.
fn merge(
    path: &Path,
    mut base: Value,
    spec: &FilterSpec,
    rules: Vec<Value>,
) -> Result<Value, DaemonError> {
    let error = |reason: String| DaemonError::Base {
        path: path.to_path_buf(),
        reason,
    };
    // A whole config.json is read for its linux.seccomp.
    if base.get("defaultAction").is_none() {
        if let Some(seccomp) = base.pointer("/linux/seccomp") {
            base = seccomp.clone();
        }
    }
    let Some(default) = base
        .get("defaultAction")
        .and_then(Value::as_str)
        .map(str::to_owned)
    else {
        return Err(error(
            "no defaultAction: not an OCI linux.seccomp object".into(),
        ));
    };
    if base.get("listenerPath").is_some() {
        return Err(error(
            "it has a listenerPath of its own; a container has one agent".into(),
        ));
    }
    let mut routed = vec!["ioctl"];
    if spec.route_opens {
        routed.extend(OPENS);
    }
    let mut allowed: Vec<&str> = Vec::new();
    let mut kept = Vec::new();
    for mut entry in base
        .get("syscalls")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
    {
        let action = entry
            .get("action")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if action == "SCMP_ACT_NOTIFY" {
            return Err(error("it sends syscalls to an agent already".into()));
        }
        let names: Vec<String> = entry
            .get("names")
            .and_then(Value::as_array)
            .map(|n| {
                n.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let ours: Vec<&str> = routed
            .iter()
            .copied()
            .filter(|r| names.iter().any(|n| n == r))
            .collect();
        if ours.is_empty() {
            kept.push(entry);
            continue;
        }
        let has_args = entry
            .get("args")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty());
        if has_args || action != "SCMP_ACT_ALLOW" {
            return Err(error(format!(
                "a rule for {} with arguments or action {action}; accelgate routes {} itself and cannot merge it",
                ours.join(", "),
                ours.join(", ")
            )));
        }
        allowed.extend(ours.iter().copied());
        let rest: Vec<String> = names
            .into_iter()
            .filter(|n| !ours.contains(&n.as_str()))
            .collect();
        if !rest.is_empty() {
            entry["names"] = json!(rest);
            kept.push(entry);
        }
    }
    let denies_by_default = default != "SCMP_ACT_ALLOW";
    if denies_by_default && spec.route_opens {
        if let Some(missing) = OPENS.iter().find(|o| !allowed.contains(o)) {
            return Err(error(format!(
                "it does not allow {missing}; brokered opens would allow it"
            )));
        }
    }
    kept.extend(rules);
    if denies_by_default && allowed.contains(&"ioctl") {
        for (mask, value) in unowned_types(spec) {
            kept.push(json!({"names": ["ioctl"], "action": "SCMP_ACT_ALLOW", "args": [masked_eq(mask, value)]}));
        }
    }
    base["syscalls"] = json!(kept);
    if base.get("architectures").is_none() {
        base["architectures"] = json!(architectures());
    }
    Ok(base)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::families;
    use crate::supervisor::routing::RouteOptions;
    use crate::supervisor::routing::placement;
    use crate::vfs::DeviceRegistry;

    fn gate() -> Gate {
        Gate::new(families(None), DeviceRegistry::default()).unwrap()
    }

    fn options(policy: Mode, simulate: bool) -> ProfileOptions<'static> {
        ProfileOptions {
            socket: Path::new("/run/accelgate/agent.sock"),
            policy,
            simulate,
            base: None,
        }
    }

    /// What libseccomp 2.5 makes of the profile's ioctl rules for the 64-bit `arg`: each
    /// 64-bit comparison as its high and low words, rules tried by datum, highest first.
    fn action_for(profile: &Value, arg: u64) -> Option<(String, Option<i64>)> {
        let mut rules: Vec<&Value> = profile["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["names"].as_array().unwrap().iter().any(|n| n == "ioctl"))
            .collect();
        rules.sort_by_key(|r| std::cmp::Reverse(r["args"][0]["valueTwo"].as_u64().unwrap()));
        rules.into_iter().find_map(|r| {
            let (mask, datum) = (
                r["args"][0]["value"].as_u64().unwrap(),
                r["args"][0]["valueTwo"].as_u64().unwrap(),
            );
            let high = (arg >> 32) & (mask >> 32) == datum >> 32;
            let low = arg & mask & 0xffff_ffff == datum & 0xffff_ffff;
            (high && low).then(|| {
                (
                    r["action"].as_str().unwrap().to_owned(),
                    r["errnoRet"].as_i64(),
                )
            })
        })
    }

    fn expected(p: Placement) -> Option<(String, Option<i64>)> {
        Some(match in_profile(p) {
            Placement::Refuse(errno) => ("SCMP_ACT_ERRNO".into(), Some(errno as i64)),
            _ => ("SCMP_ACT_NOTIFY".into(), None),
        })
    }

    #[test]
    fn every_owned_number_gets_its_routing_whatever_its_high_bits() {
        let gate = gate();
        for policy in [Mode::Enforce, Mode::Passthrough, Mode::Audit] {
            for simulate in [false, true] {
                let profile = profile(&gate, options(policy, simulate)).unwrap();
                let route = RouteOptions {
                    mode: policy,
                    simulated: simulate,
                };
                for family in &gate.families {
                    let listed = family.requests.iter().map(|r| r.ioctl.request);
                    let Owned::Magic(magic) = family.owned[0] else {
                        panic!("a magic family")
                    };
                    let unknown = [
                        u32::from(magic) << 8 | 0x7f,
                        0xc0ff_0000 | u32::from(magic) << 8,
                    ];
                    for request in listed.chain(unknown) {
                        let want = expected(placement(family, request, route));
                        for high in [0u64, 1 << 32, 0xffff_ffff << 32] {
                            assert_eq!(
                                action_for(&profile, high | u64::from(request)),
                                want,
                                "{} {request:#x} high {high:#x} {policy} simulate={simulate}",
                                family.name
                            );
                        }
                    }
                }
                // Other ioctls are the default action's: allowed.
                assert_eq!(action_for(&profile, 0x5401), None);
                assert_eq!(action_for(&profile, (1 << 32) | 0x5401), None);
            }
        }
    }

    #[test]
    fn nvidia_numbers_go_to_the_supervisor_whatever_their_type_byte() {
        let abi = crate::nvproxy::tree::abi("580.65.06".parse().unwrap()).unwrap();
        let tables = crate::boot::NvidiaTables {
            abi,
            caps: crate::nvproxy::DriverCaps::DEFAULT,
        };
        let gate = Gate::new(families(Some(tables)), DeviceRegistry::default()).unwrap();
        let profile = profile(&gate, options(Mode::Enforce, false)).unwrap();
        let notify = Some(("SCMP_ACT_NOTIFY".to_owned(), None));
        // RM_CONTROL canonical, and with no type and direction.
        for request in [0xc020_462a_u64, 0x0020_002a, 0x8020_002a] {
            assert_eq!(action_for(&profile, request), notify, "{request:#x}");
        }
        // With another family's type byte, that family's rule comes first: refused, where the
        // gate's own filter asks the supervisor (see the module's docs).
        assert_eq!(
            action_for(&profile, 0xc020_dc2a),
            Some(("SCMP_ACT_ERRNO".to_owned(), Some(i64::from(libc::EINVAL))))
        );
        // UVM's plain numbers, UVM_INITIALIZE.
        for request in [0x21_u64, 0x3000_0001] {
            assert_eq!(action_for(&profile, request), notify, "{request:#x}");
        }
        assert_eq!(action_for(&profile, 0x5401), None);
    }

    #[test]
    fn opens_are_routed_only_for_simulated_devices() {
        let names = |p: &Value| -> Vec<String> {
            p["syscalls"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|r| r["names"].as_array().unwrap().clone())
                .map(|n| n.as_str().unwrap().to_owned())
                .collect()
        };
        let gate = gate();
        let plain = profile(&gate, options(Mode::Enforce, false)).unwrap();
        assert!(!names(&plain).contains(&"openat".to_owned()));
        let simulated = profile(&gate, options(Mode::Enforce, true)).unwrap();
        assert!(names(&simulated).contains(&"openat2".to_owned()));
        assert_eq!(simulated["listenerPath"], "/run/accelgate/agent.sock");
        assert_eq!(
            simulated["listenerMetadata"],
            "accelgate policy=enforce simulate=yes"
        );
        assert_eq!(simulated["defaultAction"], "SCMP_ACT_ALLOW");
    }

    #[test]
    fn a_base_loses_its_unconditional_ioctl_and_keeps_the_rest_by_type() {
        let base = json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [
                {"names": ["read", "ioctl", "openat", "open", "openat2"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["ioctl"], "action": "SCMP_ACT_ALLOW"}
            ]
        });
        let mut with_base = options(Mode::Enforce, true);
        with_base.base = Some((Path::new("base.json"), base));
        let merged = profile(&gate(), with_base).unwrap();
        let rules = merged["syscalls"].as_array().unwrap();
        assert_eq!(rules[0]["names"], json!(["read"]));
        assert!(
            rules
                .iter()
                .all(|r| !(r["names"] == json!(["ioctl"]) && r.get("args").is_none()))
        );
        assert_eq!(merged["architectures"], json!(["SCMP_ARCH_X86_64"]));
        // Every type byte but gasket's and VFIO's is allowed again, exactly once.
        let allowed = |t: u32| {
            rules
                .iter()
                .filter(|r| r["action"] == "SCMP_ACT_ALLOW" && r["names"] == json!(["ioctl"]))
                .filter(|r| {
                    let (mask, value) = (
                        r["args"][0]["value"].as_u64().unwrap() as u32,
                        r["args"][0]["valueTwo"].as_u64().unwrap() as u32,
                    );
                    (t << 8) & mask == value
                })
                .count()
        };
        for t in 0..256u32 {
            let want = usize::from(t != 0xdc && t != u32::from(b';'));
            assert_eq!(allowed(t), want, "type {t:#x}");
        }
    }

    #[test]
    fn bases_that_cannot_be_merged_are_refused() {
        for base in [
            json!({"syscalls": []}),
            json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/x"}),
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["ioctl"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 1, "value": 1, "op": "SCMP_CMP_EQ"}]}]}),
            json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}),
        ] {
            let mut with_base = options(Mode::Enforce, true);
            with_base.base = Some((Path::new("base.json"), base.clone()));
            assert!(profile(&gate(), with_base).is_err(), "{base}");
        }
    }
}
