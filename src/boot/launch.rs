//! `launch`: runs a plan's workload in new namespaces and waits for it.
//!
//! ```text
//! accelgate run (parent)            sandbox init (pid 1, new mnt/pid/ipc/uts[/net/user/cgroup])
//!   clone ───────────────────────►  wait for "go"
//!   (user ns: write id maps)
//!   "go" ────────────────────────►  hostname, vfs::apply, pivot_root
//!                                   fork ─► workload (pid 2): credentials, limits, exec
//!   read error pipe until EOF  ◄──  set-up or exec errors (the pipe closes on exec)
//!   forward signals ─────────────►  forward signals to the workload, reap orphans
//!   wait; exit with its status ◄──  exit with the workload's status (128 + signal if killed)
//! ```
//!
//! The workload is not pid 1, so a plain `sleep` receives a forwarded SIGTERM (pid 1 ignores
//! signals it has no handler for) and zombies are reaped. Everything the sandbox mounts lives in
//! its mount namespace, so a failure at any step leaves nothing behind: the namespace and every
//! process in the pid namespace die with init, and init dies with the launcher (`PDEATHSIG`).

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use nix::sched::CloneFlags;
use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, sigprocmask};
use nix::sys::signalfd::SignalFd;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid};
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use super::BootError;
use super::bundle::required_process;
use super::gate::{GateProcess, GateReport, WorkloadGate};
use super::process::exec_workload;
use super::sys::{clone_child, fork_process};
use crate::plan::SandboxPlan;
use crate::supervisor::gate::GateConfig;
use crate::vfs::{ApplyOptions, RealSys, apply};

/// Signals the launcher passes on to the workload.
pub const FORWARDED_SIGNALS: [Signal; 6] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

/// Exit status when the sandbox could not be set up (podman's convention).
pub const EXIT_SETUP_FAILED: i32 = 125;

/// How the sandbox meets the host.
#[derive(Debug, Clone, Default)]
pub struct LaunchOptions {
    /// The host's `/dev`, for binding device nodes where `mknod` is not allowed; `None` on a
    /// fixture host.
    pub host_dev: Option<PathBuf>,
}

/// What became of the workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It ran and ended with this status (128 + signal when a signal killed it).
    Exited(i32),
    /// The sandbox could not be set up, or the workload could not be executed.
    Failed {
        /// The exit status that stands for the failure (125, 126 or 127).
        status: i32,
        /// What failed, naming the step and path.
        message: String,
    },
}

/// What `launch` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launched {
    /// The workload's end.
    pub outcome: Outcome,
    /// The ioctl gate's end, when the sandbox had one.
    pub gate: Option<GateReport>,
}

fn signal_set(signals: &[Signal]) -> SigSet {
    let mut set = SigSet::empty();
    for signal in signals {
        set.add(*signal);
    }
    set
}

/// The sandbox needs new namespaces: always mount, pid, ipc and uts; network, user and cgroup
/// when the spec lists them. Joining an existing namespace by path is refused for now.
fn clone_flags(spec: &Spec) -> Result<CloneFlags, BootError> {
    let mut flags = CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWUTS;
    let namespaces = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default();
    for namespace in namespaces {
        if let Some(path) = namespace.path() {
            return Err(BootError::InvalidField {
                field: format!("linux.namespaces[{}].path", namespace.typ()),
                reason: format!(
                    "{}: joining an existing namespace is not supported",
                    path.display()
                ),
            });
        }
        flags |= match namespace.typ() {
            LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
            LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
            LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
            _ => CloneFlags::empty(),
        };
    }
    Ok(flags)
}

/// Fails unless this process has one thread: `clone` and `fork` copy only the calling thread.
fn ensure_single_threaded() -> Result<(), BootError> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let threads = status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .map(str::trim);
    if threads.is_some_and(|t| t != "1") {
        return Err(BootError::Launch(format!(
            "the launcher must be single-threaded, it has {} threads",
            threads.unwrap_or("?")
        )));
    }
    Ok(())
}

/// Runs `plan` (compiled from `spec`) and waits for the workload; with `gate`, its
/// accelerator ioctls go through a supervisor process configured by it.
pub fn launch(
    plan: &SandboxPlan,
    spec: &Spec,
    options: &LaunchOptions,
    gate: Option<GateConfig>,
) -> Result<Launched, BootError> {
    ensure_single_threaded()?;
    let flags = clone_flags(spec)?;
    let process = required_process(spec)?.clone();
    let user_namespace = flags.contains(CloneFlags::CLONE_NEWUSER);
    let apply_options = ApplyOptions {
        host_dev: options.host_dev.clone(),
        user_namespace,
    };
    let hostname = spec.hostname().clone();
    let pipe = |what: &str| {
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| BootError::Launch(format!("{what} pipe: {e}")))
    };
    // Forked before any signal is blocked, so that it starts with plain dispositions, and
    // before the pipes below exist, so that it holds no end of them (the launcher reads the
    // error pipe to its end while the workload runs).
    let (gate, workload_gate) = match gate {
        Some(config) => {
            let (process, workload) = GateProcess::start(config)?;
            (Some(process), Some(workload))
        }
        None => (None, None),
    };
    let pipes = pipe("sync").and_then(|go| Ok((go, pipe("error")?)));

    // Block the signals to forward (and SIGCHLD) before the child exists, so none is lost; the
    // child inherits the mask and the workload clears it just before exec.
    let mut watched = FORWARDED_SIGNALS.to_vec();
    watched.push(Signal::SIGCHLD);
    let watched = signal_set(&watched);
    let mut old_mask = SigSet::empty();
    let blocked = sigprocmask(SigmaskHow::SIG_BLOCK, Some(&watched), Some(&mut old_mask))
        .map_err(|e| BootError::Launch(format!("sigprocmask: {e}")));
    let was_blocked = blocked.is_ok();
    let ((go_read, go_write), (err_read, err_write)) = match blocked.and(pipes) {
        Ok(pipes) => pipes,
        Err(e) => {
            if was_blocked {
                let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old_mask), None);
            }
            if let Some(gate) = gate {
                gate.abort();
            }
            return Err(e);
        }
    };

    let child = {
        let mut go_read = Some(go_read);
        let mut err_write = Some(err_write);
        let mut workload_gate = workload_gate;
        // The launcher's copies of what the closure holds close when it is dropped here.
        clone_child(
            flags,
            Box::new(move || {
                let go = go_read.take().expect("the child runs once");
                let errors = err_write.take().expect("the child runs once");
                sandbox_init(
                    go,
                    errors,
                    plan,
                    &process,
                    hostname.as_deref(),
                    &apply_options,
                    &watched,
                    workload_gate.take(),
                )
            }),
        )
    };
    let child = match child {
        Ok(pid) => pid,
        Err(e) => {
            let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old_mask), None);
            if let Some(gate) = gate {
                gate.abort();
            }
            return Err(BootError::Launch(format!("clone into new namespaces: {e}")));
        }
    };
    let result = supervise(child, spec, go_write, err_read, &watched);
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old_mask), None);
    match result {
        Ok(outcome) => Ok(Launched {
            outcome,
            gate: gate.map(GateProcess::finish),
        }),
        Err(e) => {
            if let Some(gate) = gate {
                gate.abort();
            }
            Err(e)
        }
    }
}

/// The launcher's side once the child exists.
fn supervise(
    child: Pid,
    spec: &Spec,
    go: OwnedFd,
    errors: OwnedFd,
    watched: &SigSet,
) -> Result<Outcome, BootError> {
    let abort = |message: String| {
        let _ = kill(child, Signal::SIGKILL);
        let _ = waitpid(child, None);
        BootError::Launch(message)
    };
    if let Some(linux) = spec.linux() {
        if linux
            .namespaces()
            .as_ref()
            .is_some_and(|n| n.iter().any(|ns| ns.typ() == LinuxNamespaceType::User))
        {
            write_id_maps(child, linux).map_err(|e| abort(format!("write id maps: {e}")))?;
        }
    }
    std::fs::File::from(go)
        .write_all(b"g")
        .map_err(|e| abort(format!("start the sandbox: {e}")))?;
    let mut report = String::new();
    let _ = std::fs::File::from(errors).read_to_string(&mut report);
    let signals = SignalFd::new(watched).map_err(|e| abort(format!("signalfd: {e}")))?;
    let mut failure = parse_failure(&report);
    loop {
        match waitpid(child, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => {
                return Ok(match failure.take() {
                    Some((status, message)) => Outcome::Failed { status, message },
                    None => Outcome::Exited(code),
                });
            }
            Ok(WaitStatus::Signaled(_, signal, _)) => {
                return Ok(Outcome::Exited(128 + signal as i32));
            }
            Ok(_) => {}
            Err(e) => return Err(BootError::Launch(format!("wait for the sandbox: {e}"))),
        }
        match signals.read_signal() {
            Ok(Some(info)) => {
                let signal = Signal::try_from(info.ssi_signo as i32).ok();
                if let Some(signal) = signal.filter(|s| *s != Signal::SIGCHLD) {
                    let _ = kill(child, signal);
                }
            }
            Ok(None) => {}
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(abort(format!("read signals: {e}"))),
        }
    }
}

/// The error pipe carries `<status> <message>` when set-up or exec failed.
fn parse_failure(report: &str) -> Option<(i32, String)> {
    let (status, message) = report.split_once(' ')?;
    Some((status.parse().ok()?, message.to_owned()))
}

fn write_id_maps(child: Pid, linux: &oci_spec::runtime::Linux) -> std::io::Result<()> {
    let format = |maps: Option<&Vec<oci_spec::runtime::LinuxIdMapping>>| {
        maps.map(|list| {
            list.iter()
                .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
                .collect::<String>()
        })
    };
    if let Some(text) = format(linux.uid_mappings().as_ref()) {
        std::fs::write(format!("/proc/{child}/uid_map"), text)?;
    }
    if let Some(text) = format(linux.gid_mappings().as_ref()) {
        std::fs::write(format!("/proc/{child}/gid_map"), text)?;
    }
    Ok(())
}

/// The sandbox's pid 1: waits for "go", builds the filesystem, starts the workload and stays
/// as its init. Returns only as the process's exit status.
#[allow(clippy::too_many_arguments)]
fn sandbox_init(
    go: OwnedFd,
    errors: OwnedFd,
    plan: &SandboxPlan,
    process: &oci_spec::runtime::Process,
    hostname: Option<&str>,
    options: &ApplyOptions,
    watched: &SigSet,
    gate: Option<WorkloadGate>,
) -> isize {
    let mut errors = std::fs::File::from(errors);
    let report = |errors: &mut std::fs::File, status: i32, message: &str| {
        let _ = write!(errors, "{status} {message}");
        status as isize
    };
    // Die with the launcher: no sandbox outlives `accelgate run`. (Had the launcher died before
    // this, the read below sees the "go" pipe closed.)
    if nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).is_err() {
        return report(
            &mut errors,
            EXIT_SETUP_FAILED,
            "set the parent-death signal",
        );
    }
    let mut byte = [0u8; 1];
    if std::fs::File::from(go).read_exact(&mut byte).is_err() {
        return report(
            &mut errors,
            EXIT_SETUP_FAILED,
            "the launcher went away before the start",
        );
    }
    if options.user_namespace {
        // Until now this process kept the launcher's host ids, which the new user namespace
        // does not map; become its root, so that files it makes belong to someone there.
        let root = (nix::unistd::Gid::from_raw(0), nix::unistd::Uid::from_raw(0));
        if let Err(e) = nix::unistd::setresgid(root.0, root.0, root.0)
            .and_then(|()| nix::unistd::setresuid(root.1, root.1, root.1))
        {
            return report(
                &mut errors,
                EXIT_SETUP_FAILED,
                &format!("become root of the user namespace (are uid and gid 0 mapped?): {e}"),
            );
        }
    }
    if let Some(name) = hostname {
        if let Err(e) = nix::unistd::sethostname(name) {
            return report(
                &mut errors,
                EXIT_SETUP_FAILED,
                &format!("sethostname {name}: {e}"),
            );
        }
    }
    if let Err(e) = apply(plan, &RealSys, options) {
        return report(&mut errors, EXIT_SETUP_FAILED, &crate::pci::error_chain(&e));
    }
    let _ = nix::sys::prctl::set_dumpable(false);
    let workload = match fork_process() {
        Ok(ForkResult::Child) => {
            let Err(failure) = exec_workload(process, plan, gate);
            let _ = write!(errors, "{} {}", failure.status, failure.message);
            std::process::exit(failure.status);
        }
        Ok(ForkResult::Parent { child }) => {
            // Only the workload may hold the hand-off socket, so that the supervisor sees it
            // close if the workload fails before sending the listener.
            drop(gate);
            child
        }
        Err(e) => {
            return report(
                &mut errors,
                EXIT_SETUP_FAILED,
                &format!("fork the workload: {e}"),
            );
        }
    };
    drop(errors);
    init_loop(workload, watched)
}

/// Forwards signals to the workload and reaps every child until the workload exits; its status
/// (128 + signal when killed) becomes init's.
fn init_loop(workload: Pid, watched: &SigSet) -> isize {
    let Ok(signals) = SignalFd::new(watched) else {
        let _ = kill(workload, Signal::SIGKILL);
        return EXIT_SETUP_FAILED as isize;
    };
    loop {
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) if pid == workload => return code as isize,
                Ok(WaitStatus::Signaled(pid, signal, _)) if pid == workload => {
                    return 128 + signal as isize;
                }
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => {}
            }
        }
        if let Ok(Some(info)) = signals.read_signal() {
            if let Ok(signal) = Signal::try_from(info.ssi_signo as i32) {
                if signal != Signal::SIGCHLD {
                    let _ = kill(workload, signal);
                }
            }
        }
    }
}
