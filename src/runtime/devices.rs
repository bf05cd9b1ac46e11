//! The sandbox's device rules: it may open only the device nodes its plan makes, whatever
//! capabilities it holds (a `CAP_MKNOD` workload cannot make and open a host disk or
//! `/dev/kmsg`). cgroup v1 takes them as `devices.allow`/`devices.deny` lines; cgroup v2 as
//! an eBPF program made of them (`device_program`).

use std::path::Path;

use oci_spec::runtime::Spec;

use super::RuntimeError;
use crate::plan::PlannedDevice;

/// The pseudo-terminal rules every sandbox needs beyond its planned nodes: its own ptys
/// (`c 136:*`) and `/dev/ptmx` (`c 5:2`).
const PTY_RULES: [(u32, Option<u32>); 2] = [(136, None), (5, Some(2))];

/// One device rule: who may do what with which device numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRule {
    /// Allow, or deny.
    pub allow: bool,
    /// `b` or `c`; `None` for both.
    pub kind: Option<char>,
    /// The major number; `None` for any.
    pub major: Option<u32>,
    /// The minor number; `None` for any.
    pub minor: Option<u32>,
    /// Some of `rwm`: read, write, mknod.
    pub access: String,
}

impl DeviceRule {
    fn allow(kind: char, major: u32, minor: Option<u32>) -> Self {
        Self {
            allow: true,
            kind: Some(kind),
            major: Some(major),
            minor,
            access: "rwm".into(),
        }
    }

    /// The v1 file and the line to write to it (`devices.allow`, `c 1:3 rwm`).
    pub fn write(&self) -> (String, String) {
        let file = if self.allow {
            "devices.allow"
        } else {
            "devices.deny"
        };
        let number = |n: Option<u32>| n.map_or_else(|| "*".to_owned(), |n| n.to_string());
        let line = format!(
            "{} {}:{} {}",
            self.kind.unwrap_or('a'),
            number(self.major),
            number(self.minor),
            self.access
        );
        (file.to_owned(), line)
    }
}

/// Whether `root` is a v1 devices hierarchy.
pub fn available(root: &Path) -> bool {
    root.join("devices.allow").exists()
}

/// The rules for a sandbox with `devices` (its plan's nodes), the later overriding the
/// earlier: everything denied, then the spec's `linux.resources.devices` in order, then each
/// planned device node and the sandbox's pseudo-terminals. Nothing else of the accelerator
/// classes: a chip the plan did not grant stays out of reach.
pub fn rules(spec: &Spec, devices: &[PlannedDevice]) -> Result<Vec<DeviceRule>, RuntimeError> {
    let mut rules = vec![DeviceRule {
        allow: false,
        kind: None,
        major: None,
        minor: None,
        access: "rwm".into(),
    }];
    let spec_rules = spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().as_ref())
        .and_then(|r| r.devices().clone())
        .unwrap_or_default();
    for (index, rule) in spec_rules.iter().enumerate() {
        let field = format!("linux.resources.devices[{index}]");
        // Linux device numbers: 12-bit majors, 20-bit minors.
        let number = |n: Option<i64>, name: &str, bits: u32| match n {
            None => Ok(None),
            Some(n) if n < 0 => Ok(None),
            Some(n) if n < 1 << bits => Ok(Some(n as u32)),
            Some(n) => Err(RuntimeError::Unsupported {
                field: format!("{field}.{name}"),
                reason: format!("{n} is not a device {name} number"),
            }),
        };
        let kind = rule
            .typ()
            .map_or_else(|| "a".to_owned(), |t| t.as_str().to_owned());
        let access = rule.access().clone().unwrap_or_else(|| "rwm".into());
        if !["a", "b", "c"].contains(&kind.as_str())
            || access.is_empty()
            || !access.chars().all(|c| "rwm".contains(c))
        {
            return Err(RuntimeError::Unsupported {
                field,
                reason: format!("type {kind:?} with access {access:?} is not a device rule"),
            });
        }
        rules.push(DeviceRule {
            allow: rule.allow(),
            kind: kind.chars().next().filter(|k| *k != 'a'),
            major: number(rule.major(), "major", 12)?,
            minor: number(rule.minor(), "minor", 20)?,
            access,
        });
    }
    for device in devices {
        let kind = match device.kind {
            'b' => 'b',
            'c' | 'u' => 'c',
            _ => continue,
        };
        rules.push(DeviceRule::allow(kind, device.major, Some(device.minor)));
    }
    rules.extend(
        PTY_RULES
            .iter()
            .map(|(major, minor)| DeviceRule::allow('c', *major, *minor)),
    );
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
        let rules: Vec<(String, String)> = rules(&spec, &[null])
            .unwrap()
            .iter()
            .map(DeviceRule::write)
            .collect();
        let expected = [
            ("devices.deny", "a *:* rwm"),
            ("devices.deny", "a *:* rwm"),
            ("devices.allow", "c 10:* r"),
            ("devices.allow", "c 1:3 rwm"),
            ("devices.allow", "c 136:* rwm"),
            ("devices.allow", "c 5:2 rwm"),
        ];
        assert_eq!(
            rules,
            expected.map(|(file, line)| (file.to_owned(), line.to_owned()))
        );
    }
}
