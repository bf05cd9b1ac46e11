//! Which fields of the spec accelgate honours: every other field that bears on security is
//! refused by name, so that nothing is silently ignored (docs/run.md lists them all).

use std::collections::HashMap;

use oci_spec::runtime::{LinuxNamespaceType, LinuxPersonalityDomain, Process, Spec};

use super::BootError;
use super::lsm::Lsm;

/// Namespace types that may be joined by `path`. Joining a mount namespace would apply the
/// plan inside another container; a user namespace by path would need its id maps: refused.
const JOINABLE: [LinuxNamespaceType; 5] = [
    LinuxNamespaceType::Network,
    LinuxNamespaceType::Ipc,
    LinuxNamespaceType::Uts,
    LinuxNamespaceType::Pid,
    LinuxNamespaceType::Cgroup,
];

/// IPC sysctls that live in the ipc namespace (`ipc/ipc_sysctl.c`, `ipc/mq_sysctl.c`).
const IPC_SYSCTLS: [&str; 8] = [
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
];

/// UTS sysctls (`kernel/utsname_sysctl.c`).
const UTS_SYSCTLS: [&str; 2] = ["kernel.hostname", "kernel.domainname"];

fn refuse(field: impl Into<String>, reason: impl Into<String>) -> BootError {
    BootError::InvalidField {
        field: field.into(),
        reason: reason.into(),
    }
}

fn not_supported(field: &str) -> BootError {
    refuse(
        field,
        "not supported by accelgate; remove it or use another runtime",
    )
}

/// Refuses what accelgate does not apply to a process (`field` names it: `process`, or the
/// file `exec --process` read).
pub fn check_process(process: &Process, field: &str) -> Result<(), BootError> {
    // Applied where the module is active (boot::process), else refused: a label that would
    // not be applied is a confinement the spec's author does not get.
    for (label, name, lsm) in [
        (process.apparmor_profile(), "apparmorProfile", Lsm::AppArmor),
        (process.selinux_label(), "selinuxLabel", Lsm::SeLinux),
    ] {
        if label.as_deref().is_some_and(|s| !s.is_empty()) && !lsm.active() {
            return Err(refuse(
                format!("{field}.{name}"),
                format!(
                    "{} is not active in this kernel, so it cannot be applied",
                    lsm.name()
                ),
            ));
        }
    }
    if process.io_priority().is_some() {
        return Err(not_supported(&format!("{field}.ioPriority")));
    }
    if process.scheduler().is_some() {
        return Err(not_supported(&format!("{field}.scheduler")));
    }
    if process.exec_cpu_affinity().is_some() {
        return Err(not_supported(&format!("{field}.execCPUAffinity")));
    }
    Ok(())
}

/// Refuses what accelgate does not implement, and checks what it implements but must bound
/// (sysctl keys, namespaces by path, personality).
pub fn check_supported(spec: &Spec) -> Result<(), BootError> {
    if spec.vm().is_some() {
        return Err(not_supported("vm"));
    }
    for (present, field) in [
        (spec.windows().is_some(), "windows"),
        (spec.solaris().is_some(), "solaris"),
        (spec.zos().is_some(), "zos"),
    ] {
        if present {
            return Err(refuse(
                field,
                "for another operating system; accelgate runs Linux containers",
            ));
        }
    }
    for (index, mount) in spec.mounts().iter().flatten().enumerate() {
        for (present, name) in [
            (mount.uid_mappings().is_some(), "uidMappings"),
            (mount.gid_mappings().is_some(), "gidMappings"),
        ] {
            if present {
                return Err(refuse(
                    format!("mounts[{index}].{name}"),
                    "idmapped mounts are not supported by accelgate",
                ));
            }
        }
    }
    if let Some(process) = spec.process() {
        check_process(process, "process")?;
    }
    let Some(linux) = spec.linux() else {
        return Ok(());
    };
    if linux
        .mount_label()
        .as_deref()
        .is_some_and(|s| !s.is_empty())
    {
        return Err(refuse(
            "linux.mountLabel",
            "SELinux mount labels (context= on the container's mounts) are not applied by accelgate",
        ));
    }
    if linux.intel_rdt().is_some() {
        return Err(not_supported("linux.intelRdt"));
    }
    if linux.memory_policy().is_some() {
        return Err(not_supported("linux.memoryPolicy"));
    }
    if linux.time_offsets().is_some() {
        return Err(not_supported("linux.timeOffsets"));
    }
    if linux.net_devices().is_some() {
        return Err(not_supported("linux.netDevices"));
    }
    if let Some(propagation) = linux.rootfs_propagation() {
        if !["slave", "rslave"].contains(&propagation.as_str()) {
            return Err(refuse(
                "linux.rootfsPropagation",
                format!(
                    "{propagation:?}: accelgate always makes the container's mounts a recursive slave"
                ),
            ));
        }
    }
    if let Some(resources) = linux.resources() {
        let memory = resources.memory().as_ref();
        let cpu = resources.cpu().as_ref();
        let set = [
            (
                "memory.kernel",
                memory.is_some_and(|m| m.kernel().is_some()),
            ),
            (
                "memory.kernelTCP",
                memory.is_some_and(|m| m.kernel_tcp().is_some()),
            ),
            (
                "memory.useHierarchy",
                memory.is_some_and(|m| m.use_hierarchy().is_some()),
            ),
            (
                "memory.checkBeforeUpdate",
                memory.is_some_and(|m| m.check_before_update().is_some()),
            ),
            ("cpu.idle", cpu.is_some_and(|c| c.idle().is_some())),
            ("cpu.burst", cpu.is_some_and(|c| c.burst().is_some())),
            (
                "cpu.realtimeRuntime",
                cpu.is_some_and(|c| c.realtime_runtime().is_some()),
            ),
            (
                "cpu.realtimePeriod",
                cpu.is_some_and(|c| c.realtime_period().is_some()),
            ),
            ("network", resources.network().is_some()),
            ("rdma", resources.rdma().is_some()),
        ];
        if let Some((name, _)) = set.iter().find(|(_, present)| *present) {
            return Err(refuse(
                format!("linux.resources.{name}"),
                "not applied (docs/run.md lists the resources that are)",
            ));
        }
    }
    if let Some(personality) = linux.personality() {
        if personality.flags().as_ref().is_some_and(|f| !f.is_empty()) {
            return Err(refuse(
                "linux.personality.flags",
                "no personality flags are supported",
            ));
        }
        if personality.domain() == LinuxPersonalityDomain::PerLinux32
            && !cfg!(any(target_arch = "x86_64", target_arch = "aarch64"))
        {
            return Err(refuse(
                "linux.personality.domain",
                "LINUX32 needs a 64-bit host",
            ));
        }
    }
    let namespaces = linux.namespaces().clone().unwrap_or_default();
    for (index, namespace) in namespaces.iter().enumerate() {
        if namespace.path().is_some() && !JOINABLE.contains(&namespace.typ()) {
            return Err(refuse(
                format!("linux.namespaces[{index}].path"),
                format!(
                    "joining an existing {} namespace is not supported (network, ipc, uts, pid and cgroup are)",
                    namespace.typ()
                ),
            ));
        }
        if namespace.typ() == LinuxNamespaceType::Time {
            return Err(not_supported(&format!("linux.namespaces[{index}]")));
        }
    }
    let new_namespace = |typ: LinuxNamespaceType| {
        namespaces
            .iter()
            .any(|n| n.typ() == typ && n.path().is_none())
    };
    let joined = |typ: LinuxNamespaceType| {
        namespaces
            .iter()
            .any(|n| n.typ() == typ && n.path().is_some())
    };
    if joined(LinuxNamespaceType::Uts) && (spec.hostname().is_some() || spec.domainname().is_some())
    {
        return Err(refuse(
            "hostname",
            "the uts namespace is joined by path; its names belong to whoever made it",
        ));
    }
    // ipc and uts are always new unless joined by path (launch); net only when listed.
    let sysctls: HashMap<String, String> = linux.sysctl().clone().unwrap_or_default();
    let mut keys: Vec<&String> = sysctls.keys().collect();
    keys.sort();
    for key in keys {
        let field = format!("linux.sysctl[{key:?}]");
        if !valid_sysctl_name(key) {
            return Err(refuse(field, "not a sysctl name"));
        }
        let namespace = if IPC_SYSCTLS.contains(&key.as_str()) || key.starts_with("fs.mqueue.") {
            (!joined(LinuxNamespaceType::Ipc)).then_some("ipc")
        } else if UTS_SYSCTLS.contains(&key.as_str()) {
            (!joined(LinuxNamespaceType::Uts)).then_some("uts")
        } else if key.starts_with("net.") {
            new_namespace(LinuxNamespaceType::Network).then_some("network")
        } else {
            return Err(refuse(
                field,
                "not a namespaced sysctl; it would change the host",
            ));
        };
        if namespace.is_none() {
            return Err(refuse(
                field,
                "needs a new namespace of its own (it would change a namespace the container shares)",
            ));
        }
    }
    Ok(())
}

/// `a.b_c.d-e`: dot-separated components of letters, digits, `_` and `-`, never `.` or `..`
/// (a key becomes a path under `/proc/sys`).
fn valid_sysctl_name(key: &str) -> bool {
    !key.is_empty()
        && key.split('.').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: serde_json::Value) -> Spec {
        let mut base = serde_json::json!({"ociVersion": "1.0.2"});
        base.as_object_mut()
            .unwrap()
            .extend(json.as_object().unwrap().clone());
        serde_json::from_value(base).unwrap()
    }

    fn error(json: serde_json::Value) -> String {
        check_supported(&spec(json)).unwrap_err().to_string()
    }

    #[test]
    fn unimplemented_fields_are_named() {
        let cases = [
            (
                serde_json::json!({"linux": {"resources": {"memory": {"kernel": 1000000}}}}),
                "linux.resources.memory.kernel",
            ),
            (
                serde_json::json!({"linux": {"resources": {"cpu": {"idle": 1}}}}),
                "linux.resources.cpu.idle",
            ),
            (
                serde_json::json!({"linux": {"resources": {"network": {"classID": 10}}}}),
                "linux.resources.network",
            ),
            (
                serde_json::json!({"linux": {"intelRdt": {"closID": "x"}}}),
                "linux.intelRdt",
            ),
            (
                serde_json::json!({"mounts": [{"destination": "/m", "type": "bind", "source": "/tmp",
                    "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}]}]}),
                "mounts[0].uidMappings",
            ),
            (
                serde_json::json!({"windows": {"layerFolders": []}}),
                "windows",
            ),
            (
                serde_json::json!({"linux": {"namespaces": [{"type": "mount", "path": "/proc/1/ns/mnt"}]}}),
                "linux.namespaces[0].path",
            ),
            (
                serde_json::json!({"linux": {"rootfsPropagation": "shared"}}),
                "linux.rootfsPropagation",
            ),
            (
                serde_json::json!({"linux": {"personality": {"domain": "LINUX", "flags": ["x"]}}}),
                "linux.personality.flags",
            ),
        ];
        for (json, field) in cases {
            let err = error(json);
            assert!(err.starts_with(field), "{field}: {err}");
        }
    }

    #[test]
    fn only_namespaced_sysctls_pass() {
        let with = |sysctl: serde_json::Value, namespaces: serde_json::Value| {
            check_supported(&spec(
                serde_json::json!({"linux": {"sysctl": sysctl, "namespaces": namespaces}}),
            ))
        };
        let net = serde_json::json!([{"type": "network"}]);
        assert!(
            with(
                serde_json::json!({"kernel.shmmax": "1", "fs.mqueue.msg_max": "5", "kernel.domainname": "d", "net.ipv4.ip_forward": "1"}),
                net.clone()
            )
            .is_ok()
        );
        let host_net = with(
            serde_json::json!({"net.ipv4.ip_forward": "1"}),
            serde_json::json!([]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            host_net.contains("linux.sysctl[\"net.ipv4.ip_forward\"]"),
            "{host_net}"
        );
        for key in [
            "vm.swappiness",
            "kernel.pid_max",
            "net..x",
            "net.ipv4/../../x",
        ] {
            let err = with(serde_json::json!({ key: "1" }), net.clone())
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{err}");
        }
    }

    #[test]
    fn lsm_labels_are_refused_only_where_the_module_is_not_active() {
        for (json, field, lsm) in [
            (
                serde_json::json!({"process": {"cwd": "/", "user": {"uid": 0, "gid": 0}, "apparmorProfile": "x"}}),
                "process.apparmorProfile",
                Lsm::AppArmor,
            ),
            (
                serde_json::json!({"process": {"cwd": "/", "user": {"uid": 0, "gid": 0}, "selinuxLabel": "system_u:system_r:container_t:s0"}}),
                "process.selinuxLabel",
                Lsm::SeLinux,
            ),
        ] {
            match check_supported(&spec(json)) {
                Ok(()) => assert!(lsm.active(), "{field} accepted without {}", lsm.name()),
                Err(e) => {
                    assert!(
                        !lsm.active(),
                        "{field} refused with {} active: {e}",
                        lsm.name()
                    );
                    assert!(e.to_string().contains(field), "{e}");
                    assert!(e.to_string().contains("is not active"), "{e}");
                }
            }
        }
    }
}
