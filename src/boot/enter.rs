//! `enter`: runs another process in a running sandbox (`exec`), in all of its namespaces.
//!
//! ```text
//! accelgate exec (launcher)              new process
//!   pidfd of the container's process
//!   (enter its pid namespace for children)
//!   clone3 (into the cgroup2 cgroup) ──► joins its v1 cgroups (`0` to each `tasks`)
//!   (back to its own pid namespace)      wait for "go"
//!   lifecycle: created (the pid file)
//!   "go" + its host pid ───────────────► setns(pidfd: user, mnt, ipc, uts, net, cgroup),
//!                                        terminal, then as the first process: cwd, umask,
//!                                        limits, (the gate's filter, listener to the
//!                                        container's supervisor), the spec's seccomp
//!                                        profile, ids, capabilities, no_new_privs, exec
//!   read the error pipe to EOF ◄──────── a set-up or exec error, if any
//!   detached: return its pid; else wait, forwarding signals, and return its status
//! ```
//!
//! The namespaces are joined through one pidfd in one `setns` (Linux 5.8), so that they are
//! all the container's process's at one instant; a pid reused meanwhile is caught by the
//! caller's start-time check before, and by the pidfd after.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use nix::sched::CloneFlags;
use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, sigprocmask};
use nix::sys::signalfd::SignalFd;
use nix::sys::wait::waitpid;
use nix::unistd::Pid;

use super::BootError;
use super::cgroup_join::{CgroupFds, CgroupJoin, cgroups_joined, join_cgroups};
use super::gate::WorkloadGate;
use super::launch::{
    EXIT_SETUP_FAILED, FORWARDED_SIGNALS, Joined, Outcome, ensure_single_threaded, parse_failure,
    signal_set, wait_forwarding,
};
use super::lifecycle::Lifecycle;
use super::process::{Workload, exec_workload};
use super::seccomp::{Installation, SpecFilter};
use super::sys::clone_child;
use super::terminal::open_terminal;

/// How a process enters a sandbox.
#[derive(Debug, Clone)]
pub struct EnterOptions {
    /// The container's process (its namespaces are joined), as the host sees it.
    pub target: Pid,
    /// `process.terminal`: the engine's socket that receives the pty's master.
    pub console_socket: Option<PathBuf>,
    /// Return once the process runs, without waiting for it.
    pub detach: bool,
    /// The container's `linux.seccomp`, compiled: installed as for its first process.
    pub seccomp: Option<SpecFilter>,
    /// The container's cgroups, which the process joins before it may run.
    pub cgroups: CgroupJoin,
}

/// The namespaces of `target` this process is not in, by kind (`/proc/PID/ns` name, flag).
fn foreign_namespaces(target: Pid) -> Result<Vec<(&'static str, CloneFlags)>, BootError> {
    let kinds = [
        ("user", CloneFlags::CLONE_NEWUSER),
        ("mnt", CloneFlags::CLONE_NEWNS),
        ("pid", CloneFlags::CLONE_NEWPID),
        ("ipc", CloneFlags::CLONE_NEWIPC),
        ("uts", CloneFlags::CLONE_NEWUTS),
        ("net", CloneFlags::CLONE_NEWNET),
        ("cgroup", CloneFlags::CLONE_NEWCGROUP),
    ];
    let mut foreign = Vec::new();
    for (name, flag) in kinds {
        let theirs = std::fs::metadata(format!("/proc/{target}/ns/{name}"));
        let ours = std::fs::metadata(format!("/proc/self/ns/{name}"));
        match (theirs, ours) {
            (Ok(theirs), Ok(ours)) if theirs.ino() == ours.ino() => {}
            (Ok(_), Ok(_)) => foreign.push((name, flag)),
            (Err(e), _) | (_, Err(e)) => {
                return Err(BootError::Launch(format!(
                    "the {name} namespace of process {target}: {e}"
                )));
            }
        }
    }
    Ok(foreign)
}

/// Runs `workload` in the namespaces and cgroups of `options.target`; `gate` puts it behind the
/// sandbox's ioctl gate, and `options.seccomp` under the sandbox's own profile.
pub fn enter(
    workload: &Workload,
    options: &EnterOptions,
    gate: Option<WorkloadGate>,
    lifecycle: &mut dyn Lifecycle,
) -> Result<Outcome, BootError> {
    ensure_single_threaded()?;
    let target = options.target;
    let pidfd = rustix::process::pidfd_open(
        rustix::process::Pid::from_raw(target.as_raw())
            .ok_or_else(|| BootError::Launch(format!("{target} is not a process id")))?,
        rustix::process::PidfdFlags::empty(),
    )
    .map_err(|e| BootError::Launch(format!("pidfd_open {target}: {e}")))?;
    let foreign = foreign_namespaces(target)?;
    let joined_pid = foreign
        .iter()
        .any(|(_, flag)| *flag == CloneFlags::CLONE_NEWPID);
    let others = foreign
        .iter()
        .map(|(_, flag)| *flag)
        .filter(|flag| *flag != CloneFlags::CLONE_NEWPID)
        .fold(CloneFlags::empty(), |all, flag| all | flag);
    // Connected now: once in the container's mount namespace, the engine's paths are out of
    // reach.
    let (console, agent) = super::launch::engine_sockets(
        options.console_socket.as_deref(),
        options.seccomp.as_ref().and_then(|f| f.agent.as_deref()),
    )?;
    let pipe = |what: &str| {
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| BootError::Launch(format!("{what} pipe: {e}")))
    };
    let ((go_read, go_write), (err_read, err_write)) = (pipe("sync")?, pipe("error")?);
    let cgroups = CgroupFds::open(&options.cgroups)?;
    let joined_pipe = if cgroups.tasks.is_empty() {
        None
    } else {
        Some(pipe("cgroup")?)
    };
    let mut watched = FORWARDED_SIGNALS.to_vec();
    watched.push(Signal::SIGCHLD);
    let watched = signal_set(&watched);
    let mut old_mask = SigSet::empty();
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&watched), Some(&mut old_mask))
        .map_err(|e| BootError::Launch(format!("sigprocmask: {e}")))?;
    let restore = |old_mask: &SigSet| {
        let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(old_mask), None);
    };
    let pid_namespace = if joined_pid {
        vec![(
            CloneFlags::CLONE_NEWPID,
            PathBuf::from(format!("/proc/{target}/ns/pid")),
        )]
    } else {
        Vec::new()
    };
    let joined = match Joined::enter(&pid_namespace) {
        Ok(joined) => joined,
        Err(e) => {
            restore(&old_mask);
            return Err(e);
        }
    };
    let (child, joined_read) = {
        let mut go_read = Some(go_read);
        let mut err_write = Some(err_write);
        let mut gate = gate;
        let mut agent = agent;
        let unified = cgroups.unified;
        let (joined_read, joined_write) = joined_pipe.unzip();
        let mut cgroup_join = Some((cgroups.tasks, joined_write));
        let joining = Joining {
            workload,
            pidfd: &pidfd,
            namespaces: others,
            console: console.as_ref().map(AsRawFd::as_raw_fd),
            seccomp: options.seccomp.as_ref(),
            lifecycle: &*lifecycle,
        };
        let cloned = clone_child(
            CloneFlags::empty(),
            unified.as_ref().map(std::os::fd::AsFd::as_fd),
            move || {
                let go = go_read.take().expect("the child runs once");
                let errors = err_write.take().expect("the child runs once");
                let cgroups = cgroup_join.take().expect("the child runs once");
                joining.run(go, errors, cgroups, gate.take(), agent.take())
            },
        );
        (cloned, joined_read)
    };
    joined.leave();
    drop(console);
    let child = match child {
        Ok(pid) => pid,
        Err(e) => {
            restore(&old_mask);
            return Err(BootError::Launch(format!("clone: {e}")));
        }
    };
    let result = start(
        child,
        workload,
        Pipes {
            go: go_write,
            errors: err_read,
            joined: joined_read,
        },
        &watched,
        lifecycle,
        options,
    );
    restore(&old_mask);
    result
}

/// The launcher's ends of the pipes to the new process.
struct Pipes {
    go: OwnedFd,
    errors: OwnedFd,
    /// A byte once it is in its v1 cgroups; `None` when it has none to join.
    joined: Option<OwnedFd>,
}

/// The launcher's side once the process exists.
fn start(
    child: Pid,
    workload: &Workload,
    pipes: Pipes,
    watched: &SigSet,
    lifecycle: &mut dyn Lifecycle,
    options: &EnterOptions,
) -> Result<Outcome, BootError> {
    let abort = |message: String| {
        let _ = kill(child, Signal::SIGKILL);
        let _ = waitpid(child, None);
        BootError::Launch(message)
    };
    let Pipes { go, errors, joined } = pipes;
    if !cgroups_joined(joined) {
        let mut report = String::new();
        let _ = std::fs::File::from(errors).read_to_string(&mut report);
        let message = parse_failure(&report)
            .map_or_else(|| "join its cgroups: it died".to_owned(), |(_, m)| m);
        return Err(abort(message));
    }
    if let Some(score) = workload.process.oom_score_adj() {
        std::fs::write(format!("/proc/{child}/oom_score_adj"), score.to_string())
            .map_err(|e| abort(format!("process.oomScoreAdj {score}: {e}")))?;
    }
    lifecycle.created(child).map_err(abort)?;
    std::fs::File::from(go)
        .write_all(format!("{child}\n").as_bytes())
        .map_err(|e| abort(format!("start the process: {e}")))?;
    let mut report = String::new();
    let _ = std::fs::File::from(errors).read_to_string(&mut report);
    let signals = SignalFd::new(watched).map_err(|e| abort(format!("signalfd: {e}")))?;
    let failure = parse_failure(&report);
    if failure.is_none() {
        lifecycle.started(child);
        if options.detach {
            return Ok(Outcome::Detached(child));
        }
    }
    wait_forwarding(child, &signals, failure)
}

/// What the new process needs, borrowed from its copy of the launcher's memory.
struct Joining<'a> {
    workload: &'a Workload,
    pidfd: &'a OwnedFd,
    namespaces: CloneFlags,
    console: Option<std::os::fd::RawFd>,
    seccomp: Option<&'a SpecFilter>,
    lifecycle: &'a dyn Lifecycle,
}

impl Joining<'_> {
    /// Joins the cgroups, waits for "go", joins the namespaces and becomes the workload.
    /// Returns only when something failed, as the exit status (also reported on `errors`).
    fn run(
        &self,
        go: OwnedFd,
        errors: OwnedFd,
        cgroups: (Vec<OwnedFd>, Option<OwnedFd>),
        gate: Option<WorkloadGate>,
        agent: Option<std::os::unix::net::UnixStream>,
    ) -> isize {
        let (status, message) = match join_cgroups(cgroups).and_then(|()| self.prepare(go)) {
            Ok((host_pid, terminal)) => {
                let seccomp = self.seccomp.map(|filter| Installation {
                    filter,
                    agent: agent.map(|socket| (socket, self.lifecycle.agent_state(host_pid))),
                });
                let Err(failure) = exec_workload(self.workload, gate, seccomp, terminal);
                (failure.status, failure.message)
            }
            Err(message) => (EXIT_SETUP_FAILED, message),
        };
        let _ = write!(std::fs::File::from(errors), "{status} {message}");
        status as isize
    }

    /// Everything before the workload's own set-up; returns the host's pid of this process,
    /// and the terminal's slave when it has one.
    fn prepare(&self, go: OwnedFd) -> Result<(Pid, Option<OwnedFd>), String> {
        // A line, not to the end: this process holds a copy of the write end too.
        let mut go = std::fs::File::from(go);
        let mut byte = [0u8; 1];
        let mut text = Vec::new();
        while go
            .read(&mut byte)
            .map_err(|e| format!("read the start: {e}"))?
            == 1
            && byte[0] != b'\n'
        {
            text.push(byte[0]);
        }
        let host_pid = std::str::from_utf8(&text)
            .ok()
            .and_then(|text| text.parse().ok())
            .map(Pid::from_raw)
            .ok_or_else(|| "the launcher went away before the start".to_owned())?;
        if !self.namespaces.is_empty() {
            nix::sched::setns(self.pidfd, self.namespaces)
                .map_err(|e| format!("join the container's namespaces: {e}"))?;
        }
        let terminal = match self.console {
            Some(console) => Some(open_terminal(&self.workload.process, console)?),
            None => None,
        };
        Ok((host_pid, terminal))
    }
}
