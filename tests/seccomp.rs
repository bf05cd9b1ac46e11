//! Privileged: the spec's seccomp profile (`linux.seccomp`) seen from inside real sandboxes,
//! under `accelgate run`, `create`/`start` and `exec`: errnoRet, argument conditions, an agent
//! getting the listener at `listenerPath`, and bad fields refused by name.

#[macro_use]
mod common;

use std::os::fd::AsFd;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{TempBundle, oci, runnable_bundle};
use serde_json::json;

/// A profile that allows everything but `mkdir` (EPERM, the errnoRet given), `rmdir` (EROFS)
/// and `kill` with a signal from 16 to 31 (a masked argument condition).
fn profile() -> serde_json::Value {
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_AARCH64"],
        "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
            {"names": ["rmdir", "unlinkat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 30},
            {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "args": [
                {"index": 1, "value": 240, "valueTwo": 16, "op": "SCMP_CMP_MASKED_EQ"}
            ]}
        ]
    })
}

/// What the workload runs: each call and its status.
const SCRIPT: &str = "mkdir /tmp/made; echo mkdir=$?; rmdir /tmp; echo rmdir=$?; \
                      kill -0 $$; echo kill0=$?; kill -HUP $$; echo hup=$?; \
                      kill -CONT $$; echo cont=$?";

fn check_denials(stdout: &str, stderr: &str) {
    for line in ["mkdir=1", "rmdir=1", "kill0=0", "hup=0", "cont=1"] {
        assert!(stdout.contains(line), "{line}: {stdout}{stderr}");
    }
    assert!(
        stderr.contains("Operation not permitted") && stderr.contains("Read-only file system"),
        "{stderr}"
    );
}

fn bundle_with(seccomp: serde_json::Value) -> TempBundle {
    runnable_bundle(|spec| {
        spec["linux"]["seccomp"] = seccomp;
        spec["process"]["args"] = json!(["sh", "-c", SCRIPT]);
    })
}

#[test]
fn errno_ret_and_conditions_apply_under_run() {
    privileged!();
    let bundle = bundle_with(profile());
    let output = common::run_sandbox(bundle.dir.path(), None, &[]);
    let (stdout, stderr) = (common::stdout(&output), common::stderr(&output));
    assert_eq!(output.status.code(), Some(0), "{stdout}{stderr}");
    check_denials(&stdout, &stderr);

    // Without no_new_privs the filter goes on before the ids and capabilities change: the
    // same profile still lets the workload start.
    let bundle = runnable_bundle(|spec| {
        spec["linux"]["seccomp"] = profile();
        spec["process"]["noNewPrivileges"] = json!(false);
        spec["process"]["args"] = json!(["sh", "-c", SCRIPT]);
    });
    let output = common::run_sandbox(bundle.dir.path(), None, &[]);
    let (stdout, stderr) = (common::stdout(&output), common::stderr(&output));
    assert_eq!(output.status.code(), Some(0), "{stdout}{stderr}");
    check_denials(&stdout, &stderr);
}

#[test]
fn errno_ret_and_conditions_apply_under_create_and_start() {
    privileged!();
    let work = tempfile::tempdir().unwrap();
    let (state, log) = (work.path().join("state"), work.path().join("log"));
    let bundle = bundle_with(profile());
    let id = format!("seccomp-{}", std::process::id());
    let bundle_dir = bundle.dir.path().to_str().unwrap();
    let text = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        oci(&state, &log, &["create", "--bundle", bundle_dir, &id])
            .status
            .success(),
        "{}",
        text()
    );
    assert!(
        oci(&state, &log, &["start", &id]).status.success(),
        "{}",
        text()
    );
    let started = Instant::now();
    while !text().contains("cont=") {
        assert!(started.elapsed() < Duration::from_secs(10), "{}", text());
        std::thread::sleep(Duration::from_millis(20));
    }
    let deleted = oci(&state, &log, &["delete", "--force", &id]);
    check_denials(&text(), &text());
    assert!(deleted.status.success(), "{}", text());
}

#[test]
fn bad_names_are_refused_by_field_path() {
    privileged!();
    let cases = [
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOPE"}]}),
            "linux.seccomp.syscalls[0].action",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_NOPE"]}),
            "linux.seccomp.flags[0]",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_NOPE"]}),
            "linux.seccomp.architectures[0]",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["kill"], "action": "SCMP_ACT_ERRNO",
                "args": [{"index": 1, "value": 1, "op": "SCMP_CMP_NOPE"}]}]}),
            "linux.seccomp.syscalls[0].args[0].op",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["kill"], "action": "SCMP_ACT_ERRNO",
                "args": [{"index": 7, "value": 1, "op": "SCMP_CMP_EQ"}]}]}),
            "linux.seccomp.syscalls[0].args[0].index",
        ),
    ];
    for (seccomp, field) in cases {
        let bundle = bundle_with(seccomp);
        let output = common::run_sandbox(bundle.dir.path(), None, &[]);
        let stderr = common::stderr(&output);
        assert_ne!(output.status.code(), Some(0), "{field}: {stderr}");
        assert!(stderr.contains(field), "{field}: {stderr}");
        assert!(!common::stdout(&output).contains("mkdir="), "{field} ran");
    }
}

#[test]
fn the_agent_gets_the_state_and_the_listener() {
    privileged!();
    let work = tempfile::tempdir().unwrap();
    let socket = work.path().join("agent.sock");
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let bundle = bundle_with(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": socket,
        "listenerMetadata": "test-agent",
        "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
    }));
    let mut child = Command::new(env!("CARGO_BIN_EXE_accelgate"))
        .args(["run", "--bundle"])
        .arg(bundle.dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    listener.set_nonblocking(true).unwrap();
    let started = Instant::now();
    let stream = loop {
        match listener.accept() {
            Ok((stream, _)) => break stream,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if started.elapsed() > Duration::from_secs(20)
                    || child.try_wait().unwrap().is_some()
                {
                    let _ = child.kill();
                    let output = child.wait_with_output().unwrap();
                    panic!("no agent connection: {}", common::stderr(&output));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("accept: {e}"),
        }
    };
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut message = Vec::new();
    let mut fds = Vec::new();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let (read, received) =
            accelgate::supervisor::handoff::recv_with_fds(stream.as_fd(), &mut buffer).unwrap();
        fds.extend(received);
        if read == 0 {
            break;
        }
        message.extend_from_slice(&buffer[..read]);
    }
    let state = accelgate::daemon::ProcessState::parse(&message).unwrap();
    assert_eq!(state.fds, [accelgate::daemon::SECCOMP_FD_NAME]);
    assert_eq!(state.metadata, "test-agent");
    assert_eq!(state.state.status, "creating");
    assert_eq!(state.state.bundle, bundle.dir.path());
    assert!(state.pid > 0, "{state:?}");
    assert_eq!(fds.len(), 1);
    use std::os::fd::AsRawFd;
    let target = std::fs::read_link(format!("/proc/self/fd/{}", fds[0].as_raw_fd())).unwrap();
    assert_eq!(target.as_os_str(), "anon_inode:seccomp notify");
    // An agent that goes away without answering: the notified calls fail with ENOSYS.
    drop(fds);
    let output = child.wait_with_output().unwrap();
    let (stdout, stderr) = (common::stdout(&output), common::stderr(&output));
    assert_eq!(output.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("mkdir=1"), "{stdout}");
    assert!(stderr.contains("Function not implemented"), "{stderr}");
    // The other calls were not the agent's business.
    assert!(stdout.contains("kill0=0"), "{stdout}");
}

/// examples/tpu-probe as a bundle with `seccomp` as its profile.
fn probe_bundle(seccomp: serde_json::Value) -> TempBundle {
    let binary = common::probe();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    TempBundle::new(|spec| {
        *spec = serde_json::from_str(
            &std::fs::read_to_string(repo.join("examples/tpu-probe/config.json")).unwrap(),
        )
        .unwrap();
        spec["root"]["path"] = repo.join("examples/rootfs").display().to_string().into();
        for mount in spec["mounts"].as_array_mut().unwrap() {
            if mount["destination"] == "/tpu-probe" {
                mount["source"] = binary.display().to_string().into();
            }
        }
        spec["linux"]["seccomp"] = seccomp;
    })
}

fn run_probe(bundle: &TempBundle) -> Output {
    let root = common::fixture("tpu-v5e-8").display().to_string();
    let bundle = bundle.dir.path().display().to_string();
    common::accelgate(
        &[
            "run",
            "--root",
            &root,
            "--simulate",
            "--bundle",
            &bundle,
            "--",
            "/tpu-probe",
            "vfio",
        ],
        Duration::from_secs(120),
    )
}

/// `_IO(';', 100 + 16)`: `VFIO_DEVICE_IOEVENTFD`, which the gate denies with EPERM.
const VFIO_DEVICE_IOEVENTFD: u64 = 0x3b74;

#[test]
fn a_profile_stacks_on_the_ioctl_gate() {
    privileged!();
    // The profile answers one VFIO ioctl itself (EACCES, stricter than the gate's notification);
    // the gate still decides every other one.
    let bundle = probe_bundle(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["ioctl"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13, "args": [
            {"index": 1, "value": VFIO_DEVICE_IOEVENTFD, "op": "SCMP_CMP_EQ"}
        ]}]
    }));
    let output = run_probe(&bundle);
    let (stdout, stderr) = (common::stdout(&output), common::stderr(&output));
    for (call, result) in [
        ("VFIO_DEVICE_IOEVENTFD", "EACCES [UNEXPECTED]"),
        ("VFIO_DEVICE_PCI_HOT_RESET", "EPERM [ok]"),
        ("VFIO_IOMMU_MAP_DMA(2 MiB)", "0 [ok]"),
        ("VFIO_CHECK_EXTENSION(TYPE1v2)", "1 [ok]"),
    ] {
        assert!(
            stdout.contains(&format!("{call} -> {result}")),
            "{call}: {stdout}{stderr}"
        );
    }
    // A profile that notifies what the gate routes would take it from the gate: refused.
    let bundle = probe_bundle(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": "/nonexistent/agent.sock",
        "syscalls": [{"names": ["ioctl"], "action": "SCMP_ACT_NOTIFY"}]
    }));
    let output = run_probe(&bundle);
    let stderr = common::stderr(&output);
    assert_eq!(output.status.code(), Some(125), "{stderr}");
    assert!(
        stderr.contains("linux.seccomp.syscalls[0].action: SCMP_ACT_NOTIFY on ioctl"),
        "{stderr}"
    );
}

/// The one message an agent connection carries, parsed, its raw JSON, and the fds with it;
/// waits up to 20 s for the connection.
fn agent_message(
    listener: &std::os::unix::net::UnixListener,
) -> (
    accelgate::daemon::ProcessState,
    serde_json::Value,
    Vec<std::os::fd::OwnedFd>,
) {
    listener.set_nonblocking(true).unwrap();
    let started = Instant::now();
    let stream = loop {
        match listener.accept() {
            Ok((stream, _)) => break stream,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(
                    started.elapsed() < Duration::from_secs(20),
                    "no agent connection"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("accept: {e}"),
        }
    };
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let (mut message, mut fds) = (Vec::new(), Vec::new());
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let (read, received) =
            accelgate::supervisor::handoff::recv_with_fds(stream.as_fd(), &mut buffer).unwrap();
        fds.extend(received);
        if read == 0 {
            break;
        }
        message.extend_from_slice(&buffer[..read]);
    }
    let state = accelgate::daemon::ProcessState::parse(&message).unwrap();
    (state, serde_json::from_slice(&message).unwrap(), fds)
}

/// `accelgate --root STATE exec ID ARGS...`, its output captured.
fn exec(state: &Path, id: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_accelgate"))
        .arg("--root")
        .arg(state)
        .args(["exec", id])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Deletes a container when dropped, so that a failing test leaves none behind.
struct Deleted<'a> {
    state: &'a Path,
    id: &'a str,
}

impl Drop for Deleted<'_> {
    fn drop(&mut self) {
        let _ = Command::new(env!("CARGO_BIN_EXE_accelgate"))
            .arg("--root")
            .arg(self.state)
            .args(["delete", "--force", self.id])
            .output();
    }
}

#[test]
fn an_execd_process_gets_the_containers_profile() {
    privileged!();
    let work = tempfile::tempdir().unwrap();
    let (state, log) = (work.path().join("state"), work.path().join("log"));
    let text = || std::fs::read_to_string(&log).unwrap_or_default();
    let socket = work.path().join("agent.sock");
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    // mkdir fails with EPERM, kill with its conditions; symlink goes to an agent.
    let mut seccomp = profile();
    seccomp["listenerPath"] = json!(socket);
    seccomp["listenerMetadata"] = json!("exec-agent");
    seccomp["syscalls"]
        .as_array_mut()
        .unwrap()
        .push(json!({"names": ["symlink", "symlinkat"], "action": "SCMP_ACT_NOTIFY"}));
    let bundle = runnable_bundle(|spec| {
        spec["linux"]["seccomp"] = seccomp;
        spec["process"]["args"] = json!(["sleep", "60"]);
    });
    let id = format!("seccomp-exec-{}", std::process::id());
    let bundle_dir = bundle.dir.path().to_str().unwrap();
    let created = oci(&state, &log, &["create", "--bundle", bundle_dir, &id]);
    let _deleted = Deleted {
        state: &state,
        id: &id,
    };
    assert!(created.status.success(), "{}", text());
    assert!(
        oci(&state, &log, &["start", &id]).status.success(),
        "{}",
        text()
    );
    // The first process's listener; the agent answers nothing, and sleep makes no link.
    let (first, _, first_fds) = agent_message(&listener);
    assert_eq!(first.state.status, "creating");
    // What create found counts, not what the bundle says later.
    let config = bundle.dir.path().join("config.json");
    let mut spec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    spec["linux"]["seccomp"] = serde_json::Value::Null;
    std::fs::write(&config, spec.to_string()).unwrap();

    let output = exec(&state, &id, &["mkdir", "/tmp/x"]);
    let stderr = common::stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("Operation not permitted"), "{stderr}");
    // Every exec'd process hands the agent a listener of its own.
    assert_eq!(agent_message(&listener).2.len(), 1);
    let output = exec(
        &state,
        &id,
        &[
            "sh",
            "-c",
            "grep Seccomp: /proc/self/status; kill -0 $$; echo kill0=$?; kill -CONT $$; echo cont=$?",
        ],
    );
    let stdout = common::stdout(&output);
    assert!(stdout.contains("Seccomp:\t2"), "{stdout}");
    assert!(stdout.contains("kill0=0"), "{stdout}");
    assert!(stdout.contains("cont=1"), "{stdout}");
    assert_eq!(agent_message(&listener).2.len(), 1);

    // An exec'd process that notifies: the agent gets its own listener, with the container's
    // state and the process's pid; it answers nothing and goes away, so symlink fails ENOSYS.
    let exec_pid = work.path().join("exec.pid");
    let child = Command::new(env!("CARGO_BIN_EXE_accelgate"))
        .arg("--root")
        .arg(&state)
        .args(["exec", "--pid-file"])
        .arg(&exec_pid)
        .args([&id, "sh", "-c", "ln -s /x /tmp/link; echo ln=$?"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (second, raw, fds) = agent_message(&listener);
    assert_eq!(second.metadata, "exec-agent");
    assert_eq!(second.state.status, "running");
    assert_eq!(second.state.id, id);
    let container_pid = raw["state"]["pid"].as_i64().unwrap();
    assert_ne!(i64::from(second.pid), container_pid, "{raw}");
    let written: i64 = std::fs::read_to_string(&exec_pid)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(i64::from(second.pid), written, "{raw}");
    assert_eq!(fds.len(), 1);
    drop(fds);
    drop(first_fds);
    let output = child.wait_with_output().unwrap();
    let (stdout, stderr) = (common::stdout(&output), common::stderr(&output));
    assert!(stdout.contains("ln=1"), "{stdout}{stderr}");
    assert!(stderr.contains("Function not implemented"), "{stderr}");
    let deleted = oci(&state, &log, &["delete", "--force", &id]);
    assert!(deleted.status.success(), "{}", text());
}
