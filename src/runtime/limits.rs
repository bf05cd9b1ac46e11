//! cgroup v1 limits from `linux.resources`: memory, pids and cpu (what `compile` lets through;
//! everything else there is refused by name before).

use oci_spec::runtime::Spec;

/// One value to write in a controller's cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    /// The v1 controller (`memory`, `pids`, `cpu`).
    pub controller: &'static str,
    /// The file in the cgroup.
    pub file: &'static str,
    /// What to write.
    pub value: String,
    /// The spec field it comes from, for errors.
    pub field: &'static str,
}

/// The spec's limits, in the order they must be written (a period before its quota, the
/// memory limit before memory+swap).
pub fn limits(spec: &Spec) -> Vec<Limit> {
    let mut out = Vec::new();
    let Some(resources) = spec.linux().as_ref().and_then(|l| l.resources().as_ref()) else {
        return out;
    };
    let mut push = |controller, file, value: Option<String>, field| {
        if let Some(value) = value {
            out.push(Limit {
                controller,
                file,
                value,
                field,
            });
        }
    };
    let text = |v: Option<i64>| v.map(|v| v.to_string());
    if let Some(memory) = resources.memory() {
        push(
            "memory",
            "memory.limit_in_bytes",
            text(memory.limit()),
            "linux.resources.memory.limit",
        );
        push(
            "memory",
            "memory.soft_limit_in_bytes",
            text(memory.reservation()),
            "linux.resources.memory.reservation",
        );
        push(
            "memory",
            "memory.memsw.limit_in_bytes",
            text(memory.swap()),
            "linux.resources.memory.swap",
        );
        push(
            "memory",
            "memory.swappiness",
            memory.swappiness().map(|v| v.to_string()),
            "linux.resources.memory.swappiness",
        );
        push(
            "memory",
            "memory.oom_control",
            memory.disable_oom_killer().map(|d| u8::from(d).to_string()),
            "linux.resources.memory.disableOOMKiller",
        );
    }
    if let Some(pids) = resources.pids() {
        let limit = pids.limit();
        push(
            "pids",
            "pids.max",
            Some(if limit > 0 {
                limit.to_string()
            } else {
                "max".into()
            }),
            "linux.resources.pids.limit",
        );
    }
    if let Some(cpu) = resources.cpu() {
        push(
            "cpu",
            "cpu.shares",
            cpu.shares().map(|v| v.to_string()),
            "linux.resources.cpu.shares",
        );
        push(
            "cpu",
            "cpu.cfs_period_us",
            cpu.period().map(|v| v.to_string()),
            "linux.resources.cpu.period",
        );
        push(
            "cpu",
            "cpu.cfs_quota_us",
            text(cpu.quota()),
            "linux.resources.cpu.quota",
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_come_in_write_order() {
        let spec: Spec = serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2",
            "linux": {"resources": {
                "memory": {"limit": 67108864, "swap": 134217728},
                "pids": {"limit": 0},
                "cpu": {"quota": 50000, "period": 100000, "shares": 512}
            }}
        }))
        .unwrap();
        let written: Vec<(&str, String)> = limits(&spec)
            .into_iter()
            .map(|l| (l.file, l.value))
            .collect();
        assert_eq!(
            written,
            [
                ("memory.limit_in_bytes", "67108864".to_owned()),
                ("memory.memsw.limit_in_bytes", "134217728".to_owned()),
                ("pids.max", "max".to_owned()),
                ("cpu.shares", "512".to_owned()),
                ("cpu.cfs_period_us", "100000".to_owned()),
                ("cpu.cfs_quota_us", "50000".to_owned()),
            ]
        );
    }
}
