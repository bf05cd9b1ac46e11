//! `exec`: another process in a created or running container, in all of its namespaces and
//! cgroups, set up like the first one (capabilities, limits, `no_new_privs`, user), behind the
//! same ioctl gate (its listener goes to the container's gate service) and under the spec's
//! seccomp profile, as runc applies it to the processes it execs.

use std::path::{Path, PathBuf};

use nix::unistd::Pid;
use oci_spec::runtime::{Capability, Process};

use super::RuntimeError;
use super::cgroup;
use super::commands::write_pid_file;
use super::container::{GATE_SOCKET, StateRoot};
use super::seccomp::compile as compile_seccomp;
use super::state::{State, Status};
use super::terminal::TerminalProxy;
use crate::boot::{Bundle, EnterOptions, Lifecycle, Outcome, Workload, enter, join_gate};

/// What `exec` runs, as runc's flags say it.
#[derive(Debug, Clone, Default)]
pub struct ExecRequest {
    /// `--process FILE`: the whole process, as JSON (then no other process flag counts).
    pub process_file: Option<PathBuf>,
    /// The command, replacing the container's `process.args`.
    pub args: Vec<String>,
    /// `--env NAME=VALUE`, added to (and replacing names of) the container's environment.
    pub env: Vec<String>,
    /// `--cwd`.
    pub cwd: Option<PathBuf>,
    /// `--user UID[:GID]`.
    pub user: Option<String>,
    /// `--additional-gids`.
    pub additional_gids: Vec<u32>,
    /// `--cap`: added to the bounding, effective and permitted sets (and ambient where the
    /// process has inheritable ones), as runc does.
    pub caps: Vec<String>,
    /// `--no-new-privs`.
    pub no_new_privs: bool,
    /// `--tty`.
    pub tty: bool,
    /// `--apparmor`: the process's AppArmor profile.
    pub apparmor: Option<String>,
    /// `--process-label`: the process's SELinux label.
    pub process_label: Option<String>,
}

/// How `exec` meets the engine.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    /// The engine's socket for the terminal's master.
    pub console_socket: Option<PathBuf>,
    /// Return once the process runs.
    pub detach: bool,
    /// Where to write its pid.
    pub pid_file: Option<PathBuf>,
    /// Descriptors 3 to 3 + N - 1 the process keeps.
    pub preserve_fds: u32,
}

fn invalid(what: impl Into<String>, reason: impl Into<String>) -> RuntimeError {
    RuntimeError::Unsupported {
        field: what.into(),
        reason: reason.into(),
    }
}

/// A process JSON file, with errors that name the field.
fn read_process(path: &Path) -> Result<Process, RuntimeError> {
    let name = format!("--process {}", path.display());
    let text = std::fs::read_to_string(path).map_err(|e| invalid(&name, e.to_string()))?;
    let mut reader = serde_json::Deserializer::from_str(&text);
    serde_path_to_error::deserialize(&mut reader)
        .map_err(|e| invalid(format!("{name}: {}", e.path()), e.into_inner().to_string()))
}

/// `NAME=VALUE` entries, a later one replacing an earlier one of the same name.
fn merge_env(base: Vec<String>, added: &[String]) -> Vec<String> {
    let name = |entry: &str| entry.split_once('=').map_or(entry, |(n, _)| n).to_owned();
    let mut env = base;
    for entry in added {
        let added_name = name(entry);
        env.retain(|e| name(e) != added_name);
        env.push(entry.clone());
    }
    env
}

/// A capability by runc's name (`CAP_NET_ADMIN`; the prefix may be left out).
fn capability(name: &str) -> Result<Capability, RuntimeError> {
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    serde_json::from_value(serde_json::Value::String(full))
        .map_err(|_| invalid("--cap", format!("{name:?} is not a capability")))
}

impl ExecRequest {
    /// The process to run: the file's, or the container's own with the flags applied.
    pub fn process(&self, bundle: &Path) -> Result<Process, RuntimeError> {
        let mut process = match &self.process_file {
            Some(path) => {
                if !self.args.is_empty() {
                    return Err(invalid(
                        "--process",
                        "the command comes from the file; give no arguments with it",
                    ));
                }
                read_process(path)?
            }
            None => {
                if self.args.is_empty() {
                    return Err(invalid("exec", "no command given (and no --process)"));
                }
                let bundle = Bundle::load(bundle)?;
                let mut process = bundle.spec.process().clone().unwrap_or_default();
                process.set_args(Some(self.args.clone()));
                // The container's first process may have had a terminal; this one has one
                // only when asked.
                process.set_terminal(Some(false));
                process
            }
        };
        if !self.env.is_empty() {
            let env = merge_env(process.env().clone().unwrap_or_default(), &self.env);
            process.set_env(Some(env));
        }
        if let Some(cwd) = &self.cwd {
            process.set_cwd(cwd.clone());
        }
        if let Some(user) = &self.user {
            let (uid, gid) = match user.split_once(':') {
                Some((uid, gid)) => (uid, Some(gid)),
                None => (user.as_str(), None),
            };
            let number = |text: &str| {
                text.parse::<u32>()
                    .map_err(|_| invalid("--user", format!("{user:?} is not UID[:GID] (numbers)")))
            };
            let mut spec_user = process.user().clone();
            spec_user.set_uid(number(uid)?);
            if let Some(gid) = gid {
                spec_user.set_gid(number(gid)?);
            }
            process.set_user(spec_user);
        }
        if !self.additional_gids.is_empty() {
            let mut spec_user = process.user().clone();
            spec_user.set_additional_gids(Some(self.additional_gids.clone()));
            process.set_user(spec_user);
        }
        if !self.caps.is_empty() {
            let mut caps = process.capabilities().clone().unwrap_or_default();
            let ambient = caps.inheritable().as_ref().is_some_and(|i| !i.is_empty());
            for name in &self.caps {
                let cap = capability(name)?;
                let add = |set: &Option<oci_spec::runtime::Capabilities>| {
                    let mut set = set.clone().unwrap_or_default();
                    set.insert(cap);
                    Some(set)
                };
                caps.set_bounding(add(caps.bounding()));
                caps.set_effective(add(caps.effective()));
                caps.set_permitted(add(caps.permitted()));
                if ambient {
                    caps.set_ambient(add(caps.ambient()));
                }
            }
            process.set_capabilities(Some(caps));
        }
        if self.no_new_privs {
            process.set_no_new_privileges(Some(true));
        }
        if self.tty {
            process.set_terminal(Some(true));
        }
        if let Some(profile) = &self.apparmor {
            process.set_apparmor_profile(Some(profile.clone()));
        }
        if let Some(label) = &self.process_label {
            process.set_selinux_label(Some(label.clone()));
        }
        let field = match &self.process_file {
            Some(path) => format!("--process {}", path.display()),
            None => "process".to_owned(),
        };
        crate::boot::check_process(&process, &field)?;
        Ok(process)
    }
}

/// The runtime's side of an exec: the pid file, and what a seccomp agent is told.
struct Joining<'a> {
    pid_file: Option<&'a Path>,
    /// The container's state, as the agent gets it with an exec'd process's listener.
    state: State,
    /// `linux.seccomp.listenerMetadata`.
    agent_metadata: Option<String>,
}

impl Lifecycle for Joining<'_> {
    fn created(&mut self, pid: Pid) -> Result<(), String> {
        if let Some(path) = self.pid_file {
            write_pid_file(path, pid).map_err(|e| crate::pci::error_chain(&e))?;
        }
        Ok(())
    }

    fn starting(&self, _pid: Pid) -> Result<(), String> {
        Ok(())
    }

    fn agent_state(&self, pid: Pid) -> String {
        self.state
            .agent_message(pid.as_raw(), self.agent_metadata.as_deref())
    }

    fn started(&mut self, _pid: Pid) {}
}

/// `exec`: runs `request`'s process in container `id`. Detached, returns once it runs;
/// otherwise once it ends, with its status.
pub fn exec(
    root: &StateRoot,
    id: &str,
    request: &ExecRequest,
    options: &ExecOptions,
) -> Result<Outcome, RuntimeError> {
    let (container, dir) = {
        let _lock = root.lock()?;
        (root.load(id)?, root.dir(id)?)
    };
    let refused = |reason: String| RuntimeError::Container {
        id: id.to_owned(),
        reason,
    };
    match container.status() {
        Status::Created | Status::Running => {}
        status => {
            return Err(refused(
                format!("is {status:?}; exec needs a created or running container").to_lowercase(),
            ));
        }
    }
    let process = request.process(&container.bundle)?;
    let terminal = process.terminal() == Some(true);
    if !terminal && options.console_socket.is_some() {
        return Err(invalid(
            "process.terminal",
            "--console-socket is given, but the process wants no terminal",
        ));
    }
    // In the foreground, without an engine's socket, the caller's own terminal (as runc).
    let proxy = if terminal && options.console_socket.is_none() {
        let refused = || {
            invalid(
                "process.terminal",
                if options.detach {
                    "a detached terminal needs --console-socket"
                } else {
                    "a terminal needs --console-socket, or a terminal on stdin in the foreground"
                },
            )
        };
        if options.detach {
            return Err(refused());
        }
        Some(TerminalProxy::start()?.ok_or_else(refused)?)
    } else {
        None
    };
    let workload = Workload::joining(&process, options.preserve_fds)
        .map_err(|reason| invalid("exec", reason))?;
    // Compiled as for the first process, with the same refusals under the gate.
    let seccomp = container
        .seccomp
        .as_ref()
        .map(|seccomp| compile_seccomp(seccomp, container.gate.is_some()))
        .transpose()?;
    let gate = match &container.gate {
        Some(_) => Some(join_gate(&dir.join(GATE_SOCKET))?),
        None => None,
    };
    let mut joining = Joining {
        pid_file: options.pid_file.as_deref(),
        state: container.state(),
        agent_metadata: container
            .seccomp
            .as_ref()
            .and_then(|s| s.listener_metadata().clone()),
    };
    let enter_options = EnterOptions {
        target: Pid::from_raw(container.pid),
        console_socket: proxy
            .as_ref()
            .map(|proxy| proxy.socket().to_path_buf())
            .or_else(|| options.console_socket.clone()),
        detach: options.detach,
        seccomp,
        cgroups: cgroup::join(&container.cgroups),
    };
    let entered = enter(&workload, &enter_options, gate, &mut joining);
    if let Some(proxy) = proxy {
        proxy.finish();
    }
    Ok(entered?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_change_the_containers_process_as_runcs_do() {
        let dir = tempfile::tempdir().unwrap();
        let spec = serde_json::json!({
            "ociVersion": "1.0.2",
            "process": {
                "user": {"uid": 0, "gid": 0}, "args": ["sh"], "cwd": "/",
                "env": ["PATH=/bin", "A=1"], "terminal": true,
                "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]}
            },
            "root": {"path": "rootfs"}
        });
        std::fs::write(dir.path().join("config.json"), spec.to_string()).unwrap();
        let request = ExecRequest {
            args: vec!["id".into(), "-u".into()],
            env: vec!["A=2".into(), "B=3".into()],
            cwd: Some("/tmp".into()),
            user: Some("1000:100".into()),
            caps: vec!["net_admin".into()],
            no_new_privs: true,
            ..ExecRequest::default()
        };
        let process = request.process(dir.path()).unwrap();
        assert_eq!(process.args().as_deref().unwrap(), ["id", "-u"]);
        assert_eq!(
            process.env().as_deref().unwrap(),
            ["PATH=/bin", "A=2", "B=3"]
        );
        assert_eq!(process.cwd(), Path::new("/tmp"));
        assert_eq!((process.user().uid(), process.user().gid()), (1000, 100));
        assert_eq!(process.terminal(), Some(false));
        assert_eq!(process.no_new_privileges(), Some(true));
        let caps = process.capabilities().clone().unwrap();
        assert!(
            caps.bounding()
                .as_ref()
                .unwrap()
                .contains(&Capability::NetAdmin)
        );
        assert!(
            caps.permitted()
                .as_ref()
                .unwrap()
                .contains(&Capability::Kill)
        );
        assert!(caps.ambient().is_none());

        let bad = ExecRequest {
            args: vec!["id".into()],
            user: Some("root".into()),
            ..ExecRequest::default()
        };
        assert!(
            bad.process(dir.path())
                .unwrap_err()
                .to_string()
                .starts_with("--user: ")
        );
        let file = dir.path().join("process.json");
        std::fs::write(
            &file,
            r#"{"cwd": "/", "user": {"uid": 0, "gid": 0}, "args": "sh"}"#,
        )
        .unwrap();
        let from_file = ExecRequest {
            process_file: Some(file),
            ..ExecRequest::default()
        };
        let error = from_file.process(dir.path()).unwrap_err().to_string();
        assert!(
            error.contains("process.json: args: invalid type"),
            "{error}"
        );
    }
}
