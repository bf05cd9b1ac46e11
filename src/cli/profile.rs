use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::boot::{NvidiaTables, families};
use crate::daemon::{ProfileOptions, profile};
use crate::nvproxy::AbiChoice;
use crate::supervisor::{Gate, Mode};

const PROFILE_EXAMPLES: &str = "\
Examples:
  accelgate seccomp-profile --socket /run/accelgate/agent.sock
  accelgate seccomp-profile --socket /run/accelgate/agent.sock --base docker-default.json
  jq --slurpfile s seccomp.json '.linux.seccomp = $s[0]' config.json > config.new

Prints an OCI linux.seccomp object (JSON) for containers whose accelerators the daemon on
--socket serves. Without --base: defaultAction SCMP_ACT_ALLOW, the native and compat
architectures, and for ioctl: SCMP_ACT_ERRNO (with errnoRet) for the requests the gate refuses
in the kernel, SCMP_ACT_NOTIFY for the rest of the requests the gate's families own (gasket,
VFIO), compared on the low 32 bits with SCMP_CMP_MASKED_EQ. With --simulate, open, openat and
openat2 are sent to the daemon too (brokered opens). The routing is the gate's own filter's;
see docs/integration.md for what differs and why.

--base adds these rules to an OCI linux.seccomp object (or a config.json's): its unconditional
allow rules lose ioctl (and the opens with --simulate), which the gate's rules take over; a
base that denies by default gets the ioctl types no family owns allowed again.
listenerMetadata carries the policy, which the daemon applies to the container.";

/// Print an OCI seccomp profile that sends accelerator ioctls to the daemon.
#[derive(Debug, Args)]
#[command(after_help = PROFILE_EXAMPLES)]
pub struct ProfileArgs {
    /// The daemon's agent socket (listenerPath)
    #[arg(long, value_name = "PATH")]
    socket: PathBuf,

    /// Route opens too, for a daemon that runs with --simulate
    #[arg(long)]
    simulate: bool,

    /// An OCI linux.seccomp object (or a config.json holding one) to add the rules to
    #[arg(long, value_name = "FILE")]
    base: Option<PathBuf>,

    /// The policy the daemon applies to these containers: enforce, passthrough or audit
    #[arg(long, value_enum, value_name = "MODE", default_value_t = Mode::Enforce)]
    policy: Mode,

    /// Host root whose device numbers the gate reads (default: /); the rules depend only on
    /// the families' tables
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,

    /// The NVIDIA driver ABI whose numbers to route: `host` or a version of
    /// `accelgate nvidia versions` (the daemon's must be the same)
    #[arg(long, value_name = "VERSION", default_value = "host")]
    nvidia_driver_abi: AbiChoice,
}

pub fn run(args: &ProfileArgs) -> ExitCode {
    let host = match super::host_root(args.root.as_ref()) {
        Ok(root) => root,
        Err(e) => return super::fail("host root", &e),
    };
    let discovery = match crate::discovery::discover(&host) {
        Ok(discovery) => discovery,
        Err(e) => return super::fail("cannot read the host", &e),
    };
    let registry = match discovery.registry() {
        Ok(registry) => registry,
        Err(e) => return super::fail("the host's device numbers", &e),
    };
    let nvidia = match NvidiaTables::for_host(
        &discovery,
        host.origin() == std::path::Path::new("/"),
        args.nvidia_driver_abi,
        &[],
    ) {
        Ok(nvidia) => nvidia,
        Err(e) => return super::fail("the host's NVIDIA driver", &e),
    };
    let base = match &args.base {
        Some(path) => {
            let text = match std::fs::read_to_string(path) {
                Ok(text) => text,
                Err(e) => return super::fail(&format!("cannot read {}", path.display()), &e),
            };
            match serde_json::from_str(&text) {
                Ok(value) => Some((path.as_path(), value)),
                Err(e) => return super::fail(&format!("{} is not JSON", path.display()), &e),
            }
        }
        None => None,
    };
    let gate = match Gate::new(families(nvidia), registry) {
        Ok(gate) => gate,
        Err(e) => return super::fail("the device families' tables", &e),
    };
    let options = ProfileOptions {
        socket: &args.socket,
        policy: args.policy,
        simulate: args.simulate,
        base,
    };
    match profile(&gate, options) {
        Ok(profile) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&profile).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Err(e) => super::fail("seccomp-profile", &e),
    }
}
