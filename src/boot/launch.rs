//! `launch`: runs a plan's workload in new namespaces and waits for it.
//!
//! ```text
//! accelgate run (parent)            sandbox process (pid 1, new mnt/pid/ipc/uts[/net/user/cgroup])
//!   (join namespaces given by path)
//!   clone ───────────────────────►  wait for "go"
//!   (back to its own namespaces; user ns: write id maps; oom_score_adj)
//!   lifecycle: created ─────────── (the runtime: device cgroup, createRuntime hooks, ...)
//!   "go" + its host pid ─────────►  hostname, sysctls, vfs::apply, pivot_root, session keyring,
//!                                   personality, lifecycle: starting, credentials, exec
//!   read error pipe until EOF  ◄──  set-up or exec errors (the pipe closes on exec)
//!   lifecycle: started
//!   forward signals ─────────────►  the workload, pid 1 of its namespace
//!   wait; exit with its status ◄──  its exit status (128 + signal if killed)
//! ```
//!
//! The workload is pid 1 of its pid namespace, as with runc: nothing it can reach holds more
//! than it does (no init keeps the launcher's capabilities, environment or fds). Like any pid 1,
//! it receives only the signals it has handlers for, and reaps its own orphans. Everything the
//! sandbox mounts lives in its mount namespace, so a failure at any step leaves nothing behind:
//! the namespace and every process in the pid namespace die with the workload, and the workload
//! dies with the launcher (`PDEATHSIG`).

use std::collections::HashMap;
use std::ffi::CString;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use nix::sched::CloneFlags;
use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, sigprocmask};
use nix::sys::signalfd::SignalFd;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxNamespaceType, LinuxPersonalityDomain, Spec};

use super::BootError;
use super::bundle::required_process;
use super::cgroup_join::{CgroupFds, CgroupJoin, cgroups_joined, join_cgroups};
use super::gate::{GateProcess, GateReport, WorkloadGate};
use super::lifecycle::Lifecycle;
use super::process::{Workload, exec_workload};
use super::seccomp::{Installation, SpecFilter};
use super::sys::{clone_child, join_session_keyring};
use super::terminal::{open_terminal, terminal_as_stdio};
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
    /// `create`: the FIFO the sandbox waits on once it is built, until `start` opens it for
    /// reading; `launch` then returns as soon as the sandbox is created, without waiting, and
    /// the sandbox outlives the launcher. `None`: run to the end.
    pub barrier: Option<PathBuf>,
    /// `process.terminal`: the engine's socket that receives the pty's master; `None` leaves
    /// stdio as inherited.
    pub console_socket: Option<PathBuf>,
    /// Descriptors 3 to 3 + N - 1 the workload keeps (runc's `--preserve-fds`).
    pub preserve_fds: u32,
    /// `linux.seccomp`, compiled by the runtime: installed by the workload on top of the ioctl
    /// gate's filter.
    pub seccomp: Option<SpecFilter>,
    /// The sandbox's cgroups, made by the runtime before the launch.
    pub cgroups: CgroupJoin,
}

/// Where the sandbox's ioctl gate is served.
pub enum GateSetup {
    /// By a supervisor process `launch` starts and ends with the workload (`run`).
    Own(Box<GateConfig>),
    /// By a supervisor that lives apart from the launcher (`create`'s [`GateService`]); the
    /// workload only installs the filter and hands its listener over.
    ///
    /// [`GateService`]: super::GateService
    Handed(WorkloadGate),
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
    /// `create`: the sandbox is built and waits on its barrier; this is its pid.
    Created(Pid),
    /// A detached `exec`: the process runs, and nobody here waits for it; this is its pid.
    Detached(Pid),
}

/// What `launch` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launched {
    /// The workload's end.
    pub outcome: Outcome,
    /// The ioctl gate's end, when the sandbox had one.
    pub gate: Option<GateReport>,
}

pub(super) fn signal_set(signals: &[Signal]) -> SigSet {
    let mut set = SigSet::empty();
    for signal in signals {
        set.add(*signal);
    }
    set
}

/// The namespaces of the sandbox: new ones as clone flags (always mount, pid, ipc and uts;
/// network, user and cgroup when the spec lists them), and existing ones to join by path.
struct Namespaces {
    flags: CloneFlags,
    join: Vec<(CloneFlags, PathBuf)>,
}

fn namespace_flag(typ: LinuxNamespaceType) -> CloneFlags {
    match typ {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Time => CloneFlags::empty(),
    }
}

impl Namespaces {
    /// `compile` already refused the types that cannot be joined.
    fn of(spec: &Spec) -> Self {
        let mut flags = CloneFlags::CLONE_NEWNS
            | CloneFlags::CLONE_NEWPID
            | CloneFlags::CLONE_NEWIPC
            | CloneFlags::CLONE_NEWUTS;
        let mut join = Vec::new();
        let namespaces = spec
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().clone())
            .unwrap_or_default();
        for namespace in namespaces {
            let flag = namespace_flag(namespace.typ());
            match namespace.path() {
                Some(path) => {
                    flags.remove(flag);
                    join.push((flag, path.clone()));
                }
                None => flags |= flag,
            }
        }
        Self { flags, join }
    }
}

/// The launcher's own namespaces while it sits in those the sandbox joins: `clone` makes the
/// sandbox's process there (for pid, its children's namespace), with no window in which it
/// runs outside them. [`Joined::leave`] goes back.
pub(super) struct Joined(Vec<(CloneFlags, OwnedFd)>);

impl Joined {
    pub(super) fn enter(join: &[(CloneFlags, PathBuf)]) -> Result<Self, BootError> {
        let mut own = Self(Vec::new());
        for (flag, path) in join {
            let open = |path: &std::path::Path| {
                nix::fcntl::open(
                    path,
                    nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
                    nix::sys::stat::Mode::empty(),
                )
            };
            let name = own_namespace_name(*flag);
            let failed = |what: String, e: nix::errno::Errno, own: Self| {
                own.leave();
                BootError::Launch(format!("{what}: {e}"))
            };
            let mine = match open(&PathBuf::from(format!("/proc/self/ns/{name}"))) {
                Ok(fd) => fd,
                Err(e) => return Err(failed(format!("open /proc/self/ns/{name}"), e, own)),
            };
            let target = match open(path) {
                Ok(fd) => fd,
                Err(e) => {
                    return Err(failed(
                        format!("open the {name} namespace {}", path.display()),
                        e,
                        own,
                    ));
                }
            };
            if let Err(e) = nix::sched::setns(&target, *flag) {
                return Err(failed(
                    format!("join the {name} namespace {}", path.display()),
                    e,
                    own,
                ));
            }
            own.0.push((*flag, mine));
        }
        Ok(own)
    }

    /// Back to the launcher's own namespaces; a failure here would leave the launcher in the
    /// container's, so it aborts.
    pub(super) fn leave(self) {
        for (flag, fd) in self.0.into_iter().rev() {
            if nix::sched::setns(&fd, flag).is_err() {
                eprintln!("error: cannot return to the launcher's own namespaces");
                std::process::abort();
            }
        }
    }
}

fn own_namespace_name(flag: CloneFlags) -> &'static str {
    match flag {
        CloneFlags::CLONE_NEWNET => "net",
        CloneFlags::CLONE_NEWIPC => "ipc",
        CloneFlags::CLONE_NEWUTS => "uts",
        CloneFlags::CLONE_NEWPID => "pid_for_children",
        _ => "cgroup",
    }
}

/// What the sandbox's process sets up in its namespaces before the rootfs (from the spec).
#[derive(Debug, Clone, Default)]
struct Kernel {
    hostname: Option<String>,
    domainname: Option<String>,
    sysctls: Vec<(String, String)>,
    linux32: bool,
    keyring: CString,
}

impl Kernel {
    fn of(spec: &Spec, container_id: &str) -> Self {
        let linux = spec.linux().as_ref();
        let mut sysctls: Vec<(String, String)> = linux
            .and_then(|l| l.sysctl().clone())
            .unwrap_or_default()
            .into_iter()
            .collect::<HashMap<_, _>>()
            .into_iter()
            .collect();
        sysctls.sort();
        Self {
            hostname: spec.hostname().clone(),
            domainname: spec.domainname().clone(),
            sysctls,
            linux32: linux
                .and_then(|l| l.personality().as_ref())
                .is_some_and(|p| p.domain() == LinuxPersonalityDomain::PerLinux32),
            // Named like runc's, `_ses.` and the container, so that `keyctl show` tells them
            // apart; a NUL in the id only shortens the name.
            keyring: CString::new(format!("_ses.{container_id}"))
                .unwrap_or_else(|_| c"_ses".to_owned()),
        }
    }

    /// In the sandbox's namespaces, before the rootfs is built: sysctls are written through the
    /// host's `/proc/sys` while it is still reachable, and reach this process's namespaces.
    fn apply_namespaced(&self) -> Result<(), String> {
        if let Some(name) = &self.hostname {
            nix::unistd::sethostname(name).map_err(|e| format!("sethostname {name}: {e}"))?;
        }
        let domain = self
            .domainname
            .iter()
            .map(|d| ("kernel.domainname".to_owned(), d.clone()));
        for (key, value) in domain.chain(self.sysctls.iter().cloned()) {
            let path = format!("/proc/sys/{}", key.replace('.', "/"));
            std::fs::write(&path, &value).map_err(|e| format!("sysctl {key}={value}: {e}"))?;
        }
        Ok(())
    }

    /// After `pivot_root`: a session keyring of its own, and the personality.
    fn apply_process(&self) -> Result<(), String> {
        join_session_keyring(&self.keyring)
            .map_err(|e| format!("join a new session keyring: {e}"))?;
        if self.linux32 {
            nix::sys::personality::set(nix::sys::personality::Persona::from_bits_retain(
                PER_LINUX32,
            ))
            .map_err(|e| format!("personality LINUX32: {e}"))?;
        }
        Ok(())
    }
}

/// `PER_LINUX32` (`linux/personality.h`): a domain, not a flag, so `nix` has no name for it.
const PER_LINUX32: libc::c_int = 0x0008;

/// Fails unless this process has one thread: `clone` and `fork` copy only the calling thread.
pub(super) fn ensure_single_threaded() -> Result<(), BootError> {
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
/// accelerator ioctls go through a supervisor process configured by it. `lifecycle` is called
/// at the points the OCI lifecycle names.
pub fn launch(
    plan: &SandboxPlan,
    spec: &Spec,
    options: &LaunchOptions,
    gate: Option<GateSetup>,
    lifecycle: &mut dyn Lifecycle,
) -> Result<Launched, BootError> {
    ensure_single_threaded()?;
    if options.barrier.is_some() && matches!(gate, Some(GateSetup::Own(_))) {
        return Err(BootError::Launch(
            "a created sandbox outlives the launcher, and so must its ioctl gate's supervisor: hand it a GateService's gate".into(),
        ));
    }
    // Held by path now: after pivot_root the sandbox reaches it only as /proc/self/fd/N.
    let barrier = match &options.barrier {
        Some(path) => Some(
            nix::fcntl::open(
                path,
                nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            )
            .map_err(|e| BootError::Launch(format!("open {}: {e}", path.display())))?,
        ),
        None => None,
    };
    // Connected now: after pivot_root the sandbox cannot reach the engine's paths.
    let (console, agent) = engine_sockets(
        options.console_socket.as_deref(),
        options.seccomp.as_ref().and_then(|f| f.agent.as_deref()),
    )?;
    let namespaces = Namespaces::of(spec);
    let flags = namespaces.flags;
    let process = required_process(spec)?.clone();
    let workload = Workload::planned(&process, plan, options.preserve_fds);
    let kernel = Kernel::of(spec, &plan.container_id);
    let apply_options = ApplyOptions {
        host_dev: options.host_dev.clone(),
        user_namespace: flags.contains(CloneFlags::CLONE_NEWUSER),
    };
    let pipe = |what: &str| {
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| BootError::Launch(format!("{what} pipe: {e}")))
    };
    // Forked before any signal is blocked, so that it starts with plain dispositions, and
    // before the pipes below exist, so that it holds no end of them (the launcher reads the
    // error pipe to its end while the workload runs).
    let (gate, workload_gate) = match gate {
        Some(GateSetup::Own(config)) => {
            let (process, workload) = GateProcess::start(*config)?;
            (Some(process), Some(workload))
        }
        Some(GateSetup::Handed(workload)) => (None, Some(workload)),
        None => (None, None),
    };
    let abort_gate = |gate: Option<GateProcess>| {
        if let Some(gate) = gate {
            gate.abort();
        }
    };
    let pipes = pipe("sync").and_then(|go| Ok((go, pipe("error")?)));
    // The sandbox's process tells the launcher it is in its v1 cgroups before the lifecycle's
    // `created` (hooks see it there).
    let pipes = pipes.and_then(|(go, errors)| {
        let cgroups = CgroupFds::open(&options.cgroups)?;
        let joined = if cgroups.tasks.is_empty() {
            None
        } else {
            Some(pipe("cgroup")?)
        };
        Ok((go, errors, cgroups, joined))
    });

    // Block the signals to forward (and SIGCHLD) before the child exists, so none is lost; the
    // child inherits the mask and the workload clears it just before exec.
    let mut watched = FORWARDED_SIGNALS.to_vec();
    watched.push(Signal::SIGCHLD);
    let watched = signal_set(&watched);
    let mut old_mask = SigSet::empty();
    let blocked = sigprocmask(SigmaskHow::SIG_BLOCK, Some(&watched), Some(&mut old_mask))
        .map_err(|e| BootError::Launch(format!("sigprocmask: {e}")));
    let was_blocked = blocked.is_ok();
    let ((go_read, go_write), (err_read, err_write), cgroups, joined_pipe) =
        match blocked.and(pipes) {
            Ok(pipes) => pipes,
            Err(e) => {
                if was_blocked {
                    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old_mask), None);
                }
                abort_gate(gate);
                return Err(e);
            }
        };
    let joined = match Joined::enter(&namespaces.join) {
        Ok(joined) => joined,
        Err(e) => {
            let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old_mask), None);
            abort_gate(gate);
            return Err(e);
        }
    };

    let child = {
        let mut go_read = Some(go_read);
        let mut err_write = Some(err_write);
        let mut workload_gate = workload_gate;
        let mut agent = agent;
        let unified = cgroups.unified;
        let (joined_read, joined_write) = joined_pipe.unzip();
        let mut cgroup_join = Some((cgroups.tasks, joined_write));
        let sandbox = Sandbox {
            plan,
            process: &process,
            workload: &workload,
            kernel: &kernel,
            options: &apply_options,
            barrier: barrier.as_ref().map(std::os::fd::AsRawFd::as_raw_fd),
            console: console.as_ref().map(std::os::fd::AsRawFd::as_raw_fd),
            seccomp: options.seccomp.as_ref(),
            lifecycle: &*lifecycle,
        };
        // The launcher's copies of what the closure holds close when it is dropped here.
        let cloned = clone_child(
            flags,
            unified.as_ref().map(std::os::fd::AsFd::as_fd),
            move || {
                let go = go_read.take().expect("the child runs once");
                let errors = err_write.take().expect("the child runs once");
                let (tasks, joined) = cgroup_join.take().expect("the child runs once");
                sandbox.run(
                    go,
                    errors,
                    (tasks, joined),
                    workload_gate.take(),
                    agent.take(),
                )
            },
        );
        (cloned, joined_read)
    };
    let (child, joined_read) = child;
    joined.leave();
    let child = match child {
        Ok(pid) => pid,
        Err(e) => {
            let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old_mask), None);
            abort_gate(gate);
            return Err(BootError::Launch(format!("clone into new namespaces: {e}")));
        }
    };
    let detached = options.barrier.is_some();
    let result = supervise(
        child,
        spec,
        Pipes {
            go: go_write,
            errors: err_read,
            joined: joined_read,
        },
        &watched,
        lifecycle,
        detached,
    );
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old_mask), None);
    match result {
        Ok(outcome) => Ok(Launched {
            outcome,
            gate: gate.map(GateProcess::finish),
        }),
        Err(e) => {
            abort_gate(gate);
            Err(e)
        }
    }
}

/// The launcher's ends of the pipes to the sandbox's process.
struct Pipes {
    go: OwnedFd,
    errors: OwnedFd,
    /// A byte once it is in its v1 cgroups; `None` when it has none to join.
    joined: Option<OwnedFd>,
}

/// The launcher's side once the child exists.
fn supervise(
    child: Pid,
    spec: &Spec,
    pipes: Pipes,
    watched: &SigSet,
    lifecycle: &mut dyn Lifecycle,
    detached: bool,
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
    if let Some(linux) = spec.linux() {
        if linux
            .namespaces()
            .as_ref()
            .is_some_and(|n| n.iter().any(|ns| ns.typ() == LinuxNamespaceType::User))
        {
            write_id_maps(child, linux).map_err(|e| abort(format!("write id maps: {e}")))?;
        }
    }
    if let Some(score) = spec.process().as_ref().and_then(|p| p.oom_score_adj()) {
        // Inherited by the workload across exec; lowering it needs CAP_SYS_RESOURCE.
        std::fs::write(format!("/proc/{child}/oom_score_adj"), score.to_string())
            .map_err(|e| abort(format!("process.oomScoreAdj {score}: {e}")))?;
    }
    lifecycle.created(child).map_err(abort)?;
    std::fs::File::from(go)
        .write_all(format!("{child}\n").as_bytes())
        .map_err(|e| abort(format!("start the sandbox: {e}")))?;
    let mut report = String::new();
    let _ = std::fs::File::from(errors).read_to_string(&mut report);
    let signals = SignalFd::new(watched).map_err(|e| abort(format!("signalfd: {e}")))?;
    let mut failure = parse_failure(&report);
    if detached && failure.is_none() {
        // Built and waiting on its barrier; `start` takes it from here.
        return Ok(Outcome::Created(child));
    }
    if failure.is_none() {
        lifecycle.started(child);
    }
    wait_forwarding(child, &signals, failure.take())
}

/// Waits for `child`, passing the forwarded signals that arrive on `signals` on to it; a set-up
/// `failure` it reported stands for its exit.
pub(super) fn wait_forwarding(
    child: Pid,
    signals: &SignalFd,
    mut failure: Option<(i32, String)>,
) -> Result<Outcome, BootError> {
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
            Err(e) => {
                let _ = kill(child, Signal::SIGKILL);
                let _ = waitpid(child, None);
                return Err(BootError::Launch(format!("read signals: {e}")));
            }
        }
    }
}

/// The error pipe carries `<status> <message>` when set-up or exec failed.
pub(super) fn parse_failure(report: &str) -> Option<(i32, String)> {
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

/// What the sandbox's process needs, borrowed from its copy of the launcher's memory.
struct Sandbox<'a> {
    plan: &'a SandboxPlan,
    process: &'a oci_spec::runtime::Process,
    workload: &'a Workload,
    kernel: &'a Kernel,
    options: &'a ApplyOptions,
    barrier: Option<std::os::fd::RawFd>,
    console: Option<std::os::fd::RawFd>,
    seccomp: Option<&'a SpecFilter>,
    lifecycle: &'a dyn Lifecycle,
}

impl Sandbox<'_> {
    /// The sandbox's process: waits for "go", builds the filesystem and becomes the workload.
    /// Returns only when something failed, as the exit status (also reported on `errors`).
    fn run(
        &self,
        go: OwnedFd,
        errors: OwnedFd,
        cgroups: (Vec<OwnedFd>, Option<OwnedFd>),
        gate: Option<WorkloadGate>,
        agent: Option<std::os::unix::net::UnixStream>,
    ) -> isize {
        let mut errors = Some(std::fs::File::from(errors));
        let (status, message) = match join_cgroups(cgroups).and_then(|()| self.prepare(go)) {
            Ok((host_pid, terminal)) => match self.wait_for_start(&mut errors) {
                Ok(()) => match self.lifecycle.starting(host_pid) {
                    Ok(()) => {
                        let seccomp = self.seccomp.map(|filter| Installation {
                            filter,
                            agent: agent
                                .map(|socket| (socket, self.lifecycle.agent_state(host_pid))),
                        });
                        let Err(failure) = exec_workload(self.workload, gate, seccomp, terminal);
                        (failure.status, failure.message)
                    }
                    Err(message) => (EXIT_SETUP_FAILED, message),
                },
                Err(message) => (EXIT_SETUP_FAILED, message),
            },
            Err(message) => (EXIT_SETUP_FAILED, message),
        };
        match errors.as_mut() {
            Some(errors) => {
                let _ = write!(errors, "{status} {message}");
            }
            // After `create` returned, nobody reads the pipe; the engine logs stderr.
            None => eprintln!("error: {message}"),
        }
        status as isize
    }

    /// With a barrier: tells the launcher the sandbox is created (closing the error pipe),
    /// then waits until `start` opens the FIFO and writes a byte to it.
    fn wait_for_start(&self, errors: &mut Option<std::fs::File>) -> Result<(), String> {
        let Some(fifo) = self.barrier else {
            return Ok(());
        };
        if let Some(mut pipe) = errors.take() {
            pipe.write_all(b"created")
                .map_err(|e| format!("report the creation: {e}"))?;
        }
        std::fs::OpenOptions::new()
            .write(true)
            .open(format!("/proc/self/fd/{fifo}"))
            .and_then(|mut fifo| fifo.write_all(b"0"))
            .map_err(|e| format!("wait for start on its exec.fifo: {e}"))
    }

    /// Everything up to the workload's own set-up; returns the host's pid of this process, and
    /// the terminal's slave when it has one.
    fn prepare(&self, go: OwnedFd) -> Result<(Pid, Option<OwnedFd>), String> {
        // Die with the launcher: no sandbox outlives `accelgate run`. (Had the launcher died
        // before this, the read below sees the "go" pipe closed.) A created one outlives
        // `accelgate create` by design.
        if self.barrier.is_none() {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)
                .map_err(|_| "set the parent-death signal".to_owned())?;
        }
        // A line, not to the end: this process holds a copy of the write end too.
        let mut text = String::new();
        let mut byte = [0u8; 1];
        let mut go = std::fs::File::from(go);
        while go
            .read(&mut byte)
            .map_err(|e| format!("read the start: {e}"))?
            == 1
            && byte[0] != b'\n'
        {
            text.push(char::from(byte[0]));
        }
        let host_pid = text
            .parse()
            .map(Pid::from_raw)
            .map_err(|_| "the launcher went away before the start".to_owned())?;
        if self.options.user_namespace {
            // Until now this process kept the launcher's host ids, which the new user namespace
            // does not map; become its root, so that files it makes belong to someone there.
            let root = (nix::unistd::Gid::from_raw(0), nix::unistd::Uid::from_raw(0));
            nix::unistd::setresgid(root.0, root.0, root.0)
                .and_then(|()| nix::unistd::setresuid(root.1, root.1, root.1))
                .map_err(|e| {
                    format!("become root of the user namespace (are uid and gid 0 mapped?): {e}")
                })?;
        }
        self.kernel.apply_namespaced()?;
        apply(self.plan, &RealSys, self.options).map_err(|e| crate::pci::error_chain(&e))?;
        self.kernel.apply_process()?;
        let terminal = match self.console {
            Some(console) => {
                let slave = open_terminal(self.process, console)?;
                terminal_as_stdio(&slave)?;
                Some(slave)
            }
            None => None,
        };
        Ok((host_pid, terminal))
    }
}

/// The engine's sockets a process being set up needs once it is inside the container, where
/// their paths are out of reach: the console socket (the terminal's master goes there) and the
/// seccomp agent's `listenerPath` (the listener and the state go there).
pub(super) fn engine_sockets(
    console: Option<&std::path::Path>,
    agent: Option<&std::path::Path>,
) -> Result<
    (
        Option<std::os::unix::net::UnixStream>,
        Option<std::os::unix::net::UnixStream>,
    ),
    BootError,
> {
    let connect = |path: Option<&std::path::Path>, what: &str| {
        path.map(|path| {
            std::os::unix::net::UnixStream::connect(path).map_err(|e| {
                BootError::Launch(format!("connect to {what} {}: {e}", path.display()))
            })
        })
        .transpose()
    };
    Ok((
        connect(console, "the console socket")?,
        connect(agent, "the seccomp agent at linux.seccomp.listenerPath")?,
    ))
}
