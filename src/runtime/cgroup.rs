//! One cgroup v1 controller's cgroup for a sandbox: made (or joined), written, joined by the
//! sandbox's process, and removed as far as the sandbox made it.

use std::io;
use std::path::{Path, PathBuf};

use nix::unistd::Pid;

use super::RuntimeError;

/// A cgroup in one v1 hierarchy; kept in a container's state until `delete`.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Cgroup {
    path: PathBuf,
    created: Vec<PathBuf>,
}

impl Cgroup {
    /// Makes the cgroup `relative` under `root` (or takes the existing one, which is then left
    /// in place at the end) and writes each `(file, value)` of `writes` in order.
    pub fn create(
        root: &Path,
        relative: &Path,
        writes: &[(String, String)],
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
        for (file, value) in writes {
            if let Err(e) = std::fs::write(path.join(file), value) {
                let failure = error(format!("write {value:?} to {file}"), e);
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
