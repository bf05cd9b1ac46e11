//! Privileged: `accelgate daemon` as the OCI seccomp agent of Debian's runc and crun. Real
//! containers run examples/tpu-probe with a `linux.seccomp` from `accelgate seccomp-profile`,
//! against simulated TPUs of a fixture host (its device nodes, with the fixture's numbers, in
//! `linux.devices`); the daemon is a process of its own, and every socket, state directory and
//! bundle lives in a temporary directory.

#[macro_use]
mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::TempBundle;

fn accelgate() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_accelgate"));
    command.env_remove("RUST_LOG");
    command
}

/// A running `accelgate daemon` for a fixture host, killed and reaped when dropped.
struct Daemon {
    child: Option<Child>,
    dir: tempfile::TempDir,
    fixture: &'static str,
}

impl Daemon {
    fn start(fixture: &'static str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(dir.path().join("daemon.log")).unwrap();
        let child = accelgate()
            .args([
                "--log-level",
                "info",
                "daemon",
                "--simulate",
                "--drain",
                "2",
                "--socket",
            ])
            .arg(dir.path().join("agent.sock"))
            .arg("--control")
            .arg(dir.path().join("control.sock"))
            .arg("--root")
            .arg(common::fixture(fixture))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut daemon = Self {
            child: Some(child),
            dir,
            fixture,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !daemon.control().exists() {
            assert!(daemon.alive(), "the daemon exited:\n{}", daemon.log());
            assert!(
                Instant::now() < deadline,
                "no control socket:\n{}",
                daemon.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        daemon
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("agent.sock")
    }

    fn control(&self) -> PathBuf {
        self.dir.path().join("control.sock")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().unwrap().is_none())
    }

    fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    /// `accelgate seccomp-profile` for this daemon.
    fn profile(&self) -> serde_json::Value {
        let output = accelgate()
            .args(["seccomp-profile", "--simulate", "--socket"])
            .arg(self.socket())
            .arg("--root")
            .arg(common::fixture(self.fixture))
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", common::stderr(&output));
        serde_json::from_slice(&output.stdout).unwrap()
    }

    /// `accelgate <command> --control <ours> <args>`.
    fn ask(&self, command: &str, args: &[&str]) -> Output {
        accelgate()
            .arg(command)
            .arg("--control")
            .arg(self.control())
            .args(args)
            .output()
            .unwrap()
    }

    /// The daemon's accelgate.stats/v1 document for container `id`.
    fn stats(&self, id: &str) -> serde_json::Value {
        let output = self.ask("stats", &[id, "--json"]);
        assert!(output.status.success(), "{}", common::stderr(&output));
        serde_json::from_slice(&output.stdout).unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The fixture's accelerator nodes (`/dev/accel*`, `/dev/vfio/*`) as `linux.devices`.
fn fixture_devices(fixture: &str) -> serde_json::Value {
    let list = std::fs::read_to_string(common::fixture(fixture).join("dev.list")).unwrap();
    let devices: Vec<serde_json::Value> = list
        .lines()
        .filter(|l| l.starts_with("/dev/accel") || l.starts_with("/dev/vfio/"))
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (major, minor) = fields[2].split_once(':').unwrap();
            serde_json::json!({
                "path": fields[0], "type": fields[1],
                "major": major.parse::<u32>().unwrap(), "minor": minor.parse::<u32>().unwrap(),
                "fileMode": 0o666, "uid": 0, "gid": 0
            })
        })
        .collect();
    assert!(!devices.is_empty());
    // They must not be this machine's devices: the container would reach them.
    for device in &devices {
        let numbers = format!("{}:{}", device["major"], device["minor"]);
        if device["path"] != "/dev/vfio/vfio" {
            assert!(
                !Path::new("/sys/dev/char").join(&numbers).exists(),
                "this machine has a device at {numbers}"
            );
        }
    }
    serde_json::Value::Array(devices)
}

/// examples/tpu-probe's bundle running `args`, with the daemon's profile and the fixture's
/// nodes.
fn bundle(daemon: &Daemon, args: &[&str]) -> TempBundle {
    let binary = common::probe();
    let profile = daemon.profile();
    let devices = fixture_devices(daemon.fixture);
    TempBundle::new(|spec| {
        *spec = serde_json::from_str(
            &std::fs::read_to_string(common::repo().join("examples/tpu-probe/config.json"))
                .unwrap(),
        )
        .unwrap();
        spec["root"]["path"] = common::repo()
            .join("examples/rootfs")
            .display()
            .to_string()
            .into();
        let mounts = spec["mounts"].as_array_mut().unwrap();
        mounts.retain(|m| m["destination"] != "/sys/fs/cgroup");
        for mount in mounts {
            if mount["destination"] == "/tpu-probe" {
                mount["source"] = binary.display().to_string().into();
            }
            // The probe finds its chips in the fixture's sysfs, as under `accelgate run`.
            if mount["destination"] == "/sys" {
                *mount = serde_json::json!({
                    "destination": "/sys", "type": "bind",
                    "source": common::fixture(daemon.fixture).join("sys"),
                    "options": ["rbind", "ro", "nosuid", "nodev", "noexec"]
                });
            }
        }
        spec["process"]["args"] = serde_json::json!(args);
        spec["linux"]["seccomp"] = profile;
        spec["linux"]["devices"] = devices;
    })
}

#[derive(Clone, Copy, Debug)]
enum Runtime {
    Runc,
    Crun,
}

/// A container run by runc or crun with a state directory of its own; deleted when dropped.
struct Container {
    runtime: Runtime,
    state: tempfile::TempDir,
    id: String,
}

impl Container {
    fn new(runtime: Runtime, name: &str) -> Self {
        Self {
            runtime,
            state: tempfile::tempdir().unwrap(),
            id: format!("accelgate-{name}-{}", std::process::id()),
        }
    }

    /// `run` in the foreground, as a command to spawn or wait for.
    fn run(&self, bundle: &Path) -> Command {
        let state = self.state.path().display();
        let bundle = bundle.display();
        let id = &self.id;
        let script = match self.runtime {
            Runtime::Runc => format!("exec runc --root {state} run --bundle {bundle} {id}"),
            // crun refuses hybrid cgroup hosts; in a private mount namespace with cgroup2 at
            // /sys/fs/cgroup and no cgroup manager it runs (as in tests/differential.rs).
            Runtime::Crun => format!(
                "umount -R /sys/fs/cgroup 2>/dev/null; mount -t cgroup2 none /sys/fs/cgroup && \
                 exec crun --root {state} --cgroup-manager=disabled run --bundle {bundle} {id}"
            ),
        };
        let mut command = Command::new("unshare");
        match self.runtime {
            Runtime::Runc => command.args(["--", "sh", "-c", &script]),
            Runtime::Crun => command.args(["-m", "--", "sh", "-c", &script]),
        };
        command.stdin(Stdio::null());
        command
    }

    fn tool(&self) -> &'static str {
        match self.runtime {
            Runtime::Runc => "runc",
            Runtime::Crun => "crun",
        }
    }

    fn kill(&self, signal: &str) {
        let status = Command::new(self.tool())
            .arg("--root")
            .arg(self.state.path())
            .args(["kill", &self.id, signal])
            .status()
            .unwrap();
        assert!(status.success(), "{} kill {signal}", self.tool());
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new(self.tool())
            .arg("--root")
            .arg(self.state.path())
            .args(["delete", "--force", &self.id])
            .output();
    }
}

fn tool_installed(name: &str) {
    let found = Command::new(name)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(found, "{name} is not installed (scripts/setup installs it)");
}

/// Runs `command` to its end, killing it after `limit`.
fn output_within(mut command: Command, limit: Duration) -> Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!(
                "ran longer than {limit:?}:\n{}{}",
                common::stdout(&output),
                common::stderr(&output)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn line_of<'a>(stdout: &'a str, call: &str) -> &'a str {
    let prefix = format!("{call} -> ");
    stdout
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no line for {call} in:\n{stdout}"))
}

fn assert_line(stdout: &str, call: &str, result: &str) {
    assert_eq!(line_of(stdout, call), format!("{call} -> {result} [ok]"));
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

/// Connections that are not a runtime's: empty, bad JSON, a state without an fd, a state with
/// an fd that is not a seccomp listener. Each is logged and closed; the daemon goes on.
fn send_malformed(daemon: &Daemon) {
    let state = br#"{"ociVersion":"1.0.2","fds":["seccompFd"],"pid":1,"state":{"id":"bogus","status":"creating","pid":1,"bundle":"/nonexistent"}}"#;
    let connect = || UnixStream::connect(daemon.socket()).unwrap();
    drop(connect());
    connect().write_all(b"{this is not json").unwrap();
    connect().write_all(state).unwrap();
    let (pipe, _) = nix::unistd::pipe().unwrap();
    let with_pipe = connect();
    let fds = [std::os::fd::AsRawFd::as_raw_fd(&pipe)];
    nix::sys::socket::sendmsg::<()>(
        std::os::fd::AsRawFd::as_raw_fd(&with_pipe),
        &[std::io::IoSlice::new(state)],
        &[nix::sys::socket::ControlMessage::ScmRights(&fds)],
        nix::sys::socket::MsgFlags::empty(),
        None,
    )
    .unwrap();
    drop(with_pipe);
    let deadline = Instant::now() + Duration::from_secs(10);
    while daemon.log().matches("agent connection").count() < 4 {
        assert!(Instant::now() < deadline, "{}", daemon.log());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The VFIO sequence on simulated v5e chips, under `runtime`, served by the daemon.
fn vfio_sequence(runtime: Runtime) {
    tool_installed(runtime_name(runtime));
    let mut daemon = Daemon::start("tpu-v5e-8");
    send_malformed(&daemon);
    assert!(daemon.alive(), "{}", daemon.log());
    let bundle = bundle(&daemon, &["/tpu-probe", "vfio"]);
    let container = Container::new(runtime, "vfio");
    let output = output_within(container.run(bundle.dir.path()), Duration::from_secs(120));
    let stdout = common::stdout(&output);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}\n{}\ndaemon:\n{}",
        common::stderr(&output),
        daemon.log()
    );
    assert!(!stdout.contains("UNEXPECTED"), "{stdout}");
    for (call, result) in [
        ("VFIO_CHECK_EXTENSION(TYPE1v2)", "1"),
        ("open(/dev/vfio/5) again", "EBUSY"),
        ("VFIO_GROUP_GET_DEVICE_FD(0000:00:09.0)", "5"),
        ("VFIO_IOMMU_MAP_DMA(2 MiB)", "0"),
        ("VFIO_DEVICE_PCI_HOT_RESET", "EPERM"),
        ("VFIO_DEVICE_IOEVENTFD", "EPERM"),
        ("VFIO_SET_IOMMU(SPAPR_TCE)", "EINVAL"),
        ("VFIO_IOMMU_UNMAP_DMA(dirty bitmap)", "EINVAL"),
        // Refused in the kernel by the profile's rule for VFIO's magic.
        ("unknown ioctl 0x3b7f on the container", "ENOTTY"),
        ("reopen(/dev/vfio/5)", "3"),
    ] {
        assert_line(&stdout, call, result);
    }
    let stats = daemon.stats(&container.id);
    assert_eq!(stats["schema"], "accelgate.stats/v1");
    assert_eq!(stats["mode"], "enforce");
    assert_eq!(
        count(
            &stats,
            "vfio-device",
            "VFIO_DEVICE_GET_REGION_INFO",
            "allowed"
        ),
        10,
        "{stats}"
    );
    assert_eq!(
        count(&stats, "vfio-device", "VFIO_DEVICE_PCI_HOT_RESET", "denied"),
        1
    );
    assert_eq!(count(&stats, "vfio-group", "open", "brokered"), 2);
    assert_eq!(stats["totals"]["denied"], 6, "{stats}");
    let ps = daemon.ask("ps", &["--json"]);
    assert!(ps.status.success(), "{}", common::stderr(&ps));
    let ps: serde_json::Value = serde_json::from_slice(&ps.stdout).unwrap();
    let ours = ps["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == container.id.as_str())
        .unwrap_or_else(|| panic!("{ps}"));
    assert_eq!(ours["tpus"], serde_json::json!([0, 1, 2, 3, 4, 5, 6, 7]));
    assert_eq!(ours["policy"], "enforce");
    assert_eq!(ours["simulated"], true);
    assert_eq!(ours["listeners"], 0);
    let text = daemon.ask("stats", &[&container.id]);
    assert!(common::stdout(&text).contains("VFIO_DEVICE_PCI_HOT_RESET"));
    assert!(daemon.alive(), "{}", daemon.log());
}

fn runtime_name(runtime: Runtime) -> &'static str {
    match runtime {
        Runtime::Runc => "runc",
        Runtime::Crun => "crun",
    }
}

#[test]
fn runc_containers_get_simulated_tpus_through_the_daemon() {
    privileged!();
    vfio_sequence(Runtime::Runc);
}

#[test]
fn crun_containers_get_simulated_tpus_through_the_daemon() {
    privileged!();
    vfio_sequence(Runtime::Crun);
}

/// A gasket container that waits for SIGUSR1; the daemon is killed meanwhile.
fn fail_closed(runtime: Runtime) {
    tool_installed(runtime_name(runtime));
    let mut daemon = Daemon::start("tpu-v4-8");
    // Compat calls first: a profile cannot keep them from the supervisor, which refuses them.
    let compat = bundle(&daemon, &["/tpu-probe", "compat", "/dev/accel0"]);
    let container = Container::new(runtime, "compat");
    let output = output_within(container.run(compat.dir.path()), Duration::from_secs(120));
    let stdout = common::stdout(&output);
    assert_line(&stdout, "native GASKET_IOCTL_NUMBER_PAGE_TABLES", "0");
    assert_line(
        &stdout,
        "i386 (int 0x80) GASKET_IOCTL_NUMBER_PAGE_TABLES",
        "EPERM",
    );
    drop(container);

    let waiting = bundle(&daemon, &["/tpu-probe", "failclosed", "/dev/accel0"]);
    let container = Container::new(runtime, "failclosed");
    let mut child = container
        .run(waiting.dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    while !seen.ends_with("ready\n") {
        let before = seen.len();
        stdout.read_line(&mut seen).unwrap();
        if seen.len() == before {
            let _ = child.kill();
            panic!(
                "the probe ended before it was ready:\n{seen}\n{}",
                daemon.log()
            );
        }
    }
    assert_line(&seen, "GASKET_IOCTL_NUMBER_PAGE_TABLES", "0");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon.pid()),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let _ = daemon.child.take().unwrap().wait();
    container.kill("USR1");
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let status = child.wait().unwrap();
    assert_line(
        &rest,
        "after SIGUSR1: GASKET_IOCTL_NUMBER_PAGE_TABLES",
        "ENOSYS",
    );
    assert_line(&rest, "after SIGUSR1: FIONREAD on a pipe", "0");
    assert_eq!(status.code(), Some(0), "{seen}{rest}");
}

#[test]
fn runc_containers_fail_closed_when_the_daemon_is_killed() {
    privileged!();
    fail_closed(Runtime::Runc);
}

#[test]
fn crun_containers_fail_closed_when_the_daemon_is_killed() {
    privileged!();
    fail_closed(Runtime::Crun);
}

#[test]
fn sigterm_drains_and_removes_the_sockets() {
    let mut daemon = Daemon::start("tpu-v5e-8");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon.pid()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while daemon.alive() {
        assert!(
            Instant::now() < deadline,
            "still running:\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = daemon.child.take().unwrap().wait().unwrap();
    assert_eq!(status.code(), Some(0), "{}", daemon.log());
    assert!(!daemon.socket().exists());
    assert!(!daemon.control().exists());
}
