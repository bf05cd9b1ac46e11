//! What the ioctl gate costs per call, as ratios against baselines measured in the same run on
//! the same machine (`cargo bench --bench gate`; needs root).
//!
//! Each scenario runs in a fresh process (so that it forks while single-threaded): it forks a
//! workload that times its calls without a filter, installs a filter and hands the listener
//! (if any) to the scenario process, then times its calls again. The scenarios:
//! - `allow-all`: a one-instruction filter that allows everything (the kernel's price for any
//!   filter at all);
//! - `bare`: the gate's filter routing everything, served by a loop that answers CONTINUE to
//!   every notification (the floor of a seccomp round trip);
//! - `host`: the gate serving host devices: /dev/null posing as the VFIO container and
//!   /dev/zero as a TPU v4 chip, so that the calls run the real paths and reach real drivers;
//! - `simulated`: the gate serving a simulated TPU v4 (what `run --simulate` does).
//!
//! The calls: `getppid` (a syscall the filter never routes: the action cache skips the
//! program), `VFIO_DEVICE_GET_INFO` (allowed in the kernel on every VFIO kind that has it),
//! `VFIO_IOMMU_GET_INFO` on the container (0x3B70 means another call on a device: the supervisor
//! decides, and continues it), `VFIO_IOMMU_ENABLE` on the container (denied by the supervisor:
//! its number means another denied call on a device, with a different errno on a group), and
//! gasket `REGISTER_INTERRUPT` (emulated: copy in, check, eventfd check, the call on a copy
//! under the caller's ids, copy out) on the /dev/zero chip and on the simulated chip, and
//! NVIDIA's `RM_CONTROL` (`GPU_GET_ATTACHED_IDS`, translated: the NVOS54 and its 128 bytes of
//! parameters copied in, the command checked, the call run on the copies, the GPU id list
//! narrowed and copied out) on a simulated control file.
//!
//! Last, the supervisor's checks are timed each on its own (the caller's ids, its file, a read
//! of its memory), and their sum for an RM_CONTROL set against the floor.

mod posing;
mod sys;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::process::{Command, Stdio};
use std::time::Instant;

use accelgate::accel::abi::REGISTER_INTERRUPT;
use accelgate::boot::{NvidiaTables, families};
use accelgate::discovery::discover;
use accelgate::family::Caller;
use accelgate::nvproxy::DriverCaps;
use accelgate::pci::HostRoot;
use accelgate::supervisor::abi::{SECCOMP_RET_ALLOW, SockFilter, op};
use accelgate::supervisor::filter::{Arch, build};
use accelgate::supervisor::handoff::{install_and_send, receive_listener};
use accelgate::supervisor::simulator::Simulator;
use accelgate::supervisor::{Gate, GateConfig, Mode, SandboxConfig, Threads, serve};
use accelgate::vfio::abi::{DEVICE_GET_INFO, IOMMU_ENABLE, IOMMU_GET_INFO};
use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
use nix::unistd::ForkResult;
use posing::posing_registry;

/// Batches per measurement; the median batch is reported.
const BATCHES: usize = 7;

fn per_call(iterations: usize, mut call: impl FnMut()) -> f64 {
    let mut batches: Vec<f64> = (0..BATCHES)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..iterations {
                call();
            }
            started.elapsed().as_nanos() as f64 / iterations as f64
        })
        .collect();
    batches.sort_by(f64::total_cmp);
    batches[BATCHES / 2]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    AllowAll,
    Bare,
    Host,
    Simulated,
}

impl Scenario {
    const ALL: [Self; 4] = [Self::AllowAll, Self::Bare, Self::Host, Self::Simulated];

    fn name(self) -> &'static str {
        match self {
            Self::AllowAll => "allow-all",
            Self::Bare => "bare",
            Self::Host => "host",
            Self::Simulated => "simulated",
        }
    }
}

/// The workload: times its calls and reports `name nanoseconds` lines on `report`.
fn workload(
    scenario: Scenario,
    socket: Option<OwnedFd>,
    report: OwnedFd,
    carriers: Option<(OwnedFd, OwnedFd)>,
    program: &[SockFilter],
) -> i32 {
    let iterations: usize = std::env::var("GATE_BENCH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let cheap = iterations * 10;
    let null = std::fs::File::open("/dev/null").expect("open /dev/null");
    let zero = std::fs::File::open("/dev/zero").expect("open /dev/zero");
    let (null, zero) = (null.as_fd(), zero.as_fd());
    let mut out = String::new();
    let mut line = |name: &str, ns: f64| out.push_str(&format!("{name} {ns:.1}\n"));
    let mut info = [0u8; 64];
    let mut parent = || {
        let _ = nix::unistd::getppid();
    };
    let mut in_kernel = || {
        sys::ioctl(null, DEVICE_GET_INFO.request, info.as_mut_ptr());
    };
    line("getppid, no filter", per_call(cheap, &mut parent));
    line(
        "VFIO_DEVICE_GET_INFO, no filter",
        per_call(cheap, &mut in_kernel),
    );

    let installed = match &socket {
        Some(_) => install_and_send(program, socket.expect("a socket")).map_err(|e| e.to_string()),
        None => sys::install_plain_filter(program),
    };
    if let Err(e) = installed {
        eprintln!("install the filter: {e}");
        return 1;
    }
    line("getppid, filtered", per_call(cheap, &mut parent));
    match scenario {
        Scenario::AllowAll => {}
        Scenario::Bare => line(
            "bare seccomp round trip",
            per_call(iterations, &mut in_kernel),
        ),
        Scenario::Host => {
            line(
                "VFIO_DEVICE_GET_INFO, filtered",
                per_call(cheap, &mut in_kernel),
            );
            line(
                "CONTINUE",
                per_call(iterations, || {
                    sys::ioctl(null, IOMMU_GET_INFO.request, info.as_mut_ptr());
                }),
            );
            line(
                "deny",
                per_call(iterations, || {
                    sys::ioctl(null, IOMMU_ENABLE.request, info.as_mut_ptr());
                }),
            );
            let eventfd = nix::sys::eventfd::EventFd::new().expect("eventfd");
            let mut mapping = [0u64, eventfd.as_fd().as_raw_fd() as u64, 2, 0x472_0000];
            line(
                "emulate, host backend",
                per_call(iterations, || {
                    sys::ioctl(
                        zero,
                        REGISTER_INTERRUPT.request,
                        mapping.as_mut_ptr().cast(),
                    );
                }),
            );
        }
        Scenario::Simulated => {
            let (carrier, nvidia) = carriers.expect("a simulated chip and control file");
            let eventfd = nix::sys::eventfd::EventFd::new().expect("eventfd");
            let mut mapping = [0u64, eventfd.as_fd().as_raw_fd() as u64, 2, 0x472_0000];
            let mut register = || {
                sys::ioctl(
                    carrier.as_fd(),
                    REGISTER_INTERRUPT.request,
                    mapping.as_mut_ptr().cast(),
                )
            };
            if register() != 0 {
                eprintln!("REGISTER_INTERRUPT on the simulated chip failed");
                return 1;
            }
            line(
                "emulate, simulator",
                per_call(iterations, || {
                    register();
                }),
            );
            let Some(mut control) = sys::NvControl::new(nvidia.as_fd()) else {
                eprintln!("no RM client on the simulated control file");
                return 1;
            };
            line(
                "RM_CONTROL, simulator",
                per_call(iterations, || {
                    control.attached_ids();
                }),
            );
        }
    }
    let _ = std::fs::File::from(report).write_all(out.as_bytes());
    0
}

/// One scenario, in its own process: prints the workload's lines. `pinned` puts the workload,
/// the supervisor and its threads on CPU 0.
fn scenario(scenario: Scenario, sync_wake_up: bool, pinned: bool) {
    if pinned {
        let mut cpus = nix::sched::CpuSet::new();
        cpus.set(0).unwrap();
        nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &cpus).expect("pin to CPU 0");
    }
    let simulated = scenario == Scenario::Simulated;
    let mut simulator = None;
    let mut carriers = None;
    let abi = accelgate::nvproxy::tree::abi("550.54.15".parse().expect("a version"))
        .expect("the 550 tables");
    if simulated {
        let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/sysfs/tpu-v4-8");
        let host =
            discover(&HostRoot::at(fixture).expect("fixture host")).expect("discover the fixture");
        let gpus = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/sysfs/nvidia-h100x8");
        let gpus =
            discover(&HostRoot::at(gpus).expect("fixture host")).expect("discover the fixture");
        let mut devices = accelgate::tpuproxy::simulated_devices(&host.tpus, &[0]);
        devices.extend(accelgate::nvproxy::sim::simulated_gpus(
            abi,
            &gpus.gpus,
            &[0],
        ));
        let mut sim = Simulator::new(devices, None);
        let me = Caller {
            tgid: std::process::id() as i32,
            euid: 0,
            egid: 0,
        };
        let accel = sim
            .nodes()
            .position(|n| n.path.to_string_lossy().starts_with("/dev/accel"))
            .expect("an accel node");
        let ctl = sim
            .nodes()
            .position(|n| n.path.to_string_lossy() == "/dev/nvidiactl")
            .expect("a control node");
        let chip = sim
            .open(accel, libc::O_RDWR, me, &|_| false)
            .expect("open the simulated chip")
            .1;
        let ctl = sim
            .open(ctl, libc::O_RDWR, me, &|_| false)
            .expect("open the simulated control file")
            .1;
        carriers = Some((chip, ctl));
        simulator = Some(sim);
    }
    let nvidia = NvidiaTables {
        abi,
        caps: DriverCaps::DEFAULT,
    };
    let gate = Gate::new(families(Some(nvidia)), posing_registry()).expect("consistent tables");
    let program = match scenario {
        Scenario::AllowAll => vec![SockFilter {
            code: op::RET_K,
            jt: 0,
            jf: 0,
            k: SECCOMP_RET_ALLOW,
        }],
        // Everything the gate routes goes to the supervisor: audit routing.
        Scenario::Bare => build(
            Arch::native().expect("an arch"),
            &gate.filter_spec(Mode::Audit, false),
        ),
        _ => build(
            Arch::native().expect("an arch"),
            &gate.filter_spec(Mode::Enforce, simulated),
        ),
    };
    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .unwrap();
    let (report_read, report_write) = nix::unistd::pipe().unwrap();
    let served = scenario != Scenario::AllowAll;
    match sys::fork() {
        ForkResult::Child => {
            drop((ours, report_read));
            let socket = served.then_some(theirs);
            std::process::exit(workload(scenario, socket, report_write, carriers, &program));
        }
        ForkResult::Parent { child } => {
            drop((theirs, report_write, carriers));
            let server = served.then(|| {
                let listener = receive_listener(ours.as_fd())
                    .expect("receive")
                    .expect("a listener");
                if scenario == Scenario::Bare {
                    // It stays blocked in NOTIF_RECV once the workload is gone (or returns, on
                    // Linux 6.6): the scenario process exits under it.
                    std::thread::spawn(move || {
                        sys::continue_everything(listener.as_fd(), sync_wake_up)
                    })
                } else {
                    let config = GateConfig {
                        gate,
                        sandbox: SandboxConfig {
                            name: "bench".into(),
                            mode: Mode::Enforce,
                            simulator,
                            granted: None,
                        },
                        threads: Threads {
                            sync_wake_up,
                            max: std::env::var("MAXT")
                                .ok()
                                .and_then(|v| v.parse().ok())
                                .unwrap_or(16),
                            ..Threads::default()
                        },
                    };
                    std::thread::spawn(move || {
                        serve(listener, config).expect("serve");
                    })
                }
            });
            let mut lines = String::new();
            std::fs::File::from(report_read)
                .read_to_string(&mut lines)
                .unwrap();
            let _ = nix::sys::wait::waitpid(child, None);
            if let (Some(server), false) = (server, scenario == Scenario::Bare) {
                let _ = server.join();
            }
            print!("{lines}");
        }
    }
}

/// What the supervisor's own checks cost, each on its own, against a process blocked in a
/// read (as a caller waiting for its notification is): the ids of the caller
/// (`PIDFD_GET_INFO`), whether its fd is a file the supervisor holds (`kcmp`), and a read of
/// 32 bytes of its memory (`process_vm_readv`), beside `getppid`, the cheapest syscall.
fn checks() -> Vec<(String, f64)> {
    static BUFFER: [u8; 32] = [7; 32];
    let (block_read, block_write) = nix::unistd::pipe().unwrap();
    let child = match sys::fork() {
        ForkResult::Child => {
            drop(block_write);
            let _ = nix::unistd::read(&block_read, &mut [0u8; 1]);
            std::process::exit(0);
        }
        ForkResult::Parent { child } => child,
    };
    drop(block_read);
    let iterations = 20_000;
    let pidfd = rustix::process::pidfd_open(
        rustix::process::Pid::from_raw(child.as_raw()).expect("a pid"),
        rustix::process::PidfdFlags::empty(),
    )
    .expect("pidfd_open");
    let me = nix::unistd::getpid().as_raw();
    let held = std::fs::File::open("/dev/null").expect("open /dev/null");
    let mut out = [0u8; 32];
    let remote = [nix::sys::uio::RemoteIoVec {
        base: BUFFER.as_ptr() as usize,
        len: BUFFER.len(),
    }];
    // Each works here, so that its time is the call's and not an error path's.
    assert_eq!(
        sys::pidfd_get_info(pidfd.as_fd()),
        0,
        "PIDFD_GET_INFO (Linux 6.13)"
    );
    assert!(
        sys::kcmp_file(child.as_raw(), 0, me, held.as_fd()) >= 0,
        "kcmp"
    );
    assert_eq!(
        nix::sys::uio::process_vm_readv(child, &mut [std::io::IoSliceMut::new(&mut out)], &remote),
        Ok(BUFFER.len()),
        "process_vm_readv"
    );
    let results = vec![
        (
            "getppid".to_owned(),
            per_call(iterations, || {
                let _ = nix::unistd::getppid();
            }),
        ),
        (
            "PIDFD_GET_INFO".to_owned(),
            per_call(iterations, || {
                sys::pidfd_get_info(pidfd.as_fd());
            }),
        ),
        (
            "kcmp KCMP_FILE".to_owned(),
            per_call(iterations, || {
                sys::kcmp_file(child.as_raw(), 0, me, held.as_fd());
            }),
        ),
        (
            "process_vm_readv 32 bytes".to_owned(),
            per_call(iterations, || {
                let mut local = [std::io::IoSliceMut::new(&mut out)];
                let _ = nix::sys::uio::process_vm_readv(child, &mut local, &remote);
            }),
        ),
    ];
    drop(block_write);
    let _ = nix::sys::wait::waitpid(child, None);
    results
        .into_iter()
        .map(|(name, ns)| (format!("checks: {name}"), ns))
        .collect()
}

fn run_scenario(scenario: Scenario, sync_wake_up: bool, pinned: bool) -> Vec<(String, f64)> {
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["--scenario", scenario.name()])
        .arg(if sync_wake_up { "sync" } else { "nosync" })
        .args(pinned.then_some("pinned"))
        .stderr(Stdio::inherit())
        .output()
        .expect("run a scenario");
    assert!(
        output.status.success(),
        "the {} scenario failed",
        scenario.name()
    );
    BufReader::new(&output.stdout[..])
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| {
            let (name, ns) = l.rsplit_once(' ')?;
            Some((format!("{}: {name}", scenario.name()), ns.parse().ok()?))
        })
        .collect()
}

/// The ratios the goals are stated in.
struct Ratios {
    unrouted: f64,
    in_kernel: f64,
    continued: f64,
    denied: f64,
    emulated: f64,
    emulated_host: f64,
    rm_control: f64,
}

fn ratios(results: &[(String, f64)]) -> Ratios {
    let find = |name: &str| {
        results
            .iter()
            .find(|(n, _)| n == name)
            .map_or(f64::NAN, |(_, ns)| *ns)
    };
    let floor = find("bare: bare seccomp round trip");
    Ratios {
        unrouted: find("host: getppid, filtered") / find("allow-all: getppid, filtered"),
        in_kernel: find("host: VFIO_DEVICE_GET_INFO, filtered")
            / find("host: VFIO_DEVICE_GET_INFO, no filter"),
        continued: find("host: CONTINUE") / floor,
        denied: find("host: deny") / floor,
        emulated: find("simulated: emulate, simulator") / floor,
        emulated_host: find("host: emulate, host backend") / floor,
        rm_control: find("simulated: RM_CONTROL, simulator") / floor,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--scenario") {
        let name = args.get(at + 1).map(String::as_str);
        let which = Scenario::ALL
            .into_iter()
            .find(|s| Some(s.name()) == name)
            .expect("a scenario name");
        let sync = args.get(at + 2).is_some_and(|s| s == "sync");
        scenario(which, sync, args.iter().any(|a| a == "pinned"));
        return;
    }
    if !nix::unistd::geteuid().is_root() {
        println!("gate benchmark: skipped (needs root: pidfd_getfd and the credential switches)");
        return;
    }
    let mut summary = None;
    for (pinned, sync_wake_up) in [(false, true), (true, true), (false, false)] {
        let results: Vec<(String, f64)> = Scenario::ALL
            .into_iter()
            .flat_map(|s| run_scenario(s, sync_wake_up, pinned))
            .collect();
        println!(
            "gate benchmark: {}, SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP {}",
            if pinned { "one CPU" } else { "any CPU" },
            if sync_wake_up { "on" } else { "off" }
        );
        for (name, ns) in &results {
            println!("  {name:<52} {ns:>9.0} ns");
        }
        let r = ratios(&results);
        println!(
            "  unrouted {:.2}x, in-kernel-allowed {:.2}x, continue {:.2}x, deny {:.2}x, emulate {:.2}x (host backend {:.2}x), RM_CONTROL {:.2}x",
            r.unrouted,
            r.in_kernel,
            r.continued,
            r.denied,
            r.emulated,
            r.emulated_host,
            r.rm_control
        );
        if !pinned && sync_wake_up {
            let floor = results
                .iter()
                .find(|(n, _)| n == "bare: bare seccomp round trip")
                .map_or(f64::NAN, |(_, ns)| *ns);
            summary = Some((r, floor));
        }
    }
    // An emulated RM_CONTROL on a carrier the supervisor knows makes these checks and nothing
    // else beyond the floor's RECV and SEND but an ID_VALID: their sum over the floor is the
    // least its ratio can be with every check made.
    let checks = checks();
    println!("gate benchmark: the supervisor's checks, each alone");
    for (name, ns) in &checks {
        println!("  {name:<52} {ns:>9.0} ns");
    }
    if let Some((r, floor)) = summary {
        let find = |name: &str| {
            checks
                .iter()
                .find(|(n, _)| n == name)
                .map_or(f64::NAN, |(_, ns)| *ns)
        };
        let least = find("checks: PIDFD_GET_INFO")
            + find("checks: kcmp KCMP_FILE")
            + 2.0 * find("checks: process_vm_readv 32 bytes");
        println!(
            "  RM_CONTROL's checks (PIDFD_GET_INFO, kcmp, two process_vm_readv): {least:.0} ns, so at least {:.2}x the floor with every check made",
            (floor + least) / floor
        );
        println!(
            "gate ratios: unrouted={:.2} in-kernel-allowed={:.2} continue={:.2} deny={:.2} emulate={:.2} rm-control={:.2}",
            r.unrouted, r.in_kernel, r.continued, r.denied, r.emulated, r.rm_control
        );
    }
}
