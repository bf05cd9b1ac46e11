//! The ioctl gate's supervisor process, beside the sandbox.
//!
//! It is forked from the launcher before the sandbox exists, so that it stays in the host's
//! namespaces (it reads `/proc/<tid>` of the workload and duplicates its fds) and keeps the
//! launcher's privileges, while the sandbox gives its own up. It waits for the workload's
//! listener, serves it until the last sandboxed process is gone, and writes its counts to a pipe
//! the launcher reads. It dies with the launcher; if it dies first, the workload's accelerator
//! ioctls fail with ENOSYS (fail closed). A created container, which outlives its launcher, has
//! a [`super::GateService`] instead.

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{Signal, kill};
use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid};

use super::BootError;
use super::launch::FORWARDED_SIGNALS;
use super::sys::{fork_process, ignore_signal};
use crate::family::{DeviceClass, Family};
use crate::nvproxy::table::Abi;
use crate::nvproxy::{AbiChoice, DriverCaps};
use crate::pci::NodeKind;
use crate::plan::SandboxPlan;
use crate::supervisor::abi::SockFilter;
use crate::supervisor::filter::{Arch, build};
use crate::supervisor::handoff::{check_kernel, install_and_send, receive_listener};
use crate::supervisor::stats::Stats;
use crate::supervisor::{GateConfig, serve};
use crate::vfs::DeviceRegistry;

/// NVIDIA's tables for a sandbox: the host driver version's ABI, and the driver capabilities
/// the sandbox was given.
#[derive(Debug, Clone, Copy)]
pub struct NvidiaTables {
    /// The ABI.
    pub abi: &'static Abi,
    /// The capabilities.
    pub caps: DriverCaps,
}

impl NvidiaTables {
    /// The tables for a host whose discovery is `discovery`, chosen as `choice` says, with
    /// `capabilities` (names, as the plan lists them; the default set when empty). None when
    /// the host has no NVIDIA driver. On the running host (`running_host`), the driver's own
    /// answer to `CHECK_VERSION_STR` on `/dev/nvidiactl` is the version, as the files may lag a
    /// driver reloaded since; on a fixture host, the files'.
    pub fn for_host(
        discovery: &crate::discovery::Discovery,
        running_host: bool,
        choice: AbiChoice,
        capabilities: &[String],
    ) -> Result<Option<Self>, BootError> {
        let Some(driver) = discovery.nvidia.as_ref() else {
            return Ok(None);
        };
        let device = running_host.then(|| std::path::Path::new(crate::nvproxy::abi::CTL_PATH));
        let queried = device.and_then(|ctl| match crate::nvproxy::device_version(ctl) {
            Ok(version) => Some(version),
            Err(e) => {
                tracing::warn!(device = %ctl.display(), error = %e, "CHECK_VERSION_STR failed; the driver version comes from its files");
                None
            }
        });
        let abi = crate::nvproxy::select(queried.or(driver.driver_version), choice)
            .map_err(|e| BootError::Nvidia(e.to_string()))?;
        let caps = if capabilities.is_empty() {
            DriverCaps::DEFAULT
        } else {
            DriverCaps::from_names(capabilities)
                .map_err(|name| BootError::Nvidia(format!("unknown driver capability {name:?}")))?
        };
        Ok(Some(Self { abi, caps }))
    }
}

/// The device families the gate serves: every one accelgate knows, whatever the sandbox was
/// given, so that a node made inside the sandbox (CAP_MKNOD) is gated too; NVIDIA's when the
/// host has its driver (their tables are the driver version's).
pub fn families(nvidia: Option<NvidiaTables>) -> Vec<Family> {
    let mut families = vec![
        crate::accel::policy::family(),
        crate::vfio::policy::family(),
    ];
    if let Some(tables) = nvidia {
        families.extend(crate::nvproxy::policy::families(tables.abi, tables.caps));
    }
    families
}

/// The plan's accelerator nodes whose numbers name a real device on the machine whose sysfs
/// is `real_sys` (`/sys/dev/char/MAJOR:MINOR` exists), as `path (major:minor)`. A fixture's
/// nodes carry the fixture's numbers: where the machine has a device at them, the sandbox's
/// node would reach it (an open that slips past the broker, or no simulation at all). The VFIO
/// container is left out: one without groups reaches no hardware.
pub fn real_devices_behind(
    plan: &SandboxPlan,
    registry: &DeviceRegistry,
    real_sys: &std::path::Path,
) -> Vec<String> {
    plan.devices
        .iter()
        .filter(|d| d.kind == 'c')
        .filter(|d| {
            registry
                .class_of(NodeKind::Char, d.major, d.minor)
                .is_some_and(|c| c.is_accelerator() && c != DeviceClass::VfioContainer)
        })
        .filter(|d| {
            real_sys
                .join(format!("dev/char/{}:{}", d.major, d.minor))
                .exists()
        })
        .map(|d| format!("{} ({}:{})", d.path.display(), d.major, d.minor))
        .collect()
}

/// The plan's accelerator nodes, as device numbers: what the gate lets the sandbox's ioctls
/// reach.
pub fn granted_devices(plan: &SandboxPlan, registry: &DeviceRegistry) -> Vec<(u32, u32)> {
    plan.devices
        .iter()
        .filter(|d| d.kind == 'c')
        .filter(|d| {
            registry
                .class_of(NodeKind::Char, d.major, d.minor)
                .is_some_and(DeviceClass::is_accelerator)
        })
        .map(|d| (d.major, d.minor))
        .collect()
}

/// How long the launcher waits for the supervisor's counts once the sandbox is gone.
const STATS_WAIT: Duration = Duration::from_secs(10);

/// What the workload needs to put itself behind the gate.
pub struct WorkloadGate {
    program: Vec<SockFilter>,
    socket: OwnedFd,
}

impl WorkloadGate {
    /// The filter `program`, its listener to go over `socket`.
    pub(super) fn new(program: Vec<SockFilter>, socket: OwnedFd) -> Self {
        Self { program, socket }
    }

    /// Installs the filter and hands the listener over; for the workload, just before exec.
    pub fn install(self) -> Result<(), String> {
        install_and_send(&self.program, self.socket).map_err(|e| e.to_string())
    }
}

/// The running supervisor, as the launcher holds it.
pub struct GateProcess {
    pid: Pid,
    stats: OwnedFd,
}

/// What the launcher learns from the supervisor at the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateReport {
    /// The supervisor served the sandbox to its end.
    Finished(Stats),
    /// The workload never handed its listener over (it failed before exec).
    NeverStarted,
    /// The supervisor ended without counts (it was killed, or failed); the workload's
    /// accelerator ioctls failed closed from then on.
    Died(String),
}

impl GateProcess {
    /// Checks the kernel, builds the filter and forks the supervisor; returns it with the
    /// workload's half of the hand-off.
    pub fn start(config: GateConfig) -> Result<(Self, WorkloadGate), BootError> {
        let (program, ours, theirs) = prepare(&config)?;
        let (stats_read, stats_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| BootError::Launch(format!("ioctl gate: pipe: {e}")))?;
        let launcher = nix::unistd::getpid();
        let forked = fork_process()
            .map_err(|e| BootError::Launch(format!("ioctl gate: fork the supervisor: {e}")))?;
        match forked {
            ForkResult::Child => {
                drop((theirs, stats_read));
                std::process::exit(supervisor_main(launcher, ours, stats_write, config));
            }
            ForkResult::Parent { child } => Ok((
                Self {
                    pid: child,
                    stats: stats_read,
                },
                WorkloadGate {
                    program,
                    socket: theirs,
                },
            )),
        }
    }

    /// Stops the supervisor at once (the sandbox never started).
    pub fn abort(self) {
        let _ = kill(self.pid, Signal::SIGKILL);
        let _ = waitpid(self.pid, None);
    }

    /// After the sandbox is gone: the supervisor's counts, and its exit.
    pub fn finish(self) -> GateReport {
        let mut text = String::new();
        let mut fds = [PollFd::new(self.stats.as_fd(), PollFlags::POLLIN)];
        let timeout = PollTimeout::try_from(STATS_WAIT).unwrap_or(PollTimeout::MAX);
        let ready = matches!(poll(&mut fds, timeout), Ok(n) if n > 0);
        if ready {
            let _ = std::fs::File::from(self.stats).read_to_string(&mut text);
        } else {
            let _ = kill(self.pid, Signal::SIGKILL);
        }
        let status = waitpid(self.pid, None);
        match serde_json::from_str::<Stats>(&text) {
            Ok(stats) => GateReport::Finished(stats),
            Err(_) if text.is_empty() && matches!(status, Ok(WaitStatus::Exited(_, 0))) => {
                GateReport::NeverStarted
            }
            Err(_) => GateReport::Died(match status {
                Ok(WaitStatus::Signaled(_, signal, _)) => format!("killed by {signal}"),
                Ok(WaitStatus::Exited(_, code)) => format!("exited with status {code}"),
                _ if !ready => "gave no counts in time".to_owned(),
                other => format!("{other:?}"),
            }),
        }
    }
}

/// Checks the kernel and builds the filter for `config`'s sandbox; returns it with the two ends
/// of the socket the listener goes over (the supervisor's, the workload's).
pub(super) fn prepare(
    config: &GateConfig,
) -> Result<(Vec<SockFilter>, OwnedFd, OwnedFd), BootError> {
    let gate_error = |what: &str, e: &dyn std::fmt::Display| {
        BootError::Launch(format!("ioctl gate: {what}: {e}"))
    };
    check_kernel().map_err(|e| gate_error("seccomp", &e))?;
    let arch = Arch::native().ok_or_else(|| {
        BootError::Launch("ioctl gate: no seccomp filter for this architecture".into())
    })?;
    let program = build(arch, &config.filter_spec());
    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| gate_error("socketpair", &e))?;
    Ok((program, ours, theirs))
}

/// The supervisor process. Returns its exit status.
fn supervisor_main(launcher: Pid, socket: OwnedFd, stats: OwnedFd, config: GateConfig) -> i32 {
    // Dies with the launcher; Ctrl-C and the signals the launcher forwards are the workload's
    // business, not a reason to stop gating its calls.
    if nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).is_err()
        || nix::unistd::getppid() != launcher
    {
        return 1;
    }
    // Dups, eventfds and pidfds in flight are fds: take the whole hard limit.
    if let Ok((_, hard)) =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
    {
        let _ =
            nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, hard, hard);
    }
    // What `ps` shows, and what tests look for.
    let _ = nix::sys::prctl::set_name(c"accelgate-gate");
    for forwarded in FORWARDED_SIGNALS {
        let _ = ignore_signal(forwarded);
    }
    let listener = match receive_listener(socket.as_fd()) {
        Ok(Some(listener)) => listener,
        // The workload failed before exec; the launcher reports why. Exiting 0 without counts
        // tells it that this is what happened.
        Ok(None) => return 0,
        Err(e) => {
            tracing::error!(%e, "ioctl gate");
            return 1;
        }
    };
    drop(socket);
    match serve(listener, config) {
        Ok(counts) => {
            let json = serde_json::to_string(&counts).unwrap_or_default();
            let _ = std::fs::File::from(stats).write_all(json.as_bytes());
            0
        }
        Err(e) => {
            tracing::error!(%e, "ioctl gate: the notification loop failed");
            1
        }
    }
}
