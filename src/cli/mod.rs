//! The `accelgate` command line: argument parsing, output formatting and exit codes.
//!
//! Exit codes: 0 on success (warnings allowed), 1 when the host cannot be read, 2 on usage
//! errors.

mod cdi;
mod daemon;
mod device_plugin;
mod discover;
mod exec;
mod inspect;
mod nvidia;
mod oci;
mod plan;
mod profile;
mod run;
mod table;
mod update;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

pub use discover::{render_discovery, render_warnings};
pub use plan::render_plan;

const EXAMPLES: &str = "\
Examples:
  accelgate discover                                   # this host
  accelgate discover --root fixtures/sysfs/tpu-v5e-8   # a fixture host, no hardware needed
  accelgate discover --json | jq '.tpus[].bdfs'
  accelgate plan --bundle examples/tpu-v5e --root fixtures/sysfs/tpu-v5e-8
  accelgate run --bundle examples/busybox-tpu --root fixtures/sysfs/tpu-v4-8 -- ls -ln /dev
  accelgate cdi generate --root fixtures/sysfs/tpu-v5e-8 --output -
  accelgate daemon --socket /run/accelgate/agent.sock   # the OCI seccomp agent for runc, crun
  accelgate seccomp-profile --socket /run/accelgate/agent.sock
  accelgate device-plugin --resource tpu                # the Kubernetes device plugin, on a node
  accelgate ps; accelgate stats ID
  accelgate --root /run/accelgate create --bundle examples/busybox --pid-file /tmp/c1.pid c1
  accelgate start c1; accelgate state c1; accelgate exec c1 sh -c 'echo hi'
  accelgate ps c1; accelgate pause c1; accelgate resume c1; accelgate update --memory 64m c1
  accelgate delete --force c1
  podman --runtime $(command -v accelgate) run --rm --rootfs /path/to/rootfs sh -c 'exit 3'

Environment:
  RUST_LOG   log filter (tracing syntax) when --log-level is not given";

/// accelgate gives sandboxed workloads GPUs and TPUs safely.
#[derive(Debug, Parser)]
#[command(name = "accelgate", version, after_help = EXAMPLES)]
pub struct Cli {
    /// Log level on stderr: error, warn, info, debug or trace [default: $RUST_LOG, else warn]
    #[arg(long, global = true, value_name = "LEVEL", value_parser = ["error", "warn", "info", "debug", "trace"])]
    log_level: Option<String>,

    /// runc's state directory, for create, start, state, kill, delete, list, exec, ps ID,
    /// pause, resume, update and stats ID (given before the command) [default:
    /// /run/accelgate]. Not the host root that plan and run take after theirs
    #[arg(long = "root", value_name = "DIR")]
    state_root: Option<PathBuf>,

    /// Also record errors of the runc commands in FILE (as container engines ask)
    #[arg(long, value_name = "FILE")]
    log: Option<PathBuf>,

    /// How --log records them: text or json
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = oci::LogFormat::Text)]
    log_format: oci::LogFormat,

    /// Log at debug level (runc's --debug; the same as --log-level debug)
    #[arg(long)]
    debug: bool,

    /// Use systemd's cgroup manager: refused (accelgate manages cgroupfs itself)
    #[arg(long)]
    systemd_cgroup: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Discover(discover::DiscoverArgs),
    Plan(plan::PlanArgs),
    Run(run::RunArgs),
    Cdi(cdi::CdiArgs),
    Daemon(daemon::DaemonArgs),
    Nvidia(nvidia::NvidiaArgs),
    DevicePlugin(device_plugin::DevicePluginArgs),
    SeccompProfile(profile::ProfileArgs),
    Ps(inspect::PsArgs),
    Stats(inspect::StatsArgs),
    Create(oci::CreateArgs),
    /// Start a created container's process
    Start(oci::IdArgs),
    /// Print a container's OCI state (JSON)
    State(oci::IdArgs),
    Kill(oci::KillArgs),
    Delete(oci::DeleteArgs),
    List(oci::ListArgs),
    Exec(exec::ExecArgs),
    /// Freeze every process of a running container
    Pause(oci::IdArgs),
    /// Thaw a paused container
    Resume(oci::IdArgs),
    Update(update::UpdateArgs),
    /// Print the runtime-spec features document (JSON)
    Features,
    /// The terminal proxy of `run` and `exec --tty` (internal: started by accelgate itself)
    #[command(name = "terminal-proxy", hide = true)]
    TerminalProxy,
}

/// Exit status for a host that cannot be read or another runtime failure.
pub const EXIT_FAILURE: u8 = 1;

/// Exit status for a usage error (clap's convention).
pub const EXIT_USAGE: u8 = 2;

/// Runs the command line and returns the process exit status.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { 0 });
        }
    };
    let level = if cli.debug {
        Some("debug")
    } else {
        cli.log_level.as_deref()
    };
    init_logging(level);
    if let Some(flag) = misplaced_runc_flag(&cli) {
        eprintln!(
            "error: {flag} applies to runc's commands (create, start, state, kill, delete, list, exec, ps ID, pause, resume, update, features; --root also to stats ID) only; for a host root, give --root after the command"
        );
        return ExitCode::from(EXIT_USAGE);
    }
    let globals = oci::Globals {
        root: cli.state_root,
        log: cli.log,
        log_format: cli.log_format,
        systemd_cgroup: cli.systemd_cgroup,
    };
    match cli.command {
        Command::Discover(args) => discover::run(&args),
        Command::Plan(args) => plan::run(&args),
        Command::Run(args) => run::run(&args),
        Command::Cdi(args) => cdi::run(&args),
        Command::Daemon(args) => daemon::run(&args),
        Command::Nvidia(args) => nvidia::run(&args),
        Command::DevicePlugin(args) => device_plugin::run_plugin(&args),
        Command::SeccompProfile(args) => profile::run(&args),
        Command::Ps(args) => match &args.id {
            Some(id) => oci::ps(&globals, id, args.format.as_deref().unwrap_or("table")),
            None => inspect::ps(&args),
        },
        Command::Stats(args) => match (&globals.root, &args.id) {
            (Some(_), Some(id)) => oci::stats(&globals, id, args.json),
            (Some(_), None) => {
                eprintln!("error: stats with runc's --root needs a container ID");
                ExitCode::from(EXIT_USAGE)
            }
            (None, _) => inspect::stats(&args),
        },
        Command::Create(args) => oci::create(&globals, &args),
        Command::Start(args) => oci::start(&globals, &args),
        Command::State(args) => oci::state(&globals, &args),
        Command::Kill(args) => oci::kill(&globals, &args),
        Command::Delete(args) => oci::delete(&globals, &args),
        Command::List(args) => oci::list(&globals, &args),
        Command::Exec(args) => exec::exec(&globals, &args),
        Command::Pause(args) => oci::pause(&globals, &args),
        Command::Resume(args) => oci::resume(&globals, &args),
        Command::Update(args) => update::update(&globals, &args),
        Command::Features => oci::features(),
        Command::TerminalProxy => match crate::runtime::serve_terminal_proxy() {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("error: terminal proxy: {message}");
                ExitCode::from(EXIT_FAILURE)
            }
        },
    }
}

/// A runc global flag given to a command it means nothing to, which would otherwise be
/// ignored without a word (`accelgate --root FIXTURE discover` reads the real host).
fn misplaced_runc_flag(cli: &Cli) -> Option<&'static str> {
    let runc = match &cli.command {
        Command::Create(_)
        | Command::Start(_)
        | Command::State(_)
        | Command::Kill(_)
        | Command::Delete(_)
        | Command::List(_)
        | Command::Exec(_)
        | Command::Pause(_)
        | Command::Resume(_)
        | Command::Update(_)
        | Command::Features => true,
        Command::Ps(args) => args.id.is_some(),
        Command::Stats(_) => cli.log.is_none() && !cli.systemd_cgroup,
        _ => false,
    };
    if runc {
        return None;
    }
    if cli.state_root.is_some() {
        Some("--root before the command (runc's state directory)")
    } else if cli.log.is_some() {
        Some("--log")
    } else if cli.systemd_cgroup {
        Some("--systemd-cgroup")
    } else {
        None
    }
}

fn init_logging(level: Option<&str>) {
    let filter = match level {
        Some(level) => EnvFilter::new(level),
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Prints `error: ...` with the whole source chain and returns the failure status.
fn fail(context: &str, error: &dyn std::error::Error) -> ExitCode {
    eprintln!("error: {context}: {}", crate::pci::error_chain(error));
    ExitCode::from(EXIT_FAILURE)
}

/// `--root DIR` as the host, else the running host.
fn host_root(root: Option<&PathBuf>) -> Result<crate::pci::HostRoot, crate::pci::PciError> {
    match root {
        Some(dir) => crate::pci::HostRoot::at(dir),
        None => Ok(crate::pci::HostRoot::system()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_terminal_proxy_answers_to_the_name_the_runtime_starts_it_by() {
        let cli = Cli::try_parse_from(["accelgate", crate::runtime::TERMINAL_PROXY_COMMAND])
            .expect("the hidden subcommand");
        assert!(matches!(cli.command, Command::TerminalProxy));
    }
}
