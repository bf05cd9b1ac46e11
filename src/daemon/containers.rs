//! The containers the daemon serves: one sandbox per container ID (its policy, simulated
//! devices and counters), shared by every listener the runtime sends for it (the first
//! process, and processes exec'd into it later). Containers that are gone are kept for `stats`,
//! the most recent [`KEPT_EXITED`] of them.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use crate::supervisor::stats::Stats;
use crate::supervisor::{Mode, Sandbox};

/// Exited containers whose counts are kept.
pub const KEPT_EXITED: usize = 256;

/// Name and version of the `ps` JSON schema.
pub const PS_SCHEMA: &str = "accelgate.ps/v1";

/// What `ps` shows of one container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerInfo {
    /// Container ID.
    pub id: String,
    /// Its bundle directory.
    pub bundle: String,
    /// The gate's policy for it.
    pub policy: Mode,
    /// Whether its TPUs are simulated.
    pub simulated: bool,
    /// TPU chips by discovery index; `None` when its bundle could not be read (the gate still
    /// classifies its files by device number).
    pub tpus: Option<Vec<usize>>,
    /// Their device nodes.
    pub devices: Vec<String>,
    /// Listeners being served: 0 once every process of the container is gone.
    pub listeners: usize,
}

/// `accelgate ps --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ps {
    /// Always [`PS_SCHEMA`].
    pub schema: String,
    /// Containers, by ID.
    pub containers: Vec<ContainerInfo>,
}

struct Entry {
    info: ContainerInfo,
    sandbox: Arc<Sandbox>,
}

#[derive(Default)]
struct Inner {
    entries: BTreeMap<String, Entry>,
    exited: VecDeque<String>,
}

/// The daemon's containers.
#[derive(Default)]
pub struct Containers {
    inner: Mutex<Inner>,
}

impl Containers {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The sandbox for one more listener of container `id`: the one it has while any of its
    /// processes is served, else a new one from `make` (an ID used again after its container
    /// is gone starts afresh).
    pub fn attach(
        &self,
        id: &str,
        make: impl FnOnce() -> (ContainerInfo, Sandbox),
    ) -> Arc<Sandbox> {
        let mut inner = self.lock();
        if let Some(entry) = inner.entries.get_mut(id) {
            if entry.info.listeners > 0 {
                entry.info.listeners += 1;
                return Arc::clone(&entry.sandbox);
            }
        }
        inner.exited.retain(|exited| exited != id);
        let (mut info, sandbox) = make();
        info.listeners = 1;
        let sandbox = Arc::new(sandbox);
        inner.entries.insert(
            id.to_owned(),
            Entry {
                info,
                sandbox: Arc::clone(&sandbox),
            },
        );
        sandbox
    }

    /// One listener of container `id` has no process left.
    pub fn detach(&self, id: &str) {
        let mut inner = self.lock();
        let Some(entry) = inner.entries.get_mut(id) else {
            return;
        };
        entry.info.listeners = entry.info.listeners.saturating_sub(1);
        if entry.info.listeners == 0 {
            inner.exited.push_back(id.to_owned());
            while inner.exited.len() > KEPT_EXITED {
                if let Some(oldest) = inner.exited.pop_front() {
                    inner.entries.remove(&oldest);
                }
            }
        }
    }

    /// Listeners being served, in all.
    pub fn listeners(&self) -> usize {
        self.lock().entries.values().map(|e| e.info.listeners).sum()
    }

    /// Every container, by ID.
    pub fn ps(&self) -> Ps {
        Ps {
            schema: PS_SCHEMA.to_owned(),
            containers: self
                .lock()
                .entries
                .values()
                .map(|e| e.info.clone())
                .collect(),
        }
    }

    /// The counts of container `id`, or of every container.
    pub fn stats(&self, id: Option<&str>) -> Option<Vec<Stats>> {
        let inner = self.lock();
        match id {
            Some(id) => inner.entries.get(id).map(|e| vec![e.sandbox.stats()]),
            None => Some(inner.entries.values().map(|e| e.sandbox.stats()).collect()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervisor::SandboxConfig;

    fn make(id: &str) -> impl FnOnce() -> (ContainerInfo, Sandbox) + '_ {
        move || {
            (
                ContainerInfo {
                    id: id.to_owned(),
                    bundle: "/b".into(),
                    policy: Mode::Enforce,
                    simulated: false,
                    tpus: Some(vec![0]),
                    devices: vec![],
                    listeners: 0,
                },
                Sandbox::new(SandboxConfig {
                    name: id.to_owned(),
                    mode: Mode::Enforce,
                    simulator: None,
                    granted: None,
                }),
            )
        }
    }

    #[test]
    fn an_exec_shares_the_sandbox_and_a_reused_id_starts_afresh() {
        let containers = Containers::default();
        let first = containers.attach("a", make("a"));
        let exec = containers.attach("a", || unreachable!("shared"));
        assert!(Arc::ptr_eq(&first, &exec));
        assert_eq!(containers.listeners(), 2);
        containers.detach("a");
        containers.detach("a");
        assert_eq!(containers.listeners(), 0);
        assert_eq!(containers.ps().containers[0].listeners, 0);
        let again = containers.attach("a", make("a"));
        assert!(!Arc::ptr_eq(&first, &again));
        assert!(containers.stats(Some("b")).is_none());
        assert_eq!(containers.stats(None).unwrap().len(), 1);
    }

    #[test]
    fn only_the_latest_exited_containers_are_kept() {
        let containers = Containers::default();
        for i in 0..KEPT_EXITED + 3 {
            let id = format!("c{i}");
            containers.attach(&id, make(&id));
            containers.detach(&id);
        }
        let ps = containers.ps();
        assert_eq!(ps.containers.len(), KEPT_EXITED);
        assert!(ps.containers.iter().all(|c| c.id != "c0"));
    }
}
