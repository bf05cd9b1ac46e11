//! `update`: new limits for a living container, written in its cgroups by the writers `create`
//! uses (`limits::v1` on v1 and hybrid hosts, `limits::v2` on unified ones). A v1 controller
//! the container had no cgroup in yet gets one beside its others, with its processes moved in.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxBuilder, LinuxResources, Spec};

use super::RuntimeError;
use super::cgroup::Cgroup;
use super::commands::processes;
use super::container::{Container, StateRoot};
use super::hierarchy::{CgroupMode, Hierarchies};
use super::limits::{self, Limit};
use super::placement::{enable_controllers, inherit_cpuset, v2_controllers, write_limit};
use super::state::Status;

fn refuse(field: impl Into<String>, reason: impl Into<String>) -> RuntimeError {
    RuntimeError::Unsupported {
        field: field.into(),
        reason: reason.into(),
    }
}

/// `update`: applies `resources` to container `id`'s cgroups. Fields accelgate does not
/// apply are refused by name before anything is written.
pub fn update(root: &StateRoot, id: &str, resources: &LinuxResources) -> Result<(), RuntimeError> {
    let _lock = root.lock()?;
    let mut container = root.load(id)?;
    if container.status() == Status::Stopped {
        return Err(RuntimeError::Container {
            id: id.to_owned(),
            reason: "is stopped; only a living container is updated".into(),
        });
    }
    if resources.devices().is_some() {
        return Err(refuse(
            "linux.resources.devices",
            "update does not change the device rules",
        ));
    }
    let linux = LinuxBuilder::default()
        .resources(resources.clone())
        .build()
        .map_err(|e| refuse("linux.resources", e.to_string()))?;
    let mut spec = Spec::default();
    spec.set_linux(Some(linux));
    spec.set_process(None);
    crate::boot::check_supported(&spec)?;
    let hierarchies = Hierarchies::read();
    match hierarchies.mode() {
        Some(CgroupMode::Unified) => update_unified(&hierarchies, &container, resources),
        Some(_) => update_v1(root, &hierarchies, &mut container, resources),
        None => Err(refuse("linux.resources", "this host mounts no cgroups")),
    }
}

/// cgroup v2: the limits in the container's one cgroup, their controllers enabled above it.
fn update_unified(
    hierarchies: &Hierarchies,
    container: &Container,
    resources: &LinuxResources,
) -> Result<(), RuntimeError> {
    let writes = limits::v2(resources)?;
    let Some(mount) = hierarchies.unified.as_ref().map(|h| h.mount.as_path()) else {
        return Err(refuse("linux.resources", "this host mounts no cgroup2"));
    };
    let Some(cgroup) = container
        .cgroups
        .iter()
        .find(|c| c.path().starts_with(mount))
    else {
        return Err(RuntimeError::Container {
            id: container.id.clone(),
            reason: format!("has no cgroup in {}", mount.display()),
        });
    };
    enable_controllers(mount, cgroup.path(), &v2_controllers(&writes))?;
    writes
        .iter()
        .try_for_each(|limit| write_limit(cgroup, limit))
}

/// cgroup v1: each controller's limits in the container's cgroup there, made when missing.
fn update_v1(
    root: &StateRoot,
    hierarchies: &Hierarchies,
    container: &mut Container,
    resources: &LinuxResources,
) -> Result<(), RuntimeError> {
    let mut by_controller: BTreeMap<String, Vec<Limit>> = BTreeMap::new();
    for limit in limits::v1(resources)? {
        by_controller
            .entry(limit.controller.clone())
            .or_default()
            .push(limit);
    }
    let mut mounts = Vec::new();
    for (controller, writes) in &by_controller {
        match hierarchies.v1.get(controller) {
            Some(hierarchy) => mounts.push(hierarchy.mount.clone()),
            None => {
                return Err(refuse(
                    writes[0].field.clone(),
                    format!("this host mounts no cgroup v1 {controller} hierarchy"),
                ));
            }
        }
    }
    // The container's cgroup path, from the root of a v1 hierarchy it has a cgroup in.
    let relative: Option<PathBuf> = container.cgroups.iter().find_map(|cgroup| {
        hierarchies.v1.values().find_map(|h| {
            let below = cgroup.path().strip_prefix(&h.mount).ok()?;
            Some(Path::new("/").join(below))
        })
    });
    let pids = processes(container, true);
    for ((controller, writes), mount) in by_controller.iter().zip(mounts) {
        let existing = container
            .cgroups
            .iter()
            .position(|c| c.path().starts_with(&mount));
        let index = match (existing, &relative) {
            (Some(index), _) => index,
            (None, Some(relative)) => {
                let cgroup = Cgroup::make(&mount, relative)?;
                container.cgroups.push(cgroup);
                // Recorded before anything else can fail, so that `delete` removes it.
                root.save(container)?;
                container.cgroups.len() - 1
            }
            (None, None) => {
                return Err(RuntimeError::Container {
                    id: container.id.clone(),
                    reason: "has no cgroup to place new limits beside".into(),
                });
            }
        };
        let cgroup = &container.cgroups[index];
        let new = existing.is_none();
        if new && controller == "cpuset" {
            inherit_cpuset(cgroup)?;
        }
        for limit in writes {
            write_limit(cgroup, limit)?;
        }
        if new {
            // Limited before they are in it.
            for pid in &pids {
                cgroup.move_process(*pid)?;
            }
        }
    }
    Ok(())
}
