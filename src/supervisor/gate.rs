//! The supervisor: what it knows of the device families, the sandboxes it serves, and their
//! listeners. One supervisor serves any number of listeners (the first process of a sandbox,
//! processes exec'd into it later, other runtimes' containers through the daemon), each
//! sandbox with its own policy mode, simulated devices and counters.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};

use super::filter::FilterSpec;
use super::identity::{CarrierCache, EventfdCache, PidfdCache};
use super::mode::Mode;
use super::receive::{self, Listener, Monitor};
use super::routing::{RouteOptions, route};
use super::simulator::Simulator;
use super::stats::{Counters, Stats, Verdict};
use crate::family::{
    Family, FamilyError, FdKind, FileKey, Request, Ruling, resolve, unknown, validate,
};
use crate::vfs::DeviceRegistry;

/// What the gate knows of the devices: the families, and the registry that says which device
/// numbers are whose.
pub struct Gate {
    /// The families, in routing order.
    pub families: Vec<Family>,
    /// Device numbers to classes.
    pub registry: DeviceRegistry,
    rows: HashMap<(FdKind, u32), Request>,
}

impl Gate {
    /// A gate over `families`, classifying files by `registry`; refused when the tables
    /// contradict each other ([`validate`]).
    pub fn new(families: Vec<Family>, registry: DeviceRegistry) -> Result<Self, FamilyError> {
        validate(&families)?;
        let rows = families
            .iter()
            .flat_map(|f| f.requests.iter())
            .map(|row| ((row.kind, row.ioctl.request), *row))
            .collect();
        Ok(Self {
            families,
            registry,
            rows,
        })
    }

    /// The ruling on `request` with register argument `arg`, on a file of `kind` of family
    /// `family` (an index into [`Self::families`]).
    pub fn rule(&self, family: usize, kind: FdKind, request: u32, arg: u64) -> Ruling {
        let canonical = self
            .families
            .get(family)
            .map_or(request, |f| f.decode.canonical(request));
        match self.rows.get(&(kind, canonical)) {
            Some(row) => resolve(row, arg),
            None => unknown(
                request,
                self.families
                    .get(family)
                    .map_or(nix::errno::Errno::ENOTTY, |f| f.unknown_errno),
            ),
        }
    }

    /// Whether a call with `request` on a file of no family's is refused ([`Family::claims`]).
    pub fn claims(&self, request: u32) -> bool {
        self.families.iter().any(|f| f.claims(request))
    }

    /// The filter for a sandbox served in `mode`, with simulated devices or not.
    pub fn filter_spec(&self, mode: Mode, simulated: bool) -> FilterSpec {
        FilterSpec {
            routes: route(&self.families, RouteOptions { mode, simulated }),
            route_opens: simulated,
        }
    }
}

/// How one sandbox is served.
pub struct SandboxConfig {
    /// Its name, for logs and stats.
    pub name: String,
    /// How strictly rulings apply.
    pub mode: Mode,
    /// Simulated devices (`--simulate`), served instead of the host's.
    pub simulator: Option<Simulator>,
    /// The accelerator device numbers (char major:minor) the sandbox was given. An ioctl the
    /// supervisor sees on another accelerator node is refused (EPERM); None when no plan says
    /// (a container another runtime set up, whose device cgroup is that runtime's).
    pub granted: Option<Vec<(u32, u32)>>,
}

/// One sandbox as the supervisor serves it.
pub struct Sandbox {
    /// Its name.
    pub name: String,
    /// How strictly rulings apply.
    pub mode: Mode,
    pub(super) simulator: Option<Mutex<Simulator>>,
    /// Simulated nodes by their inode in the sandbox's `/dev`, built on the first open.
    pub(super) sim_nodes: Mutex<Option<HashMap<FileKey, usize>>>,
    pub(super) granted: Option<std::collections::HashSet<(u32, u32)>>,
    /// Drivers' own ids of the devices, learned from their answers (see [`crate::family::Grant`]).
    pub(super) device_ids: Mutex<HashMap<u32, (u32, u32)>>,
    pub(super) pidfds: PidfdCache,
    pub(super) eventfds: EventfdCache,
    pub(super) carriers: CarrierCache,
    counters: Mutex<Counters>,
}

impl Sandbox {
    /// A sandbox served as `config` says.
    pub fn new(config: SandboxConfig) -> Self {
        Self {
            name: config.name,
            mode: config.mode,
            simulator: config.simulator.map(Mutex::new),
            sim_nodes: Mutex::new(None),
            granted: config.granted.map(|g| g.into_iter().collect()),
            device_ids: Mutex::new(HashMap::new()),
            pidfds: PidfdCache::default(),
            eventfds: EventfdCache::default(),
            carriers: CarrierCache::default(),
            counters: Mutex::new(Counters::default()),
        }
    }

    /// Counts one decision.
    pub(super) fn count(&self, device: &'static str, request: &'static str, verdict: Verdict) {
        if let Ok(mut counters) = self.counters.lock() {
            counters.add(device, request, verdict);
        }
    }

    /// Counts a use of a number the tables do not know, at level `request`.
    pub(super) fn count_unlisted(&self, device: &'static str, request: &'static str, number: u32) {
        if let Ok(mut counters) = self.counters.lock() {
            counters.add_unlisted(device, request, number);
        }
    }

    /// The counts so far.
    pub fn stats(&self) -> Stats {
        let counters = self.counters.lock().map(|c| c.clone()).unwrap_or_default();
        Stats::new(&self.name, self.mode, &counters)
    }
}

/// How the threads of one listener run.
#[derive(Debug, Clone, Copy)]
pub struct Threads {
    /// Serving threads started with the listener.
    pub initial: usize,
    /// The most it may grow to, when every thread is held up by a slow call.
    pub max: usize,
    /// Ask for `SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP` (Linux 6.6): the kernel wakes the serving
    /// thread on the workload's CPU, which saves a cross-CPU wakeup per call.
    pub sync_wake_up: bool,
}

impl Default for Threads {
    fn default() -> Self {
        Self {
            initial: 1,
            max: 16,
            sync_wake_up: true,
        }
    }
}

/// A supervisor: the gate, shared by every sandbox and listener it serves.
#[derive(Clone)]
pub struct Supervisor {
    gate: Arc<Gate>,
    monitor: Arc<Monitor>,
}

/// A listener being served: its threads end when every process behind it is gone.
pub struct Serving {
    done: mpsc::Receiver<()>,
    running: Arc<AtomicUsize>,
}

impl Serving {
    pub(super) fn new(done: mpsc::Receiver<()>, running: Arc<AtomicUsize>) -> Self {
        Self { done, running }
    }

    /// Waits until the listener's processes are all gone and its threads have stopped.
    pub fn wait(self) {
        // Every thread counts itself out, then reports; the last report finds none running.
        while self.running.load(Ordering::Acquire) > 0 {
            if self.done.recv().is_err() {
                break;
            }
        }
    }
}

impl Supervisor {
    /// A supervisor over `gate`.
    pub fn new(gate: Gate) -> Self {
        Self {
            gate: Arc::new(gate),
            monitor: Arc::default(),
        }
    }

    /// The gate it serves with.
    pub fn gate(&self) -> &Gate {
        &self.gate
    }

    /// Serves `listener` for `sandbox` on threads of its own, at once.
    pub fn serve(
        &self,
        sandbox: &Arc<Sandbox>,
        listener: OwnedFd,
        threads: Threads,
    ) -> std::io::Result<Serving> {
        let listener = Arc::new(Listener::new(
            listener,
            Arc::clone(&self.gate),
            Arc::clone(sandbox),
            threads,
        )?);
        let serving = receive::start(&listener)?;
        self.monitor.watch(&listener);
        Ok(serving)
    }
}

/// How a sandbox's gate runs, for the one-listener case (`accelgate run`).
pub struct GateConfig {
    /// The gate.
    pub gate: Gate,
    /// The sandbox.
    pub sandbox: SandboxConfig,
    /// Its threads.
    pub threads: Threads,
}

impl GateConfig {
    /// The filter the workload installs.
    pub fn filter_spec(&self) -> FilterSpec {
        self.gate
            .filter_spec(self.sandbox.mode, self.sandbox.simulator.is_some())
    }
}

/// Serves `listener` until every process of the sandbox is gone, then returns the counts.
pub fn serve(listener: OwnedFd, config: GateConfig) -> std::io::Result<Stats> {
    let supervisor = Supervisor::new(config.gate);
    let sandbox = Arc::new(Sandbox::new(config.sandbox));
    supervisor.serve(&sandbox, listener, config.threads)?.wait();
    Ok(sandbox.stats())
}
