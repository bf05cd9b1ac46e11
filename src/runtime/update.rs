//! `update`: new memory, pids and cpu limits for a container that runs, written in its v1
//! cgroups (made, with its processes moved in, for a controller it had no cgroup in yet).

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxBuilder, LinuxResources, Spec};

use super::RuntimeError;
use super::cgroup::Cgroup;
use super::commands::processes;
use super::container::StateRoot;
use super::limits::limits;
use super::state::Status;

/// Where the host mounts its cgroup v1 hierarchies.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The container's cgroup in `hierarchy`, and the path (below its hierarchy) of any of them.
fn find<'a>(cgroups: &'a [Cgroup], hierarchy: &Path) -> (Option<&'a Cgroup>, Option<PathBuf>) {
    let own = cgroups.iter().find(|c| c.path().starts_with(hierarchy));
    let relative = cgroups.iter().find_map(|c| {
        let below_root = c.path().strip_prefix(CGROUP_ROOT).ok()?;
        let mut parts = below_root.components();
        parts.next()?;
        Some(parts.as_path().to_path_buf())
    });
    (own, relative)
}

/// `update`: applies `resources` to container `id`'s cgroups. Fields accelgate does not
/// apply are refused by name before anything is written.
pub fn update(root: &StateRoot, id: &str, resources: &LinuxResources) -> Result<(), RuntimeError> {
    let _lock = root.lock()?;
    let mut container = root.load(id)?;
    let status = container.status();
    if status == Status::Stopped {
        return Err(RuntimeError::Container {
            id: id.to_owned(),
            reason: "is stopped; only a living container is updated".into(),
        });
    }
    if resources.devices().is_some() {
        return Err(RuntimeError::Unsupported {
            field: "linux.resources.devices".into(),
            reason: "update does not change the device cgroup".into(),
        });
    }
    let linux = LinuxBuilder::default()
        .resources(resources.clone())
        .build()
        .map_err(|e| RuntimeError::Unsupported {
            field: "linux.resources".into(),
            reason: e.to_string(),
        })?;
    let mut spec = Spec::default();
    spec.set_linux(Some(linux));
    spec.set_process(None);
    crate::boot::check_supported(&spec)?;
    let pids = processes(&container, true);
    for limit in limits(&spec) {
        let hierarchy = Path::new(CGROUP_ROOT).join(limit.controller);
        if !hierarchy.join("tasks").exists() {
            return Err(RuntimeError::Unsupported {
                field: limit.field.into(),
                reason: format!("{} is not a cgroup v1 hierarchy", hierarchy.display()),
            });
        }
        let write = [(limit.file.to_owned(), limit.value.clone())];
        match find(&container.cgroups, &hierarchy) {
            (Some(cgroup), _) => {
                let path = cgroup.path().join(limit.file);
                std::fs::write(&path, &limit.value).map_err(|source| RuntimeError::Cgroup {
                    path: cgroup.path().to_path_buf(),
                    what: format!("write {:?} to {}", limit.value, limit.file),
                    source,
                })?;
            }
            (None, Some(relative)) => {
                let cgroup = Cgroup::create(&hierarchy, &relative, &write)?;
                let moved = pids.iter().try_for_each(|pid| cgroup.add(*pid));
                container.cgroups.push(cgroup);
                // Recorded even when a move failed, so that `delete` removes it.
                root.save(&container)?;
                moved?;
            }
            (None, None) => {
                return Err(RuntimeError::Container {
                    id: id.to_owned(),
                    reason: "has no cgroup to place new limits beside".into(),
                });
            }
        }
    }
    Ok(())
}
