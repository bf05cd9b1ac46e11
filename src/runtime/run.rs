//! `run`: create, start and wait, with the cgroups and the hooks around `boot::launch`.

use nix::unistd::Pid;

use super::RuntimeError;
use super::cgroup::Cgroup;
use super::hierarchy::Hierarchies;
use super::hooks::{HookPhase, Hooks};
use super::placement::CgroupPlan;
use super::state::{State, Status};
use super::terminal::TerminalProxy;
use crate::boot::{
    Bundle, CgroupJoin, GateSetup, LaunchOptions, Launched, Lifecycle, SpecFilter, launch,
};
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
    let seccomp = spec_filter(&bundle.spec, options.gate.is_some())?;
    // Before the cgroups, so that nothing needs undoing when it fails; dropped, it ends.
    let proxy = own_terminal(&bundle.spec, &options.launch)?;
    let mut lifecycle = Around::new(bundle, plan, &hooks)?;
    let cgroups = match lifecycle.make_cgroups() {
        Ok(join) => join,
        Err(e) => {
            for cgroup in lifecycle.cgroups.drain(..) {
                cgroup.remove();
            }
            return Err(e);
        }
    };
    let mut launch_options = LaunchOptions {
        seccomp,
        cgroups,
        ..options.launch
    };
    if let Some(proxy) = &proxy {
        launch_options.console_socket = Some(proxy.socket().to_path_buf());
    }
    let launched = launch(
        plan,
        &bundle.spec,
        &launch_options,
        options.gate.map(|gate| GateSetup::Own(Box::new(gate))),
        &mut lifecycle,
    );
    if let Some(proxy) = proxy {
        proxy.finish();
    }
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

/// The caller's terminal, proxied, for a process that wants a terminal when no engine gave a
/// console socket; without a terminal on stdin, a warning, and the process inherits stdio.
fn own_terminal(
    spec: &oci_spec::runtime::Spec,
    options: &LaunchOptions,
) -> Result<Option<TerminalProxy>, RuntimeError> {
    let wants = spec
        .process()
        .as_ref()
        .is_some_and(|p| p.terminal() == Some(true));
    if !wants || options.console_socket.is_some() {
        return Ok(None);
    }
    let proxy = TerminalProxy::start()?;
    if proxy.is_none() {
        eprintln!(
            "warning: process.terminal: stdin is not a terminal in the foreground, so there is none to give the process; it inherits stdin, stdout and stderr"
        );
    }
    Ok(proxy)
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

/// The runtime's side of a launch.
pub(super) struct Around<'a> {
    pub(super) state: State,
    hooks: &'a Hooks,
    /// `linux.seccomp.listenerMetadata`, for the seccomp agent.
    agent_metadata: Option<String>,
    /// The cgroups to make before the sandbox's process exists.
    planned: Option<CgroupPlan>,
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
        let cgroups = CgroupPlan::new(
            &Hierarchies::read(),
            spec,
            &plan.devices,
            &plan.container_id,
        )?;
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
            planned: Some(cgroups),
            cgroups: Vec::new(),
        })
    }
}

impl Around<'_> {
    /// Makes the sandbox's cgroups (before its process exists: it joins them itself); those
    /// made are in `cgroups`, also when this fails.
    pub(super) fn make_cgroups(&mut self) -> Result<CgroupJoin, RuntimeError> {
        match self.planned.take() {
            Some(planned) => planned.make(&mut self.cgroups),
            None => Ok(CgroupJoin::default()),
        }
    }
}

impl Lifecycle for Around<'_> {
    fn created(&mut self, pid: Pid) -> Result<(), String> {
        self.state.pid = Some(pid.as_raw());
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
        state.agent_message(pid.as_raw(), self.agent_metadata.as_deref())
    }

    fn started(&mut self, _pid: Pid) {
        self.state.status = Status::Running;
        if let Err(e) = self.hooks.run(HookPhase::Poststart, &self.state) {
            eprintln!("warning: {e}");
        }
    }
}
