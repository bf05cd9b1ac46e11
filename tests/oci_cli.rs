//! Privileged: the runc command line (`create`, `start`, `state`, `kill`, `delete`, `list`,
//! `exec`, `ps`, `pause`, `resume`, `update`, `features`) on real containers, each in a state
//! directory of its own.

#[macro_use]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::oci;
use serde_json::json;

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
    assert_eq!(document["linux"]["cgroup"]["v2"], true);
    let seccomp = &document["linux"]["seccomp"];
    assert_eq!(seccomp["enabled"], true);
    assert!(
        seccomp["actions"]
            .as_array()
            .unwrap()
            .contains(&json!("SCMP_ACT_NOTIFY")),
        "{seccomp}"
    );
    assert!(
        seccomp["supportedFlags"]
            .as_array()
            .unwrap()
            .contains(&json!("SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV")),
        "{seccomp}"
    );
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
    let receiver = std::thread::spawn(move || common::receive_fd(&listener));
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

/// A created and started `sleep 60` container in `work`'s state directory.
fn running_container(work: &Path, bundle: &common::TempBundle, id: &str) -> (PathBuf, PathBuf) {
    let (state_dir, log) = (work.join("state"), work.join("log"));
    let bundle_dir = bundle.dir.path().to_str().unwrap();
    let stderr = || std::fs::read_to_string(work.join("log")).unwrap_or_default();
    assert!(
        oci(&state_dir, &log, &["create", "--bundle", bundle_dir, id])
            .status
            .success(),
        "{}",
        stderr()
    );
    assert!(
        oci(&state_dir, &log, &["start", id]).status.success(),
        "{}",
        stderr()
    );
    (state_dir, log)
}

fn pids_of(state_dir: &Path, log: &Path, id: &str) -> Vec<i64> {
    let ps = oci(state_dir, log, &["ps", "--format", "json", id]);
    assert!(ps.status.success());
    serde_json::from_slice(&ps.stdout).unwrap()
}

#[test]
fn exec_runs_in_the_container_as_runcs_flags_say() {
    privileged!();
    let work = tempfile::tempdir().unwrap();
    let bundle = common::runnable_bundle(|spec| {
        spec["process"]["args"] = json!(["sleep", "60"]);
        spec["process"]["env"] = json!(["PATH=/bin", "A=from-spec"]);
    });
    let id = format!("oci-exec-{}", std::process::id());
    let (state_dir, log) = running_container(work.path(), &bundle, &id);
    let stderr = || std::fs::read_to_string(&log).unwrap_or_default();
    let pid = state(&state_dir, &log, &id)["pid"].as_i64().unwrap();

    // Not detached: its output, and its exit status.
    let output = oci(
        &state_dir,
        &log,
        &[
            "exec",
            &id,
            "sh",
            "-c",
            "echo $A; readlink /proc/1/exe; exit 5",
        ],
    );
    assert_eq!(output.status.code(), Some(5), "{}", stderr());
    assert_eq!(common::stdout(&output), "from-spec\n/bin/busybox\n");
    // In every namespace and cgroup of the container's process.
    let output = oci(
        &state_dir,
        &log,
        &[
            "exec",
            &id,
            "sh",
            "-c",
            "for ns in pid mnt ipc uts; do readlink /proc/self/ns/$ns; done; cat /proc/self/cgroup",
        ],
    );
    let mut expected: String = ["pid", "mnt", "ipc", "uts"]
        .iter()
        .map(|ns| {
            let link = std::fs::read_link(format!("/proc/{pid}/ns/{ns}")).unwrap();
            format!("{}\n", link.display())
        })
        .collect();
    expected.push_str(&std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap());
    assert_eq!(common::stdout(&output), expected, "{}", stderr());

    // --env, --cwd, --user, --cap, --no-new-privs.
    let output = oci(
        &state_dir,
        &log,
        &[
            "exec",
            "--env",
            "A=from-flag",
            "--cwd",
            "/tmp",
            "--user",
            "1000:100",
            "--cap",
            "CAP_NET_RAW",
            "--no-new-privs",
            &id,
            "sh",
            "-c",
            "echo $A; pwd; id -u; id -g; grep -E '^(CapBnd|NoNewPrivs)' /proc/self/status",
        ],
    );
    assert!(output.status.success(), "{}", stderr());
    let stdout = common::stdout(&output);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[..4], ["from-flag", "/tmp", "1000", "100"], "{stdout}");
    // The spec's CAP_AUDIT_WRITE, CAP_KILL, CAP_NET_BIND_SERVICE and the added CAP_NET_RAW.
    assert!(stdout.contains("CapBnd:\t0000000020002420"), "{stdout}");
    assert!(stdout.contains("NoNewPrivs:\t1"), "{stdout}");

    // --process: the whole process from a file; a bad one is named by its field.
    let process = work.path().join("process.json");
    std::fs::write(
        &process,
        json!({
            "args": ["sh", "-c", "echo $B; ulimit -n; exit 3"], "env": ["B=from-file"], "cwd": "/",
            "user": {"uid": 0, "gid": 0},
            "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 256, "hard": 512}]
        })
        .to_string(),
    )
    .unwrap();
    let output = oci(
        &state_dir,
        &log,
        &["exec", "--process", process.to_str().unwrap(), &id],
    );
    assert_eq!(output.status.code(), Some(3), "{}", stderr());
    assert_eq!(common::stdout(&output), "from-file\n256\n");
    std::fs::write(
        &process,
        r#"{"args": "sh", "cwd": "/", "user": {"uid": 0, "gid": 0}}"#,
    )
    .unwrap();
    let output = oci(
        &state_dir,
        &log,
        &["exec", "--process", process.to_str().unwrap(), &id],
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr().contains("process.json: args: invalid type"),
        "{}",
        stderr()
    );
    let output = oci(&state_dir, &log, &["exec", &id, "/no/such/program"]);
    assert_eq!(output.status.code(), Some(127), "{}", stderr());
    // --preserve-fds: fd 3 of the caller reaches the process, fd 4 does not.
    let secret = work.path().join("passed");
    std::fs::write(&secret, "through-fd-3").unwrap();
    let output = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "exec 3<{} 4<{}; {} --root {} exec --preserve-fds 1 {id} sh -c 'cat <&3; cat <&4 || echo no-fd-4'",
            secret.display(),
            secret.display(),
            env!("CARGO_BIN_EXE_accelgate"),
            state_dir.display(),
        ))
        .output()
        .unwrap();
    assert_eq!(
        common::stdout(&output),
        "through-fd-3no-fd-4\n",
        "{}",
        common::stderr(&output)
    );

    // Detached, with a pid file: the process runs in the container after exec returns.
    let pid_file = work.path().join("exec.pid");
    let output = oci(
        &state_dir,
        &log,
        &[
            "exec",
            "-d",
            "--pid-file",
            pid_file.to_str().unwrap(),
            &id,
            "sleep",
            "60",
        ],
    );
    assert!(output.status.success(), "{}", stderr());
    let exec_pid: i64 = std::fs::read_to_string(&pid_file).unwrap().parse().unwrap();
    assert_eq!(pids_of(&state_dir, &log, &id), [pid, exec_pid]);
    let table = common::stdout(&oci(&state_dir, &log, &["ps", &id]));
    assert!(table.starts_with("UID"), "{table}");
    assert!(
        table.contains(&format!("{exec_pid}")) && table.contains("sleep 60"),
        "{table}"
    );

    // kill --all reaches the exec'd process too.
    assert!(
        oci(&state_dir, &log, &["kill", "--all", &id, "KILL"])
            .status
            .success()
    );
    wait_until("every process is gone", || {
        state(&state_dir, &log, &id)["status"] == "stopped"
            && !Path::new(&format!("/proc/{exec_pid}")).exists()
    });
    let output = oci(&state_dir, &log, &["exec", &id, "true"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr().contains("exec needs a created or running container"),
        "{}",
        stderr()
    );
    assert!(
        oci(&state_dir, &log, &["delete", &id]).status.success(),
        "{}",
        stderr()
    );
}

#[test]
fn pause_resume_and_update_follow_the_lifecycle() {
    privileged!();
    let work = tempfile::tempdir().unwrap();
    let bundle = common::runnable_bundle(|spec| {
        spec["process"]["args"] = json!(["sleep", "60"]);
    });
    let id = format!("oci-pause-{}", std::process::id());
    let bundle_dir = bundle.dir.path().to_str().unwrap();
    let (state_dir, log) = (work.path().join("state"), work.path().join("log"));
    let stderr = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        oci(&state_dir, &log, &["create", "--bundle", bundle_dir, &id])
            .status
            .success(),
        "{}",
        stderr()
    );
    // Only a running container pauses.
    assert!(!oci(&state_dir, &log, &["pause", &id]).status.success());
    assert!(
        stderr().contains("is created; only a running container pauses"),
        "{}",
        stderr()
    );
    assert!(oci(&state_dir, &log, &["start", &id]).status.success());
    let pid = state(&state_dir, &log, &id)["pid"]
        .as_i64()
        .unwrap()
        .to_string();
    assert!(!oci(&state_dir, &log, &["resume", &id]).status.success());
    assert!(stderr().contains("is running, not paused"), "{}", stderr());
    // A process exec'd into it is frozen with it: it is in the container's freezer cgroup.
    let pid_file = work.path().join("exec.pid");
    let execd = oci(
        &state_dir,
        &log,
        &[
            "exec",
            "-d",
            "--pid-file",
            pid_file.to_str().unwrap(),
            &id,
            "sleep",
            "60",
        ],
    );
    assert!(execd.status.success(), "{}", stderr());
    let exec_pid = std::fs::read_to_string(&pid_file).unwrap();
    assert_eq!(
        common::cgroup_v1_dir(&exec_pid, "freezer"),
        common::cgroup_v1_dir(&pid, "freezer")
    );

    assert!(
        oci(&state_dir, &log, &["pause", &id]).status.success(),
        "{}",
        stderr()
    );
    assert_eq!(state(&state_dir, &log, &id)["status"], "paused");
    assert_eq!(
        common::cgroup_v1_read(&pid, "freezer", "freezer.state"),
        "FROZEN"
    );
    let exec_stat = std::fs::read_to_string(format!("/proc/{exec_pid}/stat")).unwrap();
    assert!(exec_stat.contains(") D "), "{exec_stat}");
    assert!(
        !oci(&state_dir, &log, &["exec", &id, "true"])
            .status
            .success()
    );
    assert!(!oci(&state_dir, &log, &["start", &id]).status.success());
    assert!(!oci(&state_dir, &log, &["delete", &id]).status.success());
    assert!(
        oci(&state_dir, &log, &["resume", &id]).status.success(),
        "{}",
        stderr()
    );
    assert_eq!(state(&state_dir, &log, &id)["status"], "running");
    assert_eq!(
        common::cgroup_v1_read(&pid, "freezer", "freezer.state"),
        "THAWED"
    );

    // update: flags, and a resources file; a cgroup it had none in is made, the process moved
    // in.
    let resources = work.path().join("resources.json");
    std::fs::write(&resources, r#"{"cpu": {"shares": 256, "cpus": "0"}}"#).unwrap();
    let updated = oci(
        &state_dir,
        &log,
        &[
            "update",
            "--memory",
            "32m",
            "--pids-limit",
            "20",
            "--cpu-period",
            "100000",
            "--cpu-quota",
            "25000",
            "--resources",
            resources.to_str().unwrap(),
            &id,
        ],
    );
    assert!(updated.status.success(), "{}", stderr());
    assert_eq!(
        common::cgroup_v1_read(&pid, "memory", "memory.limit_in_bytes"),
        "33554432"
    );
    assert_eq!(common::cgroup_v1_read(&pid, "pids", "pids.max"), "20");
    assert_eq!(
        common::cgroup_v1_read(&pid, "cpu", "cpu.cfs_quota_us"),
        "25000"
    );
    assert_eq!(common::cgroup_v1_read(&pid, "cpu", "cpu.shares"), "256");
    // A new cpuset cgroup: the parent's mems, and the cpus asked for.
    assert_eq!(common::cgroup_v1_read(&pid, "cpuset", "cpuset.cpus"), "0");
    assert!(!common::cgroup_v1_read(&pid, "cpuset", "cpuset.mems").is_empty());
    assert_eq!(
        common::cgroup_v1_dir(&exec_pid, "cpuset"),
        common::cgroup_v1_dir(&pid, "cpuset")
    );
    let memory = common::cgroup_v1_dir(&pid, "memory");
    let cpuset = common::cgroup_v1_dir(&pid, "cpuset");
    let freezer = common::cgroup_v1_dir(&pid, "freezer");
    assert!(
        memory
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("accelgate-"),
        "{}",
        memory.display()
    );
    // What create refuses, update refuses, naming the field.
    std::fs::write(&resources, r#"{"memory": {"kernel": 1048576}}"#).unwrap();
    let refused = oci(
        &state_dir,
        &log,
        &["update", "--resources", resources.to_str().unwrap(), &id],
    );
    assert!(!refused.status.success());
    assert!(
        stderr().contains("linux.resources.memory.kernel"),
        "{}",
        stderr()
    );

    // A paused container is deleted with --force (thawed, so that SIGKILL takes).
    assert!(oci(&state_dir, &log, &["pause", &id]).status.success());
    assert!(
        oci(&state_dir, &log, &["delete", "--force", &id])
            .status
            .success(),
        "{}",
        stderr()
    );
    for dir in [memory, cpuset, freezer] {
        assert!(!dir.exists(), "{} is left", dir.display());
    }
}

#[test]
fn exec_into_a_tpu_container_goes_through_its_gate_service() {
    privileged!();
    let probe = common::probe();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bundle = common::TempBundle::new(|spec| {
        *spec = serde_json::from_str(
            &std::fs::read_to_string(repo.join("examples/tpu-probe/config.json")).unwrap(),
        )
        .unwrap();
        spec["root"]["path"] = repo.join("examples/rootfs").display().to_string().into();
        for mount in spec["mounts"].as_array_mut().unwrap() {
            if mount["destination"] == "/tpu-probe" {
                mount["source"] = probe.display().to_string().into();
            }
        }
        spec["process"]["args"] = json!(["sleep", "60"]);
    });
    let work = tempfile::tempdir().unwrap();
    let (state_dir, log) = (work.path().join("state"), work.path().join("log"));
    let stderr = || std::fs::read_to_string(&log).unwrap_or_default();
    let id = format!("oci-tpu-{}", std::process::id());
    let fixture = common::fixture("tpu-v5e-8");
    let created = oci(
        &state_dir,
        &log,
        &[
            "create",
            "--bundle",
            bundle.dir.path().to_str().unwrap(),
            "--host-root",
            fixture.to_str().unwrap(),
            "--simulate",
            &id,
        ],
    );
    assert!(created.status.success(), "{}", stderr());
    let service: i64 = {
        let record: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(state_dir.join(&id).join("state.json")).unwrap(),
        )
        .unwrap();
        record["gate"]["pid"].as_i64().unwrap()
    };
    // The service outlived create, on its own.
    let comm = std::fs::read_to_string(format!("/proc/{service}/comm")).unwrap();
    assert_eq!(comm.trim(), "accelgate-gate");
    assert!(
        oci(&state_dir, &log, &["start", &id]).status.success(),
        "{}",
        stderr()
    );

    // Two exec'd probes: each one's calls are gated, and counted by the one service.
    for _ in 0..2 {
        let output = oci(&state_dir, &log, &["exec", &id, "/tpu-probe", "vfio"]);
        let stdout = common::stdout(&output);
        assert_eq!(output.status.code(), Some(0), "{stdout}{}", stderr());
        assert!(!stdout.contains("UNEXPECTED"), "{stdout}");
        for line in [
            "VFIO_DEVICE_PCI_HOT_RESET -> EPERM [ok]",
            "VFIO_SET_IOMMU(SPAPR_TCE) -> EINVAL [ok]",
            "VFIO_IOMMU_MAP_DMA(2 MiB) -> 0 [ok]",
        ] {
            assert!(stdout.lines().any(|l| l == line), "{line} in:\n{stdout}");
        }
    }
    let stats = oci(&state_dir, &log, &["stats", "--json", &id]);
    assert!(stats.status.success(), "{}", stderr());
    let stats: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
    let count = |device: &str, request: &str, verdict: &str| -> u64 {
        stats["counts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["device"] == device && c["request"] == request && c["verdict"] == verdict)
            .map(|c| c["count"].as_u64().unwrap())
            .sum()
    };
    assert_eq!(
        count("vfio-device", "VFIO_DEVICE_PCI_HOT_RESET", "denied"),
        2
    );
    assert_eq!(
        count("vfio-device", "VFIO_DEVICE_GET_REGION_INFO", "allowed"),
        20
    );
    assert_eq!(stats["totals"]["denied"], 12);

    assert!(
        oci(&state_dir, &log, &["delete", "--force", &id])
            .status
            .success(),
        "{}",
        stderr()
    );
    wait_until("the gate service ends", || {
        !std::fs::read_to_string(format!("/proc/{service}/comm"))
            .is_ok_and(|c| c.trim() == "accelgate-gate")
    });
    assert!(!state_dir.join(&id).exists());
}

#[test]
fn a_user_namespace_container_is_created_started_and_execd_into() {
    privileged!();
    let bundle = common::runnable_bundle(|spec| {
        spec["process"]["args"] = json!(["sleep", "60"]);
        spec["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "user"}));
        spec["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        spec["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    });
    // The rootfs belongs to the namespace's root, as runc also requires.
    let chowned = Command::new("chown")
        .args(["-R", "100000:100000", bundle.rootfs().to_str().unwrap()])
        .status()
        .unwrap();
    assert!(chowned.success(), "chown the rootfs: {chowned}");
    let work = tempfile::tempdir().unwrap();
    let id = format!("oci-userns-{}", std::process::id());
    // The container's root (host uid 100000) waits on exec.fifo, so create hands it over.
    let (state_dir, log) = running_container(work.path(), &bundle, &id);
    let stderr = || std::fs::read_to_string(&log).unwrap_or_default();
    let pid = state(&state_dir, &log, &id)["pid"].as_i64().unwrap();
    let output = oci(
        &state_dir,
        &log,
        &[
            "exec",
            &id,
            "sh",
            "-c",
            "id -u; cat /proc/self/uid_map; readlink /proc/self/ns/user",
        ],
    );
    assert!(output.status.success(), "{}", stderr());
    let user_ns = std::fs::read_link(format!("/proc/{pid}/ns/user")).unwrap();
    let stdout = common::stdout(&output);
    let lines: Vec<&str> = stdout.lines().map(str::trim).collect();
    assert_eq!(lines[0], "0", "{stdout}");
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["0", "100000", "65536"]
    );
    assert_eq!(lines[2], user_ns.display().to_string());
    assert!(
        oci(&state_dir, &log, &["delete", "--force", &id])
            .status
            .success(),
        "{}",
        stderr()
    );
}

/// `command` (a shell command line) under `script`, which gives it a pty as its stdin and
/// controlling terminal, with `input` typed into it; asserts that it exits with `status` within
/// a minute and leaves the terminal's mode as it found it, and returns what it printed.
fn on_a_terminal(command: &str, input: &str, status: i32) -> String {
    let modes = tempfile::tempdir().unwrap();
    let (before, after) = (modes.path().join("before"), modes.path().join("after"));
    let wrapped = format!(
        "stty -g > {}; {command}; status=$?; stty -g > {}; exit $status",
        before.display(),
        after.display()
    );
    let mut child = Command::new("timeout")
        .args(["60", "script", "--quiet", "--return", "--command", &wrapped])
        .arg("/dev/null")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("timeout (coreutils) and script (bsdutils)");
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), input.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    let printed = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(
        output.status.code(),
        Some(status),
        "{command}: {printed}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mode = |path: &Path| std::fs::read_to_string(path).unwrap();
    assert_eq!(
        mode(&before),
        mode(&after),
        "{command} left the terminal's mode changed"
    );
    printed
}

/// A created container, killed and deleted however the test ends.
struct Created<'a> {
    state_dir: &'a Path,
    log: &'a Path,
    id: String,
}

impl Drop for Created<'_> {
    fn drop(&mut self) {
        let _ = oci(self.state_dir, self.log, &["kill", &self.id, "KILL"]);
        let stopped = || {
            let output = oci(self.state_dir, self.log, &["state", &self.id]);
            serde_json::from_slice::<serde_json::Value>(&output.stdout)
                .map_or(true, |state| state["status"] == "stopped")
        };
        let started = Instant::now();
        while !stopped() && started.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = oci(self.state_dir, self.log, &["delete", "--force", &self.id]);
    }
}

#[test]
fn run_and_exec_give_the_process_the_callers_terminal_without_an_engine() {
    privileged!();
    let work = tempfile::tempdir().unwrap();
    let (state_dir, log) = (work.path().join("state"), work.path().join("log"));
    let bundle = common::runnable_bundle(|spec| {
        spec["process"]["terminal"] = json!(true);
        spec["process"]["args"] = json!(["sh"]);
    });
    let bundle_dir = bundle.dir.path().to_str().unwrap();
    let accelgate = env!("CARGO_BIN_EXE_accelgate");
    // `run`: an interactive shell on a terminal of the container's own, as under `runc run`.
    let printed = on_a_terminal(
        &format!("{accelgate} run --bundle {bundle_dir}"),
        "tty; exit 4\n",
        4,
    );
    assert!(printed.contains("/dev/pts/0"), "{printed}");
    // Without a terminal on stdin there is none to give: a warning names the field.
    let output = common::accelgate(&["run", "--bundle", bundle_dir], Duration::from_secs(60));
    assert!(output.status.success(), "{}", common::stderr(&output));
    assert!(
        common::stderr(&output).contains("warning: process.terminal"),
        "{}",
        common::stderr(&output)
    );

    // `exec --tty` in the foreground, into a running container.
    let id = format!("oci-own-tty-{}", std::process::id());
    let running = common::runnable_bundle(|spec| {
        spec["process"]["args"] = json!(["sh", "-c", "while :; do sleep 0.1; done"]);
    });
    let created = oci(
        &state_dir,
        &log,
        &[
            "create",
            "--bundle",
            running.dir.path().to_str().unwrap(),
            &id,
        ],
    );
    let stderr = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(created.status.success(), "{}", stderr());
    let _created = Created {
        state_dir: &state_dir,
        log: &log,
        id: id.clone(),
    };
    assert!(
        oci(&state_dir, &log, &["start", &id]).status.success(),
        "{}",
        stderr()
    );
    let root = state_dir.to_str().unwrap();
    let printed = on_a_terminal(
        &format!("{accelgate} --root {root} exec --tty {id} sh -c 'tty; exit 6'"),
        "",
        6,
    );
    assert!(printed.contains("/dev/pts/"), "{printed}");
    // With no terminal on stdin, or detached, it needs an engine's socket.
    let refused = oci(&state_dir, &log, &["exec", "--tty", &id, "true"]);
    assert!(!refused.status.success());
    assert!(stderr().contains("a terminal on stdin"), "{}", stderr());
    let refused = oci(&state_dir, &log, &["exec", "--tty", "-d", &id, "true"]);
    assert!(!refused.status.success());
    assert!(
        stderr().contains("a detached terminal needs --console-socket"),
        "{}",
        stderr()
    );
}
