//! A created container's record in the state directory (`<root>/<id>/state.json`), and the
//! directory's lock.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use super::RuntimeError;
use super::cgroup::Cgroup;
use super::state::{State, Status};

/// runc's default state directory.
pub const DEFAULT_STATE_ROOT: &str = "/run/accelgate";

/// The socket of a container's ioctl gate service, in its state directory.
pub const GATE_SOCKET: &str = "gate.sock";

/// The state directory: one subdirectory per container, changed only under its lock.
#[derive(Debug, Clone)]
pub struct StateRoot {
    root: PathBuf,
}

/// Held while a command reads and changes the state directory.
pub struct Lock {
    _held: Flock<std::fs::File>,
}

impl StateRoot {
    /// The state directory at `root` (made when missing, mode 0700).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn io(&self, path: &Path, what: &str) -> impl FnOnce(std::io::Error) -> RuntimeError {
        let (path, what) = (path.to_path_buf(), what.to_owned());
        move |source| RuntimeError::State { path, what, source }
    }

    /// Takes the directory's lock (blocking).
    pub fn lock(&self) -> Result<Lock, RuntimeError> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.root)
            .map_err(self.io(&self.root, "create"))?;
        let path = self.root.join(".lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(self.io(&path, "open the lock"))?;
        Flock::lock(file, FlockArg::LockExclusive)
            .map(|held| Lock { _held: held })
            .map_err(|(_, e)| self.io(&path, "lock")(e.into()))
    }

    /// The directory of container `id`; ids are single path components.
    pub fn dir(&self, id: &str) -> Result<PathBuf, RuntimeError> {
        let valid = !id.is_empty()
            && id != "."
            && id != ".."
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_+-.".contains(c));
        if !valid {
            return Err(RuntimeError::Container {
                id: id.to_owned(),
                reason: "an id is letters, digits and _+-. only".into(),
            });
        }
        Ok(self.root.join(id))
    }

    /// The record of `id`.
    pub fn load(&self, id: &str) -> Result<Container, RuntimeError> {
        let path = self.dir(id)?.join("state.json");
        let text = std::fs::read_to_string(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                RuntimeError::Container {
                    id: id.to_owned(),
                    reason: "does not exist".into(),
                }
            } else {
                self.io(&path, "read")(e)
            }
        })?;
        serde_json::from_str(&text).map_err(|e| self.io(&path, "parse")(std::io::Error::other(e)))
    }

    /// Writes `container`'s record (atomically: a new file renamed over the old one).
    pub fn save(&self, container: &Container) -> Result<(), RuntimeError> {
        let dir = self.dir(&container.id)?;
        let path = dir.join("state.json");
        let next = dir.join("state.json.new");
        let text = serde_json::to_string_pretty(container).unwrap_or_default();
        std::fs::write(&next, text)
            .and_then(|()| std::fs::rename(&next, &path))
            .map_err(self.io(&path, "write"))
    }

    /// Every container's record, by id.
    pub fn list(&self) -> Result<Vec<Container>, RuntimeError> {
        let entries = match std::fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.io(&self.root, "list")(e)),
        };
        let mut list: Vec<Container> = entries
            .flatten()
            .filter(|e| e.path().join("state.json").exists())
            .filter_map(|e| self.load(&e.file_name().to_string_lossy()).ok())
            .collect();
        list.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(list)
    }
}

/// What accelgate keeps of a created container.
#[derive(Debug, Serialize, Deserialize)]
pub struct Container {
    /// Its id.
    pub id: String,
    /// The bundle directory.
    pub bundle: PathBuf,
    /// Its process as the host sees it.
    pub pid: i32,
    /// That process's start time (`/proc/PID/stat` field 22), so that a reused pid is not
    /// taken for it.
    pub pid_start: u64,
    /// When it was created (seconds since the epoch).
    pub created: u64,
    /// Whether `start` released it.
    pub started: bool,
    /// The spec's annotations.
    pub annotations: HashMap<String, String>,
    /// Its cgroups (devices, freezer, limits), removed at `delete`.
    pub cgroups: Vec<Cgroup>,
    /// The ioctl gate's service, when its accelerators are behind the gate.
    #[serde(default)]
    pub gate: Option<GateRecord>,
    /// The spec's `linux.seccomp` as `create` found it: every process exec'd into the
    /// container gets it too, whatever the bundle says later (as runc keeps its config).
    #[serde(default)]
    pub seccomp: Option<oci_spec::runtime::LinuxSeccomp>,
}

/// A container's ioctl gate service: the process that serves its listeners (first and
/// exec'd). The filter they install is kept beside its socket (`boot::join_gate`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GateRecord {
    /// The service's process.
    pub pid: i32,
    /// Its start time, so that a reused pid is never signalled.
    pub pid_start: u64,
}

impl GateRecord {
    /// Whether the service still runs.
    pub fn alive(&self) -> bool {
        process_start(Pid::from_raw(self.pid)) == Some(self.pid_start)
    }
}

impl Container {
    /// Where it is in its lifecycle, from its process.
    pub fn status(&self) -> Status {
        if process_start(Pid::from_raw(self.pid)) != Some(self.pid_start) {
            Status::Stopped
        } else if super::freezer::frozen(&self.cgroups) {
            Status::Paused
        } else if self.started {
            Status::Running
        } else {
            Status::Created
        }
    }

    /// The OCI state document.
    pub fn state(&self) -> State {
        let status = self.status();
        let mut state = State::new(
            self.id.clone(),
            status,
            self.bundle.clone(),
            self.annotations.clone(),
        );
        if status != Status::Stopped {
            state.pid = Some(self.pid);
        }
        state
    }
}

/// The start time of a live (not zombie) process; `None` when it is gone.
pub fn process_start(pid: Pid) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    if fields.first() == Some(&"Z") || fields.first() == Some(&"X") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_ids_are_one_component() {
        let dir = tempfile::tempdir().unwrap();
        let root = StateRoot::new(dir.path().join("state"));
        let _lock = root.lock().unwrap();
        assert!(root.dir("../x").is_err());
        assert!(root.dir("a/b").is_err());
        let container = Container {
            id: "c1".into(),
            bundle: "/b".into(),
            pid: std::process::id() as i32,
            pid_start: process_start(nix::unistd::getpid()).unwrap(),
            created: 0,
            started: true,
            annotations: HashMap::new(),
            cgroups: Vec::new(),
            gate: None,
            seccomp: None,
        };
        std::fs::create_dir(root.dir("c1").unwrap()).unwrap();
        root.save(&container).unwrap();
        let loaded = root.load("c1").unwrap();
        assert_eq!(loaded.status(), Status::Running);
        assert_eq!(root.list().unwrap().len(), 1);
        let err = root.load("c2").unwrap_err().to_string();
        assert_eq!(err, "container c2: does not exist");
    }
}
