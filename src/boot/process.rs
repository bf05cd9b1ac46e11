//! The workload's process: credentials, limits, working directory, and exec.

use std::collections::HashSet;
use std::convert::Infallible;
use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use nix::sys::resource::{Resource, setrlimit};
use nix::unistd::{Gid, Uid};
use oci_spec::runtime::{Capabilities, Process};

use super::executable::{DEFAULT_PATH, resolve_executable};
use super::gate::WorkloadGate;
use super::lsm::Lsm;
use super::seccomp::Installation;
use super::sys::cloexec_from;
use super::terminal::take_terminal;
use crate::plan::{PlannedRlimit, SandboxPlan};
use crate::vfs::FileInfo;

/// Why the workload could not be started, and the exit status that stands for it (126: found
/// but not runnable; 127: not found; 125: set-up failed), as shells and podman use them.
#[derive(Debug)]
pub struct ExecFailure {
    /// Exit status.
    pub status: i32,
    /// What failed.
    pub message: String,
}

fn failure(status: i32, message: String) -> ExecFailure {
    ExecFailure { status, message }
}

/// The environment: the spec's, then the plan's additions (which replace a spec entry of the
/// same name).
pub fn environment(process: &Process, plan: &SandboxPlan) -> Vec<String> {
    let mut env: Vec<String> = process.env().clone().unwrap_or_default();
    for added in &plan.env {
        let name = added.split_once('=').map_or(added.as_str(), |(n, _)| n);
        env.retain(|e| e.split_once('=').map_or(e.as_str(), |(n, _)| n) != name);
        env.push(added.clone());
    }
    env
}

/// What becomes the workload: the process's identity and capabilities, and what to execute
/// where, with which limits.
#[derive(Debug, Clone)]
pub struct Workload {
    /// The spec's process (user, capabilities, `noNewPrivileges`).
    pub process: Process,
    /// The arguments.
    pub args: Vec<String>,
    /// The executable, resolved already; `None`: `args[0]` is looked up on the environment's
    /// `PATH` inside the container, just before exec.
    pub executable: Option<PathBuf>,
    /// The working directory inside the container.
    pub cwd: PathBuf,
    /// The environment.
    pub env: Vec<String>,
    /// The limits to set.
    pub rlimits: Vec<PlannedRlimit>,
    /// Descriptors 3 to 3 + N - 1 that stay open across exec (runc's `--preserve-fds`).
    pub preserve_fds: u32,
}

impl Workload {
    /// The first process of a sandbox, as its plan has it.
    pub fn planned(process: &Process, plan: &SandboxPlan, preserve_fds: u32) -> Self {
        Self {
            process: process.clone(),
            args: plan.process.args.clone(),
            executable: plan.process.executable.clone(),
            cwd: plan.process.cwd.clone(),
            env: environment(process, plan),
            rlimits: plan.rlimits.clone(),
            preserve_fds,
        }
    }

    /// A process to run in an existing container (`exec`): everything from `process`, the
    /// executable looked up in the container when it runs.
    pub fn joining(process: &Process, preserve_fds: u32) -> Result<Self, String> {
        let args = process.args().clone().unwrap_or_default();
        if args.is_empty() {
            return Err("process.args: empty; nothing to run".into());
        }
        let rlimits = process
            .rlimits()
            .iter()
            .flatten()
            .map(|r| {
                let kind = serde_json::to_value(r.typ())
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                PlannedRlimit {
                    kind,
                    soft: r.soft(),
                    hard: r.hard(),
                    origin: "spec".into(),
                }
            })
            .collect();
        Ok(Self {
            process: process.clone(),
            args,
            executable: None,
            cwd: process.cwd().clone(),
            env: process.env().clone().unwrap_or_default(),
            rlimits,
            preserve_fds,
        })
    }

    /// The executable, resolved in this process's root (the container's) when the plan did
    /// not: a bare name on the environment's `PATH`, as runc looks it up.
    fn resolved_executable(&self) -> Result<PathBuf, ExecFailure> {
        if let Some(path) = &self.executable {
            return Ok(path.clone());
        }
        let path_env = self
            .env
            .iter()
            .rev()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or(DEFAULT_PATH);
        let stat = |path: &Path| {
            Ok(std::fs::metadata(path)
                .ok()
                .map(|m| FileInfo::from_metadata(&m)))
        };
        resolve_executable(&self.args[0], path_env, &self.cwd, &stat).map_err(|e| {
            let status = if e.to_string().contains("not executable") {
                126
            } else {
                127
            };
            failure(status, crate::pci::error_chain(&e))
        })
    }
}

/// Sets the workload up in the sandbox's `/` and executes it; returns only on failure.
///
/// Order matters: the working directory is entered and checked first (it must resolve inside
/// the container: CVE-2024-21626 reached the host through a leaked fd as cwd), then limits, the
/// bounding set (after a new session: the terminal, when there is one), the ioctl gate's filter
/// (while `CAP_SYS_ADMIN` still allows it without `no_new_privs`, so that a spec that wants
/// setuid programs to work keeps them), groups and ids (keeping capabilities across the id
/// change), the capability sets, `no_new_privs`, every fd but stdio marked close-on-exec, and
/// exec.
///
/// The spec's seccomp filter goes on top of the gate's, as late as it can, as runc puts it:
/// with `no_new_privs`, just before exec, so that the profile need allow little more than
/// `execve`; without, right after the gate's, while `CAP_SYS_ADMIN` allows it, so that the
/// profile must allow the set-up calls that follow (`setresuid`, `capset`, `prctl`, ...).
pub fn exec_workload(
    workload: &Workload,
    gate: Option<WorkloadGate>,
    seccomp: Option<Installation<'_>>,
    terminal: Option<OwnedFd>,
) -> Result<Infallible, ExecFailure> {
    let setup = |what: &str, e: &dyn std::fmt::Display| failure(125, format!("{what}: {e}"));
    let process = &workload.process;
    let cwd = &workload.cwd;
    nix::unistd::chdir(cwd).map_err(|e| setup(&format!("chdir {}", cwd.display()), &e))?;
    let real = nix::unistd::getcwd().map_err(|e| setup("getcwd", &e))?;
    if !real.is_absolute() || real.starts_with("(unreachable)") {
        return Err(failure(
            125,
            format!(
                "the working directory {} is outside the container",
                cwd.display()
            ),
        ));
    }
    // runc's default when the spec gives none.
    let umask = process.user().umask().unwrap_or(0o022);
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(umask));
    for limit in &workload.rlimits {
        let resource = rlimit_resource(&limit.kind)
            .ok_or_else(|| failure(125, format!("unknown rlimit {}", limit.kind)))?;
        match setrlimit(resource, limit.soft, limit.hard) {
            Ok(()) => {}
            // Raising a hard limit needs CAP_SYS_RESOURCE; an accelerator's wish is met as far
            // as this launcher may, a spec's demand is not negotiable.
            Err(nix::errno::Errno::EPERM) if limit.origin != "spec" => {
                let (_, hard) =
                    nix::sys::resource::getrlimit(resource).map_err(|e| setup("getrlimit", &e))?;
                setrlimit(resource, hard, hard)
                    .map_err(|e| setup(&format!("setrlimit {}", limit.kind), &e))?;
                eprintln!(
                    "warning: {} stays at {hard}: raising it needs CAP_SYS_RESOURCE, which the launcher lacks",
                    limit.kind
                );
            }
            Err(e) => return Err(setup(&format!("setrlimit {}", limit.kind), &e)),
        }
    }
    nix::unistd::setsid().map_err(|e| setup("setsid", &e))?;
    if let Some(slave) = terminal {
        take_terminal(slave).map_err(|e| failure(125, e))?;
    }

    let user = process.user();
    let caps = process.capabilities().clone().unwrap_or_default();
    // An absent set is an empty one, as runc takes it: podman's `--cap-drop ALL` leaves
    // `bounding` out, and a full bounding set would let a setuid or file-capability program
    // regain every capability.
    let keep = caps
        .bounding()
        .as_ref()
        .map(to_caps)
        .transpose()
        .map_err(|e| failure(125, e))?
        .unwrap_or_default();
    for cap in caps::all() {
        if !keep.contains(&cap) {
            caps::drop(None, caps::CapSet::Bounding, cap)
                .map_err(|e| setup(&format!("drop {cap} from the bounding set"), &e))?;
        }
    }
    if let Some(gate) = gate {
        gate.install()
            .map_err(|e| failure(125, format!("ioctl gate: {e}")))?;
    }
    let no_new_privileges = process.no_new_privileges().unwrap_or(false);
    let mut seccomp = seccomp;
    if !no_new_privileges {
        if let Some(filter) = seccomp.take() {
            filter.install().map_err(|e| failure(125, e))?;
        }
    }
    nix::sys::prctl::set_keepcaps(true).map_err(|e| setup("PR_SET_KEEPCAPS", &e))?;
    let groups: Vec<Gid> = user
        .additional_gids()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(Gid::from_raw)
        .collect();
    match nix::unistd::setgroups(&groups) {
        // A user namespace whose setgroups is denied keeps its groups.
        Err(nix::errno::Errno::EPERM) if groups.is_empty() => {}
        other => other.map_err(|e| setup("setgroups", &e))?,
    }
    let gid = Gid::from_raw(user.gid());
    nix::unistd::setresgid(gid, gid, gid).map_err(|e| setup("setresgid", &e))?;
    let uid = Uid::from_raw(user.uid());
    nix::unistd::setresuid(uid, uid, uid).map_err(|e| setup("setresuid", &e))?;
    nix::sys::prctl::set_keepcaps(false).map_err(|e| setup("PR_SET_KEEPCAPS", &e))?;
    // Inheritable while CAP_SETPCAP is still effective, then effective, then permitted, so
    // that each capset keeps effective within permitted.
    let sets = [
        (caps::CapSet::Inheritable, caps.inheritable()),
        (caps::CapSet::Effective, caps.effective()),
        (caps::CapSet::Permitted, caps.permitted()),
    ];
    for (set, list) in sets {
        let wanted = list
            .as_ref()
            .map(to_caps)
            .transpose()
            .map_err(|e| failure(125, e))?
            .unwrap_or_default();
        caps::set(None, set, &wanted)
            .map_err(|e| setup(&format!("set {set:?} capabilities"), &e))?;
    }
    if let Some(ambient) = caps.ambient() {
        for cap in to_caps(ambient).map_err(|e| failure(125, e))? {
            // The kernel raises an ambient capability only if it is permitted and inheritable;
            // runc's own default spec asks for ones that are not, and runc and crun skip them.
            if caps::raise(None, caps::CapSet::Ambient, cap).is_err() {
                eprintln!(
                    "warning: process.capabilities.ambient: {cap} skipped; it is not both permitted and inheritable"
                );
            }
        }
    }
    if no_new_privileges {
        nix::sys::prctl::set_no_new_privs().map_err(|e| setup("PR_SET_NO_NEW_PRIVS", &e))?;
    }
    nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&nix::sys::signal::SigSet::empty()),
        None,
    )
    .map_err(|e| setup("unblock signals", &e))?;
    cloexec_from(3 + workload.preserve_fds).map_err(|e| setup("close_range", &e))?;

    let args = c_strings(&workload.args).map_err(|e| failure(125, e))?;
    let env = c_strings(&workload.env).map_err(|e| failure(125, e))?;
    let executable = workload.resolved_executable()?;
    let path = CString::new(executable.as_os_str().as_encoded_bytes())
        .map_err(|_| failure(125, "a NUL byte in the executable path".into()))?;
    // The security modules' labels take effect at the exec (refused at plan time where the
    // module is not active).
    for (label, lsm) in [
        (process.apparmor_profile(), Lsm::AppArmor),
        (process.selinux_label(), Lsm::SeLinux),
    ] {
        if let Some(label) = label.as_deref().filter(|l| !l.is_empty()) {
            lsm.set_exec(label)
                .map_err(|e| setup(&format!("{} label {label:?}", lsm.name()), &e))?;
        }
    }
    // Last, once the executable is found: the profile need not allow the lookup.
    if let Some(filter) = seccomp {
        filter.install().map_err(|e| failure(125, e))?;
    }
    let Err(errno) = nix::unistd::execve(&path, &args, &env);
    let name = executable.display().to_string();
    let status = if errno == nix::errno::Errno::ENOENT {
        127
    } else {
        126
    };
    Err(failure(status, format!("exec {name}: {}", errno.desc())))
}

fn c_strings(list: &[String]) -> Result<Vec<CString>, String> {
    list.iter()
        .map(|s| CString::new(s.as_bytes()).map_err(|_| format!("a NUL byte in {s:?}")))
        .collect()
}

fn to_caps(list: &Capabilities) -> Result<HashSet<caps::Capability>, String> {
    list.iter()
        .map(|cap| {
            let name = serde_json::to_value(cap)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            caps::Capability::from_str(&name).map_err(|_| format!("unknown capability {name}"))
        })
        .collect()
}

/// The `setrlimit` resource for an OCI rlimit name.
pub fn rlimit_resource(name: &str) -> Option<Resource> {
    Some(match name {
        "RLIMIT_AS" => Resource::RLIMIT_AS,
        "RLIMIT_CORE" => Resource::RLIMIT_CORE,
        "RLIMIT_CPU" => Resource::RLIMIT_CPU,
        "RLIMIT_DATA" => Resource::RLIMIT_DATA,
        "RLIMIT_FSIZE" => Resource::RLIMIT_FSIZE,
        "RLIMIT_LOCKS" => Resource::RLIMIT_LOCKS,
        "RLIMIT_MEMLOCK" => Resource::RLIMIT_MEMLOCK,
        "RLIMIT_MSGQUEUE" => Resource::RLIMIT_MSGQUEUE,
        "RLIMIT_NICE" => Resource::RLIMIT_NICE,
        "RLIMIT_NOFILE" => Resource::RLIMIT_NOFILE,
        "RLIMIT_NPROC" => Resource::RLIMIT_NPROC,
        "RLIMIT_RSS" => Resource::RLIMIT_RSS,
        "RLIMIT_RTPRIO" => Resource::RLIMIT_RTPRIO,
        "RLIMIT_RTTIME" => Resource::RLIMIT_RTTIME,
        "RLIMIT_SIGPENDING" => Resource::RLIMIT_SIGPENDING,
        "RLIMIT_STACK" => Resource::RLIMIT_STACK,
        _ => return None,
    })
}
