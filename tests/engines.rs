//! Privileged: a real container engine drives accelgate through the runc command line. Podman
//! (Debian's, with conmon) gets its own configuration, storage and state in a temporary
//! directory; nothing is left in /etc, /run, cgroups or the mount table.

#[macro_use]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The cgroups podman makes for conmon (`/libpod_parent/conmon` in each v1 controller with
/// the cgroupfs manager), removed at the end unless they were there before.
fn podman_cgroups() -> Vec<PathBuf> {
    std::fs::read_dir("/sys/fs/cgroup")
        .map(|dirs| {
            dirs.flatten()
                .map(|d| d.path().join("libpod_parent"))
                .filter(|p| p.exists())
                .collect()
        })
        .unwrap_or_default()
}

/// Podman's home for one test: config, storage, accelgate's state; cleaned up on drop.
struct Podman {
    home: tempfile::TempDir,
    cgroups_before: Vec<PathBuf>,
}

impl Podman {
    fn new() -> Option<Self> {
        let found = ["podman", "conmon"].iter().all(|tool| {
            Command::new(tool)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        });
        if !found {
            if std::env::var_os("ACCELGATE_REQUIRE_PRIVILEGED").is_some_and(|v| v == "1") {
                panic!("podman and conmon are not installed (scripts/setup installs them)");
            }
            eprintln!("SKIPPED: podman or conmon is not installed");
            return None;
        }
        let home = tempfile::tempdir().unwrap();
        let at = |name: &str| home.path().join(name);
        for dir in ["root", "runroot", "tmp", "state"] {
            std::fs::create_dir(at(dir)).unwrap();
        }
        // This VM's root lacks CAP_SYS_RESOURCE: ulimits stay below the hard limits.
        std::fs::write(
            at("containers.conf"),
            format!(
                "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\ndefault_sysctls = []\n\
                 [engine]\ncgroup_manager = \"cgroupfs\"\nlock_type = \"file\"\nevents_logger = \"none\"\ntmp_dir = \"{}\"\n",
                at("tmp").display()
            ),
        )
        .unwrap();
        std::fs::write(
            at("storage.conf"),
            format!(
                "[storage]\ndriver = \"vfs\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n",
                at("root").display(),
                at("runroot").display()
            ),
        )
        .unwrap();
        // podman passes --runtime-flag to create but not to the cleanup it runs at the end,
        // so the state directory goes into a wrapper that every call gets.
        let wrapper = at("accelgate");
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nexec {} --root {} \"$@\"\n",
                env!("CARGO_BIN_EXE_accelgate"),
                at("state").display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(
            &wrapper,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        Some(Self {
            home,
            cgroups_before: podman_cgroups(),
        })
    }

    fn run(&self, args: &[&str]) -> Output {
        let at = |name: &str| self.home.path().join(name);
        Command::new("podman")
            .env("CONTAINERS_CONF", at("containers.conf"))
            .env("CONTAINERS_STORAGE_CONF", at("storage.conf"))
            .arg("--root")
            .arg(at("root"))
            .arg("--runroot")
            .arg(at("runroot"))
            .arg("--runtime")
            .arg(at("accelgate"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.run(&["rm", "--all", "--force"]);
        // conmon leaves its cgroup once podman's cleanup, which it runs at the end, is done.
        for parent in podman_cgroups() {
            if !self.cgroups_before.contains(&parent) {
                for dir in [parent.join("conmon"), parent] {
                    for _ in 0..500 {
                        match std::fs::remove_dir(&dir) {
                            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                                std::thread::sleep(std::time::Duration::from_millis(20));
                            }
                            _ => break,
                        }
                    }
                }
            }
        }
    }
}

fn mounts_under(dir: &Path) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(dir.to_str().unwrap()))
        .map(str::to_owned)
        .collect()
}

#[test]
fn podman_runs_containers_through_accelgate_with_output_exit_status_and_a_terminal() {
    privileged!();
    let Some(podman) = Podman::new() else {
        return;
    };
    let bundle = common::runnable_bundle(|_| {});
    let rootfs = bundle.rootfs();
    let output = podman.run(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--rootfs",
        rootfs.to_str().unwrap(),
        "/bin/sh",
        "-c",
        "echo from-accelgate; cat /proc/self/cgroup | grep devices; exit 3",
    ]);
    let stdout = common::stdout(&output);
    assert_eq!(
        output.status.code(),
        Some(3),
        "{stdout}{}",
        common::stderr(&output)
    );
    assert!(stdout.starts_with("from-accelgate\n"), "{stdout}");
    // accelgate made the container's device cgroup where podman asked.
    assert!(
        stdout.contains(":devices:/libpod_parent/libpod-"),
        "{stdout}"
    );
    // --rm deleted it: nothing in accelgate's state, no mounts left.
    // -t: the container's pty, made in its devpts and handed to conmon over the console socket.
    let output = podman.run(&[
        "run",
        "--rm",
        "-t",
        "--network",
        "none",
        "--rootfs",
        rootfs.to_str().unwrap(),
        "/bin/sh",
        "-c",
        "tty; exit 4",
    ]);
    assert_eq!(
        output.status.code(),
        Some(4),
        "{}{}",
        common::stdout(&output),
        common::stderr(&output)
    );
    assert!(common::stdout(&output).contains("/dev/pts/0"));
    // Even with CAP_MKNOD (Docker's default set has it) and a device rule that lets it make
    // the node (runc's default cgroup has `c *:* m`), the device cgroup keeps the container
    // from opening a node the plan did not give it.
    let output = podman.run(&[
        "run",
        "--rm",
        "--cap-add",
        "MKNOD",
        "--device-cgroup-rule",
        "c 1:1 m",
        "--network",
        "none",
        "--rootfs",
        rootfs.to_str().unwrap(),
        "/bin/sh",
        "-c",
        "mknod /dev/mem c 1 1 && echo made; head -c 1 /dev/mem >/dev/null && echo opened; grep CapEff /proc/self/status",
    ]);
    let stdout = common::stdout(&output);
    assert!(stdout.starts_with("made\n"), "{stdout}");
    assert!(!stdout.contains("opened"), "{stdout}");
    assert!(
        stdout.contains("CapEff"),
        "{stdout}{}",
        common::stderr(&output)
    );
    let state: Vec<_> = std::fs::read_dir(podman.home.path().join("state"))
        .unwrap()
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(state.is_empty(), "{state:?}");
    assert!(mounts_under(podman.home.path()).is_empty());
    assert!(mounts_under(&rootfs).is_empty());
}

#[test]
fn podman_limits_reach_the_containers_cgroups_and_rm_force_ends_it() {
    privileged!();
    let Some(podman) = Podman::new() else {
        return;
    };
    let bundle = common::runnable_bundle(|_| {});
    let rootfs = bundle.rootfs();
    let started = podman.run(&[
        "run",
        "-d",
        "--network",
        "none",
        "--memory",
        "64m",
        "--pids-limit",
        "42",
        "--cpus",
        "0.5",
        "--rootfs",
        rootfs.to_str().unwrap(),
        "sleep",
        "60",
    ]);
    assert!(started.status.success(), "{}", common::stderr(&started));
    let id = common::stdout(&started).trim().to_owned();
    let inspect = podman.run(&["inspect", "--format", "{{.State.Pid}}", &id]);
    let pid = common::stdout(&inspect).trim().to_owned();
    let read = |controller: &str, file: &str| {
        (
            common::cgroup_v1_dir(&pid, controller),
            common::cgroup_v1_read(&pid, controller, file),
        )
    };
    let (memory, limit) = read("memory", "memory.limit_in_bytes");
    assert_eq!(limit, "67108864");
    assert_eq!(read("pids", "pids.max").1, "42");
    assert_eq!(read("cpu", "cpu.cfs_quota_us").1, "50000");
    assert!(
        memory.ends_with(format!("libpod-{id}")),
        "{}",
        memory.display()
    );
    // sleep, as pid 1, ignores SIGTERM: no grace period.
    let removed = podman.run(&["rm", "--force", "--time", "0", &id]);
    assert!(removed.status.success(), "{}", common::stderr(&removed));
    assert!(!memory.exists(), "{} is left", memory.display());
}

/// `podman run` arguments every test gives: no network (podman's default seccomp profile
/// applies), the rootfs.
fn run_args<'a>(rootfs: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["run", "--network", "none"];
    args.extend_from_slice(rest);
    args.extend_from_slice(&["--rootfs", rootfs]);
    args
}

#[test]
fn podman_exec_stop_kill_and_rm_reach_a_detached_container() {
    privileged!();
    let Some(podman) = Podman::new() else {
        return;
    };
    let bundle = common::runnable_bundle(|_| {});
    let rootfs = bundle.rootfs();
    let rootfs = rootfs.to_str().unwrap();
    let mut args = run_args(rootfs, &["-d"]);
    // A pid 1 with a handler, so that `stop` ends it with SIGTERM.
    args.extend_from_slice(&[
        "/bin/sh",
        "-c",
        "trap 'exit 0' TERM; while :; do sleep 0.1; done",
    ]);
    let started = podman.run(&args);
    assert!(started.status.success(), "{}", common::stderr(&started));
    let id = common::stdout(&started).trim().to_owned();
    let exec = podman.run(&["exec", &id, "sh", "-c", "echo exec-out; exit 6"]);
    assert_eq!(exec.status.code(), Some(6), "{}", common::stderr(&exec));
    assert_eq!(common::stdout(&exec), "exec-out\n");
    // The exec'd process is in the container's namespaces and cgroups.
    let inspect = podman.run(&["inspect", "--format", "{{.State.Pid}}", &id]);
    let pid = common::stdout(&inspect).trim().to_owned();
    let exec = podman.run(&[
        "exec",
        &id,
        "sh",
        "-c",
        "for ns in pid mnt ipc uts; do readlink /proc/self/ns/$ns; done; cat /proc/self/cgroup",
    ]);
    assert!(exec.status.success(), "{}", common::stderr(&exec));
    let mut expected: String = ["pid", "mnt", "ipc", "uts"]
        .iter()
        .map(|ns| {
            let link = std::fs::read_link(format!("/proc/{pid}/ns/{ns}")).unwrap();
            format!("{}\n", link.display())
        })
        .collect();
    expected.push_str(&std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap());
    assert_eq!(common::stdout(&exec), expected);
    // Under podman's default seccomp profile, as the container's first process is.
    let exec = podman.run(&["exec", &id, "sh", "-c", "grep Seccomp: /proc/self/status"]);
    assert_eq!(
        common::stdout(&exec),
        "Seccomp:\t2\n",
        "{}",
        common::stderr(&exec)
    );
    // -t: a terminal of the container's own devpts, through conmon's console socket.
    let exec = podman.run(&["exec", "-t", &id, "sh", "-c", "tty; exit 2"]);
    assert_eq!(exec.status.code(), Some(2), "{}", common::stderr(&exec));
    assert!(
        common::stdout(&exec).contains("/dev/pts/"),
        "{}",
        common::stdout(&exec)
    );
    // pause freezes the container (processes exec'd into it too), unpause thaws it.
    let paused = podman.run(&["pause", &id]);
    assert!(paused.status.success(), "{}", common::stderr(&paused));
    let state = podman.run(&["inspect", "--format", "{{.State.Status}}", &id]);
    assert_eq!(common::stdout(&state).trim(), "paused");
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    assert!(stat.contains(") S ") || stat.contains(") D "), "{stat}");
    assert_eq!(
        common::cgroup_v1_read(&pid, "freezer", "freezer.state"),
        "FROZEN"
    );
    let resumed = podman.run(&["unpause", &id]);
    assert!(resumed.status.success(), "{}", common::stderr(&resumed));
    assert_eq!(
        common::cgroup_v1_read(&pid, "freezer", "freezer.state"),
        "THAWED"
    );
    let stopped = podman.run(&["stop", "--time", "5", &id]);
    assert!(stopped.status.success(), "{}", common::stderr(&stopped));
    let state = podman.run(&[
        "inspect",
        "--format",
        "{{.State.Status}} {{.State.ExitCode}}",
        &id,
    ]);
    assert_eq!(common::stdout(&state).trim(), "exited 0");
    let removed = podman.run(&["rm", &id]);
    assert!(removed.status.success(), "{}", common::stderr(&removed));

    let mut args = run_args(rootfs, &["-d"]);
    args.extend_from_slice(&["sleep", "60"]);
    let started = podman.run(&args);
    assert!(started.status.success(), "{}", common::stderr(&started));
    let id = common::stdout(&started).trim().to_owned();
    let killed = podman.run(&["kill", &id]);
    assert!(killed.status.success(), "{}", common::stderr(&killed));
    let waited = podman.run(&["wait", &id]);
    // sleep has no handler for SIGKILL... nor SIGTERM: podman kill sends SIGKILL by default.
    assert_eq!(
        common::stdout(&waited).trim(),
        "137",
        "{}",
        common::stderr(&waited)
    );
    let removed = podman.run(&["rm", &id]);
    assert!(removed.status.success(), "{}", common::stderr(&removed));
}

#[test]
fn podman_read_only_and_user_with_dropped_capabilities() {
    privileged!();
    let Some(podman) = Podman::new() else {
        return;
    };
    let bundle = common::runnable_bundle(|_| {});
    let rootfs = bundle.rootfs();
    let rootfs = rootfs.to_str().unwrap();
    let mut args = run_args(rootfs, &["--rm", "--read-only"]);
    args.extend_from_slice(&[
        "sh",
        "-c",
        "touch /x 2>/dev/null && echo wrote-root; touch /tmp/y && echo wrote-tmp; grep ' / ' /proc/self/mounts",
    ]);
    let output = podman.run(&args);
    let stdout = common::stdout(&output);
    assert!(
        output.status.success(),
        "{stdout}{}",
        common::stderr(&output)
    );
    assert!(!stdout.contains("wrote-root"), "{stdout}");
    assert!(stdout.contains("wrote-tmp"), "{stdout}");
    assert!(stdout.lines().last().unwrap().contains(" ro,"), "{stdout}");

    let mut args = run_args(
        rootfs,
        &["--rm", "--user", "1000:1000", "--cap-drop", "ALL"],
    );
    args.extend_from_slice(&[
        "sh",
        "-c",
        "id -u; id -g; grep -E '^Cap(Eff|Prm|Bnd)' /proc/self/status; kill -0 1 && echo can-signal-1",
    ]);
    let output = podman.run(&args);
    let stdout = common::stdout(&output);
    assert!(
        output.status.success(),
        "{stdout}{}",
        common::stderr(&output)
    );
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some("1000"));
    assert_eq!(lines.next(), Some("1000"));
    for set in ["CapPrm", "CapEff", "CapBnd"] {
        assert!(
            stdout.contains(&format!("{set}:\t0000000000000000")),
            "{set}: {stdout}"
        );
    }
    // pid 1 is the shell itself, the same user: signalling it needs no capability.
    assert!(stdout.contains("can-signal-1"), "{stdout}");
}

#[test]
fn podman_seccomp_profiles_are_applied() {
    privileged!();
    let Some(podman) = Podman::new() else {
        return;
    };
    let bundle = common::runnable_bundle(|_| {});
    let rootfs = bundle.rootfs();
    let script = "grep Seccomp /proc/self/status; mkdir /tmp/made; echo mkdir=$?";
    // Podman's default profile: the workload runs under it (mode 2, one filter: the profile's;
    // the sandbox has no accelerators, so no gate), and what it allows works. (It allows
    // everything busybox can call without capabilities the container lacks.)
    let output = podman.run(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--rootfs",
        rootfs.to_str().unwrap(),
        "/bin/sh",
        "-c",
        script,
    ]);
    let (stdout, stderr) = (common::stdout(&output), common::stderr(&output));
    assert_eq!(output.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("Seccomp:\t2"), "{stdout}{stderr}");
    assert!(stdout.contains("Seccomp_filters:\t1"), "{stdout}{stderr}");
    assert!(stdout.contains("mkdir=0"), "{stdout}{stderr}");
    // A profile of the test's own, given to podman: mkdir fails with the errno it names.
    let profile = podman.home.path().join("deny-mkdir.json");
    std::fs::write(
        &profile,
        serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 30}]
        })
        .to_string(),
    )
    .unwrap();
    let output = podman.run(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--security-opt",
        &format!("seccomp={}", profile.display()),
        "--rootfs",
        rootfs.to_str().unwrap(),
        "/bin/sh",
        "-c",
        script,
    ]);
    let (stdout, stderr) = (common::stdout(&output), common::stderr(&output));
    assert_eq!(output.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("mkdir=1"), "{stdout}{stderr}");
    assert!(
        format!("{stdout}{stderr}").contains("Read-only file system"),
        "{stdout}{stderr}"
    );
}
