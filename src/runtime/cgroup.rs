//! One cgroup of a sandbox, in one hierarchy (a v1 controller's, or cgroup v2's): made (or
//! joined), written, joined by the sandbox's process, and removed as far as the sandbox made
//! it.

use std::path::{Path, PathBuf};

use nix::unistd::Pid;

use super::RuntimeError;
use crate::boot::CgroupJoin;

/// A cgroup in one hierarchy; kept in a container's state until `delete`.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Cgroup {
    path: PathBuf,
    created: Vec<PathBuf>,
}

impl Cgroup {
    /// Makes the cgroup `path` (from the hierarchy's root) under the hierarchy mounted at
    /// `root`, or takes the existing one, which is then left in place at the end.
    pub fn make(root: &Path, path: &Path) -> Result<Self, RuntimeError> {
        let path = root.join(path.strip_prefix("/").unwrap_or(path));
        // The directories this makes, deepest first, to remove at the end.
        let created: Vec<PathBuf> = path
            .ancestors()
            .take_while(|dir| *dir != root && !dir.exists())
            .map(Path::to_path_buf)
            .collect();
        std::fs::create_dir_all(&path).map_err(|source| RuntimeError::Cgroup {
            path: path.clone(),
            what: "create".into(),
            source,
        })?;
        Ok(Self { path, created })
    }

    /// The directories this made, outermost first.
    pub fn made(&self) -> impl Iterator<Item = &Path> {
        self.created.iter().rev().map(PathBuf::as_path)
    }

    /// Writes `value` to the cgroup's `file` for the spec's `field`.
    pub fn write(&self, file: &str, value: &str, field: &str) -> Result<(), RuntimeError> {
        std::fs::write(self.path.join(file), value).map_err(|source| RuntimeError::Cgroup {
            path: self.path.clone(),
            what: format!("{field}: write {value:?} to {file}"),
            source,
        })
    }

    /// The processes in the cgroup.
    pub fn processes(&self) -> Vec<Pid> {
        std::fs::read_to_string(self.path.join("cgroup.procs"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|pid| pid.parse().ok().map(Pid::from_raw))
            .collect()
    }

    /// Moves the running process `pid` in (`update`, into a cgroup made after the container's
    /// processes; a new process joins its cgroups itself, see [`join`]).
    pub fn move_process(&self, pid: Pid) -> Result<(), RuntimeError> {
        std::fs::write(self.path.join("cgroup.procs"), pid.to_string()).map_err(|source| {
            RuntimeError::Cgroup {
                path: self.path.clone(),
                what: format!("move process {pid} in"),
                source,
            }
        })
    }

    /// Its directory.
    pub fn path(&self) -> &Path {
        &self.path
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
                        eprintln!("warning: cannot remove the cgroup {}: {e}", dir.display());
                        return;
                    }
                    Err(_) => return,
                }
            }
        }
    }
}

/// How a new process joins `cgroups` (a container's, for `exec`): a v1 cgroup by its `tasks`
/// file, the cgroup2 one, which has none, from its clone.
pub fn join(cgroups: &[Cgroup]) -> CgroupJoin {
    let mut join = CgroupJoin::default();
    for cgroup in cgroups {
        let tasks = cgroup.path.join("tasks");
        if tasks.exists() {
            join.tasks.push(tasks);
        } else {
            join.unified = Some(cgroup.path.clone());
        }
    }
    join
}
