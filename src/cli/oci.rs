//! The runc command line for container engines: `create`, `start`, `state`, `kill`,
//! `delete`, `list`, `ps`, `pause`, `resume`, `features` (and `exec`, `update` beside), with
//! runc's global `--root`, `--log`, `--log-format`, `--debug` and `--systemd-cgroup`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use nix::sys::signal::Signal;

use super::plan::{SandboxArgs, build};
use super::run::{GateFlags, gate_config};
use crate::runtime::{DEFAULT_STATE_ROOT, RuntimeError, StateRoot};
use crate::supervisor::Mode;

/// How `--log` records errors.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// `error: ...` lines.
    #[default]
    Text,
    /// JSON lines `{"level","msg","time"}`, as runc writes them for engines.
    Json,
}

/// runc's global options, given before the command.
#[derive(Debug, Clone, Default)]
pub struct Globals {
    /// The state directory.
    pub root: Option<PathBuf>,
    /// Where errors are also recorded.
    pub log: Option<PathBuf>,
    /// How.
    pub log_format: LogFormat,
    /// `--systemd-cgroup`.
    pub systemd_cgroup: bool,
}

impl Globals {
    pub(super) fn state_root(&self) -> StateRoot {
        StateRoot::new(
            self.root
                .clone()
                .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_ROOT)),
        )
    }

    /// Reports `message` on stderr and in the log, and returns the failure status.
    pub(super) fn fail(&self, message: &str) -> ExitCode {
        eprintln!("error: {message}");
        if let Some(path) = &self.log {
            let line = match self.log_format {
                LogFormat::Text => format!("error: {message}\n"),
                LogFormat::Json => {
                    let time = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs());
                    format!(
                        "{}\n",
                        serde_json::json!({"level": "error", "msg": message, "time": time})
                    )
                }
            };
            if let Ok(mut file) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                let _ = file.write_all(line.as_bytes());
            }
        }
        ExitCode::from(super::EXIT_FAILURE)
    }

    pub(super) fn runtime_error(&self, e: &RuntimeError) -> ExitCode {
        self.fail(&crate::pci::error_chain(e))
    }
}

/// Create a container from a bundle and leave it waiting for `start` (for container engines)
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The OCI bundle directory holding config.json
    #[arg(long, short = 'b', value_name = "DIR", default_value = ".")]
    bundle: PathBuf,
    /// Write the container's pid (the process to wait on and signal) to FILE
    #[arg(long, value_name = "FILE")]
    pid_file: Option<PathBuf>,
    /// Send the pseudo-terminal's master to this socket (needed for process.terminal)
    #[arg(long, value_name = "SOCKET")]
    console_socket: Option<PathBuf>,
    /// Pass N fds beyond stdio (3 to 3+N-1) to the workload
    #[arg(long, value_name = "N", default_value_t = 0)]
    preserve_fds: u32,
    /// runc's chroot instead of pivot_root; refused (pivot_root is always used)
    #[arg(long)]
    no_pivot: bool,
    /// Keep the caller's session keyring; refused (every container gets its own)
    #[arg(long)]
    no_new_keyring: bool,
    /// accelgate's own: read the host from DIR/sys, DIR/proc and DIR/dev(.list) instead of /
    /// (a fixture host)
    #[arg(long, value_name = "DIR")]
    host_root: Option<PathBuf>,
    /// accelgate's own: serve the fixture host's TPUs and GPUs with simulated devices (needs
    /// --host-root)
    #[arg(long, requires = "host_root")]
    simulate: bool,
    /// accelgate's own: how the ioctl gate applies the driver tables
    #[arg(long, value_enum, value_name = "MODE", default_value_t = Mode::Enforce)]
    policy: Mode,
    /// accelgate's own: the NVIDIA driver ABI to gate GPUs with (`host`, or a version of
    /// `accelgate nvidia versions`)
    #[arg(long, value_name = "VERSION", default_value = "host")]
    nvidia_driver_abi: crate::nvproxy::AbiChoice,
    /// The container's id
    id: String,
}

/// A container, by id
#[derive(Debug, Args)]
pub struct IdArgs {
    /// The container's id
    id: String,
}

/// Send a signal to a container's process
#[derive(Debug, Args)]
pub struct KillArgs {
    /// Signal every process in the container (its cgroup)
    #[arg(long, short = 'a')]
    all: bool,
    /// The container's id
    id: String,
    /// The signal: a name (TERM, SIGTERM) or number
    #[arg(default_value = "SIGTERM")]
    signal: String,
}

/// Delete a stopped container (its state, cgroups, gate service; poststop hooks run)
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Kill a created or running container first
    #[arg(long, short = 'f')]
    force: bool,
    /// The container's id
    id: String,
}

/// List the containers in the state directory
#[derive(Debug, Args)]
pub struct ListArgs {
    /// table or json
    #[arg(long, short = 'f', value_name = "FORMAT", default_value = "table", value_parser = ["table", "json"])]
    format: String,
}

fn checked_globals(globals: &Globals) -> Result<(), ExitCode> {
    if globals.systemd_cgroup {
        let reason = if Path::new("/run/systemd/system").exists() {
            "the systemd cgroup manager is not implemented; accelgate manages cgroupfs itself"
        } else {
            "systemd is not running on this host"
        };
        return Err(globals.fail(&format!("--systemd-cgroup: {reason}")));
    }
    Ok(())
}

/// `create`.
pub fn create(globals: &Globals, args: &CreateArgs) -> ExitCode {
    if let Err(code) = checked_globals(globals) {
        return code;
    }
    let unsupported = [
        (
            args.no_pivot,
            "--no-pivot: accelgate always uses pivot_root",
        ),
        (
            args.no_new_keyring,
            "--no-new-keyring: every container gets a session keyring of its own",
        ),
    ];
    if let Some((_, reason)) = unsupported.iter().find(|(given, _)| *given) {
        return globals.fail(reason);
    }
    let mut sandbox = SandboxArgs::engine(args.bundle.clone(), args.id.clone());
    sandbox.root.clone_from(&args.host_root);
    let (bundle, plan, host) = match build(&sandbox, &[]) {
        Ok(built) => built,
        Err(code) => return code,
    };
    let flags = GateFlags {
        fixture: args.host_root.is_some(),
        simulate: args.simulate,
        policy: args.policy,
        sim_log: None,
        nvidia_abi: args.nvidia_driver_abi,
    };
    let gate = match gate_config(&flags, &plan, &host) {
        Ok(gate) => gate,
        Err(code) => return code,
    };
    let options = crate::runtime::CreateOptions {
        // Device nodes can be bound from the host's /dev only on the real host.
        host_dev: args.host_root.is_none().then(|| PathBuf::from("/dev")),
        pid_file: args.pid_file.clone(),
        console_socket: args.console_socket.clone(),
        preserve_fds: args.preserve_fds,
        gate,
    };
    match crate::runtime::create(&globals.state_root(), &bundle, &plan, options) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => globals.runtime_error(&e),
    }
}

/// `start`.
pub fn start(globals: &Globals, args: &IdArgs) -> ExitCode {
    match crate::runtime::start(&globals.state_root(), &args.id) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => globals.runtime_error(&e),
    }
}

/// `state`: the OCI state JSON.
pub fn state(globals: &Globals, args: &IdArgs) -> ExitCode {
    match globals.state_root().load(&args.id) {
        Ok(container) => {
            let state = serde_json::to_value(container.state()).unwrap_or_default();
            println!(
                "{}",
                serde_json::to_string_pretty(&state).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Err(e) => globals.runtime_error(&e),
    }
}

/// A signal by name (`TERM`, `SIGTERM`) or number.
fn parse_signal(text: &str) -> Option<Signal> {
    if let Ok(number) = text.parse::<i32>() {
        return Signal::try_from(number).ok();
    }
    let name = text.to_ascii_uppercase();
    let name = if name.starts_with("SIG") {
        name
    } else {
        format!("SIG{name}")
    };
    name.parse().ok()
}

/// `kill`.
pub fn kill(globals: &Globals, args: &KillArgs) -> ExitCode {
    let Some(signal) = parse_signal(&args.signal) else {
        eprintln!("error: {:?} is not a signal", args.signal);
        return ExitCode::from(super::EXIT_USAGE);
    };
    match crate::runtime::kill_container(&globals.state_root(), &args.id, signal, args.all) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => globals.runtime_error(&e),
    }
}

/// `delete`.
pub fn delete(globals: &Globals, args: &DeleteArgs) -> ExitCode {
    match crate::runtime::delete(&globals.state_root(), &args.id, args.force) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => globals.runtime_error(&e),
    }
}

/// `list`.
pub fn list(globals: &Globals, args: &ListArgs) -> ExitCode {
    let containers = match globals.state_root().list() {
        Ok(list) => list,
        Err(e) => return globals.runtime_error(&e),
    };
    let states: Vec<_> = containers.iter().map(|c| c.state()).collect();
    if args.format == "json" {
        println!(
            "{}",
            serde_json::to_string_pretty(&states).unwrap_or_default()
        );
        return ExitCode::SUCCESS;
    }
    let mut table = super::table::Table::new(&["ID", "PID", "STATUS", "BUNDLE"]);
    for s in &states {
        table.row(vec![
            s.id.clone(),
            s.pid.map_or("0".into(), |p| p.to_string()),
            serde_json::to_value(s.status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            s.bundle.display().to_string(),
        ]);
    }
    print!("{}", table.render());
    ExitCode::SUCCESS
}

/// `pause`.
pub fn pause(globals: &Globals, args: &IdArgs) -> ExitCode {
    match crate::runtime::pause(&globals.state_root(), &args.id) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => globals.runtime_error(&e),
    }
}

/// `resume`.
pub fn resume(globals: &Globals, args: &IdArgs) -> ExitCode {
    match crate::runtime::resume(&globals.state_root(), &args.id) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => globals.runtime_error(&e),
    }
}

/// One process as `ps` shows it, from `/proc/PID/status` and `cmdline`.
fn process_row(pid: nix::unistd::Pid) -> Vec<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .unwrap_or("?")
            .to_owned()
    };
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let command = cmdline
        .split(|b| *b == 0)
        .filter(|arg| !arg.is_empty())
        .map(String::from_utf8_lossy)
        .collect::<Vec<_>>()
        .join(" ");
    vec![
        field("Uid:"),
        pid.to_string(),
        field("PPid:"),
        field("State:"),
        command,
    ]
}

/// `ps ID`: the processes in the container's cgroups, as the host sees them.
pub fn ps(globals: &Globals, id: &str, format: &str) -> ExitCode {
    let pids = match crate::runtime::container_processes(&globals.state_root(), id) {
        Ok(pids) => pids,
        Err(e) => return globals.runtime_error(&e),
    };
    if format == "json" {
        let list: Vec<i32> = pids.iter().map(|p| p.as_raw()).collect();
        println!("{}", serde_json::to_string(&list).unwrap_or_default());
        return ExitCode::SUCCESS;
    }
    let mut table = super::table::Table::new(&["UID", "PID", "PPID", "STAT", "CMD"]);
    for pid in pids {
        table.row(process_row(pid));
    }
    print!("{}", table.render());
    ExitCode::SUCCESS
}

/// `stats ID` for a container in the state directory: its ioctl gate's counts.
pub fn stats(globals: &Globals, id: &str, json: bool) -> ExitCode {
    let root = globals.state_root();
    let container = match root.load(id) {
        Ok(container) => container,
        Err(e) => return globals.runtime_error(&e),
    };
    if container.gate.is_none() {
        return globals.fail(&format!(
            "container {id}: has no ioctl gate (no accelerators behind it)"
        ));
    }
    let socket = match root.dir(id) {
        Ok(dir) => dir.join(crate::runtime::GATE_SOCKET),
        Err(e) => return globals.runtime_error(&e),
    };
    match crate::boot::gate_stats(&socket) {
        Ok(stats) if json => {
            println!(
                "{}",
                serde_json::to_string_pretty(&stats).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Ok(stats) => {
            print!("{}", stats.render());
            ExitCode::SUCCESS
        }
        Err(e) => globals.fail(&format!("container {id}: ioctl gate: {e}")),
    }
}

/// `features`: the runtime-spec features document.
pub fn features() -> ExitCode {
    let document = serde_json::json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": "1.2.0",
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": crate::boot::mount_options(),
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "user", "uts"],
            "capabilities": caps::all().iter().map(|c| c.to_string()).collect::<std::collections::BTreeSet<_>>(),
            "cgroup": {"v1": true, "v2": true, "systemd": false, "systemdUser": false, "rdma": false},
            "seccomp": crate::runtime::seccomp_features(),
            "apparmor": {"enabled": crate::boot::Lsm::AppArmor.active()},
            "selinux": {"enabled": crate::boot::Lsm::SeLinux.active()},
            "intelRdt": {"enabled": false}
        },
        "annotations": {
            "dev.accelgate.tpu": "TPU chips for the sandbox",
            "dev.accelgate.overlay": "rootfs overlay mode",
            "dev.accelgate.rootfs-image": "EROFS image to mount as the rootfs"
        }
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&document).unwrap_or_default()
    );
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_parse_by_name_and_number() {
        assert_eq!(parse_signal("9"), Some(Signal::SIGKILL));
        assert_eq!(parse_signal("TERM"), Some(Signal::SIGTERM));
        assert_eq!(parse_signal("sigusr1"), Some(Signal::SIGUSR1));
        assert_eq!(parse_signal("NOPE"), None);
    }
}
