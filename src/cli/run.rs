use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;

use super::plan::{SandboxArgs, build};
use crate::boot::{
    GateReport, HostSnapshot, LaunchOptions, Launched, NvidiaTables, Outcome, families,
    granted_devices, real_devices_behind,
};
use crate::nvproxy::AbiChoice;
use crate::plan::SandboxPlan;
use crate::runtime::RunOptions;
use crate::supervisor::simulator::Simulator;
use crate::supervisor::{Gate, GateConfig, Mode, SandboxConfig, Threads};

const RUN_EXAMPLES: &str = "\
Examples:
  accelgate run --bundle examples/busybox
  accelgate run --bundle examples/busybox-tpu --root fixtures/sysfs/tpu-v4-8 -- ls -ln /dev
  accelgate run --bundle examples/busybox --overlay memory -- sh -c 'touch /x && ls /x'
  accelgate run --root fixtures/sysfs/tpu-v5e-8 --simulate --bundle examples/tpu-probe --stats -- /tpu-probe vfio
  accelgate run --root fixtures/sysfs/nvidia-h100x8 --simulate --bundle examples/nvidia-probe --stats

Needs root. The workload runs as pid 1 of new mount, pid, ipc and uts namespaces (network, user
and cgroup ones when the spec lists them, or those given by path), as with runc: SIGINT,
SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 are forwarded to it, and like any pid 1 it gets
only those it has a handler for. Its cgroups (v1, v2 or hybrid hosts) let it open only its
planned device nodes and hold its limits; the spec's seccomp profile goes on top of the ioctl
gate's filter; the spec's hooks run at their points; spec fields accelgate does not implement
are refused by name (docs/run.md).

When the sandbox gets TPUs or GPUs (or --simulate), its gasket, VFIO and NVIDIA ioctls go
through the ioctl gate (docs/gate.md, docs/nvidia.md): a seccomp filter sends them to a
supervisor process that allows, emulates or denies each one by the tables of the driver (for
NVIDIA, the host driver version's). If the supervisor dies, they fail with ENOSYS.

Exit status: the workload's (128 + N when signal N killed it); 125 when the sandbox could not
be set up; 126 when the program could not be executed; 127 when it was not found; 2 on usage
errors.";

/// Run a bundle's process in a sandbox built from its plan, and wait for it.
///
/// Builds the plan as `accelgate plan` does, applies it in fresh namespaces (every mount and
/// device node made through file descriptors inside the rootfs), pivots into it and executes
/// the process. Nothing is left behind on the host when it ends or fails. A process with
/// `process.terminal` gets a terminal of the container's own, proxied to the caller's (when
/// stdin is one; otherwise it inherits stdio, with a warning).
#[derive(Debug, Args)]
#[command(after_help = RUN_EXAMPLES)]
pub struct RunArgs {
    #[command(flatten)]
    sandbox: SandboxArgs,

    /// Serve the fixture host's TPUs and GPUs with simulated devices: opens of their nodes are
    /// brokered and their ioctls answered by simulators (needs --root)
    #[arg(long, requires = "root")]
    simulate: bool,

    /// How the ioctl gate applies the driver tables: enforce; passthrough (content checks only
    /// logged); audit (everything allowed, what enforce would refuse logged)
    #[arg(long, value_enum, value_name = "MODE", default_value_t = Mode::Enforce)]
    policy: Mode,

    /// At exit, print the gate's counts of allowed, emulated and denied ioctls (on stderr);
    /// with --policy audit, every call the workload made, NVIDIA's by escape, UVM command, RM
    /// control and RM class, and what enforce would deny
    #[arg(long)]
    stats: bool,

    /// The NVIDIA driver ABI to gate GPUs with: `host` (the host driver's version, which must
    /// be supported) or a version of `accelgate nvidia versions`
    #[arg(long, value_name = "VERSION", default_value = "host")]
    nvidia_driver_abi: AbiChoice,

    /// With --stats: print them as an accelgate.stats/v1 JSON document
    #[arg(long, requires = "stats")]
    json: bool,

    /// Append each simulated call (JSON lines: request, argument received, result, the
    /// executing thread's euid and capabilities) to FILE
    #[arg(long, value_name = "FILE", requires = "simulate")]
    sim_log: Option<PathBuf>,

    /// A command to run instead of the spec's process.args
    #[arg(last = true, value_name = "CMD")]
    command: Vec<String>,
}

/// How the operator asked for the ioctl gate (`run`'s and `create`'s flags).
pub(super) struct GateFlags<'a> {
    /// The host is a fixture (`--root` after the command).
    pub fixture: bool,
    /// `--simulate`.
    pub simulate: bool,
    /// `--policy`.
    pub policy: Mode,
    /// `--sim-log`.
    pub sim_log: Option<&'a Path>,
    /// `--nvidia-driver-abi`.
    pub nvidia_abi: AbiChoice,
}

/// The gate for this sandbox: on when it gets TPUs or GPUs, or simulates them. A fixture whose
/// device numbers are real devices on this machine is refused, simulated or not.
pub(super) fn gate_config(
    flags: &GateFlags<'_>,
    plan: &SandboxPlan,
    host: &HostSnapshot,
) -> Result<Option<GateConfig>, ExitCode> {
    if flags.fixture && !flags.simulate {
        let registry = host
            .discovery
            .registry()
            .map_err(|e| super::fail("the host's device numbers", &e))?;
        let real = real_devices_behind(plan, &registry, Path::new("/sys"));
        if !real.is_empty() {
            eprintln!(
                "error: --root: this machine has real devices at the numbers of {}; the sandbox's nodes would reach them (use --simulate, or a fixture whose numbers are free here)",
                real.join(", ")
            );
            return Err(ExitCode::from(1));
        }
    }
    let accelerators = &plan.accelerators;
    if accelerators.tpus.is_empty() && accelerators.gpus.is_empty() {
        if flags.simulate {
            eprintln!(
                "error: --simulate: the plan gives the sandbox no TPUs or GPUs (use --tpu all, the dev.accelgate.tpu annotation, or NVIDIA_VISIBLE_DEVICES)"
            );
            return Err(ExitCode::from(2));
        }
        return Ok(None);
    }
    let registry = host
        .discovery
        .registry()
        .map_err(|e| super::fail("the host's device numbers", &e))?;
    let nvidia = NvidiaTables::for_host(
        &host.discovery,
        host.fresh_sysfs,
        flags.nvidia_abi,
        &accelerators.driver_capabilities,
    )
    .map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(1)
    })?;
    let simulator = if flags.simulate {
        let real = real_devices_behind(plan, &registry, Path::new("/sys"));
        if !real.is_empty() {
            eprintln!(
                "error: --simulate: this machine has real devices at the numbers of {}; simulating over real hardware is refused (the sandbox's nodes would reach it)",
                real.join(", ")
            );
            return Err(ExitCode::from(1));
        }
        let log = match flags.sim_log {
            Some(path) => Some(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| super::fail(&format!("cannot open {}", path.display()), &e))?,
            ),
            None => None,
        };
        let mut devices =
            crate::tpuproxy::simulated_devices(&host.discovery.tpus, &accelerators.tpus);
        if let Some(tables) = nvidia {
            devices.extend(crate::nvproxy::sim::simulated_gpus(
                tables.abi,
                &host.discovery.gpus,
                &accelerators.gpus,
            ));
        }
        Some(Simulator::new(devices, log))
    } else {
        None
    };
    let granted = granted_devices(plan, &registry);
    let gate = Gate::new(families(nvidia), registry)
        .map_err(|e| super::fail("the device families' tables", &e))?;
    Ok(Some(GateConfig {
        gate,
        sandbox: SandboxConfig {
            name: plan.container_id.clone(),
            mode: flags.policy,
            simulator,
            granted: Some(granted),
        },
        threads: Threads::default(),
    }))
}

pub fn run(args: &RunArgs) -> ExitCode {
    let (bundle, plan, host) = match build(&args.sandbox, &args.command) {
        Ok(built) => built,
        Err(code) => return code,
    };
    let flags = GateFlags {
        fixture: args.sandbox.root.is_some(),
        simulate: args.simulate,
        policy: args.policy,
        sim_log: args.sim_log.as_deref(),
        nvidia_abi: args.nvidia_driver_abi,
    };
    let gate = match gate_config(&flags, &plan, &host) {
        Ok(gate) => gate,
        Err(code) => return code,
    };
    // Device nodes can be bound from the host's /dev only on the real host.
    let host_dev = args.sandbox.root.is_none().then(|| PathBuf::from("/dev"));
    let options = RunOptions {
        launch: LaunchOptions {
            host_dev,
            ..LaunchOptions::default()
        },
        gate,
    };
    match crate::runtime::run(&bundle, &plan, options) {
        Ok(Launched { outcome, gate }) => {
            report_gate(args, gate.as_ref());
            match outcome {
                Outcome::Exited(status) => ExitCode::from(status.clamp(0, 255) as u8),
                // Only `create` asks for a barrier, and only `exec` detaches.
                Outcome::Created(_) | Outcome::Detached(_) => ExitCode::SUCCESS,
                Outcome::Failed { status, message } => {
                    eprintln!("error: {message}");
                    ExitCode::from(status.clamp(0, 255) as u8)
                }
            }
        }
        Err(e) => {
            eprintln!("error: {}", crate::pci::error_chain(&e));
            ExitCode::from(crate::boot::EXIT_SETUP_FAILED as u8)
        }
    }
}

fn report_gate(args: &RunArgs, gate: Option<&GateReport>) {
    match gate {
        Some(GateReport::Finished(stats)) if args.stats => {
            if args.json {
                if let Ok(text) = serde_json::to_string_pretty(stats) {
                    eprintln!("{text}");
                }
            } else {
                eprint!("{}", stats.render());
            }
        }
        Some(GateReport::Died(how)) => eprintln!(
            "warning: the ioctl gate's supervisor {how}; accelerator ioctls failed with ENOSYS from then on"
        ),
        None if args.stats => eprintln!("ioctl gate: off (the sandbox has no accelerators)"),
        _ => {}
    }
}
