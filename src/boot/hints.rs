//! gVisor's pod mount hints: `dev.gvisor.spec.mount.<name>.{source,type,share,options}`
//! annotations that say a volume is shared between the containers of a pod.

use std::collections::{BTreeMap, HashMap};

use super::BootError;
use super::options;

/// Annotation prefix of a pod mount hint.
pub const MOUNT_HINT_PREFIX: &str = "dev.gvisor.spec.mount.";

/// Who may see and change a hinted volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Share {
    /// One container; nobody outside.
    Container,
    /// The containers of one pod; nobody outside.
    Pod,
    /// Also processes outside the pod (NFS and the like).
    Shared,
}

impl Share {
    /// The annotation's spelling.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Container => "container",
            Self::Pod => "pod",
            Self::Shared => "shared",
        }
    }
}

/// One hinted volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountHint {
    /// `<name>` of the annotations.
    pub name: String,
    /// The volume's host source; spec mounts with this source are the volume.
    pub source: String,
    /// `tmpfs` or `bind`.
    pub fs_type: String,
    /// Who shares it.
    pub share: Share,
    /// The master mount's options.
    pub options: Vec<String>,
}

impl MountHint {
    /// A tmpfs shared by the pod (or kept for the life of the pod for one container) is made
    /// once and bound into each container that mounts it.
    pub fn is_pod_volume(&self) -> bool {
        self.fs_type == "tmpfs" && matches!(self.share, Share::Container | Share::Pod)
    }

    /// Checks that a container's mount of this volume is no less restrictive than the master:
    /// a read-only, noexec, noatime or nosuid master cannot be mounted without that flag.
    pub fn check_compatible(&self, flags: &[String], destination: &str) -> Result<(), BootError> {
        let master = options::parse(&self.fs_type, &self.options).map_err(|reason| {
            BootError::InvalidConfig {
                name: format!("{MOUNT_HINT_PREFIX}{}.options", self.name),
                value: self.options.join(","),
                reason,
            }
        })?;
        for (flag, what) in [
            ("ro", "read-write"),
            ("noexec", "exec"),
            ("noatime", "atime"),
            ("nosuid", "suid"),
        ] {
            let master_has = master.flags.iter().any(|f| f == flag);
            if master_has && !flags.iter().any(|f| f == flag) {
                return Err(BootError::InvalidField {
                    field: format!("mounts[{destination}].options"),
                    reason: format!(
                        "cannot mount pod volume {:?} {what}: its master ({MOUNT_HINT_PREFIX}{}.options) is {flag}",
                        self.name, self.name
                    ),
                });
            }
        }
        Ok(())
    }
}

/// Reads every mount hint in the annotations.
///
/// A malformed key or two hints with one source are errors; a hint with a bad value or
/// without source, type or share is dropped, returned in `dropped` with the reason.
pub fn parse_hints(
    annotations: &HashMap<String, String>,
) -> Result<(Vec<MountHint>, Vec<String>), BootError> {
    #[derive(Default)]
    struct Partial {
        source: Option<String>,
        fs_type: Option<String>,
        share: Option<Share>,
        options: Vec<String>,
        bad: Option<String>,
    }
    let mut partial: BTreeMap<String, Partial> = BTreeMap::new();
    for (key, value) in annotations {
        let Some(rest) = key.strip_prefix(MOUNT_HINT_PREFIX) else {
            continue;
        };
        let invalid = |reason: &str| BootError::InvalidConfig {
            name: key.clone(),
            value: value.clone(),
            reason: reason.to_owned(),
        };
        let (name, field) = rest
            .split_once('.')
            .ok_or_else(|| invalid("expected <name>.<field>"))?;
        if name.is_empty() || field.contains('.') {
            return Err(invalid("expected <name>.<field>"));
        }
        let entry = partial.entry(name.to_owned()).or_default();
        match field {
            "source" if !value.is_empty() => entry.source = Some(value.clone()),
            "type" if value == "tmpfs" || value == "bind" => entry.fs_type = Some(value.clone()),
            "share" => match value.as_str() {
                "container" => entry.share = Some(Share::Container),
                "pod" => entry.share = Some(Share::Pod),
                "shared" => entry.share = Some(Share::Shared),
                _ => {
                    entry.bad = Some(format!(
                        "{key}={value:?}: share must be container, pod or shared"
                    ))
                }
            },
            "options" => entry.options = value.split(',').map(str::to_owned).collect(),
            _ => {
                entry.bad = Some(format!(
                    "{key}={value:?}: not a valid mount hint field or value"
                ))
            }
        }
    }
    let mut hints = Vec::new();
    let mut dropped = Vec::new();
    for (name, p) in partial {
        if let Some(bad) = p.bad {
            dropped.push(format!("mount hint {name:?} ignored: {bad}"));
            continue;
        }
        let (Some(source), Some(fs_type), Some(share)) = (p.source, p.fs_type, p.share) else {
            dropped.push(format!(
                "mount hint {name:?} ignored: it needs source, type and share"
            ));
            continue;
        };
        if let Some(other) = hints.iter().find(|h: &&MountHint| h.source == source) {
            return Err(BootError::InvalidConfig {
                name: format!("{MOUNT_HINT_PREFIX}{name}.source"),
                value: source,
                reason: format!(
                    "mount hints {:?} and {name:?} have the same source",
                    other.name
                ),
            });
        }
        hints.push(MountHint {
            name,
            source,
            fs_type,
            share,
            options: p.options,
        });
    }
    Ok((hints, dropped))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotations(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn reads_a_pod_volume() {
        let (hints, dropped) = parse_hints(&annotations(&[
            (
                "dev.gvisor.spec.mount.cache.source",
                "/var/lib/kubelet/pods/x/volumes/cache",
            ),
            ("dev.gvisor.spec.mount.cache.type", "tmpfs"),
            ("dev.gvisor.spec.mount.cache.share", "pod"),
            ("dev.gvisor.spec.mount.cache.options", "rw,noexec"),
        ]))
        .unwrap();
        assert!(dropped.is_empty());
        assert_eq!(hints.len(), 1);
        assert!(hints[0].is_pod_volume());
        assert_eq!(hints[0].options, ["rw", "noexec"]);
    }

    #[test]
    fn incomplete_or_bad_hints_are_dropped_and_malformed_keys_refused() {
        let (hints, dropped) = parse_hints(&annotations(&[
            ("dev.gvisor.spec.mount.a.source", "/a"),
            ("dev.gvisor.spec.mount.b.source", "/b"),
            ("dev.gvisor.spec.mount.b.type", "tmpfs"),
            ("dev.gvisor.spec.mount.b.share", "everyone"),
        ]))
        .unwrap();
        assert!(hints.is_empty());
        assert_eq!(dropped.len(), 2);
        assert!(parse_hints(&annotations(&[("dev.gvisor.spec.mount.a", "/a")])).is_err());
        assert!(parse_hints(&annotations(&[("dev.gvisor.spec.mount.a.b.c", "/a")])).is_err());
    }

    #[test]
    fn one_source_two_hints_is_an_error() {
        let pairs: Vec<(String, String)> = ["a", "b"]
            .iter()
            .flat_map(|n| {
                [
                    (
                        format!("dev.gvisor.spec.mount.{n}.source"),
                        "/same".to_owned(),
                    ),
                    (
                        format!("dev.gvisor.spec.mount.{n}.type"),
                        "tmpfs".to_owned(),
                    ),
                    (format!("dev.gvisor.spec.mount.{n}.share"), "pod".to_owned()),
                ]
            })
            .collect();
        let err = parse_hints(&pairs.into_iter().collect())
            .unwrap_err()
            .to_string();
        assert!(err.contains("same source"), "{err}");
    }

    #[test]
    fn a_replica_may_not_be_less_restrictive() {
        let hint = MountHint {
            name: "cache".into(),
            source: "/c".into(),
            fs_type: "tmpfs".into(),
            share: Share::Pod,
            options: vec!["ro".into(), "noexec".into()],
        };
        assert!(
            hint.check_compatible(&["ro".into(), "noexec".into(), "nodev".into()], "/c")
                .is_ok()
        );
        let err = hint
            .check_compatible(&["noexec".into()], "/c")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("read-write") && err.contains("mounts[/c]"),
            "{err}"
        );
        assert!(
            hint.check_compatible(&["ro".into()], "/c")
                .unwrap_err()
                .to_string()
                .contains("exec")
        );
    }
}
