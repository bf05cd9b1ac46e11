//! `pause` and `resume` through the container's freezer: every process in its cgroup stops (or
//! goes on) at once, processes exec'd into the container included. The cgroup v1 freezer where
//! the host has one (v1 and hybrid hosts, as runc uses it), else cgroup2's `cgroup.freeze`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::RuntimeError;
use super::cgroup::Cgroup;

/// The v1 freezer's state file.
const V1_STATE: &str = "freezer.state";
/// cgroup2's freeze switch, and the file that reports whether the cgroup is frozen.
const V2_FREEZE: &str = "cgroup.freeze";
const V2_EVENTS: &str = "cgroup.events";
/// How long a change may take to settle (a task in an uninterruptible sleep delays it).
const PATIENCE: Duration = Duration::from_secs(5);

/// A container's freezer.
enum Freezer {
    /// A v1 freezer cgroup's directory.
    V1(PathBuf),
    /// A cgroup2 cgroup's directory.
    V2(PathBuf),
}

/// The container's freezer, if it has one: a v1 freezer cgroup before a cgroup2 one (on a
/// hybrid host, the cgroup2 hierarchy is beside the v1 controllers, as with runc).
fn freezer(cgroups: &[Cgroup]) -> Option<Freezer> {
    let paths = || cgroups.iter().map(Cgroup::path);
    paths()
        .find(|path| path.join(V1_STATE).exists())
        .map(|path| Freezer::V1(path.to_path_buf()))
        .or_else(|| {
            paths()
                .find(|path| path.join(V2_FREEZE).exists())
                .map(|path| Freezer::V2(path.to_path_buf()))
        })
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Whether cgroup2's `cgroup.events` reports the cgroup frozen.
fn v2_frozen(path: &Path) -> bool {
    read(&path.join(V2_EVENTS))
        .lines()
        .any(|line| line.trim() == "frozen 1")
}

/// Whether the container's processes are frozen (or being frozen).
pub fn frozen(cgroups: &[Cgroup]) -> bool {
    match freezer(cgroups) {
        Some(Freezer::V1(path)) => {
            matches!(read(&path.join(V1_STATE)).trim(), "FROZEN" | "FREEZING")
        }
        Some(Freezer::V2(path)) => read(&path.join(V2_FREEZE)).trim() == "1",
        None => false,
    }
}

/// Freezes (`true`) or thaws the container's processes, and waits until the kernel says so.
pub fn set_frozen(id: &str, cgroups: &[Cgroup], freeze: bool) -> Result<(), RuntimeError> {
    let Some(freezer) = freezer(cgroups) else {
        return Err(RuntimeError::Container {
            id: id.to_owned(),
            reason: "has no freezer (the host has no cgroup v1 freezer hierarchy, and the container no cgroup2 cgroup)".into(),
        });
    };
    let (path, file, wanted) = match &freezer {
        Freezer::V1(path) => (path, V1_STATE, if freeze { "FROZEN" } else { "THAWED" }),
        Freezer::V2(path) => (path, V2_FREEZE, if freeze { "1" } else { "0" }),
    };
    let error = |what: String, source: std::io::Error| RuntimeError::Cgroup {
        path: path.clone(),
        what,
        source,
    };
    let settled = || match &freezer {
        Freezer::V1(path) => read(&path.join(V1_STATE)).trim() == wanted,
        Freezer::V2(path) => v2_frozen(path) == freeze,
    };
    let started = Instant::now();
    loop {
        // Asked again each round, as runc asks: a v1 freezer can stay FREEZING while tasks
        // fork, and a new write retries them (for cgroup2 it changes nothing).
        std::fs::write(path.join(file), wanted)
            .map_err(|e| error(format!("write {wanted} to {file}"), e))?;
        if settled() {
            return Ok(());
        }
        if started.elapsed() > PATIENCE {
            return Err(error(
                format!("the processes are not {wanted} after {PATIENCE:?} ({file})"),
                std::io::Error::from(std::io::ErrorKind::TimedOut),
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
