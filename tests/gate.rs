//! Privileged: the ioctl gate end to end. Real sandboxes run examples/tpu-probe against
//! simulated TPUs (`--simulate`); the filter lives only in the sandboxed probe, the supervisor
//! in its own process, and this harness reads what they print and log.

#[macro_use]
mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use accelgate::accel::abi::{V4_INTERRUPT_OFFSETS, V4LITE_INTERRUPT_OFFSETS};
use common::TempBundle;

fn example() -> PathBuf {
    common::repo().join("examples/tpu-probe")
}

/// The example bundle with absolute paths and `edit` applied, in a temporary directory.
fn probe_bundle(edit: impl FnOnce(&mut serde_json::Value)) -> TempBundle {
    let binary = common::probe();
    TempBundle::new(|spec| {
        *spec =
            serde_json::from_str(&std::fs::read_to_string(example().join("config.json")).unwrap())
                .unwrap();
        spec["root"]["path"] = common::repo()
            .join("examples/rootfs")
            .display()
            .to_string()
            .into();
        for mount in spec["mounts"].as_array_mut().unwrap() {
            if mount["destination"] == "/tpu-probe" {
                mount["source"] = binary.display().to_string().into();
            }
        }
        edit(spec);
    })
}

/// `accelgate run --root fixtures/sysfs/<root> --simulate <flags> --bundle <bundle> -- /tpu-probe <args>`.
fn run_probe(root: &str, bundle: &Path, flags: &[&str], args: &[&str]) -> Output {
    let root = common::fixture(root).display().to_string();
    let bundle = bundle.display().to_string();
    let mut all = vec!["run", "--root", &root, "--simulate", "--bundle", &bundle];
    all.extend_from_slice(flags);
    all.push("--");
    all.push("/tpu-probe");
    all.extend_from_slice(args);
    common::accelgate(&all, Duration::from_secs(120))
}

/// The probe's line for `call`, e.g. `VFIO_DEVICE_PCI_HOT_RESET -> EPERM [ok]`.
fn line_of<'a>(stdout: &'a str, call: &str) -> &'a str {
    let prefix = format!("{call} -> ");
    stdout
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no line for {call} in:\n{stdout}"))
}

/// The accelgate.stats/v1 document that `--stats --json` printed on stderr.
fn stats_json(stderr: &str) -> serde_json::Value {
    let start = stderr
        .find("{\n")
        .unwrap_or_else(|| panic!("no stats JSON in:\n{stderr}"));
    serde_json::from_str(&stderr[start..]).unwrap()
}

fn count(stats: &serde_json::Value, device: &str, request: &str, verdict: &str) -> u64 {
    stats["counts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["device"] == device && c["request"] == request && c["verdict"] == verdict)
        .map(|c| c["count"].as_u64().unwrap())
        .sum()
}

/// Asserts that the probe printed `call -> result [ok]`.
fn assert_line(stdout: &str, call: &str, result: &str) {
    assert_eq!(line_of(stdout, call), format!("{call} -> {result} [ok]"));
}

fn assert_success(output: &Output) -> String {
    let stdout = common::stdout(output);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}\n{}",
        common::stderr(output)
    );
    assert!(!stdout.contains("UNEXPECTED"), "{stdout}");
    stdout
}

#[test]
fn the_vfio_sequence_runs_and_forbidden_calls_get_their_errnos() {
    privileged!();
    let output = run_probe("tpu-v5e-8", &example(), &["--stats", "--json"], &["vfio"]);
    let stdout = assert_success(&output);
    for (call, result) in [
        ("VFIO_CHECK_EXTENSION(TYPE1v2)", "1"),
        ("open(/dev/vfio/5) again", "EBUSY"),
        ("VFIO_GROUP_GET_DEVICE_FD(0000:00:09.0)", "5"),
        // 0x3B71 means MAP_DMA on the container and PCI_HOT_RESET on a device: the supervisor
        // decides it per file (the routing sends it there for that reason).
        ("VFIO_IOMMU_MAP_DMA(2 MiB)", "0"),
        ("VFIO_DEVICE_PCI_HOT_RESET", "EPERM"),
        ("VFIO_DEVICE_IOEVENTFD", "EPERM"),
        ("VFIO_SET_IOMMU(SPAPR_TCE)", "EINVAL"),
        ("VFIO_IOMMU_UNMAP_DMA(dirty bitmap)", "EINVAL"),
        ("unknown ioctl 0x3b7f on the container", "ENOTTY"),
        ("reopen(/dev/vfio/5)", "3"),
    ] {
        assert_eq!(line_of(&stdout, call), format!("{call} -> {result} [ok]"));
    }
    for i in 0..9 {
        assert!(line_of(&stdout, &format!("VFIO_DEVICE_GET_REGION_INFO({i})")).ends_with("0 [ok]"));
    }
    let stats = stats_json(&common::stderr(&output));
    assert_eq!(stats["schema"], "accelgate.stats/v1");
    assert_eq!(stats["mode"], "enforce");
    assert_eq!(
        count(
            &stats,
            "vfio-device",
            "VFIO_DEVICE_GET_REGION_INFO",
            "allowed"
        ),
        10
    );
    assert_eq!(
        count(&stats, "vfio-device", "VFIO_DEVICE_PCI_HOT_RESET", "denied"),
        1
    );
    assert_eq!(count(&stats, "vfio-group", "open", "brokered"), 2);
    // The unknown number is refused in the kernel: the supervisor never sees it, so only the
    // other six denials are counted.
    assert_eq!(stats["totals"]["denied"], 6);
    assert_eq!(count(&stats, "vfio-container", "unknown", "denied"), 0);
}

#[test]
fn the_gasket_sequence_runs_on_v4_and_v4_lite() {
    privileged!();
    for root in ["tpu-v4-8", "tpu-v4lite"] {
        let output = run_probe(root, &example(), &["--stats"], &["accel"]);
        let stdout = assert_success(&output);
        for (call, result) in [
            ("GASKET_IOCTL_MAP_BUFFER(2 MiB)", "0"),
            ("GASKET_IOCTL_REGISTER_INTERRUPT(0, bar 2, 0x4720000)", "0"),
            ("GASKET_IOCTL_SET_EVENTFD", "EPERM"),
            ("GASKET_IOCTL_MAP_DMA_BUF", "EPERM"),
            ("GASKET_IOCTL_REGISTER_INTERRUPT(offset 0x1000)", "EINVAL"),
            (
                "GASKET_IOCTL_REGISTER_INTERRUPT(a pipe, not an eventfd)",
                "EINVAL",
            ),
            ("GASKET_IOCTL_MAP_BUFFER(page table 1)", "EFAULT"),
            ("another process: GASKET_IOCTL_MAP_BUFFER", "EPERM"),
        ] {
            assert_eq!(
                line_of(&stdout, call),
                format!("{call} -> {result} [ok]"),
                "{root}"
            );
        }
        let stderr = common::stderr(&output);
        let device = if root == "tpu-v4lite" {
            "tpu-accel-lite"
        } else {
            "tpu-accel"
        };
        assert!(stderr.contains("ioctl gate (enforce mode)"), "{stderr}");
        assert!(
            stderr
                .lines()
                .any(|l| l.split_whitespace().collect::<Vec<_>>()
                    == [device, "GASKET_IOCTL_REGISTER_INTERRUPT", "emulated", "1"]),
            "{stderr}"
        );
    }
}

/// Kills the child when dropped, so that a failed assertion leaves no sandbox behind.
struct Reap(Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn children_of(pid: u32) -> Vec<(u32, String)> {
    let tasks =
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    tasks
        .split_whitespace()
        .map(|child| {
            let comm = std::fs::read_to_string(format!("/proc/{child}/comm")).unwrap_or_default();
            (child.parse().unwrap(), comm.trim().to_owned())
        })
        .collect()
}

/// `tpu-probe failclosed /dev/accel0 EXPECT` in a sandbox, started and waiting for SIGUSR1.
struct WaitingProbe {
    launcher: Reap,
    stdout: BufReader<std::process::ChildStdout>,
    stderr: std::process::ChildStderr,
    seen: String,
}

impl WaitingProbe {
    fn start(expect: &str) -> Self {
        common::probe();
        let mut launcher = Command::new(env!("CARGO_BIN_EXE_accelgate"))
            .args(["run", "--root"])
            .arg(common::fixture("tpu-v4-8"))
            .args(["--simulate", "--bundle"])
            .arg(example())
            .args(["--", "/tpu-probe", "failclosed", "/dev/accel0", expect])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(launcher.stdout.take().unwrap());
        let stderr = launcher.stderr.take().unwrap();
        let launcher = Reap(launcher);
        let mut seen = String::new();
        while !seen.ends_with("ready\n") {
            let before = seen.len();
            stdout.read_line(&mut seen).unwrap();
            assert!(
                seen.len() > before,
                "the probe ended before it was ready:\n{seen}"
            );
        }
        Self {
            launcher,
            stdout,
            stderr,
            seen,
        }
    }

    fn pid(&self) -> u32 {
        self.launcher.0.id()
    }

    /// Sends SIGUSR1 to the launcher (which forwards it) and collects the rest: stdout, stderr
    /// and the exit status. A launcher that does not end within 30 s is killed and fails.
    fn finish(mut self) -> (String, String, std::process::ExitStatus) {
        let pid = nix::unistd::Pid::from_raw(self.pid() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGUSR1).unwrap();
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let watchdog = {
            let done = std::sync::Arc::clone(&done);
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(30);
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    if Instant::now() > deadline {
                        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                        return true;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                false
            })
        };
        let mut rest = std::mem::take(&mut self.seen);
        std::io::Read::read_to_string(&mut self.stdout, &mut rest).unwrap();
        let mut errors = String::new();
        std::io::Read::read_to_string(&mut self.stderr, &mut errors).unwrap();
        let status = self.launcher.0.wait().unwrap();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(
            !watchdog.join().unwrap(),
            "the sandbox did not end after SIGUSR1:\n{rest}\n{errors}"
        );
        (rest, errors, status)
    }
}

#[test]
fn accelerator_ioctls_fail_closed_when_the_supervisor_dies() {
    privileged!();
    let probe = WaitingProbe::start("ENOSYS");
    let gate: Vec<u32> = children_of(probe.pid())
        .into_iter()
        .filter(|(_, comm)| comm == "accelgate-gate")
        .map(|(child, _)| child)
        .collect();
    assert_eq!(
        gate.len(),
        1,
        "one supervisor process: {:?}",
        children_of(probe.pid())
    );
    let gate = nix::unistd::Pid::from_raw(gate[0] as i32);
    nix::sys::signal::kill(gate, nix::sys::signal::Signal::SIGKILL).unwrap();
    // Its files (the listener) are closed once it is a zombie; the launcher reaps it at the end.
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(format!("/proc/{gate}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z'))
    }) {
        assert!(Instant::now() < deadline, "the supervisor did not die");
        std::thread::sleep(Duration::from_millis(10));
    }
    let (stdout, errors, status) = probe.finish();
    assert_line(
        &stdout,
        "after SIGUSR1: GASKET_IOCTL_NUMBER_PAGE_TABLES",
        "ENOSYS",
    );
    assert_line(&stdout, "after SIGUSR1: FIONREAD on a pipe", "0");
    assert_eq!(status.code(), Some(0), "{stdout}\n{errors}");
    assert!(errors.contains("supervisor killed by SIGKILL"), "{errors}");
}

#[test]
fn signals_reach_a_gated_workload_while_the_supervisor_serves_it() {
    privileged!();
    let (stdout, errors, status) = WaitingProbe::start("0").finish();
    assert_line(
        &stdout,
        "after SIGUSR1: GASKET_IOCTL_NUMBER_PAGE_TABLES",
        "0",
    );
    assert_eq!(status.code(), Some(0), "{stdout}\n{errors}");
}

#[cfg(target_arch = "x86_64")]
#[test]
fn compat_and_x32_accelerator_ioctls_are_refused() {
    privileged!();
    let output = run_probe("tpu-v4-8", &example(), &[], &["compat"]);
    let stdout = assert_success(&output);
    assert_line(
        &stdout,
        "i386 (int 0x80) GASKET_IOCTL_NUMBER_PAGE_TABLES",
        "EPERM",
    );
    assert_line(&stdout, "x32 GASKET_IOCTL_NUMBER_PAGE_TABLES", "EPERM");
}

/// The sim log's records of `request`.
fn sim_records(log: &Path, request: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["request"] == request)
        .collect()
}

/// The register offsets REGISTER_INTERRUPT records carried to the simulator.
fn received_offsets(log: &Path) -> Vec<u64> {
    sim_records(log, "GASKET_IOCTL_REGISTER_INTERRUPT")
        .iter()
        .map(|r| {
            let hex = r["received"]
                .as_str()
                .expect("the struct the simulator read");
            let bytes: Vec<u8> = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect();
            u64::from_ne_bytes(bytes[24..32].try_into().unwrap())
        })
        .collect()
}

#[test]
fn a_rewritten_interrupt_offset_never_reaches_the_backend_in_enforce_mode() {
    privileged!();
    let allowed: BTreeSet<u64> = V4_INTERRUPT_OFFSETS
        .iter()
        .chain(&V4LITE_INTERRUPT_OFFSETS)
        .copied()
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let mut forbidden_seen = Vec::new();
    for mode in ["enforce", "passthrough"] {
        let log = dir.path().join(format!("{mode}.jsonl"));
        let output = run_probe(
            "tpu-v4-8",
            &example(),
            &["--policy", mode, "--sim-log", log.to_str().unwrap()],
            &["race", "/dev/accel0", "1500"],
        );
        let stdout = assert_success(&output);
        assert!(stdout.contains("race: 1500 rounds"), "{stdout}");
        let offsets = received_offsets(&log);
        assert!(
            !offsets.is_empty(),
            "{mode}: no REGISTER_INTERRUPT reached the simulator"
        );
        forbidden_seen.push(offsets.iter().filter(|o| !allowed.contains(o)).count());
    }
    assert_eq!(
        forbidden_seen[0], 0,
        "enforce let a forbidden offset through"
    );
    // The control: without emulation the simulator reads the workload's memory itself, after the
    // check, and the rewriting thread wins some of the time. Without it, this test proves nothing.
    assert!(
        forbidden_seen[1] > 0,
        "passthrough never raced; the race is not exercised"
    );
}

#[test]
fn emulated_calls_run_without_cap_sys_admin_and_with_the_workloads_euid() {
    privileged!();
    // A root workload and a uid-1000 one: either way the executor carries the caller's euid and
    // nothing in effect but CAP_SYS_PTRACE (bit 19).
    for uid in [0, 1000] {
        let bundle = probe_bundle(|spec| {
            spec["process"]["user"] = serde_json::json!({"uid": uid, "gid": uid})
        });
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("sim.jsonl");
        let output = run_probe(
            "tpu-v4-8",
            bundle.dir.path(),
            &["--sim-log", log.to_str().unwrap()],
            &["accel"],
        );
        assert_success(&output);
        assert!(!sim_records(&log, "GASKET_IOCTL_REGISTER_INTERRUPT").is_empty());
        for record in std::fs::read_to_string(&log).unwrap().lines() {
            let record: serde_json::Value = serde_json::from_str(record).unwrap();
            assert_eq!(record["executor_cap_sys_admin"], false, "{record}");
            assert_eq!(record["executor_euid"], uid, "{record}");
            assert_eq!(record["executor_effective_caps"], "0x80000", "{record}");
        }
    }
}

#[test]
fn audit_mode_allows_what_enforce_denies_and_counts_it() {
    privileged!();
    let output = run_probe(
        "tpu-v4-8",
        &example(),
        &["--policy", "audit", "--stats", "--json"],
        &["accel"],
    );
    let stdout = common::stdout(&output);
    // The simulator, like the driver, still refuses what it does not do.
    assert!(
        line_of(&stdout, "GASKET_IOCTL_SET_EVENTFD").contains("[UNEXPECTED]"),
        "{stdout}"
    );
    let stats = stats_json(&common::stderr(&output));
    assert_eq!(stats["mode"], "audit");
    assert_eq!(stats["totals"]["denied"], 0);
    assert!(count(&stats, "tpu-accel", "GASKET_IOCTL_SET_EVENTFD", "audited") >= 1);
}
