//! Privileged: the runc command line (`create`, `start`, `state`, `kill`, `delete`, `list`,
//! `features`) on real containers, each in a state directory of its own.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

macro_rules! privileged {
    () => {
        if !common::privileged(module_path!()) {
            return;
        }
    };
}

/// `accelgate --root STATE ARGS...`, its stderr in `log`. `create`'s stdout goes there too:
/// the created container inherits it, and a pipe would stay open as long as it lives.
fn oci(state: &Path, log: &Path, args: &[&str]) -> Output {
    let file = || {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap()
    };
    let stdout = if args.first() == Some(&"create") {
        Stdio::from(file())
    } else {
        Stdio::piped()
    };
    Command::new(env!("CARGO_BIN_EXE_accelgate"))
        .arg("--root")
        .arg(state)
        .args(args)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(file())
        .output()
        .unwrap()
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < Duration::from_secs(10), "{what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn state(state_dir: &Path, log: &Path, id: &str) -> serde_json::Value {
    let output = oci(state_dir, log, &["state", id]);
    assert!(
        output.status.success(),
        "{}",
        std::fs::read_to_string(log).unwrap()
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn create_start_kill_delete_follow_the_runtime_spec() {
    privileged!();
    let work = tempfile::tempdir().unwrap();
    let (state_dir, log, pid_file) = (
        work.path().join("state"),
        work.path().join("log"),
        work.path().join("pid"),
    );
    let bundle = common::runnable_bundle(|spec| {
        spec["process"]["args"] = json!([
            "sh",
            "-c",
            "echo started; trap 'echo stopping; exit 7' TERM; while :; do sleep 0.1; done"
        ]);
    });
    let id = format!("oci-{}", std::process::id());
    let bundle_dir = bundle.dir.path().to_str().unwrap();
    let created = oci(
        &state_dir,
        &log,
        &[
            "create",
            "--bundle",
            bundle_dir,
            "--pid-file",
            pid_file.to_str().unwrap(),
            &id,
        ],
    );
    let stderr = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(created.status.success(), "{}", stderr());
    let pid: i32 = std::fs::read_to_string(&pid_file).unwrap().parse().unwrap();
    let created = state(&state_dir, &log, &id);
    assert_eq!(created["status"], "created");
    assert_eq!(created["pid"], pid);
    assert_eq!(created["bundle"], bundle_dir);
    // Created, not started: the workload has not run.
    assert!(!stderr().contains("started"));
    assert!(
        !oci(&state_dir, &log, &["create", "--bundle", bundle_dir, &id])
            .status
            .success(),
        "a second create of the same id"
    );
    assert!(stderr().contains("already exists"), "{}", stderr());
    assert!(!oci(&state_dir, &log, &["delete", &id]).status.success());
    assert!(stderr().contains("use --force"), "{}", stderr());

    let list = oci(&state_dir, &log, &["list"]);
    assert!(common::stdout(&list).contains(&format!("{id}  {pid}  created")));

    assert!(
        oci(&state_dir, &log, &["start", &id]).status.success(),
        "{}",
        stderr()
    );
    assert_eq!(state(&state_dir, &log, &id)["status"], "running");
    assert!(!oci(&state_dir, &log, &["start", &id]).status.success());
    assert!(stderr().contains("is running, not created"), "{}", stderr());
    // The workload's output went to create's stdio, as an engine's log expects.
    wait_until("the workload's output", || {
        std::fs::read_to_string(work.path().join("log"))
            .unwrap_or_default()
            .contains("started")
    });

    assert!(
        oci(&state_dir, &log, &["kill", &id, "TERM"])
            .status
            .success()
    );
    wait_until("the container stops on SIGTERM", || {
        state(&state_dir, &log, &id)["status"] == "stopped"
    });
    assert!(stderr().contains("stopping"));
    assert!(!oci(&state_dir, &log, &["kill", &id]).status.success());
    assert!(
        oci(&state_dir, &log, &["delete", &id]).status.success(),
        "{}",
        stderr()
    );
    assert!(!oci(&state_dir, &log, &["state", &id]).status.success());
    assert!(stderr().contains("does not exist"));
    assert_eq!(
        std::fs::read_dir(&state_dir)
            .unwrap()
            .flatten()
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .count(),
        0
    );
}

#[test]
fn delete_force_kills_a_running_container_and_its_cgroup_goes() {
    privileged!();
    let work = tempfile::tempdir().unwrap();
    let (state_dir, log) = (work.path().join("state"), work.path().join("log"));
    let bundle = common::runnable_bundle(|spec| {
        spec["process"]["args"] = json!(["sleep", "60"]);
    });
    let id = format!("oci-force-{}", std::process::id());
    let bundle_dir = bundle.dir.path().to_str().unwrap();
    let stderr = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        oci(&state_dir, &log, &["create", "--bundle", bundle_dir, &id])
            .status
            .success(),
        "{}",
        stderr()
    );
    assert!(
        oci(&state_dir, &log, &["start", &id]).status.success(),
        "{}",
        stderr()
    );
    let pid = state(&state_dir, &log, &id)["pid"].as_i64().unwrap();
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let devices = cgroup
        .lines()
        .find_map(|l| l.split_once(":devices:").map(|(_, p)| p.to_owned()))
        .unwrap();
    assert!(devices.starts_with("/accelgate-"), "{devices}");
    assert!(
        oci(&state_dir, &log, &["delete", "--force", &id])
            .status
            .success(),
        "{}",
        stderr()
    );
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .unwrap_or_default()
                .contains(") Z")
    );
    assert!(
        !Path::new("/sys/fs/cgroup/devices")
            .join(devices.trim_start_matches('/'))
            .exists()
    );
}

#[test]
fn features_and_refused_options() {
    privileged!();
    let work = tempfile::tempdir().unwrap();
    let (state_dir, log) = (work.path().join("state"), work.path().join("log"));
    let features = oci(&state_dir, &log, &["features"]);
    let document: serde_json::Value = serde_json::from_slice(&features.stdout).unwrap();
    assert_eq!(document["linux"]["cgroup"]["v1"], true);
    assert!(
        document["hooks"]
            .as_array()
            .unwrap()
            .contains(&json!("startContainer"))
    );

    let bundle = common::runnable_bundle(|_| {});
    let bundle_dir = bundle.dir.path().to_str().unwrap();
    let systemd = Command::new(env!("CARGO_BIN_EXE_accelgate"))
        .args([
            "--root",
            state_dir.to_str().unwrap(),
            "--systemd-cgroup",
            "--log",
            log.to_str().unwrap(),
            "--log-format",
            "json",
            "create",
            "--bundle",
            bundle_dir,
            "x",
        ])
        .output()
        .unwrap();
    assert_eq!(systemd.status.code(), Some(1));
    let logged: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(logged["level"], "error");
    assert!(
        logged["msg"]
            .as_str()
            .unwrap()
            .starts_with("--systemd-cgroup: ")
    );
}

/// Accepts one connection on `listener` and returns the fd it carries (`SCM_RIGHTS`).
fn receive_fd(listener: &std::os::unix::net::UnixListener) -> std::os::fd::OwnedFd {
    use std::mem::MaybeUninit;

    use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, recvmsg};
    let (stream, _) = listener.accept().unwrap();
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut data = [0u8; 64];
    recvmsg(
        &stream,
        &mut [std::io::IoSliceMut::new(&mut data)],
        &mut control,
        RecvFlags::empty(),
    )
    .unwrap();
    control
        .drain()
        .find_map(|message| match message {
            RecvAncillaryMessage::ScmRights(mut fds) => fds.next(),
            _ => None,
        })
        .expect("an fd over SCM_RIGHTS")
}

#[test]
fn a_terminal_goes_to_the_console_socket() {
    privileged!();
    let work = tempfile::tempdir().unwrap();
    let (state_dir, log, socket) = (
        work.path().join("state"),
        work.path().join("log"),
        work.path().join("console.sock"),
    );
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let bundle = common::runnable_bundle(|spec| {
        spec["process"]["terminal"] = json!(true);
        spec["process"]["consoleSize"] = json!({"height": 33, "width": 101});
        spec["process"]["args"] = json!(["sh", "-c", "tty; stty size; echo done"]);
    });
    let id = format!("oci-tty-{}", std::process::id());
    let bundle_dir = bundle.dir.path().to_str().unwrap();
    let stderr = || std::fs::read_to_string(&log).unwrap_or_default();
    // Without a console socket, a terminal is refused (the container outlives create).
    assert!(
        !oci(&state_dir, &log, &["create", "--bundle", bundle_dir, &id])
            .status
            .success()
    );
    assert!(stderr().contains("process.terminal"), "{}", stderr());
    let receiver = std::thread::spawn(move || receive_fd(&listener));
    let created = oci(
        &state_dir,
        &log,
        &[
            "create",
            "--bundle",
            bundle_dir,
            "--console-socket",
            socket.to_str().unwrap(),
            &id,
        ],
    );
    assert!(created.status.success(), "{}", stderr());
    let master = std::fs::File::from(receiver.join().unwrap());
    assert!(
        oci(&state_dir, &log, &["start", &id]).status.success(),
        "{}",
        stderr()
    );
    let mut output = String::new();
    let mut reader = std::io::BufReader::new(master);
    while !output.contains("done") {
        let mut line = String::new();
        // The pty ends with EIO once the workload is gone.
        if std::io::BufRead::read_line(&mut reader, &mut line).unwrap_or(0) == 0 {
            break;
        }
        output.push_str(&line);
    }
    assert!(output.contains("/dev/pts/0"), "{output}");
    assert!(output.contains("33 101"), "{output}");
    wait_until("the container stops", || {
        state(&state_dir, &log, &id)["status"] == "stopped"
    });
    assert!(
        oci(&state_dir, &log, &["delete", &id]).status.success(),
        "{}",
        stderr()
    );
}

#[test]
fn memory_pids_and_cpu_limits_are_set_in_cgroups_that_go_with_the_container() {
    privileged!();
    let work = tempfile::tempdir().unwrap();
    let (state_dir, log) = (work.path().join("state"), work.path().join("log"));
    let bundle = common::runnable_bundle(|spec| {
        spec["linux"]["resources"] = json!({
            "devices": [{"allow": false, "access": "rwm"}],
            "memory": {"limit": 67108864},
            "pids": {"limit": 42},
            "cpu": {"shares": 512, "period": 100000, "quota": 50000}
        });
    });
    let id = format!("oci-limits-{}", std::process::id());
    let bundle_dir = bundle.dir.path().to_str().unwrap();
    let stderr = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        oci(&state_dir, &log, &["create", "--bundle", bundle_dir, &id])
            .status
            .success(),
        "{}",
        stderr()
    );
    let pid = state(&state_dir, &log, &id)["pid"].as_i64().unwrap();
    let pid = pid.to_string();
    let dir = |controller: &str| common::cgroup_v1_dir(&pid, controller);
    let read = |controller: &str, file: &str| common::cgroup_v1_read(&pid, controller, file);
    assert_eq!(read("memory", "memory.limit_in_bytes"), "67108864");
    assert_eq!(read("pids", "pids.max"), "42");
    assert_eq!(read("cpu", "cpu.shares"), "512");
    assert_eq!(read("cpu", "cpu.cfs_quota_us"), "50000");
    let dirs: Vec<_> = ["memory", "pids", "cpu", "devices"].map(dir).to_vec();
    for dir in &dirs {
        assert!(
            dir.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("accelgate-"),
            "{}",
            dir.display()
        );
    }
    assert!(
        oci(&state_dir, &log, &["delete", "--force", &id])
            .status
            .success(),
        "{}",
        stderr()
    );
    for dir in dirs {
        assert!(!dir.exists(), "{} is left", dir.display());
    }
}
