//! Which cgroups a sandbox gets, where, and what is written in them, by the host's mode (the
//! cgroupfs manager):
//!
//! - cgroup v1: a cgroup in the devices hierarchy (the device rules), one in the freezer's
//!   (`pause`, `resume`; runc makes one for every container too) and one in each controller's
//!   hierarchy the spec limits (controllers mounted together share one); a new cpuset cgroup
//!   starts with its parent's cpus and mems, as the kernel will not run a task in an empty one.
//! - hybrid: the same, and a cgroup in the (controller-less) cgroup2 hierarchy, so that tools
//!   that read v2 find the sandbox there too, as runc does.
//! - unified: one cgroup2 cgroup, with the limits' controllers enabled in its ancestors'
//!   `cgroup.subtree_control`, and the device rules as an eBPF program attached to it (its
//!   `cgroup.freeze` pauses it).
//!
//! `linux.cgroupsPath` is taken as runc takes it: absolute from the hierarchy's root, relative
//! under the launcher's cgroup (on cgroup v2 its parent's, which has no processes to keep
//! controllers from being enabled). Without it: `accelgate-<id>.<launcher pid>` there.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use oci_spec::runtime::{LinuxResources, Spec};

use super::RuntimeError;
use super::cgroup::Cgroup;
use super::device_program::DeviceProgram;
use super::devices::{self, DeviceRule};
use super::hierarchy::{CgroupMode, Hierarchies, Hierarchy};
use super::limits::{self, Limit};
use crate::boot::CgroupJoin;
use crate::plan::PlannedDevice;

/// One cgroup to make.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Planned {
    /// The hierarchy's mount point.
    mount: PathBuf,
    /// The cgroup, from the hierarchy's root.
    path: PathBuf,
    /// What a new cgroup needs before its limits.
    setup: Setup,
    /// `(file, value, field)` for v1 device rules, then the limits.
    writes: Vec<Limit>,
    /// cgroup v2: the device rules, as a program.
    program: Option<DeviceProgram>,
    version: Version,
}

/// The hierarchy's kind: how the sandbox's process joins the cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    V1,
    V2,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Setup {
    None,
    /// v1 cpuset: copy `cpuset.cpus` and `cpuset.mems` down into each directory made.
    InheritCpuset,
    /// cgroup v2: enable these controllers (with the first field that needs each) in every
    /// ancestor's `cgroup.subtree_control`.
    EnableControllers(BTreeMap<String, String>),
}

/// The cgroups of one sandbox, planned.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CgroupPlan {
    planned: Vec<Planned>,
}

fn refuse(field: impl Into<String>, reason: impl Into<String>) -> RuntimeError {
    RuntimeError::Unsupported {
        field: field.into(),
        reason: reason.into(),
    }
}

/// The sandbox's cgroup in `hierarchy`; `under_parent`: a relative or default path goes under
/// the launcher's cgroup's parent instead of the launcher's cgroup (cgroup v2).
fn cgroup_path(
    spec_path: Option<&Path>,
    hierarchy: &Hierarchy,
    id: &str,
    under_parent: bool,
) -> PathBuf {
    let own = &hierarchy.own;
    let base = if under_parent {
        own.parent().unwrap_or(own)
    } else {
        own
    };
    match spec_path {
        Some(path) if path.is_absolute() => path.to_path_buf(),
        Some(path) => base.join(path),
        None => base.join(format!("accelgate-{id}.{}", std::process::id())),
    }
}

fn device_writes(rules: &[DeviceRule]) -> Vec<Limit> {
    rules
        .iter()
        .map(|rule| {
            let (file, line) = rule.write();
            Limit {
                controller: "devices".into(),
                choices: vec![(file, line)],
                field: "linux.resources.devices".into(),
            }
        })
        .collect()
}

impl CgroupPlan {
    /// The cgroups for `spec`'s sandbox with `devices` (its plan's nodes), container `id`, on a
    /// host with `hierarchies`. Refused by field where the host cannot honour the spec.
    pub fn new(
        hierarchies: &Hierarchies,
        spec: &Spec,
        devices: &[PlannedDevice],
        id: &str,
    ) -> Result<Self, RuntimeError> {
        let linux = spec.linux().as_ref();
        let spec_path = linux.and_then(|l| l.cgroups_path().as_deref());
        if let Some(path) = spec_path {
            if path
                .components()
                .any(|c| !matches!(c, Component::RootDir | Component::Normal(_)))
                || path.as_os_str().is_empty()
            {
                return Err(refuse(
                    "linux.cgroupsPath",
                    format!("{}: not a cgroup path (no `.` or `..`)", path.display()),
                ));
            }
        }
        let empty = LinuxResources::default();
        let resources = linux.and_then(|l| l.resources().as_ref()).unwrap_or(&empty);
        let rules = devices::rules(spec, devices)?;
        let mut plan = Self::default();
        match hierarchies.mode() {
            Some(CgroupMode::Unified) => {
                let Some(unified) = &hierarchies.unified else {
                    return Ok(plan);
                };
                let writes = limits::v2(resources)?;
                let controllers = v2_controllers(&writes);
                plan.planned.push(Planned {
                    mount: unified.mount.clone(),
                    path: cgroup_path(spec_path, unified, id, true),
                    setup: Setup::EnableControllers(controllers),
                    writes,
                    program: Some(DeviceProgram::new(&rules)),
                    version: Version::V2,
                });
            }
            mode => {
                let legacy = |controller: &str| {
                    hierarchies
                        .v1
                        .get(controller)
                        .filter(|h| controller != "devices" || devices::available(&h.mount))
                };
                match legacy("devices") {
                    Some(hierarchy) => plan.add(Planned {
                        mount: hierarchy.mount.clone(),
                        path: cgroup_path(spec_path, hierarchy, id, false),
                        setup: Setup::None,
                        writes: device_writes(&rules),
                        program: None,
                        version: Version::V1,
                    }),
                    None if resources.devices().is_some() => {
                        return Err(refuse(
                            "linux.resources.devices",
                            "this host has no cgroup v1 devices hierarchy and no cgroup v2 one to attach a device program to",
                        ));
                    }
                    None => eprintln!(
                        "warning: no device cgroup: this host mounts no cgroup v1 devices hierarchy"
                    ),
                }
                if let Some(hierarchy) = legacy("freezer") {
                    plan.add(Planned {
                        mount: hierarchy.mount.clone(),
                        path: cgroup_path(spec_path, hierarchy, id, false),
                        setup: Setup::None,
                        writes: Vec::new(),
                        program: None,
                        version: Version::V1,
                    });
                }
                let mut by_controller: BTreeMap<String, Vec<Limit>> = BTreeMap::new();
                for limit in limits::v1(resources)? {
                    by_controller
                        .entry(limit.controller.clone())
                        .or_default()
                        .push(limit);
                }
                for (controller, writes) in by_controller {
                    let Some(hierarchy) = legacy(&controller) else {
                        return Err(refuse(
                            writes[0].field.clone(),
                            format!("this host mounts no cgroup v1 {controller} hierarchy"),
                        ));
                    };
                    plan.add(Planned {
                        mount: hierarchy.mount.clone(),
                        path: cgroup_path(spec_path, hierarchy, id, false),
                        setup: if controller == "cpuset" {
                            Setup::InheritCpuset
                        } else {
                            Setup::None
                        },
                        writes,
                        program: None,
                        version: Version::V1,
                    });
                }
                if let (Some(CgroupMode::Hybrid), Some(unified)) = (mode, &hierarchies.unified) {
                    plan.planned.push(Planned {
                        mount: unified.mount.clone(),
                        path: cgroup_path(spec_path, unified, id, false),
                        setup: Setup::None,
                        writes: Vec::new(),
                        program: None,
                        version: Version::V2,
                    });
                }
            }
        }
        Ok(plan)
    }

    /// Adds `planned`, or its writes to the cgroup planned already in its hierarchy (v1
    /// controllers mounted together, such as `cpu,cpuacct`, are one hierarchy).
    fn add(&mut self, planned: Planned) {
        match self
            .planned
            .iter_mut()
            .find(|p| p.mount == planned.mount && p.path == planned.path)
        {
            Some(existing) => {
                existing.writes.extend(planned.writes);
                if existing.setup == Setup::None {
                    existing.setup = planned.setup;
                }
            }
            None => self.planned.push(planned),
        }
    }

    /// Makes the cgroups and writes them, before the sandbox's process exists; returns how it
    /// joins them. Every cgroup made is pushed to `made` as soon as it exists, so that the
    /// caller removes them all when this fails.
    pub fn make(self, made: &mut Vec<Cgroup>) -> Result<CgroupJoin, RuntimeError> {
        self.make_with(made, &|program, path| program.attach(path))
    }

    /// [`Self::make`] with `attach` attaching device programs (tests record them).
    fn make_with(
        self,
        made: &mut Vec<Cgroup>,
        attach: &dyn Fn(&DeviceProgram, &Path) -> Result<(), RuntimeError>,
    ) -> Result<CgroupJoin, RuntimeError> {
        let mut join = CgroupJoin::default();
        for planned in self.planned {
            made.push(Cgroup::make(&planned.mount, &planned.path)?);
            let Some(cgroup) = made.last() else {
                continue;
            };
            match &planned.setup {
                Setup::None => {}
                Setup::InheritCpuset => inherit_cpuset(cgroup)?,
                Setup::EnableControllers(controllers) => {
                    enable_controllers(&planned.mount, cgroup.path(), controllers)?;
                }
            }
            for limit in &planned.writes {
                write_limit(cgroup, limit)?;
            }
            if let Some(program) = &planned.program {
                attach(program, cgroup.path())?;
            }
            if planned.version == Version::V2 {
                join.unified = Some(cgroup.path().to_path_buf());
            } else {
                join.tasks.push(cgroup.path().join("tasks"));
            }
        }
        Ok(join)
    }
}

/// Writes the first of `limit`'s choices whose file the cgroup has (the only one when there is
/// one choice: its write error names the file).
pub(super) fn write_limit(cgroup: &Cgroup, limit: &Limit) -> Result<(), RuntimeError> {
    let chosen = match limit.choices.as_slice() {
        [only] => Some(only),
        choices => choices
            .iter()
            .find(|(file, _)| cgroup.path().join(file).exists()),
    };
    let Some((file, value)) = chosen else {
        let files: Vec<&str> = limit.choices.iter().map(|(f, _)| f.as_str()).collect();
        return Err(refuse(
            limit.field.clone(),
            format!(
                "the {} cgroup has none of {} (the kernel's I/O scheduler has no weights)",
                limit.controller,
                files.join(", ")
            ),
        ));
    };
    cgroup.write(file, value, &limit.field).map_err(|e| {
        if cgroup.path().join(file).exists() {
            e
        } else {
            refuse(
                limit.field.clone(),
                format!(
                    "this host's {} cgroup has no {file}",
                    if limit.controller.is_empty() {
                        "cgroup2"
                    } else {
                        &limit.controller
                    }
                ),
            )
        }
    })
}

/// A new v1 cpuset cgroup has no cpus or mems, and takes no task until it has: each directory
/// made gets its parent's.
pub(super) fn inherit_cpuset(cgroup: &Cgroup) -> Result<(), RuntimeError> {
    for dir in cgroup.made() {
        let Some(parent) = dir.parent() else {
            continue;
        };
        for file in ["cpuset.cpus", "cpuset.mems"] {
            let read = |path: &Path| std::fs::read_to_string(path).unwrap_or_default();
            if read(&dir.join(file)).trim().is_empty() {
                let inherited = read(&parent.join(file));
                std::fs::write(dir.join(file), inherited.trim()).map_err(|source| {
                    RuntimeError::Cgroup {
                        path: dir.to_path_buf(),
                        what: format!("copy the parent's {file}"),
                        source,
                    }
                })?;
            }
        }
    }
    Ok(())
}

/// Enables `controllers` in `cgroup`'s ancestors from the hierarchy's root (`mount`) down, so
/// that the cgroup has their files. An ancestor that does not offer one refuses the field
/// that needs it.
/// The cgroup2 controllers `writes` need, each with the first field that needs it.
pub(super) fn v2_controllers(writes: &[Limit]) -> BTreeMap<String, String> {
    let mut controllers = BTreeMap::new();
    for limit in writes {
        if !limit.controller.is_empty() {
            controllers
                .entry(limit.controller.clone())
                .or_insert_with(|| limit.field.clone());
        }
    }
    controllers
}

pub(super) fn enable_controllers(
    mount: &Path,
    cgroup: &Path,
    controllers: &BTreeMap<String, String>,
) -> Result<(), RuntimeError> {
    if controllers.is_empty() {
        return Ok(());
    }
    let mut ancestors: Vec<&Path> = cgroup
        .ancestors()
        .skip(1)
        .take_while(|dir| dir.starts_with(mount))
        .collect();
    ancestors.reverse();
    for dir in ancestors {
        let offered = std::fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
        let offered: Vec<&str> = offered.split_whitespace().collect();
        for (controller, field) in controllers {
            if !offered.contains(&controller.as_str()) {
                return Err(refuse(
                    field.clone(),
                    format!(
                        "the {controller} controller is not available in {}",
                        dir.display()
                    ),
                ));
            }
        }
        let enable: Vec<String> = controllers.keys().map(|c| format!("+{c}")).collect();
        std::fs::write(dir.join("cgroup.subtree_control"), enable.join(" ")).map_err(
            |source| RuntimeError::Cgroup {
                path: dir.to_path_buf(),
                what: format!(
                    "enable {} in cgroup.subtree_control (a cgroup with processes of its own cannot)",
                    enable.join(" ")
                ),
                source,
            },
        )?;
    }
    Ok(())
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

    const HYBRID: &str = "\
32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu
34 31 0:31 / /sys/fs/cgroup/cpuset rw - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio,hugetlb rw - cgroup cgroup rw,blkio,hugetlb
41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
";

    #[test]
    fn a_hybrid_host_gets_v1_cgroups_and_a_unified_one() {
        let host = tempfile::tempdir().unwrap();
        let devices = host.path().join("sys/fs/cgroup/devices");
        std::fs::create_dir_all(&devices).unwrap();
        std::fs::write(devices.join("devices.allow"), "").unwrap();
        let hierarchies = Hierarchies::parse(HYBRID, "4:memory:/api\n0::/\n", host.path());
        let plan = CgroupPlan::new(
            &hierarchies,
            &spec(serde_json::json!({"linux": {
                "cgroupsPath": "pod/c1",
                "resources": {
                    "memory": {"limit": 1000000},
                    "cpu": {"cpus": "0"},
                    "blockIO": {"weight": 10},
                    "hugepageLimits": [{"pageSize": "2MB", "limit": 2097152}]
                }
            }})),
            &[],
            "c1",
        )
        .unwrap();
        let at: Vec<(String, &Path, &Setup)> = plan
            .planned
            .iter()
            .map(|p| {
                (
                    p.mount
                        .strip_prefix(host.path())
                        .unwrap()
                        .display()
                        .to_string(),
                    p.path.as_path(),
                    &p.setup,
                )
            })
            .collect();
        assert_eq!(
            at,
            [
                (
                    "sys/fs/cgroup/devices".to_owned(),
                    Path::new("/pod/c1"),
                    &Setup::None
                ),
                // Every container gets a freezer cgroup.
                (
                    "sys/fs/cgroup/freezer".to_owned(),
                    Path::new("/pod/c1"),
                    &Setup::None
                ),
                // blkio and hugetlb mounted together: one cgroup with both limits.
                (
                    "sys/fs/cgroup/blkio,hugetlb".to_owned(),
                    Path::new("/pod/c1"),
                    &Setup::None
                ),
                (
                    "sys/fs/cgroup/cpuset".to_owned(),
                    Path::new("/pod/c1"),
                    &Setup::InheritCpuset
                ),
                // Relative: under the launcher's own memory cgroup.
                (
                    "sys/fs/cgroup/memory".to_owned(),
                    Path::new("/api/pod/c1"),
                    &Setup::None
                ),
                (
                    "sys/fs/cgroup/unified".to_owned(),
                    Path::new("/pod/c1"),
                    &Setup::None
                ),
            ]
        );
        assert_eq!(plan.planned[0].writes[0].choices[0].1, "a *:* rwm");
        let fields: Vec<&str> = plan.planned[2]
            .writes
            .iter()
            .map(|w| w.field.as_str())
            .collect();
        assert_eq!(
            fields,
            [
                "linux.resources.blockIO.weight",
                "linux.resources.hugepageLimits[0].limit"
            ]
        );
        // No pids hierarchy here: refused by field.
        let err = CgroupPlan::new(
            &hierarchies,
            &spec(serde_json::json!({"linux": {"resources": {"pids": {"limit": 1}}}})),
            &[],
            "c1",
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("linux.resources.pids.limit"), "{err}");
        let err = CgroupPlan::new(
            &hierarchies,
            &spec(serde_json::json!({"linux": {"cgroupsPath": "/a/../../etc"}})),
            &[],
            "c1",
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("linux.cgroupsPath"), "{err}");
    }

    /// A pure cgroup v2 host, laid out in a directory: this machine is hybrid, with no
    /// controllers in its cgroup2 hierarchy, so unified mode's writes are checked here.
    #[test]
    fn a_unified_host_gets_one_cgroup_with_controllers_limits_and_a_device_program() {
        let host = tempfile::tempdir().unwrap();
        let root = host.path().join("sys/fs/cgroup");
        for dir in [root.clone(), root.join("user.slice")] {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(
                dir.join("cgroup.controllers"),
                "cpuset cpu io memory pids\n",
            )
            .unwrap();
            std::fs::write(dir.join("cgroup.subtree_control"), "").unwrap();
        }
        let hierarchies = Hierarchies::parse(
            "29 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
            "0::/user.slice/session-1.scope\n",
            host.path(),
        );
        let null = PlannedDevice {
            path: "/dev/null".into(),
            kind: 'c',
            major: 1,
            minor: 3,
            mode: 0o666,
            uid: 0,
            gid: 0,
        };
        let plan = CgroupPlan::new(
            &hierarchies,
            &spec(serde_json::json!({"linux": {"resources": {
                "memory": {"limit": 67108864, "swap": 134217728},
                "pids": {"limit": 42},
                "cpu": {"quota": 50000, "period": 100000},
                "unified": {"memory.high": "60000000"}
            }}})),
            &[null],
            "c1",
        )
        .unwrap();
        let attached = std::cell::RefCell::new(Vec::new());
        let mut made = Vec::new();
        let join = plan
            .make_with(&mut made, &|program, path| {
                attached
                    .borrow_mut()
                    .push((program.clone(), path.to_path_buf()));
                Ok(())
            })
            .unwrap();
        // Beside the launcher's session scope, not in it.
        let cgroup = root.join(format!("user.slice/accelgate-c1.{}", std::process::id()));
        assert_eq!(made.len(), 1);
        assert_eq!(made[0].path(), cgroup);
        // The sandbox's process is cloned into it.
        assert_eq!(
            join,
            CgroupJoin {
                tasks: Vec::new(),
                unified: Some(cgroup.clone())
            }
        );
        let read = |path: &Path| std::fs::read_to_string(path).unwrap();
        for dir in [&root, &root.join("user.slice")] {
            assert_eq!(
                read(&dir.join("cgroup.subtree_control")),
                "+cpu +memory +pids"
            );
        }
        for (file, value) in [
            ("memory.max", "67108864"),
            ("memory.swap.max", "67108864"),
            ("pids.max", "42"),
            ("cpu.max", "50000 100000"),
            ("memory.high", "60000000"),
        ] {
            assert_eq!(read(&cgroup.join(file)), value, "{file}");
        }
        let attached = attached.into_inner();
        assert_eq!(attached.len(), 1);
        assert_eq!(attached[0].1, cgroup);
        assert!(attached[0].0.instructions().len() > 10);
        // A controller the host does not offer refuses the field that needs it.
        let err = CgroupPlan::new(
            &hierarchies,
            &spec(serde_json::json!({"linux": {"resources": {"hugepageLimits": [{"pageSize": "2MB", "limit": 1}]}}})),
            &[],
            "c2",
        )
        .unwrap()
        .make_with(&mut made, &|_, _| Ok(()))
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("linux.resources.hugepageLimits[0].limit"),
            "{err}"
        );
        for cgroup in made {
            std::fs::remove_dir_all(cgroup.path()).unwrap();
        }
    }
}
