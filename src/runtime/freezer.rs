//! `pause` and `resume` through the container's cgroup v1 freezer: every process in it stops
//! (or goes on) at once, processes exec'd into the container included.

use std::path::Path;
use std::time::{Duration, Instant};

use super::RuntimeError;
use super::cgroup::Cgroup;

/// The freezer's state file in a v1 freezer cgroup.
const STATE: &str = "freezer.state";
/// How long a change may take to settle (a task in an uninterruptible sleep delays it).
const PATIENCE: Duration = Duration::from_secs(5);

/// The container's freezer cgroup, if it has one.
fn freezer(cgroups: &[Cgroup]) -> Option<&Path> {
    cgroups
        .iter()
        .map(Cgroup::path)
        .find(|path| path.join(STATE).exists())
}

/// Whether the container's processes are frozen (or being frozen).
pub fn frozen(cgroups: &[Cgroup]) -> bool {
    freezer(cgroups).is_some_and(|path| {
        std::fs::read_to_string(path.join(STATE))
            .is_ok_and(|state| matches!(state.trim(), "FROZEN" | "FREEZING"))
    })
}

/// Freezes (`true`) or thaws the container's processes, and waits until the kernel says so.
pub fn set_frozen(id: &str, cgroups: &[Cgroup], freeze: bool) -> Result<(), RuntimeError> {
    let Some(path) = freezer(cgroups) else {
        return Err(RuntimeError::Container {
            id: id.to_owned(),
            reason: "has no freezer cgroup (the host has no cgroup v1 freezer hierarchy)".into(),
        });
    };
    let (wanted, file) = (if freeze { "FROZEN" } else { "THAWED" }, path.join(STATE));
    let error = |what: String, source: std::io::Error| RuntimeError::Cgroup {
        path: path.to_path_buf(),
        what,
        source,
    };
    let started = Instant::now();
    loop {
        std::fs::write(&file, wanted).map_err(|e| error(format!("write {wanted}"), e))?;
        let state =
            std::fs::read_to_string(&file).map_err(|e| error(format!("read {STATE}"), e))?;
        if state.trim() == wanted {
            return Ok(());
        }
        if started.elapsed() > PATIENCE {
            return Err(error(
                format!("{STATE} stays {} instead of {wanted}", state.trim()),
                std::io::Error::from(std::io::ErrorKind::TimedOut),
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
