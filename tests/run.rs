//! Privileged: real sandboxes with `accelgate run` (root, namespaces, mounts). Each sandbox is a
//! child process; this harness only compares what the host looks like before and after.

#[macro_use]
mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{host_view, run_sandbox, runnable_bundle};
use serde_json::json;

fn example(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
}

#[test]
fn a_tpu_v4_sandbox_has_the_planned_mounts_and_nodes() {
    privileged!();
    let output = run_sandbox(
        &example("busybox-tpu"),
        Some("tpu-v4-8"),
        &[
            "sh",
            "-c",
            "cat /proc/self/mountinfo; echo ===; ls -ln /dev; echo ===; stat -c '%t:%T %a' /dev/accel0; stat -c '%a' /tmp",
        ],
    );
    let stdout = common::stdout(&output);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}\n{}",
        common::stderr(&output)
    );
    let parts: Vec<&str> = stdout.split("===\n").collect();
    let (mountinfo, ls, stats) = (parts[0], parts[1], parts[2]);

    // The mounts appear in the plan's order.
    let plan = common::accelgate(
        &[
            "plan",
            "--bundle",
            example("busybox-tpu").to_str().unwrap(),
            "--root",
            common::fixture("tpu-v4-8").to_str().unwrap(),
            "--json",
        ],
        Duration::from_secs(30),
    );
    let plan: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    let planned: Vec<&str> = plan["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["destination"].as_str().unwrap())
        .collect();
    let mounted: Vec<&str> = mountinfo
        .lines()
        .skip(1)
        .map(|l| l.split(' ').nth(4).unwrap())
        .collect();
    let in_order: Vec<&str> = mounted
        .iter()
        .copied()
        .filter(|m| planned.contains(m))
        .collect();
    assert_eq!(&in_order[..planned.len()], &planned[..], "{mountinfo}");
    for (dest, fstype) in [
        ("/proc", "proc"),
        ("/tmp", "tmpfs"),
        ("/dev", "tmpfs"),
        ("/dev/pts", "devpts"),
    ] {
        assert!(
            mountinfo
                .lines()
                .any(|l| l.split(' ').nth(4) == Some(dest) && l.contains(&format!(" - {fstype} "))),
            "{dest} is not a {fstype}:\n{mountinfo}"
        );
    }
    assert!(
        mountinfo
            .lines()
            .any(|l| l.split(' ').nth(4) == Some("/sys")),
        "{mountinfo}"
    );

    for i in 0..4 {
        let line = ls
            .lines()
            .find(|l| l.ends_with(&format!(" accel{i}")))
            .unwrap_or_else(|| panic!("no accel{i}:\n{ls}"));
        assert!(line.starts_with("crw-rw-rw-"), "{line}");
        assert!(line.contains(&format!("121,   {i}")), "{line}");
    }
    assert_eq!(ls.matches(" accel").count(), 4, "{ls}");
    assert_eq!(stats.lines().collect::<Vec<_>>(), ["79:0 666", "1777"]);
}

#[test]
fn a_sandbox_gets_only_the_chips_it_asks_for() {
    privileged!();
    // tpu-v4-8 has four chips; the sandbox asks for two of them.
    let output = common::accelgate(
        &[
            "run",
            "--bundle",
            example("busybox-tpu").to_str().unwrap(),
            "--root",
            common::fixture("tpu-v4-8").to_str().unwrap(),
            "--tpu",
            "1,3",
            "--",
            "ls",
            "/dev",
        ],
        Duration::from_secs(60),
    );
    let stdout = common::stdout(&output);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}{}",
        common::stderr(&output)
    );
    let chips: Vec<&str> = stdout.lines().filter(|l| l.starts_with("accel")).collect();
    assert_eq!(chips, ["accel1", "accel3"], "{stdout}");
}

#[test]
fn fixture_numbers_that_are_real_devices_here_are_refused() {
    privileged!();
    // A copy of tpu-v5e-8 whose VFIO groups have major 203, which this machine's cpuid
    // devices (203:0, 203:1) also have.
    assert!(
        Path::new("/sys/dev/char/203:0").exists(),
        "this test needs cpuid's 203:0 on the host"
    );
    let host = tempfile::tempdir().unwrap();
    let root = host.path().join("h");
    let copied = Command::new("cp")
        .args(["-a", common::fixture("tpu-v5e-8").to_str().unwrap()])
        .arg(&root)
        .status()
        .unwrap();
    assert!(copied.success());
    let rewrite = |path: &Path, from: &str, to: &str| {
        let text = fs::read_to_string(path).unwrap();
        fs::write(path, text.replace(from, to)).unwrap();
    };
    rewrite(&root.join("proc/devices"), "245 vfio", "203 vfio");
    rewrite(&root.join("dev.list"), " 245:", " 203:");
    for group in fs::read_dir(root.join("sys/devices/virtual/vfio")).unwrap() {
        let dev = group.unwrap().path().join("dev");
        if dev.exists() {
            rewrite(&dev, "245:", "203:");
        }
    }
    let output = common::accelgate(
        &[
            "run",
            "--bundle",
            example("busybox").to_str().unwrap(),
            "--root",
            root.to_str().unwrap(),
            "--tpu",
            "all",
            "--",
            "true",
        ],
        Duration::from_secs(60),
    );
    assert_eq!(output.status.code(), Some(1), "{}", common::stderr(&output));
    assert!(
        common::stderr(&output).contains("(203:0)"),
        "{}",
        common::stderr(&output)
    );
}

#[test]
fn the_root_is_read_only_when_the_spec_asks() {
    privileged!();
    let bundle = runnable_bundle(|spec| spec["root"]["readonly"] = json!(true));
    let output = run_sandbox(
        bundle.dir.path(),
        Some("cpu-only"),
        &[
            "sh",
            "-c",
            "touch /x 2>&1; echo rc=$?; touch /tmp/y && echo tmp-ok",
        ],
    );
    let stdout = common::stdout(&output);
    assert!(
        stdout.contains("Read-only file system") && stdout.contains("tmp-ok"),
        "{stdout}"
    );
    assert!(!bundle.rootfs().join("x").exists());
}

#[test]
fn exit_statuses_pass_through() {
    privileged!();
    let bundle = runnable_bundle(|_| {});
    assert_eq!(
        run_sandbox(bundle.dir.path(), Some("cpu-only"), &["sh", "-c", "exit 7"])
            .status
            .code(),
        Some(7)
    );
    // The workload is pid 1 of its namespace: only a signal from outside can kill it.
    let mut sleeping = spawn_run(bundle.dir.path(), &["sleep", "60"]);
    let workload = sandbox_process(&sleeping);
    nix::sys::signal::kill(workload, nix::sys::signal::Signal::SIGKILL).unwrap();
    assert_eq!(wait_for(&mut sleeping, Duration::from_secs(10)), Some(137));
    let missing = run_sandbox(bundle.dir.path(), Some("cpu-only"), &["/bin/nonexistent"]);
    assert_eq!(
        missing.status.code(),
        Some(1),
        "a missing program is found at plan time"
    );
}

fn spawn_run(bundle: &Path, command: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_accelgate"))
        .args([
            "run",
            "--bundle",
            bundle.to_str().unwrap(),
            "--root",
            common::fixture("cpu-only").to_str().unwrap(),
            "--",
        ])
        .args(command)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The sandbox's process (the workload, once started), as the host sees it: the launcher's
/// child in a pid namespace of its own.
fn sandbox_process(launcher: &std::process::Child) -> nix::unistd::Pid {
    let own = fs::read_link("/proc/self/ns/pid").unwrap();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        let children = fs::read_to_string(format!("/proc/{0}/task/{0}/children", launcher.id()))
            .unwrap_or_default();
        for pid in children.split_whitespace() {
            // Executed: no longer the launcher's copy.
            let started = fs::read_link(format!("/proc/{pid}/exe"))
                .is_ok_and(|exe| !exe.ends_with("accelgate"));
            let ns = fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
            if started && ns.is_some_and(|ns| ns != own) {
                return nix::unistd::Pid::from_raw(pid.parse().unwrap());
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("the sandbox's workload did not start");
}

fn wait_for(child: &mut std::process::Child, limit: Duration) -> Option<i32> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    None
}

#[test]
fn sigterm_to_the_launcher_reaches_the_workload() {
    privileged!();
    let bundle = runnable_bundle(|_| {});
    let mut child = spawn_run(
        bundle.dir.path(),
        &[
            "sh",
            "-c",
            "trap 'exit 42' TERM; echo ready; while :; do sleep 0.1; done",
        ],
    );
    sandbox_process(&child);
    std::thread::sleep(Duration::from_millis(300));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert_eq!(wait_for(&mut child, Duration::from_secs(10)), Some(42));

    // Like any pid 1 (and as under runc), a workload without a handler ignores it; SIGKILL
    // from the host ends it, and the launcher (which cleans up) reports it.
    let mut child = spawn_run(bundle.dir.path(), &["sleep", "60"]);
    let workload = sandbox_process(&child);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(child.try_wait().unwrap(), None);
    nix::sys::signal::kill(workload, nix::sys::signal::Signal::SIGKILL).unwrap();
    assert_eq!(wait_for(&mut child, Duration::from_secs(10)), Some(137));
}

/// Runs `bundle` and checks that the host's mounts and `canary` look the same afterwards.
fn contained(bundle: &common::TempBundle, canary: &Path, command: &[&str]) -> std::process::Output {
    let before = host_view(canary);
    let output = run_sandbox(bundle.dir.path(), Some("cpu-only"), command);
    assert_eq!(
        host_view(canary),
        before,
        "the sandbox changed the host: {}",
        common::stderr(&output)
    );
    output
}

#[test]
fn a_dev_symlink_to_a_host_directory_populates_nothing_outside() {
    privileged!();
    let canary = tempfile::tempdir().unwrap();
    let bundle = runnable_bundle(|_| {});
    symlink(canary.path(), bundle.rootfs().join("dev")).unwrap();
    let output = contained(&bundle, canary.path(), &["true"]);
    assert_eq!(output.status.code(), Some(0), "{}", common::stderr(&output));
    assert_eq!(fs::read_dir(canary.path()).unwrap().count(), 0);
    // The link was followed inside the rootfs: /dev's tmpfs went onto the rootfs's own copy of
    // the path.
    assert!(
        bundle
            .rootfs()
            .join(canary.path().strip_prefix("/").unwrap())
            .is_dir()
    );
}

#[test]
fn mount_destinations_linking_out_stay_inside() {
    privileged!();
    let canary = tempfile::tempdir().unwrap();
    let escape = format!("../../../../../../..{}", canary.path().display());
    for link in ["/", escape.as_str()] {
        let bundle = runnable_bundle(|spec| {
            spec["mounts"]
                .as_array_mut()
                .unwrap()
                .push(json!({"destination": "/escape", "type": "tmpfs", "source": "t"}));
        });
        symlink(link, bundle.rootfs().join("escape")).unwrap();
        let output = contained(&bundle, canary.path(), &["true"]);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{link}: {}",
            common::stderr(&output)
        );
    }
}

#[test]
fn proc_as_a_symlink_is_refused() {
    privileged!();
    let canary = tempfile::tempdir().unwrap();
    let bundle = runnable_bundle(|_| {});
    symlink(canary.path(), bundle.rootfs().join("proc")).unwrap();
    let output = contained(&bundle, canary.path(), &["true"]);
    assert_eq!(output.status.code(), Some(125));
    assert!(
        common::stderr(&output).contains("/proc: proc must be mounted on a real directory"),
        "{}",
        common::stderr(&output)
    );
}

#[test]
fn a_cwd_under_proc_self_fd_is_refused() {
    privileged!();
    let bundle = runnable_bundle(|spec| spec["process"]["cwd"] = json!("/proc/self/fd/7"));
    let output = run_sandbox(bundle.dir.path(), Some("cpu-only"), &["true"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        common::stderr(&output).contains("process.cwd"),
        "{}",
        common::stderr(&output)
    );
}

#[test]
fn a_bind_source_that_is_a_symlink_is_refused() {
    privileged!();
    let canary = tempfile::tempdir().unwrap();
    fs::write(canary.path().join("secret"), "host").unwrap();
    let bundle = runnable_bundle(|spec| {
        spec["mounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"destination": "/data", "type": "bind", "source": "data"}));
    });
    symlink(canary.path(), bundle.dir.path().join("data")).unwrap();
    let output = contained(&bundle, canary.path(), &["cat", "/data/secret"]);
    assert_ne!(output.status.code(), Some(0));
    assert!(!common::stdout(&output).contains("host"));
    assert!(
        common::stderr(&output).contains("is a symlink"),
        "{}",
        common::stderr(&output)
    );
}

#[test]
fn a_bind_source_in_the_rootfs_never_follows_a_link_out_of_it() {
    privileged!();
    let canary = tempfile::tempdir().unwrap();
    fs::create_dir(canary.path().join("dir")).unwrap();
    fs::write(canary.path().join("dir/secret"), "host").unwrap();
    let bundle = runnable_bundle(|spec| {
        spec["mounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"destination": "/data", "type": "bind", "source": "rootfs/link/dir"}));
    });
    // The source's parent is a link to a host directory (CVE-2021-25741); inside the rootfs
    // the same path leads to the rootfs's own copy.
    symlink(canary.path(), bundle.rootfs().join("link")).unwrap();
    let inside = bundle
        .rootfs()
        .join(canary.path().strip_prefix("/").unwrap())
        .join("dir");
    fs::create_dir_all(&inside).unwrap();
    fs::write(inside.join("secret"), "inside").unwrap();
    let output = contained(&bundle, canary.path(), &["cat", "/data/secret"]);
    assert_eq!(
        common::stdout(&output),
        "inside",
        "{}",
        common::stderr(&output)
    );
}

#[test]
fn a_failure_mid_setup_leaves_nothing_behind() {
    privileged!();
    let canary = tempfile::tempdir().unwrap();
    let marker = format!("accelgate-half-{}", std::process::id());
    let bundle = runnable_bundle(|spec| {
        let mounts = spec["mounts"].as_array_mut().unwrap();
        mounts.push(json!({"destination": "/ok", "type": "tmpfs", "source": "t"}));
        // erofs cannot mount a source that does not exist: the step fails after others worked.
        mounts.push(json!({"destination": "/broken", "type": "erofs", "source": "/nonexistent/image.erofs"}));
    });
    let output = contained(
        &bundle,
        canary.path(),
        &["sh", "-c", &format!("echo {marker}")],
    );
    assert_eq!(output.status.code(), Some(125));
    let stderr = common::stderr(&output);
    assert!(stderr.contains("mount erofs at /broken"), "{stderr}");
    let leftover: Vec<String> = fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|entry| fs::read(entry.path().join("cmdline")).ok())
        .map(|cmdline| String::from_utf8_lossy(&cmdline).replace('\0', " "))
        .filter(|cmdline| cmdline.contains(&marker))
        .collect();
    assert!(leftover.is_empty(), "a process survived: {leftover:?}");
}

#[test]
fn overlays_keep_writes_away_from_the_rootfs() {
    privileged!();
    let bundle = runnable_bundle(|_| {});
    for overlay in ["memory", "self"] {
        let output = common::accelgate(
            &[
                "run",
                "--bundle",
                bundle.dir.path().to_str().unwrap(),
                "--root",
                common::fixture("cpu-only").to_str().unwrap(),
                "--overlay",
                overlay,
                "--",
                "sh",
                "-c",
                "echo written > /written && cat /written && ls -a / | grep -c accelgate",
            ],
            Duration::from_secs(60),
        );
        let stdout = common::stdout(&output);
        assert!(
            stdout.starts_with("written\n0"),
            "{overlay}: {stdout}{}",
            common::stderr(&output)
        );
        assert!(
            !bundle.rootfs().join("written").exists(),
            "{overlay} wrote through to the rootfs"
        );
    }
}

#[test]
fn a_user_namespace_gets_the_hosts_nodes_bound() {
    privileged!();
    let bundle = runnable_bundle(|spec| {
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
    let output = run_sandbox(
        bundle.dir.path(),
        None,
        &[
            "sh",
            "-c",
            "cat /proc/self/uid_map; ls -ln /dev/null; echo x > /dev/null && echo ok",
        ],
    );
    let stdout = common::stdout(&output);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}{}",
        common::stderr(&output)
    );
    assert!(stdout.contains("100000"), "{stdout}");
    assert!(
        stdout.contains("1,   3") && stdout.contains("ok"),
        "{stdout}"
    );
}
