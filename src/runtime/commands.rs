//! The runc command line's lifecycle: `create` (built, waiting on `exec.fifo`), `start`
//! (releases it), `state`, `kill`, `pause`, `resume`, `delete`, as the runtime-spec (and runc,
//! for `pause`) defines them.

use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::RuntimeError;
use super::container::{Container, GATE_SOCKET, GateRecord, StateRoot, process_start};
use super::freezer::set_frozen;
use super::hooks::{HookPhase, Hooks};
use super::run::Around;
use super::state::Status;
use crate::boot::{Bundle, GateService, GateSetup, LaunchOptions, Outcome, launch};
use crate::plan::SandboxPlan;
use crate::supervisor::GateConfig;

/// The barrier a created container waits on, in its state directory.
const EXEC_FIFO: &str = "exec.fifo";
/// How long `start` waits for the container to take the barrier, and `delete --force` for it
/// to die.
const PATIENCE: Duration = Duration::from_secs(10);

fn refused(id: &str, reason: impl Into<String>) -> RuntimeError {
    RuntimeError::Container {
        id: id.to_owned(),
        reason: reason.into(),
    }
}

/// How `create` meets the engine.
#[derive(Default)]
pub struct CreateOptions {
    /// The host's `/dev`, for binding device nodes where `mknod` is not allowed.
    pub host_dev: Option<PathBuf>,
    /// Where to write the container's pid.
    pub pid_file: Option<PathBuf>,
    /// The engine's socket for the terminal's master (`process.terminal`).
    pub console_socket: Option<PathBuf>,
    /// Descriptors 3 to 3 + N - 1 the workload keeps.
    pub preserve_fds: u32,
    /// The ioctl gate, when the sandbox gets accelerators: served by a [`GateService`] that
    /// outlives `create`, for the first process and every exec'd one.
    pub gate: Option<GateConfig>,
}

/// `create`: builds the container from `plan` and leaves it waiting for `start`; writes its pid
/// to the pid file. Everything made is undone when it fails.
pub fn create(
    root: &StateRoot,
    bundle: &Bundle,
    plan: &SandboxPlan,
    options: CreateOptions,
) -> Result<Container, RuntimeError> {
    let terminal = bundle
        .spec
        .process()
        .as_ref()
        .is_some_and(|p| p.terminal() == Some(true));
    if terminal != options.console_socket.is_some() {
        return Err(RuntimeError::Unsupported {
            field: "process.terminal".into(),
            reason: if terminal {
                "a terminal needs --console-socket (the container outlives create)".into()
            } else {
                "--console-socket is given, but the process wants no terminal".into()
            },
        });
    }
    let seccomp = super::run::spec_filter(&bundle.spec, options.gate.is_some())?;
    let id = plan.container_id.clone();
    let _lock = root.lock()?;
    let dir = root.dir(&id)?;
    std::fs::create_dir(&dir).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            refused(&id, "already exists")
        } else {
            RuntimeError::State {
                path: dir.clone(),
                what: "create".into(),
                source: e,
            }
        }
    })?;
    let fifo = dir.join(EXEC_FIFO);
    let hooks = Hooks::of(&bundle.spec).0;
    let made = nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))
        .and_then(|()| {
            // The container's root opens it; in a user namespace that is another host id.
            let (uid, gid) = container_root(&bundle.spec);
            nix::unistd::chown(&fifo, Some(uid), Some(gid))
        })
        .map_err(|e| RuntimeError::State {
            path: fifo.clone(),
            what: "mkfifo".into(),
            source: e.into(),
        })
        .and_then(|()| Around::new(bundle, plan, &hooks))
        .and_then(|mut lifecycle| match lifecycle.make_cgroups() {
            Ok(join) => Ok((lifecycle, join)),
            Err(e) => {
                for cgroup in lifecycle.cgroups.drain(..) {
                    cgroup.remove();
                }
                Err(e)
            }
        });
    let (mut lifecycle, cgroups) = match made {
        Ok(made) => made,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
    };
    let service = match options.gate {
        Some(config) => match GateService::start(config, &dir.join(GATE_SOCKET)) {
            Ok((service, workload_gate)) => Some((service, workload_gate)),
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e.into());
            }
        },
        None => None,
    };
    let (gate, workload_gate) = match service {
        Some((service, workload_gate)) => (
            Some(GateRecord {
                pid: service.pid.as_raw(),
                pid_start: process_start(service.pid).unwrap_or_default(),
            }),
            Some(GateSetup::Handed(workload_gate)),
        ),
        None => (None, None),
    };
    let launch_options = LaunchOptions {
        host_dev: options.host_dev,
        barrier: Some(fifo),
        console_socket: options.console_socket,
        preserve_fds: options.preserve_fds,
        seccomp,
        cgroups,
    };
    let launched = launch(
        plan,
        &bundle.spec,
        &launch_options,
        workload_gate,
        &mut lifecycle,
    );
    let cgroups = std::mem::take(&mut lifecycle.cgroups);
    let undo = |cgroups: Vec<super::Cgroup>| {
        if let Some(gate) = &gate {
            stop_gate(gate);
        }
        for cgroup in cgroups {
            cgroup.remove();
        }
        let _ = std::fs::remove_dir_all(&dir);
    };
    let pid = match launched.map(|l| l.outcome) {
        Ok(Outcome::Created(pid)) => pid,
        Ok(Outcome::Failed { message, .. }) => {
            undo(cgroups);
            return Err(refused(&id, message));
        }
        Ok(Outcome::Exited(status)) => {
            undo(cgroups);
            return Err(refused(&id, format!("exited with {status} while created")));
        }
        Ok(Outcome::Detached(_)) => {
            undo(cgroups);
            return Err(refused(&id, "was not created"));
        }
        Err(e) => {
            undo(cgroups);
            return Err(e.into());
        }
    };
    let container = Container {
        id: id.clone(),
        bundle: bundle.dir.clone(),
        pid: pid.as_raw(),
        pid_start: process_start(pid).unwrap_or_default(),
        created: SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        started: false,
        annotations: bundle.spec.annotations().clone().unwrap_or_default(),
        cgroups,
        gate: gate.clone(),
        seccomp: bundle
            .spec
            .linux()
            .as_ref()
            .and_then(|l| l.seccomp().clone()),
    };
    let saved = root
        .save(&container)
        .and_then(|()| match &options.pid_file {
            Some(path) => write_pid_file(path, pid),
            None => Ok(()),
        });
    if let Err(e) = saved {
        let _ = kill(pid, Signal::SIGKILL);
        undo(container.cgroups);
        return Err(e);
    }
    Ok(container)
}

/// The host's ids of the container's root: mapped by `linux.uidMappings`/`gidMappings` in a
/// user namespace, the same ids otherwise.
fn container_root(spec: &oci_spec::runtime::Spec) -> (nix::unistd::Uid, nix::unistd::Gid) {
    let host_of = |maps: Option<&Vec<oci_spec::runtime::LinuxIdMapping>>| {
        maps.into_iter()
            .flatten()
            .find(|m| m.container_id() == 0 && m.size() > 0)
            .map_or(0, |m| m.host_id())
    };
    let linux = spec.linux().as_ref();
    (
        nix::unistd::Uid::from_raw(host_of(linux.and_then(|l| l.uid_mappings().as_ref()))),
        nix::unistd::Gid::from_raw(host_of(linux.and_then(|l| l.gid_mappings().as_ref()))),
    )
}

/// Ends a container's gate service (its container is gone, or never started).
fn stop_gate(gate: &GateRecord) {
    if gate.alive() {
        let _ = kill(Pid::from_raw(gate.pid), Signal::SIGKILL);
    }
}

/// The pid file, written whole or not at all (engines read it as soon as it exists).
pub(super) fn write_pid_file(path: &Path, pid: Pid) -> Result<(), RuntimeError> {
    let next = path.with_extension("accelgate-new");
    std::fs::write(&next, pid.to_string())
        .and_then(|()| std::fs::rename(&next, path))
        .map_err(|source| RuntimeError::State {
            path: path.to_path_buf(),
            what: "write the pid file".into(),
            source,
        })
}

/// `start`: releases a created container's workload; an error in any other state.
pub fn start(root: &StateRoot, id: &str) -> Result<(), RuntimeError> {
    let _lock = root.lock()?;
    let mut container = root.load(id)?;
    let status = container.status();
    if status != Status::Created {
        return Err(refused(
            id,
            format!("is {status:?}, not created; only a created container starts").to_lowercase(),
        ));
    }
    let fifo = root.dir(id)?.join(EXEC_FIFO);
    let state_error = |what: &str| {
        let (path, what) = (fifo.clone(), what.to_owned());
        move |source: std::io::Error| RuntimeError::State { path, what, source }
    };
    // Non-blocking, so that a container that died meanwhile cannot hang `start`.
    let mut reader = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .map_err(state_error("open"))?;
    let started = Instant::now();
    let mut byte = [0u8; 1];
    loop {
        match reader.read(&mut byte) {
            Ok(1) => break,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(state_error("read")(e)),
        }
        if container.status() == Status::Stopped || started.elapsed() > PATIENCE {
            return Err(refused(id, "did not take its start (it died, or hangs)"));
        }
        let mut fds = [nix::poll::PollFd::new(
            reader.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(50u8));
    }
    let _ = std::fs::remove_file(&fifo);
    container.started = true;
    root.save(&container)?;
    run_hooks(&container, HookPhase::Poststart);
    Ok(())
}

/// Runs the hooks of `phase` from the bundle's spec; a failure is a warning (poststart,
/// poststop).
fn run_hooks(container: &Container, phase: HookPhase) {
    match Bundle::load(&container.bundle) {
        Ok(bundle) => {
            if let Err(e) = Hooks::of(&bundle.spec).0.run(phase, &container.state()) {
                eprintln!("warning: {e}");
            }
        }
        Err(e) => eprintln!(
            "warning: {} hooks not run: {}",
            phase.name(),
            crate::pci::error_chain(&e)
        ),
    }
}

/// The processes to signal: the container's own while it lives, and with `all` every one in
/// its cgroups (processes exec'd into it included).
pub(super) fn processes(container: &Container, all: bool) -> Vec<Pid> {
    let mut pids = Vec::new();
    if container.status() != Status::Stopped {
        pids.push(Pid::from_raw(container.pid));
    }
    if all {
        for cgroup in &container.cgroups {
            pids.extend(cgroup.processes());
        }
    }
    pids.sort();
    pids.dedup();
    pids
}

/// `kill`: sends `signal` to the container's process (`all`: to every process in its cgroup).
pub fn kill_container(
    root: &StateRoot,
    id: &str,
    signal: Signal,
    all: bool,
) -> Result<(), RuntimeError> {
    let container = root.load(id)?;
    let status = container.status();
    // With --all, what is left in its cgroups may still be signalled (as runc allows).
    if status == Status::Stopped && !all {
        return Err(refused(id, "is not running"));
    }
    for pid in processes(&container, all) {
        if let Err(e) = kill(pid, signal) {
            if e != nix::errno::Errno::ESRCH {
                return Err(refused(id, format!("kill {pid} with {signal}: {e}")));
            }
        }
    }
    if status == Status::Paused && signal == Signal::SIGKILL {
        // Frozen processes die of SIGKILL only once thawed.
        set_frozen(id, &container.cgroups, false)?;
    }
    Ok(())
}

/// `delete`: removes a stopped container (with `force`, kills a created or running one
/// first), runs its poststop hooks and removes its cgroups.
pub fn delete(root: &StateRoot, id: &str, force: bool) -> Result<(), RuntimeError> {
    let _lock = root.lock()?;
    let container = match root.load(id) {
        Ok(container) => container,
        Err(RuntimeError::Container { .. }) if force => return Ok(()),
        Err(e) => return Err(e),
    };
    let status = container.status();
    if status != Status::Stopped {
        if !force {
            return Err(refused(
                id,
                format!("is {status:?}; stop it first, or use --force").to_lowercase(),
            ));
        }
        for pid in processes(&container, true) {
            let _ = kill(pid, Signal::SIGKILL);
        }
        if status == Status::Paused {
            // Frozen processes die of SIGKILL only once thawed.
            set_frozen(id, &container.cgroups, false)?;
        }
        let started = Instant::now();
        while container.status() != Status::Stopped {
            if started.elapsed() > PATIENCE {
                return Err(refused(id, "did not die of SIGKILL"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    if let Some(gate) = &container.gate {
        stop_gate(gate);
    }
    run_hooks(&container, HookPhase::Poststop);
    let dir = root.dir(id)?;
    for cgroup in container.cgroups {
        cgroup.remove();
    }
    std::fs::remove_dir_all(&dir).map_err(|source| RuntimeError::State {
        path: dir,
        what: "remove".into(),
        source,
    })
}

/// `pause`: freezes every process of a running container.
pub fn pause(root: &StateRoot, id: &str) -> Result<(), RuntimeError> {
    let _lock = root.lock()?;
    let container = root.load(id)?;
    match container.status() {
        Status::Running => set_frozen(id, &container.cgroups, true),
        status => Err(refused(
            id,
            format!("is {status:?}; only a running container pauses").to_lowercase(),
        )),
    }
}

/// `resume`: thaws a paused container.
pub fn resume(root: &StateRoot, id: &str) -> Result<(), RuntimeError> {
    let _lock = root.lock()?;
    let container = root.load(id)?;
    match container.status() {
        Status::Paused => set_frozen(id, &container.cgroups, false),
        status => Err(refused(
            id,
            format!("is {status:?}, not paused").to_lowercase(),
        )),
    }
}

/// `ps`: the processes in container `id`'s cgroups (processes exec'd into it included), as the
/// host sees them.
pub fn container_processes(root: &StateRoot, id: &str) -> Result<Vec<Pid>, RuntimeError> {
    Ok(processes(&root.load(id)?, true))
}
