use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::plan::{SandboxArgs, build};
use crate::boot::{LaunchOptions, Outcome, launch};

const RUN_EXAMPLES: &str = "\
Examples:
  accelgate run --bundle examples/busybox
  accelgate run --bundle examples/busybox-tpu --root fixtures/sysfs/tpu-v4-8 -- ls -ln /dev
  accelgate run --bundle examples/busybox --overlay memory -- sh -c 'touch /x && ls /x'

Needs root. The workload runs as pid 2 of new mount, pid, ipc and uts namespaces (network, user
and cgroup ones when the spec lists them) under a small init that forwards SIGINT, SIGTERM,
SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 and reaps orphans.

Exit status: the workload's (128 + N when signal N killed it); 125 when the sandbox could not
be set up; 126 when the program could not be executed; 127 when it was not found; 2 on usage
errors.";

/// Run a bundle's process in a sandbox built from its plan, and wait for it.
///
/// Builds the plan as `accelgate plan` does, applies it in fresh namespaces (every mount and
/// device node made through file descriptors inside the rootfs), pivots into it and executes
/// the process. Nothing is left behind on the host when it ends or fails.
#[derive(Debug, Args)]
#[command(after_help = RUN_EXAMPLES)]
pub struct RunArgs {
    #[command(flatten)]
    sandbox: SandboxArgs,

    /// A command to run instead of the spec's process.args
    #[arg(last = true, value_name = "CMD")]
    command: Vec<String>,
}

pub fn run(args: &RunArgs) -> ExitCode {
    let (bundle, plan) = match build(&args.sandbox, &args.command) {
        Ok(built) => built,
        Err(code) => return code,
    };
    // Device nodes can be bound from the host's /dev only on the real host.
    let host_dev = args.sandbox.root.is_none().then(|| PathBuf::from("/dev"));
    match launch(&plan, &bundle.spec, &LaunchOptions { host_dev }) {
        Ok(Outcome::Exited(status)) => ExitCode::from(status.clamp(0, 255) as u8),
        Ok(Outcome::Failed { status, message }) => {
            eprintln!("error: {message}");
            ExitCode::from(status.clamp(0, 255) as u8)
        }
        Err(e) => {
            eprintln!("error: {}", crate::pci::error_chain(&e));
            ExitCode::from(crate::boot::EXIT_SETUP_FAILED as u8)
        }
    }
}
