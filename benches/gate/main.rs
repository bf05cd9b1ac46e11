//! What the ioctl gate costs per call, as ratios against the same call without a filter, all
//! measured in one run on one machine (`cargo bench --bench gate`; needs root).
//!
//! Each scenario runs in a fresh process (so that it forks while single-threaded): it forks a
//! workload that times its calls first without a filter, then installs the gate's filter and
//! hands the listener to the scenario process, which serves it with `gate::serve` exactly as
//! `accelgate run` does. The scenarios differ in `SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP`.
//!
//! The calls: a non-accelerator ioctl (`TCGETS` on /dev/null: the filter allows it in the
//! kernel), `getppid` (a syscall the filter allows), a routed call that is CONTINUEd to the
//! kernel (/dev/null posing as a VFIO group: `VFIO_GROUP_GET_STATUS`), a denied one (an unknown
//! VFIO request), and an emulated one (gasket `REGISTER_INTERRUPT` on a simulated TPU v4: copy
//! in, check, eventfd check, executor thread, copy out).

mod sys;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use accelgate::accel::abi::{GASKET_MAGIC, REGISTER_INTERRUPT};
use accelgate::discovery::discover;
use accelgate::pci::HostRoot;
use accelgate::supervisor::backend::Caller;
use accelgate::supervisor::classify::HostDevices;
use accelgate::supervisor::filter::{Arch, FilterSpec, build};
use accelgate::supervisor::gate::{GateConfig, serve};
use accelgate::supervisor::handoff::{install_and_send, receive_listener};
use accelgate::supervisor::policy::Mode;
use accelgate::supervisor::simulator::Simulator;
use accelgate::vfio::abi::{GROUP_GET_STATUS, VFIO_MAGIC};
use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
use nix::unistd::ForkResult;

/// `TCGETS`: magic 'T', which the filter never routes.
const TCGETS: u32 = 0x5401;
/// An unknown VFIO request: denied by the gate with ENOTTY.
const UNKNOWN_VFIO: u32 = 0x3b7f;
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

/// A byte to a forked echo process and back: what any supervisor round trip costs at least
/// on this machine (two wakeups of another process).
fn pipe_round_trip(iterations: usize) -> f64 {
    let (to_echo_read, to_echo_write) = nix::unistd::pipe().unwrap();
    let (from_echo_read, from_echo_write) = nix::unistd::pipe().unwrap();
    let total = iterations * BATCHES;
    match sys::fork() {
        ForkResult::Child => {
            let mut byte = [0u8; 1];
            for _ in 0..total {
                if nix::unistd::read(&to_echo_read, &mut byte).is_err()
                    || nix::unistd::write(&from_echo_write, &byte).is_err()
                {
                    break;
                }
            }
            std::process::exit(0);
        }
        ForkResult::Parent { child } => {
            let mut byte = [0u8; 1];
            let ns = per_call(iterations, || {
                let _ = nix::unistd::write(&to_echo_write, &byte);
                let _ = nix::unistd::read(&from_echo_read, &mut byte);
            });
            let _ = nix::sys::wait::waitpid(child, None);
            ns
        }
    }
}

/// The workload: times its calls and reports `name nanoseconds` lines on `report`.
fn workload(
    socket: OwnedFd,
    go: OwnedFd,
    report: OwnedFd,
    carrier: Option<OwnedFd>,
    program: &[accelgate::supervisor::abi::SockFilter],
) -> i32 {
    let iterations: usize = std::env::var("GATE_BENCH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let null = std::fs::File::open("/dev/null").expect("open /dev/null");
    let null = null.as_fd();
    let mut out = String::new();
    let mut termios = [0u8; 64];
    let mut status = [8u8, 0, 0, 0, 0, 0, 0, 0];
    let mut line = |name: &str, ns: f64| out.push_str(&format!("{name} {ns:.1}\n"));

    let cheap = iterations * 10;
    let mut unrouted = || {
        sys::ioctl(null, TCGETS, termios.as_mut_ptr());
    };
    let mut parent = || {
        let _ = nix::unistd::getppid();
    };
    let mut routed = || {
        sys::ioctl(null, GROUP_GET_STATUS.request, status.as_mut_ptr());
    };
    line("ioctl, no filter", per_call(cheap, &mut unrouted));
    line("getppid, no filter", per_call(cheap, &mut parent));
    line("routed ioctl, no filter", per_call(cheap, &mut routed));
    line("pipe round trip", pipe_round_trip(iterations));

    if let Err(e) = install_and_send(program, socket) {
        eprintln!("install the filter: {e}");
        return 1;
    }
    let mut byte = [0u8; 1];
    if std::fs::File::from(go).read_exact(&mut byte).is_err() {
        return 1;
    }
    let Some(carrier) = carrier else {
        line("bare seccomp round trip", per_call(iterations, &mut routed));
        let _ = std::fs::File::from(report).write_all(out.as_bytes());
        return 0;
    };
    line("ioctl, filter allows", per_call(cheap, &mut unrouted));
    line("getppid, filter allows", per_call(cheap, &mut parent));
    line("CONTINUE", per_call(iterations, &mut routed));
    line(
        "deny",
        per_call(iterations, || {
            sys::ioctl(null, UNKNOWN_VFIO, status.as_mut_ptr());
        }),
    );
    let eventfd = nix::sys::eventfd::EventFd::new().expect("eventfd");
    let mut mapping = [0u64, eventfd.as_fd().as_raw_fd() as u64, 2, 0x472_0000];
    let registered = sys::ioctl(
        carrier.as_fd(),
        REGISTER_INTERRUPT.request,
        mapping.as_mut_ptr().cast(),
    );
    if registered != 0 {
        eprintln!("REGISTER_INTERRUPT on the simulated chip failed");
        return 1;
    }
    line(
        "emulate",
        per_call(iterations, || {
            sys::ioctl(
                carrier.as_fd(),
                REGISTER_INTERRUPT.request,
                mapping.as_mut_ptr().cast(),
            );
        }),
    );
    let _ = std::fs::File::from(report).write_all(out.as_bytes());
    0
}

/// One scenario, in its own process: prints the workload's lines. `bare` serves the workload
/// with nothing but CONTINUE (the floor) instead of the gate; `pinned` puts the workload, the
/// supervisor and its threads on CPU 0.
fn scenario(bare: bool, sync_wake_up: bool, pinned: bool) {
    if pinned {
        let mut cpus = nix::sched::CpuSet::new();
        cpus.set(0).unwrap();
        nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &cpus).expect("pin to CPU 0");
    }
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/sysfs/tpu-v4-8");
    let host =
        discover(&HostRoot::at(fixture).expect("fixture host")).expect("discover the fixture");
    let mut simulator = Simulator::new(&host, &[0], None);
    let me = Caller {
        tgid: std::process::id() as i32,
        euid: 0,
        egid: 0,
    };
    let accel = simulator
        .nodes()
        .iter()
        .position(|n| n.path.to_string_lossy().starts_with("/dev/accel"))
        .expect("an accel node");
    let carrier = simulator
        .open(accel, libc::O_RDWR, me, &|_| false)
        .expect("open the simulated chip");
    let spec = FilterSpec {
        magics: vec![GASKET_MAGIC, VFIO_MAGIC],
        plain_requests: Vec::new(),
        route_opens: false,
    };
    let program = build(Arch::native().expect("a supported architecture"), &spec);
    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .unwrap();
    let (go_read, go_write) = nix::unistd::pipe().unwrap();
    let (report_read, report_write) = nix::unistd::pipe().unwrap();
    match sys::fork() {
        ForkResult::Child => {
            drop((ours, go_write, report_read));
            let carrier = (!bare).then_some(carrier);
            std::process::exit(workload(theirs, go_read, report_write, carrier, &program));
        }
        ForkResult::Parent { child } => {
            drop((theirs, go_read, report_write, carrier));
            let listener = receive_listener(ours.as_fd())
                .expect("receive")
                .expect("a listener");
            let config = GateConfig {
                sandbox: "bench".into(),
                mode: Mode::Enforce,
                // /dev/null (1:3) poses as a VFIO group, so that routed calls on it CONTINUE.
                host: HostDevices {
                    vfio_major: Some(1),
                    lite_minors: Vec::new(),
                },
                simulator: Some(simulator),
                executor_threads: 2,
                max_in_flight: 32,
                deadline: Duration::from_secs(10),
                sync_wake_up,
            };
            // The bare server stays blocked in NOTIF_RECV once the workload is gone; the
            // scenario process exits under it. The gate ends when its listener hangs up.
            let gate = if bare {
                std::thread::spawn(move || {
                    sys::continue_everything(listener.as_fd(), sync_wake_up)
                });
                None
            } else {
                Some(std::thread::spawn(move || serve(listener, config)))
            };
            std::fs::File::from(go_write).write_all(b"g").unwrap();
            let mut lines = String::new();
            std::fs::File::from(report_read)
                .read_to_string(&mut lines)
                .unwrap();
            let _ = nix::sys::wait::waitpid(child, None);
            if let Some(gate) = gate {
                let _ = gate.join();
            }
            print!("{lines}");
        }
    }
}

fn run_scenario(bare: bool, sync_wake_up: bool, pinned: bool) -> Vec<(String, f64)> {
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["--scenario", if sync_wake_up { "sync" } else { "nosync" }])
        .args(bare.then_some("bare"))
        .args(pinned.then_some("pinned"))
        .stderr(Stdio::inherit())
        .output()
        .expect("run a scenario");
    assert!(output.status.success(), "the scenario failed");
    BufReader::new(&output.stdout[..])
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| {
            let (name, ns) = l.rsplit_once(' ')?;
            Some((name.to_owned(), ns.parse().ok()?))
        })
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--scenario") {
        let pinned = args.iter().any(|a| a == "pinned");
        let bare = args.iter().any(|a| a == "bare");
        scenario(bare, args.get(at + 1).is_some_and(|s| s == "sync"), pinned);
        return;
    }
    if !nix::unistd::geteuid().is_root() {
        println!(
            "gate benchmark: skipped (needs root: pidfd_getfd and the executor's credential switches)"
        );
        return;
    }
    for (pinned, sync_wake_up) in [(false, true), (false, false), (true, true), (true, false)] {
        let mut results = run_scenario(false, sync_wake_up, pinned);
        let floor = run_scenario(true, sync_wake_up, pinned);
        results.extend(
            floor
                .into_iter()
                .filter(|(name, _)| name == "bare seccomp round trip"),
        );
        let find = |name: &str| {
            results
                .iter()
                .find(|(n, _)| n == name)
                .map_or(f64::NAN, |(_, ns)| *ns)
        };
        let (base, round_trip) = (find("ioctl, no filter"), find("pipe round trip"));
        println!(
            "gate benchmark: {}, SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP {}",
            if pinned { "one CPU" } else { "any CPU" },
            if sync_wake_up { "on" } else { "off" }
        );
        println!(
            "  {:<26} {:>10} {:>14} {:>16}",
            "call", "ns/call", "vs ioctl", "vs pipe trip"
        );
        for (name, ns) in &results {
            println!(
                "  {name:<26} {ns:>10.0} {:>13.1}x {:>15.2}x",
                ns / base,
                ns / round_trip
            );
        }
        println!(
            "  getppid with the filter / without: {:.2}x",
            find("getppid, filter allows") / find("getppid, no filter")
        );
        let floor = find("bare seccomp round trip");
        println!(
            "  vs the bare seccomp round trip: CONTINUE {:.1}x, deny {:.1}x, emulate {:.1}x",
            find("CONTINUE") / floor,
            find("deny") / floor,
            find("emulate") / floor
        );
    }
}
