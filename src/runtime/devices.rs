//! The device cgroup (cgroup v1 `devices` controller): the sandbox may open only the device
//! nodes its plan makes, whatever capabilities it holds (a `CAP_MKNOD` workload cannot make and
//! open a host disk or `/dev/kmsg`).

use std::path::Path;

use oci_spec::runtime::Spec;

use super::RuntimeError;
use crate::plan::PlannedDevice;

/// Device rules every sandbox needs beyond its planned nodes: its own pseudo-terminals.
const PTY_RULES: [&str; 2] = ["c 136:* rwm", "c 5:2 rwm"];

/// One `devices.allow` or `devices.deny` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRule {
    allow: bool,
    rule: String,
}

impl DeviceRule {
    /// The file and the line to write to it.
    pub fn write(&self) -> (String, String) {
        let file = if self.allow {
            "devices.allow"
        } else {
            "devices.deny"
        };
        (file.to_owned(), self.rule.clone())
    }
}

/// Whether `root` is a v1 devices hierarchy.
pub fn available(root: &Path) -> bool {
    root.join("devices.allow").exists()
}

/// The rules for a sandbox with `devices` (its plan's nodes): everything denied, then the spec's `linux.resources.devices` in
/// order, then each planned device node and the sandbox's pseudo-terminals.
pub fn rules(spec: &Spec, devices: &[PlannedDevice]) -> Result<Vec<DeviceRule>, RuntimeError> {
    let mut rules = vec![DeviceRule {
        allow: false,
        rule: "a *:* rwm".into(),
    }];
    let spec_rules = spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().as_ref())
        .and_then(|r| r.devices().clone())
        .unwrap_or_default();
    for (index, rule) in spec_rules.iter().enumerate() {
        let number = |n: Option<i64>| n.filter(|n| *n >= 0).map_or("*".into(), |n| n.to_string());
        let kind = rule
            .typ()
            .map_or_else(|| "a".to_owned(), |t| t.as_str().to_owned());
        let access = rule.access().clone().unwrap_or_else(|| "rwm".into());
        if !["a", "b", "c"].contains(&kind.as_str())
            || access.is_empty()
            || !access.chars().all(|c| "rwm".contains(c))
        {
            return Err(RuntimeError::Unsupported {
                field: format!("linux.resources.devices[{index}]"),
                reason: format!("type {kind:?} with access {access:?} is not a device rule"),
            });
        }
        rules.push(DeviceRule {
            allow: rule.allow(),
            rule: format!(
                "{kind} {}:{} {access}",
                number(rule.major()),
                number(rule.minor())
            ),
        });
    }
    for device in devices {
        let kind = match device.kind {
            'b' => 'b',
            'c' | 'u' => 'c',
            _ => continue,
        };
        rules.push(DeviceRule {
            allow: true,
            rule: format!("{kind} {}:{} rwm", device.major, device.minor),
        });
    }
    rules.extend(PTY_RULES.iter().map(|rule| DeviceRule {
        allow: true,
        rule: (*rule).to_owned(),
    }));
    Ok(rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rules_deny_all_then_allow_the_plans_nodes() {
        let spec: Spec = serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2",
            "linux": {"resources": {"devices": [
                {"allow": false, "access": "rwm"},
                {"allow": true, "type": "c", "major": 10, "access": "r"}
            ]}}
        }))
        .unwrap();
        let null = PlannedDevice {
            path: "/dev/null".into(),
            kind: 'c',
            major: 1,
            minor: 3,
            mode: 0o666,
            uid: 0,
            gid: 0,
        };
        let rules: Vec<(bool, String)> = rules(&spec, &[null])
            .unwrap()
            .into_iter()
            .map(|r| (r.allow, r.rule))
            .collect();
        assert_eq!(
            rules,
            [
                (false, "a *:* rwm".to_owned()),
                (false, "a *:* rwm".to_owned()),
                (true, "c 10:* r".to_owned()),
                (true, "c 1:3 rwm".to_owned()),
                (true, "c 136:* rwm".to_owned()),
                (true, "c 5:2 rwm".to_owned()),
            ]
        );
    }
}
