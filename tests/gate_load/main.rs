//! The gate under load and under faults, with real seccomp filters in forked workloads and a
//! real supervisor (needs root). A test binary of its own (`harness = false`): each test runs
//! this binary again as a helper process (`--role NAME`), which forks the workloads and serves
//! them, so that no filter and no serving thread ever lives in the test process itself. A role
//! prints one JSON line of findings; the test asserts on them.
//!
//! - `load`: 64 workloads, each with its own listener and sandbox on one supervisor, each
//!   making 10,000 gated calls (continue, deny, emulate), all at once: every call gets its
//!   answer, the counters add up exactly, and the supervisor's memory stays flat from the first
//!   round of 5,000 to the second.
//! - `supervisor-killed`: workloads with four threads each keep calling; the supervisor is
//!   stopped (their calls block) and then killed: every blocked call and every later one fails
//!   closed with ENOSYS.
//! - `workload-killed`: a workload is killed while its emulated call waits for the
//!   supervisor; the simulator's log shows the call never ran.
//! - `grant`: a call the supervisor sees on an accelerator node the sandbox was not given is
//!   refused.
//! - `in-kernel`: with nobody serving the listener, the calls the filter decides in the kernel
//!   still get the file's own driver's answer (or the table's errno) while routed ones fail
//!   closed.

#[allow(dead_code)]
#[path = "../../benches/gate/sys.rs"]
mod sys;

#[path = "../../benches/gate/posing.rs"]
mod posing;

#[path = "../common/mod.rs"]
mod common;

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use accelgate::accel::abi::{REGISTER_INTERRUPT, SET_EVENTFD, V4_INTERRUPT_OFFSETS};
use accelgate::boot::families;
use accelgate::discovery::discover;
use accelgate::family::Caller;
use accelgate::pci::HostRoot;
use accelgate::supervisor::filter::{Arch, build};
use accelgate::supervisor::handoff::{install_and_send, receive_listener};
use accelgate::supervisor::simulator::Simulator;
use accelgate::supervisor::{Gate, Mode, Sandbox, SandboxConfig, Supervisor, Threads};
use accelgate::vfio::abi::{DEVICE_GET_INFO, IOMMU_ENABLE, IOMMU_GET_INFO};
use nix::sys::signal::{Signal, kill};
use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
use nix::sys::wait::waitpid;
use nix::unistd::ForkResult;
use posing::posing_registry;
use serde_json::{Value, json};

const WORKLOADS: usize = 64;
const CALLS_PER_ROUND: usize = 5_000;
const ROUNDS: usize = 2;

/// The gate over the posing registry, and the filter it has a host-device sandbox install.
fn posing_gate() -> (Gate, Vec<accelgate::supervisor::abi::SockFilter>) {
    let gate = Gate::new(families(None), posing_registry()).expect("consistent tables");
    let program = build(
        Arch::native().unwrap(),
        &gate.filter_spec(Mode::Enforce, false),
    );
    (gate, program)
}

fn errno_of(result: libc::c_long) -> i32 {
    if result < 0 {
        nix::errno::Errno::last_raw()
    } else {
        0
    }
}

fn pair() -> (OwnedFd, OwnedFd) {
    socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .unwrap()
}

fn read_byte(fd: &OwnedFd) -> bool {
    let mut byte = [0u8; 1];
    nix::unistd::read(fd, &mut byte).is_ok_and(|n| n == 1)
}

fn write_line(fd: OwnedFd, line: &str) {
    let _ = std::fs::File::from(fd).write_all(line.as_bytes());
}

/// Resident set size of this process, in KiB.
fn rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4
}

/// One round of calls of a load workload: (continued, denied, emulated), or what went wrong.
fn load_round(null: &std::fs::File, zero: &std::fs::File) -> Result<[u64; 3], String> {
    let eventfd = nix::sys::eventfd::EventFd::new().unwrap();
    let mut mapping = [0u64, eventfd.as_fd().as_raw_fd() as u64, 2, 0x472_0000];
    let mut info = [0u8; 64];
    let mut counts = [0u64; 3];
    for i in 0..CALLS_PER_ROUND {
        let (kind, result, expected) = match i % 3 {
            0 => {
                let r = sys::ioctl(null.as_fd(), IOMMU_GET_INFO.request, info.as_mut_ptr());
                (0, errno_of(r), libc::ENOTTY)
            }
            1 => {
                let r = sys::ioctl(null.as_fd(), IOMMU_ENABLE.request, info.as_mut_ptr());
                (1, errno_of(r), libc::EPERM)
            }
            _ => {
                let r = sys::ioctl(
                    zero.as_fd(),
                    REGISTER_INTERRUPT.request,
                    mapping.as_mut_ptr().cast(),
                );
                (2, errno_of(r), libc::ENOTTY)
            }
        };
        if result != expected {
            return Err(format!("call {i}: errno {result}, expected {expected}"));
        }
        counts[kind] += 1;
    }
    Ok(counts)
}

fn role_load() -> Value {
    let (gate, program) = posing_gate();
    let mut sockets = Vec::new();
    let mut gos = Vec::new();
    let mut reports = Vec::new();
    let mut children = Vec::new();
    for _ in 0..WORKLOADS {
        let (ours, theirs) = pair();
        let (go_read, go_write) = nix::unistd::pipe().unwrap();
        let (report_read, report_write) = nix::unistd::pipe().unwrap();
        match sys::fork() {
            ForkResult::Child => {
                drop((ours, go_write, report_read));
                let null = std::fs::File::open("/dev/null").unwrap();
                let zero = std::fs::File::open("/dev/zero").unwrap();
                if install_and_send(&program, theirs).is_err() {
                    std::process::exit(1);
                }
                for _ in 0..ROUNDS {
                    if !read_byte(&go_read) {
                        std::process::exit(1);
                    }
                    let line = match load_round(&null, &zero) {
                        Ok(c) => format!("ok {} {} {}\n", c[0], c[1], c[2]),
                        Err(e) => format!("error {e}\n"),
                    };
                    // One line per round, on a pipe the coordinator reads per round.
                    let _ = nix::unistd::write(&report_write, line.as_bytes());
                }
                std::process::exit(0);
            }
            ForkResult::Parent { child } => {
                drop((theirs, go_read, report_write));
                sockets.push(ours);
                gos.push(go_write);
                reports.push(std::fs::File::from(report_read));
                children.push(child);
            }
        }
    }
    // Threads start only now that every workload is forked.
    let supervisor = Supervisor::new(gate);
    let mut sandboxes = Vec::new();
    let mut servings = Vec::new();
    for (i, socket) in sockets.iter().enumerate() {
        let listener = receive_listener(socket.as_fd()).unwrap().unwrap();
        let sandbox = Arc::new(Sandbox::new(SandboxConfig {
            name: format!("load-{i}"),
            mode: Mode::Enforce,
            simulator: None,
            granted: None,
        }));
        servings.push(
            supervisor
                .serve(&sandbox, listener, Threads::default())
                .unwrap(),
        );
        sandboxes.push(sandbox);
    }
    let started = Instant::now();
    let mut rss = Vec::new();
    let mut errors = Vec::new();
    for _ in 0..ROUNDS {
        for go in &gos {
            nix::unistd::write(go, b"g").unwrap();
        }
        for report in &mut reports {
            let mut line = Vec::new();
            let mut byte = [0u8; 1];
            while report.read(&mut byte).unwrap_or(0) == 1 && byte[0] != b'\n' {
                line.push(byte[0]);
            }
            let line = String::from_utf8_lossy(&line).into_owned();
            if !line.starts_with("ok ") {
                errors.push(line);
            }
        }
        rss.push(rss_kib());
    }
    let seconds = started.elapsed().as_secs_f64();
    for child in children {
        let _ = waitpid(child, None);
    }
    for serving in servings {
        serving.wait();
    }
    let per_kind =
        |kind: usize| ((0..CALLS_PER_ROUND).filter(|i| i % 3 == kind).count() * ROUNDS) as u64;
    let mut inexact = Vec::new();
    for sandbox in &sandboxes {
        let stats = serde_json::to_value(sandbox.stats()).unwrap();
        let count = |device: &str, request: &str, verdict: &str| -> u64 {
            stats["counts"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|c| {
                    c["device"] == device && c["request"] == request && c["verdict"] == verdict
                })
                .map(|c| c["count"].as_u64().unwrap())
                .sum()
        };
        let got = [
            count("vfio-container", "VFIO_IOMMU_GET_INFO", "allowed"),
            count("vfio-container", "VFIO_IOMMU_ENABLE", "denied"),
            count("tpu-accel", "GASKET_IOCTL_REGISTER_INTERRUPT", "emulated"),
        ];
        let total: u64 = stats["counts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["count"].as_u64().unwrap())
            .sum();
        let expected = [per_kind(0), per_kind(1), per_kind(2)];
        if got != expected || total != (CALLS_PER_ROUND * ROUNDS) as u64 {
            inexact.push(format!("{}: {got:?} of {total}", sandbox.name));
        }
    }
    json!({
        "workloads": WORKLOADS,
        "calls": WORKLOADS * CALLS_PER_ROUND * ROUNDS,
        "seconds": seconds,
        "calls_per_second": (WORKLOADS * CALLS_PER_ROUND * ROUNDS) as f64 / seconds,
        "rss_kib_after_rounds": rss,
        "workload_errors": errors,
        "inexact_counts": inexact,
    })
}

/// A workload thread that keeps making emulated calls: its results (errno, microseconds) until
/// ten ENOSYS in a row.
fn call_until_closed(zero: &std::fs::File) -> Vec<(i32, u128)> {
    let eventfd = nix::sys::eventfd::EventFd::new().unwrap();
    let mut mapping = [0u64, eventfd.as_fd().as_raw_fd() as u64, 2, 0x472_0000];
    let mut results = Vec::new();
    let mut closed = 0;
    while closed < 10 && results.len() < 10_000_000 {
        let started = Instant::now();
        let r = sys::ioctl(
            zero.as_fd(),
            REGISTER_INTERRUPT.request,
            mapping.as_mut_ptr().cast(),
        );
        let errno = errno_of(r);
        results.push((errno, started.elapsed().as_micros()));
        closed = if errno == libc::ENOSYS { closed + 1 } else { 0 };
    }
    results
}

fn role_supervisor_killed() -> Value {
    const THREADS: usize = 4;
    let (gate, program) = posing_gate();
    let (mut sockets, mut reports, mut workloads) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..4 {
        let (ours, theirs) = pair();
        let (report_read, report_write) = nix::unistd::pipe().unwrap();
        match sys::fork() {
            ForkResult::Child => {
                drop((ours, report_read));
                let zero = std::fs::File::open("/dev/zero").unwrap();
                if install_and_send(&program, theirs).is_err() {
                    std::process::exit(1);
                }
                let found: Vec<Value> = std::thread::scope(|s| {
                    let threads: Vec<_> = (0..THREADS)
                        .map(|_| s.spawn(|| call_until_closed(&zero)))
                        .collect();
                    threads
                        .into_iter()
                        .map(|t| {
                            let results = t.join().unwrap();
                            let first_closed = results
                                .iter()
                                .position(|(e, _)| *e == libc::ENOSYS)
                                .unwrap_or(results.len());
                            let after = &results[first_closed..];
                            json!({
                                "answered_before": results[..first_closed].iter().filter(|(e, _)| *e == libc::ENOTTY).count(),
                                "other_before": results[..first_closed].iter().filter(|(e, _)| *e != libc::ENOTTY).count(),
                                "blocked_call_us": after.first().map_or(0, |(_, us)| *us),
                                "closed_after": after.iter().filter(|(e, _)| *e == libc::ENOSYS).count(),
                                "other_after": after.iter().filter(|(e, _)| *e != libc::ENOSYS).count(),
                            })
                        })
                        .collect()
                });
                write_line(report_write, &Value::Array(found).to_string());
                std::process::exit(0);
            }
            ForkResult::Parent { child } => {
                drop((theirs, report_write));
                sockets.push(ours);
                reports.push(report_read);
                workloads.push(child);
            }
        }
    }
    let supervisor_pid = match sys::fork() {
        ForkResult::Child => {
            let supervisor = Supervisor::new(gate);
            let servings: Vec<_> = sockets
                .iter()
                .map(|socket| {
                    let listener = receive_listener(socket.as_fd()).unwrap().unwrap();
                    let sandbox = Arc::new(Sandbox::new(SandboxConfig {
                        name: "killed".into(),
                        mode: Mode::Enforce,
                        simulator: None,
                        granted: None,
                    }));
                    supervisor
                        .serve(&sandbox, listener, Threads::default())
                        .unwrap()
                })
                .collect();
            for serving in servings {
                serving.wait();
            }
            std::process::exit(0);
        }
        ForkResult::Parent { child } => child,
    };
    drop(sockets);
    std::thread::sleep(Duration::from_millis(300));
    kill(supervisor_pid, Signal::SIGSTOP).unwrap();
    wait_until_stopped(supervisor_pid);
    // Every workload thread is now blocked in a call the supervisor will never answer.
    std::thread::sleep(Duration::from_millis(300));
    kill(supervisor_pid, Signal::SIGKILL).unwrap();
    let _ = waitpid(supervisor_pid, None);
    let threads: Vec<Value> = reports
        .into_iter()
        .flat_map(|report| {
            let mut text = String::new();
            std::fs::File::from(report)
                .read_to_string(&mut text)
                .unwrap();
            serde_json::from_str::<Vec<Value>>(&text).unwrap_or_default()
        })
        .collect();
    for child in workloads {
        let _ = waitpid(child, None);
    }
    json!({"threads": threads})
}

/// Waits until every thread of process `pid` is stopped (state `T` in `/proc`).
fn wait_until_stopped(pid: nix::unistd::Pid) {
    let state = |stat: String| {
        // The state follows the command name, which is in parentheses and may hold spaces.
        stat.rsplit_once(") ")
            .and_then(|(_, rest)| rest.chars().next())
            .unwrap_or('?')
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let tasks: Vec<char> = std::fs::read_dir(format!("/proc/{pid}/task"))
            .unwrap()
            .flatten()
            .map(|task| {
                state(std::fs::read_to_string(task.path().join("stat")).unwrap_or_default())
            })
            .collect();
        if tasks.iter().all(|s| *s == 'T') {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "process {pid} did not stop: {tasks:?}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn role_workload_killed() -> Value {
    let fixture = common::fixture("tpu-v4-8");
    let host = discover(&HostRoot::at(&fixture).unwrap()).unwrap();
    let log_dir = tempfile::tempdir().unwrap();
    let log_path = log_dir.path().join("sim.jsonl");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut simulator = Simulator::new(
        accelgate::tpuproxy::simulated_devices(&host.tpus, &[0]),
        Some(log),
    );
    let me = Caller {
        tgid: std::process::id() as i32,
        euid: 0,
        egid: 0,
    };
    let accel = simulator
        .nodes()
        .position(|n| n.path.to_string_lossy().starts_with("/dev/accel"))
        .unwrap();
    let (_, carrier) = simulator.open(accel, libc::O_RDWR, me, &|_| false).unwrap();
    let gate = Gate::new(families(None), host.registry().unwrap()).expect("consistent tables");
    let program = build(
        Arch::native().unwrap(),
        &gate.filter_spec(Mode::Enforce, true),
    );
    let (ours, theirs) = pair();
    let (go_read, go_write) = nix::unistd::pipe().unwrap();
    let (done_read, done_write) = nix::unistd::pipe().unwrap();
    let (first, second) = (V4_INTERRUPT_OFFSETS[3], V4_INTERRUPT_OFFSETS[5]);
    let workload = match sys::fork() {
        ForkResult::Child => {
            drop((ours, go_write, done_read));
            if install_and_send(&program, theirs).is_err() {
                std::process::exit(1);
            }
            let eventfd = nix::sys::eventfd::EventFd::new().unwrap();
            for (interrupt, offset) in [(1u64, first), (2, second)] {
                if !read_byte(&go_read) {
                    std::process::exit(1);
                }
                let mut mapping = [interrupt, eventfd.as_fd().as_raw_fd() as u64, 2, offset];
                sys::ioctl(
                    carrier.as_fd(),
                    REGISTER_INTERRUPT.request,
                    mapping.as_mut_ptr().cast(),
                );
                let _ = nix::unistd::write(&done_write, b"d");
            }
            std::process::exit(0);
        }
        ForkResult::Parent { child } => child,
    };
    drop((theirs, go_read, done_write, carrier));
    let supervisor_pid = match sys::fork() {
        ForkResult::Child => {
            let listener = receive_listener(ours.as_fd()).unwrap().unwrap();
            let sandbox = Arc::new(Sandbox::new(SandboxConfig {
                name: "killed-workload".into(),
                mode: Mode::Enforce,
                simulator: Some(simulator),
                granted: None,
            }));
            Supervisor::new(gate)
                .serve(&sandbox, listener, Threads::default())
                .unwrap()
                .wait();
            std::process::exit(0);
        }
        ForkResult::Parent { child } => child,
    };
    drop(ours);
    // The first call runs; the second waits for a stopped supervisor, and its caller dies.
    nix::unistd::write(&go_write, b"g").unwrap();
    let first_done = read_byte(&done_read);
    kill(supervisor_pid, Signal::SIGSTOP).unwrap();
    // A group stop reaches each thread when it next leaves the kernel: only once all of them
    // are stopped is the second call sure to find no one receiving.
    wait_until_stopped(supervisor_pid);
    nix::unistd::write(&go_write, b"g").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    kill(workload, Signal::SIGKILL).unwrap();
    let _ = waitpid(workload, None);
    kill(supervisor_pid, Signal::SIGCONT).unwrap();
    // The supervisor goes on until its listener hangs up (the workload is gone).
    let _ = waitpid(supervisor_pid, None);
    let offsets: Vec<u64> = std::fs::read_to_string(&log_path)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r["request"] == "GASKET_IOCTL_REGISTER_INTERRUPT")
        .filter_map(|r| {
            let hex = r["received"].as_str()?;
            let bytes: Vec<u8> = (0..hex.len())
                .step_by(2)
                .filter_map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
                .collect();
            Some(u64::from_ne_bytes(bytes.get(24..32)?.try_into().ok()?))
        })
        .collect();
    json!({
        "first_done": first_done,
        "ran_offsets": offsets,
        "first": first,
        "second": second,
    })
}

fn role_in_kernel() -> Value {
    let (_, program) = posing_gate();
    let (ours, theirs) = pair();
    let (report_read, report_write) = nix::unistd::pipe().unwrap();
    let workload = match sys::fork() {
        ForkResult::Child => {
            drop((ours, report_read));
            let null = std::fs::File::open("/dev/null").unwrap();
            let pipe = nix::unistd::pipe().unwrap();
            let mut arg = [0u8; 64];
            let mut call = |fd: std::os::fd::BorrowedFd<'_>, request: u32| {
                errno_of(sys::ioctl(fd, request, arg.as_mut_ptr()))
            };
            let before = [
                call(null.as_fd(), DEVICE_GET_INFO.request),
                call(pipe.0.as_fd(), DEVICE_GET_INFO.request),
            ];
            if install_and_send(&program, theirs).is_err() {
                std::process::exit(1);
            }
            let after = json!({
                "no_filter": before,
                "in_kernel_allowed_on_null": call(null.as_fd(), DEVICE_GET_INFO.request),
                "in_kernel_allowed_on_pipe": call(pipe.0.as_fd(), DEVICE_GET_INFO.request),
                "in_kernel_refused": call(null.as_fd(), SET_EVENTFD.request),
                "unknown_vfio": call(null.as_fd(), 0x3b7f),
                "routed": call(null.as_fd(), IOMMU_GET_INFO.request),
            });
            write_line(report_write, &after.to_string());
            std::process::exit(0);
        }
        ForkResult::Parent { child } => child,
    };
    drop((theirs, report_write));
    // Take the listener and close it at once: nobody serves this workload.
    drop(receive_listener(ours.as_fd()).unwrap());
    let mut text = String::new();
    std::fs::File::from(report_read)
        .read_to_string(&mut text)
        .unwrap();
    let _ = waitpid(workload, None);
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

fn role_grant() -> Value {
    let (gate, program) = posing_gate();
    let (ours, theirs) = pair();
    let (report_read, report_write) = nix::unistd::pipe().unwrap();
    let workload = match sys::fork() {
        ForkResult::Child => {
            drop((ours, report_read));
            let null = std::fs::File::open("/dev/null").unwrap();
            let zero = std::fs::File::open("/dev/zero").unwrap();
            if install_and_send(&program, theirs).is_err() {
                std::process::exit(1);
            }
            let eventfd = nix::sys::eventfd::EventFd::new().unwrap();
            let mut mapping = [0u64, eventfd.as_fd().as_raw_fd() as u64, 2, 0x472_0000];
            let mut info = [0u8; 64];
            let found = json!({
                "not_granted": errno_of(sys::ioctl(null.as_fd(), IOMMU_GET_INFO.request, info.as_mut_ptr())),
                "granted": errno_of(sys::ioctl(zero.as_fd(), REGISTER_INTERRUPT.request, mapping.as_mut_ptr().cast())),
            });
            write_line(report_write, &found.to_string());
            std::process::exit(0);
        }
        ForkResult::Parent { child } => child,
    };
    drop((theirs, report_write));
    let listener = receive_listener(ours.as_fd()).unwrap().unwrap();
    // The sandbox was given the /dev/zero chip only.
    let sandbox = Arc::new(Sandbox::new(SandboxConfig {
        name: "grant".into(),
        mode: Mode::Enforce,
        simulator: None,
        granted: Some(vec![(1, 5)]),
    }));
    let serving = Supervisor::new(gate)
        .serve(&sandbox, listener, Threads::default())
        .unwrap();
    let mut text = String::new();
    std::fs::File::from(report_read)
        .read_to_string(&mut text)
        .unwrap();
    let _ = waitpid(workload, None);
    serving.wait();
    let mut found: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    found["stats"] = serde_json::to_value(sandbox.stats()).unwrap();
    found
}

/// Runs this binary as helper `role` and returns what it found.
fn helper(role: &str) -> Value {
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["--role", role])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "role {role} failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("role {role}: {e}: {stdout}"))
}

fn load_of_64_workloads_adds_up_exactly_with_flat_memory() {
    let found = helper("load");
    println!("load: {found}");
    assert_eq!(found["workload_errors"], json!([]), "{found}");
    assert_eq!(found["inexact_counts"], json!([]), "{found}");
    let rss = found["rss_kib_after_rounds"].as_array().unwrap();
    let (first, second) = (rss[0].as_u64().unwrap(), rss[1].as_u64().unwrap());
    assert!(
        second <= first + 1024,
        "the supervisor grew by {} KiB from the first round to the second",
        second.saturating_sub(first)
    );
}

fn a_killed_supervisor_fails_every_blocked_and_later_call_closed() {
    let found = helper("supervisor-killed");
    println!("supervisor killed: {found}");
    let threads = found["threads"].as_array().unwrap();
    assert_eq!(threads.len(), 16, "{found}");
    for thread in threads {
        assert!(thread["answered_before"].as_u64().unwrap() > 0, "{thread}");
        assert_eq!(thread["other_before"], 0, "{thread}");
        assert!(thread["closed_after"].as_u64().unwrap() >= 10, "{thread}");
        assert_eq!(thread["other_after"], 0, "{thread}");
        // The first closed call was the one blocked while the supervisor was stopped.
        assert!(
            thread["blocked_call_us"].as_u64().unwrap() >= 100_000,
            "{thread}"
        );
    }
}

fn a_killed_workloads_pending_call_never_runs() {
    let found = helper("workload-killed");
    println!("workload killed: {found}");
    assert_eq!(found["first_done"], true, "{found}");
    assert_eq!(found["ran_offsets"], json!([found["first"]]), "{found}");
}

fn in_kernel_decisions_need_no_supervisor() {
    let found = helper("in-kernel");
    println!("in kernel: {found}");
    let enotty = libc::ENOTTY;
    assert_eq!(found["no_filter"], json!([enotty, enotty]), "{found}");
    // Allowed in the kernel: the file's own driver answers, on an accelerator number too.
    assert_eq!(found["in_kernel_allowed_on_null"], enotty, "{found}");
    assert_eq!(found["in_kernel_allowed_on_pipe"], enotty, "{found}");
    // Refused in the kernel with the table's errno.
    assert_eq!(found["in_kernel_refused"], libc::EPERM, "{found}");
    assert_eq!(found["unknown_vfio"], enotty, "{found}");
    // Routed: nobody answers, the kernel fails it closed.
    assert_eq!(found["routed"], libc::ENOSYS, "{found}");
}

fn an_accelerator_node_the_sandbox_was_not_given_is_refused() {
    let found = helper("grant");
    println!("grant: {found}");
    assert_eq!(found["not_granted"], libc::EPERM, "{found}");
    assert_eq!(found["granted"], libc::ENOTTY, "{found}");
    let counts = found["stats"]["counts"].as_array().unwrap();
    assert!(
        counts
            .iter()
            .any(|c| c["request"] == "not granted" && c["verdict"] == "denied" && c["count"] == 1),
        "{found}"
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--role") {
        let found = match args.get(at + 1).map(String::as_str) {
            Some("load") => role_load(),
            Some("supervisor-killed") => role_supervisor_killed(),
            Some("workload-killed") => role_workload_killed(),
            Some("in-kernel") => role_in_kernel(),
            Some("grant") => role_grant(),
            other => panic!("unknown role {other:?}"),
        };
        println!("{found}");
        return;
    }
    let tests: [(&str, fn()); 5] = [
        (
            "an_accelerator_node_the_sandbox_was_not_given_is_refused",
            an_accelerator_node_the_sandbox_was_not_given_is_refused,
        ),
        (
            "in_kernel_decisions_need_no_supervisor",
            in_kernel_decisions_need_no_supervisor,
        ),
        (
            "a_killed_workloads_pending_call_never_runs",
            a_killed_workloads_pending_call_never_runs,
        ),
        (
            "a_killed_supervisor_fails_every_blocked_and_later_call_closed",
            a_killed_supervisor_fails_every_blocked_and_later_call_closed,
        ),
        (
            "load_of_64_workloads_adds_up_exactly_with_flat_memory",
            load_of_64_workloads_adds_up_exactly_with_flat_memory,
        ),
    ];
    let filter = args.iter().skip(1).find(|a| !a.starts_with('-'));
    let mut passed = 0;
    for (name, test) in tests {
        if filter.is_some_and(|f| !name.contains(f.as_str())) {
            continue;
        }
        if !common::privileged(name) {
            continue;
        }
        test();
        println!("test {name} ... ok");
        passed += 1;
    }
    println!("\ntest result: ok. {passed} passed; 0 failed; 0 ignored; 0 measured");
}
