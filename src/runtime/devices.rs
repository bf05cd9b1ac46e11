//! The device cgroup (cgroup v1 `devices` controller): the sandbox may open only the device
//! nodes its plan makes, whatever capabilities it holds (a `CAP_MKNOD` workload cannot make and
//! open a host disk or `/dev/kmsg`).

use std::io;
use std::path::{Path, PathBuf};

use nix::unistd::Pid;
use oci_spec::runtime::Spec;

use super::RuntimeError;
use crate::plan::PlannedDevice;

/// Where the host mounts the v1 devices controller.
pub const DEVICE_CGROUP_ROOT: &str = "/sys/fs/cgroup/devices";

/// Device rules every sandbox needs beyond its planned nodes: its own pseudo-terminals.
const PTY_RULES: [&str; 2] = ["c 136:* rwm", "c 5:2 rwm"];

/// A device cgroup made (or joined) for one sandbox; kept in a container's state until
/// `delete`.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct DeviceCgroup {
    path: PathBuf,
    created: Vec<PathBuf>,
}

/// One `devices.allow` or `devices.deny` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRule {
    allow: bool,
    rule: String,
}

impl DeviceCgroup {
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
            let number =
                |n: Option<i64>| n.filter(|n| *n >= 0).map_or("*".into(), |n| n.to_string());
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

    /// Makes the cgroup `relative` under `root` (or takes the existing one, which is then left
    /// in place at the end) and writes `rules`.
    pub fn create(
        root: &Path,
        relative: &Path,
        rules: &[DeviceRule],
    ) -> Result<Self, RuntimeError> {
        let path = root.join(relative.strip_prefix("/").unwrap_or(relative));
        let error = |what: String, source: io::Error| RuntimeError::Cgroup {
            path: path.clone(),
            what,
            source,
        };
        // The directories this makes, deepest first, to remove at the end.
        let created: Vec<PathBuf> = path
            .ancestors()
            .take_while(|dir| *dir != root && !dir.exists())
            .map(Path::to_path_buf)
            .collect();
        std::fs::create_dir_all(&path).map_err(|e| error("create".into(), e))?;
        let cgroup = Self {
            path: path.clone(),
            created,
        };
        for rule in rules {
            let file = if rule.allow {
                "devices.allow"
            } else {
                "devices.deny"
            };
            if let Err(e) = std::fs::write(path.join(file), &rule.rule) {
                let failure = error(format!("write {:?} to {file}", rule.rule), e);
                cgroup.remove();
                return Err(failure);
            }
        }
        Ok(cgroup)
    }

    /// The processes in the cgroup.
    pub fn processes(&self) -> Vec<Pid> {
        std::fs::read_to_string(self.path.join("cgroup.procs"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|pid| pid.parse().ok().map(Pid::from_raw))
            .collect()
    }

    /// Moves `pid` into the cgroup.
    pub fn add(&self, pid: Pid) -> Result<(), RuntimeError> {
        std::fs::write(self.path.join("cgroup.procs"), pid.to_string()).map_err(|source| {
            RuntimeError::Cgroup {
                path: self.path.clone(),
                what: format!("add process {pid}"),
                source,
            }
        })
    }

    /// Removes what this sandbox made of the cgroup's path (its processes are gone; a dying one
    /// can keep it busy for a moment). A parent another sandbox uses stays.
    pub fn remove(self) {
        for (depth, dir) in self.created.iter().enumerate() {
            let mut tries = 0;
            loop {
                match std::fs::remove_dir(dir) {
                    Ok(()) => break,
                    Err(e)
                        if depth == 0 && e.raw_os_error() == Some(libc::EBUSY) && tries < 100 =>
                    {
                        tries += 1;
                        std::thread::sleep(std::time::Duration::from_millis(10));
                    }
                    Err(e) if depth == 0 => {
                        eprintln!(
                            "warning: cannot remove the device cgroup {}: {e}",
                            dir.display()
                        );
                        return;
                    }
                    Err(_) => return,
                }
            }
        }
    }
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
        let rules: Vec<(bool, String)> = DeviceCgroup::rules(&spec, &[null])
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
