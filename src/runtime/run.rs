//! `run`: create, start and wait, with the device cgroup and the hooks around `boot::launch`.

use std::path::PathBuf;

use nix::unistd::Pid;

use super::RuntimeError;
use super::devices::{DEVICE_CGROUP_ROOT, DeviceCgroup, DeviceRule};
use super::hooks::{HookPhase, Hooks};
use super::state::{State, Status};
use crate::boot::{Bundle, LaunchOptions, Launched, Lifecycle, launch};
use crate::plan::SandboxPlan;
use crate::supervisor::gate::GateConfig;

/// How to run a sandbox.
#[derive(Default)]
pub struct RunOptions {
    /// How the sandbox meets the host.
    pub launch: LaunchOptions,
    /// The ioctl gate, when the sandbox gets accelerators.
    pub gate: Option<GateConfig>,
    /// The v1 devices hierarchy ([`DEVICE_CGROUP_ROOT`]; tests point it elsewhere).
    pub device_cgroup_root: Option<PathBuf>,
}

/// Runs `plan` (compiled from `bundle`) to its end: the device cgroup and the hooks of every
/// phase around [`launch`]. Nothing is left behind: the cgroup accelgate made is removed.
pub fn run(
    bundle: &Bundle,
    plan: &SandboxPlan,
    options: RunOptions,
) -> Result<Launched, RuntimeError> {
    let hooks = Hooks::of(&bundle.spec).0;
    let mut lifecycle = Around::new(bundle, plan, &hooks, options.device_cgroup_root)?;
    let launched = launch(
        plan,
        &bundle.spec,
        &options.launch,
        options.gate,
        &mut lifecycle,
    );
    lifecycle.state.status = Status::Stopped;
    lifecycle.state.pid = None;
    if let Err(e) = hooks.run(HookPhase::Poststop, &lifecycle.state) {
        eprintln!("warning: {e}");
    }
    if let Some(cgroup) = lifecycle.cgroup.take() {
        cgroup.remove();
    }
    Ok(launched?)
}

/// The spec's `linux.cgroupsPath`, else `/accelgate-<id>.<launcher pid>` (a bundle directory's
/// name, the default id, need not be unique).
fn cgroup_path(spec: &oci_spec::runtime::Spec, id: &str) -> PathBuf {
    spec.linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().clone())
        .unwrap_or_else(|| PathBuf::from(format!("/accelgate-{id}.{}", std::process::id())))
}

/// The runtime's side of a launch.
pub(super) struct Around<'a> {
    pub(super) state: State,
    hooks: &'a Hooks,
    devices: Option<(PathBuf, PathBuf, Vec<DeviceRule>)>,
    pub(super) cgroup: Option<DeviceCgroup>,
}

impl<'a> Around<'a> {
    /// The device cgroup to make (refused where the spec asks for one the host cannot give)
    /// and the state hooks will see; NVIDIA toolkit hooks are logged as not run.
    pub(super) fn new(
        bundle: &Bundle,
        plan: &SandboxPlan,
        hooks: &'a Hooks,
        device_cgroup_root: Option<PathBuf>,
    ) -> Result<Self, RuntimeError> {
        let spec = &bundle.spec;
        for hook in Hooks::of(spec).1 {
            tracing::info!(%hook, "not run: the plan gives the GPU devices that NVIDIA hook would");
        }
        let root = device_cgroup_root.unwrap_or_else(|| PathBuf::from(DEVICE_CGROUP_ROOT));
        let device_rules = if DeviceCgroup::available(&root) {
            Some(DeviceCgroup::rules(spec, &plan.devices)?)
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
                    root.display()
                ),
            });
        } else {
            eprintln!(
                "warning: no device cgroup: {} is not a cgroup v1 devices hierarchy",
                root.display()
            );
            None
        };
        let cgroup_path = cgroup_path(spec, &plan.container_id);
        Ok(Self {
            state: State::new(
                plan.container_id.clone(),
                Status::Creating,
                bundle.dir.clone(),
                spec.annotations().clone().unwrap_or_default(),
            ),
            hooks,
            devices: device_rules.map(|rules| (root, cgroup_path, rules)),
            cgroup: None,
        })
    }
}

impl Lifecycle for Around<'_> {
    fn created(&mut self, pid: Pid) -> Result<(), String> {
        self.state.pid = Some(pid.as_raw());
        if let Some((root, path, rules)) = self.devices.take() {
            let cgroup = DeviceCgroup::create(&root, &path, &rules).map_err(|e| e.to_string())?;
            let added = cgroup.add(pid);
            self.cgroup = Some(cgroup);
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

    fn started(&mut self, _pid: Pid) {
        self.state.status = Status::Running;
        if let Err(e) = self.hooks.run(HookPhase::Poststart, &self.state) {
            eprintln!("warning: {e}");
        }
    }
}
