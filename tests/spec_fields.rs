//! Privileged: the spec fields accelgate honours, seen from inside real sandboxes (sysctls,
//! oomScoreAdj, personality, the session keyring, namespaces by path, hooks, the device
//! cgroup), what a workload finds through /proc/1, and the fields it refuses by name.

#[macro_use]
mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{TempBundle, runnable_bundle};
use serde_json::json;

fn run(bundle: &TempBundle, command: &[&str]) -> Output {
    common::run_sandbox(bundle.dir.path(), None, command)
}

fn ok(output: &Output) -> String {
    let stdout = common::stdout(output);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}{}",
        common::stderr(output)
    );
    stdout
}

fn caps(list: &[&str]) -> serde_json::Value {
    json!({"bounding": list, "effective": list, "permitted": list})
}

#[test]
fn sysctls_are_written_inside_the_namespaces_only() {
    privileged!();
    let host_shmmax = std::fs::read_to_string("/proc/sys/kernel/shmmax").unwrap();
    let bundle = runnable_bundle(|spec| {
        spec["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "network"}));
        spec["linux"]["sysctl"] = json!({"kernel.shmmax": "123456789", "net.ipv4.ip_forward": "1"});
    });
    let stdout = ok(&run(
        &bundle,
        &[
            "cat",
            "/proc/sys/kernel/shmmax",
            "/proc/sys/net/ipv4/ip_forward",
        ],
    ));
    assert_eq!(stdout, "123456789\n1\n");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/shmmax").unwrap(),
        host_shmmax
    );

    let host_wide = runnable_bundle(|spec| spec["linux"]["sysctl"] = json!({"vm.swappiness": "1"}));
    let output = run(&host_wide, &["true"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        common::stderr(&output).contains("linux.sysctl[\"vm.swappiness\"]"),
        "{}",
        common::stderr(&output)
    );
}

#[test]
fn oom_score_personality_and_a_keyring_of_its_own() {
    privileged!();
    let bundle = runnable_bundle(|spec| {
        spec["process"]["oomScoreAdj"] = json!(500);
        spec["linux"]["personality"] = json!({"domain": "LINUX32"});
        // /proc/keys shows the keys this process possesses.
        spec["linux"]["maskedPaths"] = json!([]);
    });
    let stdout = ok(&run(
        &bundle,
        &[
            "sh",
            "-c",
            "cat /proc/self/oom_score_adj; uname -m; cat /proc/keys",
        ],
    ));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "500", "{stdout}");
    assert!(["i686", "armv8l", "armv7l"].contains(&lines[1]), "{stdout}");
    let id = bundle.dir.path().file_name().unwrap().to_string_lossy();
    assert!(
        stdout.contains(&format!("keyring   _ses.{id}"))
            || stdout
                .lines()
                .any(|l| l.contains("keyring") && l.contains(&format!("_ses.{id}"))),
        "{stdout}"
    );
}

/// A helper process in a network namespace of its own, killed on drop.
struct NetnsHolder(std::process::Child);

impl Drop for NetnsHolder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_namespace_given_by_path_is_joined() {
    privileged!();
    let holder = NetnsHolder(
        Command::new("unshare")
            .args(["--net", "sleep", "60"])
            .stdin(Stdio::null())
            .spawn()
            .expect("unshare (util-linux)"),
    );
    let ns = format!("/proc/{}/ns/net", holder.0.id());
    // unshare runs sleep in the new namespace once it has made it.
    let host_ns = std::fs::read_link("/proc/self/ns/net").unwrap();
    let mut target = host_ns.clone();
    for _ in 0..100 {
        target = std::fs::read_link(&ns).unwrap();
        if target != host_ns {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_ne!(target, host_ns);
    let bundle = runnable_bundle(|spec| {
        spec["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "network", "path": ns}));
    });
    let stdout = ok(&run(&bundle, &["readlink", "/proc/self/ns/net"]));
    assert_eq!(stdout.trim(), target.to_str().unwrap());
    // The launcher went back to its own namespace: this test process never left it.
    assert_eq!(std::fs::read_link("/proc/self/ns/net").unwrap(), host_ns);

    let mount = runnable_bundle(|spec| {
        spec["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "mount", "path": "/proc/1/ns/mnt"}));
    });
    let output = run(&mount, &["true"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(common::stderr(&output).contains("linux.namespaces[4].path"));
}

#[test]
fn hooks_run_in_order_with_the_state_on_stdin() {
    privileged!();
    let log = tempfile::tempdir().unwrap();
    let host_hook = |phase: &str| {
        json!({"path": "/bin/sh", "args": ["sh", "-c", format!("cat > \"$LOG/{phase}.json\"; echo {phase} >> \"$LOG/order\"")],
               "env": [format!("LOG={}", log.path().display())]})
    };
    let bundle = runnable_bundle(|spec| {
        spec["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/hooklog", "type": "bind", "source": log.path(), "options": ["rbind"]
        }));
        spec["hooks"] = json!({
            "prestart": [host_hook("prestart")],
            "createRuntime": [host_hook("createRuntime")],
            "createContainer": [host_hook("createContainer")],
            // Resolved and run inside the container, after pivot_root.
            "startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "cat > /hooklog/startContainer.json; echo startContainer >> /hooklog/order"]}],
            "poststart": [host_hook("poststart")],
            "poststop": [host_hook("poststop")]
        });
        spec["hooks"]["prestart"].as_array_mut().unwrap().push(
            json!({"path": "/usr/bin/nvidia-container-runtime-hook", "args": ["x", "prestart"]}),
        );
    });
    let stdout = ok(&run(&bundle, &["sh", "-c", "sleep 0.3; echo workload"]));
    assert_eq!(stdout, "workload\n");
    let order = std::fs::read_to_string(log.path().join("order")).unwrap();
    assert_eq!(
        order.lines().collect::<Vec<_>>(),
        [
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststart",
            "poststop"
        ]
    );
    let state = |phase: &str| -> serde_json::Value {
        serde_json::from_str(
            &std::fs::read_to_string(log.path().join(format!("{phase}.json"))).unwrap(),
        )
        .unwrap()
    };
    let created = state("createRuntime");
    assert_eq!(created["status"], "creating");
    assert_eq!(created["bundle"], bundle.dir.path().to_str().unwrap());
    assert!(created["pid"].as_i64().unwrap() > 1);
    assert_eq!(state("startContainer")["pid"], created["pid"]);
    assert_eq!(state("poststart")["status"], "running");
    assert_eq!(state("poststop")["status"], "stopped");

    let slow = runnable_bundle(|spec| {
        spec["hooks"] = json!({"createRuntime": [{"path": "/bin/sleep", "args": ["sleep", "10"], "timeout": 1}]});
    });
    let output = run(&slow, &["true"]);
    assert_eq!(output.status.code(), Some(125));
    assert!(
        common::stderr(&output).contains("createRuntime hook /bin/sleep: timed out after 1s"),
        "{}",
        common::stderr(&output)
    );
}

#[test]
fn a_ptrace_capable_workload_finds_nothing_of_the_host_through_pid_1() {
    privileged!();
    let bundle = runnable_bundle(|spec| {
        spec["process"]["capabilities"] = caps(&["CAP_SYS_PTRACE", "CAP_KILL"]);
    });
    let mut command = Command::new(env!("CARGO_BIN_EXE_accelgate"));
    command
        .args(["run", "--bundle", bundle.dir.path().to_str().unwrap(), "--"])
        .args([
            "sh",
            "-c",
            "echo pid=$$; tr '\\0' '\\n' < /proc/1/environ; echo ===; ls -l /proc/1/fd; echo ===; grep Cap /proc/1/status",
        ])
        .env("ACCELGATE_HOST_SECRET", "launcher-only")
        .stdin(Stdio::null());
    let output = command.output().unwrap();
    let stdout = ok(&output);
    assert!(stdout.starts_with("pid=1\n"), "{stdout}");
    assert!(!stdout.contains("launcher-only"), "{stdout}");
    let parts: Vec<&str> = stdout.split("===\n").collect();
    // pid 1 is the workload: the spec's environment, its stdio, its capabilities.
    assert!(parts[0].contains("PATH=/bin"), "{stdout}");
    let fds: Vec<&str> = parts[1]
        .lines()
        .filter_map(|l| l.split(" -> ").nth(1))
        .collect();
    assert!(
        fds.iter()
            .all(|t| t.starts_with("pipe:") || *t == "/dev/null" || t.starts_with("/proc/")),
        "{stdout}"
    );
    assert!(parts[2].contains("CapEff:\t0000000000080020"), "{stdout}");
}

#[test]
fn a_device_cgroup_keeps_a_mknod_capable_workload_from_host_devices() {
    privileged!();
    let bundle = runnable_bundle(|spec| {
        spec["process"]["capabilities"] = caps(&["CAP_MKNOD", "CAP_DAC_OVERRIDE"]);
        spec["linux"]["resources"] = json!({"devices": [{"allow": false, "access": "rwm"}]});
    });
    let output = run(
        &bundle,
        &[
            "sh",
            "-c",
            "mknod /dev/mem2 c 1 1; head -c 1 /dev/mem2 >/dev/null && echo opened-mem; echo x > /dev/null && echo null-ok; cat /proc/self/cgroup",
        ],
    );
    let stdout = ok(&output);
    assert!(!stdout.contains("opened-mem"), "{stdout}");
    assert!(stdout.contains("null-ok"), "{stdout}");
    // The cgroup is gone with the sandbox.
    let cgroup = stdout
        .lines()
        .find_map(|l| l.split_once(":devices:").map(|(_, p)| p.to_owned()))
        .expect("a devices cgroup");
    assert!(cgroup.starts_with("/accelgate-"), "{cgroup}");
    assert!(
        !Path::new("/sys/fs/cgroup/devices")
            .join(cgroup.trim_start_matches('/'))
            .exists()
    );
}

#[test]
fn unimplemented_security_fields_are_refused_by_name() {
    privileged!();
    for (field, edit) in [
        (
            "linux.resources.rdma",
            json!({"linux": {"resources": {"rdma": {"mlx5_0": {"hcaHandles": 1}}}}}),
        ),
        (
            "linux.resources.memory.kernelTCP",
            json!({"linux": {"resources": {"memory": {"kernelTCP": 1000000}}}}),
        ),
    ]
    .into_iter()
    // Where AppArmor is active the profile is applied, not refused.
    .chain((!accelgate::boot::Lsm::AppArmor.active()).then(|| {
        (
            "process.apparmorProfile",
            json!({"process": {"apparmorProfile": "docker-default"}}),
        )
    })) {
        let bundle = runnable_bundle(|spec| {
            for (section, fields) in edit.as_object().unwrap() {
                for (key, value) in fields.as_object().unwrap() {
                    spec[section][key] = value.clone();
                }
            }
        });
        let output = run(&bundle, &["true"]);
        assert_eq!(output.status.code(), Some(1), "{field}");
        assert!(
            common::stderr(&output).contains(field),
            "{field}: {}",
            common::stderr(&output)
        );
    }
}

/// `runc spec`'s config.json, unchanged, in a busybox bundle.
fn runc_default_bundle() -> Option<TempBundle> {
    let bundle = runnable_bundle(|_| {});
    std::fs::remove_file(bundle.dir.path().join("config.json")).unwrap();
    let made = Command::new("runc")
        .arg("spec")
        .current_dir(bundle.dir.path())
        .status()
        .is_ok_and(|s| s.success());
    if !made {
        if std::env::var_os("ACCELGATE_REQUIRE_PRIVILEGED").is_some_and(|v| v == "1") {
            panic!("runc is not installed (scripts/setup installs it)");
        }
        eprintln!("SKIPPED: runc is not installed");
        return None;
    }
    Some(bundle)
}

#[test]
fn runcs_default_spec_runs_on_the_host_and_on_a_fixture_without_cgroups() {
    privileged!();
    let Some(bundle) = runc_default_bundle() else {
        return;
    };
    // Its process is an interactive `sh`; with stdin at its end it exits 0.
    let output = run(&bundle, &[]);
    ok(&output);
    assert!(
        common::stderr(&output).contains("CAP_NET_BIND_SERVICE skipped"),
        "{}",
        common::stderr(&output)
    );
    let host = tempfile::tempdir().unwrap();
    let copied = Command::new("cp")
        .args(["-a", common::fixture("cpu-only").to_str().unwrap()])
        .arg(host.path().join("h"))
        .status()
        .unwrap();
    assert!(copied.success());
    std::fs::remove_dir_all(host.path().join("h/sys/fs/cgroup")).unwrap();
    let output = common::accelgate(
        &[
            "run",
            "--bundle",
            bundle.dir.path().to_str().unwrap(),
            "--root",
            host.path().join("h").to_str().unwrap(),
        ],
        Duration::from_secs(60),
    );
    ok(&output);
}

#[test]
fn runcs_default_spec_runs_under_create_and_start() {
    privileged!();
    let Some(bundle) = runc_default_bundle() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let (state, socket) = (work.path().join("state"), work.path().join("console.sock"));
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let receiver = std::thread::spawn(move || common::receive_fd(&listener));
    let id = format!("runc-spec-{}", std::process::id());
    let log = work.path().join("log");
    // stderr into a file, and create's stdout nowhere: the created container inherits them,
    // and a pipe would stay open as long as it lives.
    let oci = |args: &[&str]| {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        Command::new(env!("CARGO_BIN_EXE_accelgate"))
            .arg("--root")
            .arg(&state)
            .args(args)
            .stdin(Stdio::null())
            .stdout(if args[0] == "create" {
                Stdio::null()
            } else {
                Stdio::piped()
            })
            .stderr(log)
            .output()
            .unwrap()
    };
    let stderr = || std::fs::read_to_string(work.path().join("log")).unwrap_or_default();
    // Its process wants a terminal, as runc's default spec does: the console socket gets it.
    let created = oci(&[
        "create",
        "--bundle",
        bundle.dir.path().to_str().unwrap(),
        "--console-socket",
        socket.to_str().unwrap(),
        &id,
    ]);
    assert!(created.status.success(), "{}", stderr());
    let master = std::fs::File::from(receiver.join().unwrap());
    assert!(oci(&["start", &id]).status.success(), "{}", stderr());
    // The interactive sh reads its terminal: a command, then exit with a status.
    let mut writer = master.try_clone().unwrap();
    std::io::Write::write_all(&mut writer, b"echo in-$((6*7)); exit 3\n").unwrap();
    let mut output = String::new();
    let mut reader = std::io::BufReader::new(master);
    while !output.contains("in-42") {
        let mut line = String::new();
        // The pty ends with EIO once the workload is gone.
        if std::io::BufRead::read_line(&mut reader, &mut line).unwrap_or(0) == 0 {
            break;
        }
        output.push_str(&line);
    }
    assert!(output.contains("in-42"), "{output}");
    let stopped = std::time::Instant::now();
    loop {
        let state: serde_json::Value =
            serde_json::from_slice(&oci(&["state", &id]).stdout).unwrap_or_default();
        if state["status"] == "stopped" {
            break;
        }
        assert!(stopped.elapsed() < Duration::from_secs(10), "{state}");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(oci(&["delete", &id]).status.success(), "{}", stderr());
}

#[test]
fn the_umask_is_the_specs_or_runcs_default() {
    privileged!();
    // The launcher's own umask (077 here) never reaches the workload.
    let umask = |bundle: &TempBundle| {
        let output = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "umask 077; exec {} run --bundle {} -- sh -c umask",
                env!("CARGO_BIN_EXE_accelgate"),
                bundle.dir.path().display()
            ))
            .output()
            .unwrap();
        ok(&output).trim().to_owned()
    };
    let given = runnable_bundle(|spec| spec["process"]["user"]["umask"] = json!(0o027));
    assert_eq!(umask(&given), "0027");
    assert_eq!(umask(&runnable_bundle(|_| {})), "0022");
}
