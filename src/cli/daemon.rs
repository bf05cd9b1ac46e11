use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use crate::daemon::{DEFAULT_CONTROL, DaemonConfig, run as run_daemon};
use crate::nvproxy::AbiChoice;
use crate::supervisor::Mode;

const DAEMON_EXAMPLES: &str = "\
Examples:
  accelgate daemon --socket /run/accelgate/agent.sock
  accelgate seccomp-profile --socket /run/accelgate/agent.sock > seccomp.json
  accelgate daemon --socket /tmp/agent.sock --control /tmp/control.sock \\
      --root fixtures/sysfs/tpu-v5e-8 --simulate

Needs root. runc and crun send each container's seccomp listener, with its state, to the
socket named by the profile's linux.seccomp.listenerPath (accelgate seccomp-profile writes
one). The daemon reads the container's bundle for its TPUs (linux.devices, the
dev.accelgate.tpu annotation) and serves its accelerator ioctls with the gate (docs/gate.md),
one sandbox per container ID: exec'd processes share it. A connection without a listener, or
with a state that does not parse, is logged and closed.

SIGTERM or SIGINT drains: no new connections, then up to --drain seconds for the containers to
end. Containers still running then fail closed: once the daemon is gone, every accelerator
call their profile routes gets ENOSYS from the kernel, by design. See docs/integration.md.";

/// Serve runc's and crun's containers as their OCI seccomp agent.
#[derive(Debug, Args)]
#[command(after_help = DAEMON_EXAMPLES)]
pub struct DaemonArgs {
    /// The agent socket: the profile's listenerPath
    #[arg(long, value_name = "PATH")]
    socket: PathBuf,

    /// The control socket, for accelgate ps and stats
    #[arg(long, value_name = "PATH", default_value = DEFAULT_CONTROL)]
    control: PathBuf,

    /// Host root to discover accelerators under (default: /)
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,

    /// Serve the host's TPUs with simulators, brokering opens of their nodes (a fixture host:
    /// needs --root; the profile must be made with --simulate too)
    #[arg(long, requires = "root")]
    simulate: bool,

    /// Policy for containers whose profile does not name one: enforce, passthrough or audit
    #[arg(long, value_enum, value_name = "MODE", default_value_t = Mode::Enforce)]
    policy: Mode,

    /// On SIGTERM, how long to wait for served containers to end before exiting
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    drain: u64,

    /// The NVIDIA driver ABI to serve GPUs with: `host` (the host driver's version, which must
    /// be supported) or a version of `accelgate nvidia versions`
    #[arg(long, value_name = "VERSION", default_value = "host")]
    nvidia_driver_abi: AbiChoice,
}

pub fn run(args: &DaemonArgs) -> ExitCode {
    let root = match super::host_root(args.root.as_ref()) {
        Ok(root) => root,
        Err(e) => return super::fail("host root", &e),
    };
    let config = DaemonConfig {
        socket: args.socket.clone(),
        control: args.control.clone(),
        root,
        simulate: args.simulate,
        policy: args.policy,
        drain: Duration::from_secs(args.drain),
        nvidia_abi: args.nvidia_driver_abi,
    };
    match run_daemon(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => super::fail("daemon", &e),
    }
}
