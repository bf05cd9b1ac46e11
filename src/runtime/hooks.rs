//! The spec's hooks: run with the container's state on stdin, within their timeouts.

use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::{Hook, Spec};

use super::RuntimeError;
use super::state::State;

/// When a hook runs (runtime-spec "Lifecycle").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookPhase {
    /// Deprecated; run with `createRuntime`, in the runtime's namespaces.
    Prestart,
    /// After the namespaces exist, before the rootfs is built; the runtime's namespaces.
    CreateRuntime,
    /// After `createRuntime`; run from the runtime's namespaces (as runc does), with the
    /// container's pid in the state for tools that enter it.
    CreateContainer,
    /// In the container, after `pivot_root`, just before the workload is executed.
    StartContainer,
    /// Once the workload runs; the runtime's namespaces. A failure is a warning.
    Poststart,
    /// Once the container is gone; the runtime's namespaces. A failure is a warning.
    Poststop,
}

impl HookPhase {
    /// The spec's name for the phase.
    pub fn name(self) -> &'static str {
        match self {
            Self::Prestart => "prestart",
            Self::CreateRuntime => "createRuntime",
            Self::CreateContainer => "createContainer",
            Self::StartContainer => "startContainer",
            Self::Poststart => "poststart",
            Self::Poststop => "poststop",
        }
    }
}

/// The hooks of a spec, in spec order per phase.
#[derive(Debug, Clone, Default)]
pub struct Hooks(Vec<(HookPhase, Hook)>);

/// How often a running hook is checked for its end.
const POLL: Duration = Duration::from_millis(5);

impl Hooks {
    /// The spec's hooks, except the NVIDIA container toolkit's, whose job (the GPU's device
    /// nodes) the plan does itself; each one left out is returned with its phase.
    pub fn of(spec: &Spec) -> (Self, Vec<String>) {
        let mut list = Vec::new();
        let mut skipped = Vec::new();
        let Some(hooks) = spec.hooks() else {
            return (Self(list), skipped);
        };
        let phases = [
            (HookPhase::Prestart, hooks.prestart()),
            (HookPhase::CreateRuntime, hooks.create_runtime()),
            (HookPhase::CreateContainer, hooks.create_container()),
            (HookPhase::StartContainer, hooks.start_container()),
            (HookPhase::Poststart, hooks.poststart()),
            (HookPhase::Poststop, hooks.poststop()),
        ];
        for (phase, hooks) in phases {
            for hook in hooks.iter().flatten() {
                if crate::boot::nvidia_toolkit_hook(hook.path()) {
                    skipped.push(format!("{} hook {}", phase.name(), hook.path().display()));
                } else {
                    list.push((phase, hook.clone()));
                }
            }
        }
        (Self(list), skipped)
    }

    /// Runs the hooks of `phase` in order, each with `state` on stdin; the first failure stops.
    pub fn run(&self, phase: HookPhase, state: &State) -> Result<(), RuntimeError> {
        let json = state.to_json();
        for (_, hook) in self.0.iter().filter(|(p, _)| *p == phase) {
            run_hook(hook, &json).map_err(|reason| RuntimeError::Hook {
                phase: phase.name(),
                path: hook.path().clone(),
                reason,
            })?;
        }
        Ok(())
    }
}

fn run_hook(hook: &Hook, state: &str) -> Result<(), String> {
    let args = hook.args().clone().unwrap_or_default();
    let mut command = Command::new(hook.path());
    if let Some((arg0, rest)) = args.split_first() {
        command.arg0(arg0).args(rest);
    }
    command.env_clear();
    for entry in hook.env().iter().flatten() {
        if let Some((name, value)) = entry.split_once('=') {
            command.env(name, value);
        }
    }
    // A hook's output goes to the runtime's stderr, never into the workload's stdout.
    let stderr = || {
        std::io::stderr()
            .as_fd()
            .try_clone_to_owned()
            .map_or_else(|_| Stdio::null(), Stdio::from)
    };
    command
        .stdin(Stdio::piped())
        .stdout(stderr())
        .stderr(stderr());
    let mut child = command.spawn().map_err(|e| format!("cannot run: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its state closes the pipe early: not an error.
        let _ = stdin.write_all(state.as_bytes());
    }
    let deadline = hook
        .timeout()
        .filter(|t| *t > 0)
        .map(|t| Instant::now() + Duration::from_secs(t.unsigned_abs()));
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(format!("failed: {status}")),
            Ok(None) => {}
            Err(e) => return Err(format!("wait: {e}")),
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "timed out after {}s",
                hook.timeout().unwrap_or_default()
            ));
        }
        std::thread::sleep(POLL);
    }
}
