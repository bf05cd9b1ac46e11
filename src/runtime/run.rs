//! `run`: create, start and wait, with the cgroups and the hooks around `boot::launch`.

/// Where the host mounts its cgroup v1 hierarchies.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

use std::path::PathBuf;

use nix::unistd::Pid;

use super::RuntimeError;
use std::collections::BTreeMap;
use std::path::Path;

use super::cgroup::Cgroup;
use super::devices::{self, DeviceRule};
use super::hooks::{HookPhase, Hooks};
use super::limits::{Limit, limits};
use super::state::{State, Status};
use crate::boot::{Bundle, LaunchOptions, Launched, Lifecycle, SpecFilter, launch};
use crate::plan::SandboxPlan;
use crate::supervisor::gate::GateConfig;

/// How to run a sandbox.
#[derive(Default)]
pub struct RunOptions {
    /// How the sandbox meets the host.
    pub launch: LaunchOptions,
    /// The ioctl gate, when the sandbox gets accelerators.
    pub gate: Option<GateConfig>,
}

/// Runs `plan` (compiled from `bundle`) to its end: its cgroups and the hooks of every phase
/// around [`launch`]. Nothing is left behind: the cgroups accelgate made are removed.
pub fn run(
    bundle: &Bundle,
    plan: &SandboxPlan,
    options: RunOptions,
) -> Result<Launched, RuntimeError> {
    let hooks = Hooks::of(&bundle.spec).0;
    let launch_options = LaunchOptions {
        seccomp: spec_filter(&bundle.spec, options.gate.is_some())?,
        ..options.launch
    };
    let mut lifecycle = Around::new(bundle, plan, &hooks)?;
    let launched = launch(
        plan,
        &bundle.spec,
        &launch_options,
        options.gate,
        &mut lifecycle,
    );
    lifecycle.state.status = Status::Stopped;
    lifecycle.state.pid = None;
    if let Err(e) = hooks.run(HookPhase::Poststop, &lifecycle.state) {
        eprintln!("warning: {e}");
    }
    for cgroup in lifecycle.cgroups.drain(..) {
        cgroup.remove();
    }
    Ok(launched?)
}

/// The spec's seccomp profile, compiled; `gated`: under the ioctl gate's filter.
pub(super) fn spec_filter(
    spec: &oci_spec::runtime::Spec,
    gated: bool,
) -> Result<Option<SpecFilter>, RuntimeError> {
    spec.linux()
        .as_ref()
        .and_then(|l| l.seccomp().as_ref())
        .map(|seccomp| super::seccomp::compile(seccomp, gated))
        .transpose()
}

/// This process's cgroup in the v1 hierarchy of `controller` (`/` when unknown).
fn own_cgroup(controller: &str) -> PathBuf {
    std::fs::read_to_string("/proc/self/cgroup")
        .unwrap_or_default()
        .lines()
        .find_map(|line| {
            let mut parts = line.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            controllers
                .split(',')
                .any(|c| c == controller)
                .then(|| PathBuf::from(path))
        })
        .unwrap_or_else(|| PathBuf::from("/"))
}

/// The sandbox's cgroup in `controller`: the spec's `linux.cgroupsPath` (from the hierarchy's
/// root, as runc takes it), else `accelgate-<id>.<launcher pid>` under the launcher's own
/// cgroup there, so that its limits nest in the caller's (a bundle directory's name, the
/// default id, need not be unique).
fn cgroup_path(spec: &oci_spec::runtime::Spec, id: &str, controller: &str) -> PathBuf {
    spec.linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().clone())
        .unwrap_or_else(|| {
            own_cgroup(controller).join(format!("accelgate-{id}.{}", std::process::id()))
        })
}

/// A cgroup to make once the sandbox's process exists: hierarchy, path in it, writes.
type Planned = (PathBuf, PathBuf, Vec<(String, String)>);

/// The runtime's side of a launch.
pub(super) struct Around<'a> {
    pub(super) state: State,
    hooks: &'a Hooks,
    /// `linux.seccomp.listenerMetadata`, for the seccomp agent.
    agent_metadata: Option<String>,
    planned: Vec<Planned>,
    pub(super) cgroups: Vec<Cgroup>,
}

impl<'a> Around<'a> {
    /// The cgroups to make (refused where the spec asks for what the host cannot give) and
    /// the state hooks will see; NVIDIA toolkit hooks are logged as not run.
    pub(super) fn new(
        bundle: &Bundle,
        plan: &SandboxPlan,
        hooks: &'a Hooks,
    ) -> Result<Self, RuntimeError> {
        let spec = &bundle.spec;
        for hook in Hooks::of(spec).1 {
            tracing::info!(%hook, "not run: the plan gives the GPU devices that NVIDIA hook would");
        }
        let root = Path::new(CGROUP_ROOT);
        let mut planned = Vec::new();
        let devices = root.join("devices");
        if devices::available(&devices) {
            let writes = devices::rules(spec, &plan.devices)?
                .iter()
                .map(DeviceRule::write)
                .collect();
            let path = cgroup_path(spec, &plan.container_id, "devices");
            planned.push((devices, path, writes));
        } else if spec
            .linux()
            .as_ref()
            .and_then(|l| l.resources().as_ref())
            .is_some_and(|r| r.devices().is_some())
        {
            return Err(RuntimeError::Unsupported {
                field: "linux.resources.devices".into(),
                reason: format!(
                    "{} is not a cgroup v1 devices hierarchy, and cgroup v2 device programs are not implemented yet",
                    devices.display()
                ),
            });
        } else {
            eprintln!(
                "warning: no device cgroup: {} is not a cgroup v1 devices hierarchy",
                devices.display()
            );
        }
        let mut by_controller: BTreeMap<&str, Vec<Limit>> = BTreeMap::new();
        for limit in limits(spec) {
            by_controller
                .entry(limit.controller)
                .or_default()
                .push(limit);
        }
        for (controller, list) in by_controller {
            let hierarchy = root.join(controller);
            // A v1 hierarchy has `tasks`; cgroup v2 has none.
            if !hierarchy.join("tasks").exists() {
                return Err(RuntimeError::Unsupported {
                    field: list[0].field.into(),
                    reason: format!(
                        "{} is not a cgroup v1 {controller} hierarchy (cgroup v2 limits are not implemented yet)",
                        hierarchy.display()
                    ),
                });
            }
            let writes = list
                .into_iter()
                .map(|l| (l.file.to_owned(), l.value))
                .collect();
            let path = cgroup_path(spec, &plan.container_id, controller);
            planned.push((hierarchy, path, writes));
        }
        Ok(Self {
            state: State::new(
                plan.container_id.clone(),
                Status::Creating,
                bundle.dir.clone(),
                spec.annotations().clone().unwrap_or_default(),
            ),
            hooks,
            agent_metadata: spec
                .linux()
                .as_ref()
                .and_then(|l| l.seccomp().as_ref())
                .and_then(|s| s.listener_metadata().clone()),
            planned,
            cgroups: Vec::new(),
        })
    }
}

impl Lifecycle for Around<'_> {
    fn created(&mut self, pid: Pid) -> Result<(), String> {
        self.state.pid = Some(pid.as_raw());
        for (root, path, writes) in std::mem::take(&mut self.planned) {
            let cgroup =
                Cgroup::create(&root, &path, &writes).map_err(|e| crate::pci::error_chain(&e))?;
            let added = cgroup.add(pid);
            self.cgroups.push(cgroup);
            added.map_err(|e| crate::pci::error_chain(&e))?;
        }
        for phase in [
            HookPhase::Prestart,
            HookPhase::CreateRuntime,
            HookPhase::CreateContainer,
        ] {
            self.hooks
                .run(phase, &self.state)
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
    fn starting(&self, pid: Pid) -> Result<(), String> {
        let mut state = self.state.clone();
        state.pid = Some(pid.as_raw());
        state.status = Status::Created;
        self.hooks
            .run(HookPhase::StartContainer, &state)
            .map_err(|e| e.to_string())
    }

    fn agent_state(&self, pid: Pid) -> String {
        let mut state = self.state.clone();
        state.pid = Some(pid.as_raw());
        state.status = Status::Creating;
        state.agent_message(self.agent_metadata.as_deref())
    }

    fn started(&mut self, _pid: Pid) {
        self.state.status = Status::Running;
        if let Err(e) = self.hooks.run(HookPhase::Poststart, &self.state) {
            eprintln!("warning: {e}");
        }
    }
}
