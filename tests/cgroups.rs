//! Privileged: the sandbox's cgroups on this host. The development VM and CI are hybrid (v1
//! controllers, and a cgroup2 hierarchy without controllers at /sys/fs/cgroup/unified): the
//! v1 limits and the unified placement are checked on real containers, and cgroup v2's device
//! program for real in the cgroup2 hierarchy, through the same code a unified host runs
//! (limits in v2's files are unit-tested in `runtime::placement` against a directory tree:
//! this host binds every controller to v1), and so is `pause` on a unified host (cgroup2's
//! `cgroup.freeze`). `accelgate run` runs end to end on a unified view of the host: a private
//! mount namespace with cgroup2 at /sys/fs/cgroup.

#[macro_use]
mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use accelgate::runtime::{Cgroup, CgroupPlan, Hierarchies, Hierarchy, frozen, set_frozen};
use common::oci;
use serde_json::json;

const UNIFIED: &str = "/sys/fs/cgroup/unified";

/// Whether this host has the cgroup2 hierarchy the tests use; under
/// ACCELGATE_REQUIRE_PRIVILEGED=1 its absence fails the test.
fn has_unified() -> bool {
    if Path::new(UNIFIED).join("cgroup.procs").exists() {
        return true;
    }
    if std::env::var_os("ACCELGATE_REQUIRE_PRIVILEGED").is_some_and(|v| v == "1") {
        panic!("{UNIFIED} is not a cgroup2 hierarchy on this host");
    }
    eprintln!("SKIPPED: {UNIFIED} is not a cgroup2 hierarchy on this host");
    false
}

#[test]
fn the_v2_device_program_denies_what_the_plan_did_not_grant() {
    privileged!();
    if !has_unified() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let node = |name: &str, minor: u64| {
        let path = work.path().join(name);
        nix::sys::stat::mknod(
            &path,
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o666),
            nix::sys::stat::makedev(1, minor),
        )
        .unwrap();
        path
    };
    let (mem, null, kmsg) = (node("mem", 1), node("null", 3), node("kmsg", 11));
    // Outside the cgroup, root opens /dev/kmsg's numbers: what the program takes away.
    let control = Command::new("head")
        .args(["-c", "0"])
        .arg(&kmsg)
        .output()
        .unwrap();
    assert!(control.status.success(), "{control:?}");
    // Treated as a unified host whose cgroup2 hierarchy is this one.
    let hierarchies = Hierarchies {
        unified: Some(Hierarchy {
            mount: UNIFIED.into(),
            own: "/".into(),
        }),
        ..Default::default()
    };
    let name = format!("accelgate-test-devices-{}", std::process::id());
    let spec: oci_spec::runtime::Spec = serde_json::from_value(json!({
        "ociVersion": "1.0.2",
        "linux": {"cgroupsPath": format!("/{name}")}
    }))
    .unwrap();
    let null_device = accelgate::plan::PlannedDevice {
        path: "/dev/null".into(),
        kind: 'c',
        major: 1,
        minor: 3,
        mode: 0o666,
        uid: 0,
        gid: 0,
    };
    let plan = CgroupPlan::new(&hierarchies, &spec, &[null_device], "t").unwrap();
    // A helper that opens the nodes once it is in the cgroup.
    let script = format!(
        "read go; for n in {} {} {}; do if head -c 0 $n; then echo $n=open; fi; done",
        null.display(),
        mem.display(),
        kmsg.display()
    );
    let mut helper = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut made = Vec::new();
    let cgroup: PathBuf = Path::new(UNIFIED).join(&name);
    let joined = plan.make(&mut made).map(|join| {
        assert_eq!(join.unified.as_deref(), Some(cgroup.as_path()));
        std::fs::write(cgroup.join("cgroup.procs"), helper.id().to_string()).unwrap();
    });
    let output = joined.map(|()| {
        writeln!(helper.stdin.take().unwrap(), "go").unwrap();
        let mut stdout = String::new();
        for line in BufReader::new(helper.stdout.take().unwrap()).lines() {
            stdout.push_str(&line.unwrap());
            stdout.push('\n');
        }
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut helper.stderr.take().unwrap(), &mut stderr).unwrap();
        (stdout, stderr)
    });
    let _ = helper.kill();
    let _ = helper.wait();
    for cgroup in made {
        cgroup.remove();
    }
    assert!(!cgroup.exists(), "{} is left", cgroup.display());
    let (stdout, stderr) = output.unwrap();
    assert!(
        stdout.contains(&format!("{}=open", null.display())),
        "{stdout}{stderr}"
    );
    assert!(!stdout.contains("mem=open"), "{stdout}{stderr}");
    assert!(!stdout.contains("kmsg=open"), "{stdout}{stderr}");
    assert_eq!(
        stderr.matches("Operation not permitted").count(),
        2,
        "{stderr}"
    );
}

/// Process `pid`'s cgroup in the hierarchy `name` (`""`: cgroup2) from `/proc/PID/cgroup`.
fn cgroup_of(pid: &str, name: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap()
        .lines()
        .find_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, names, path) = (parts.next()?, parts.next()?, parts.next()?);
            (names == name || (!name.is_empty() && names.split(',').any(|n| n == name)))
                .then(|| path.to_owned())
        })
        .unwrap()
}

#[test]
fn cpuset_blkio_and_the_unified_placement_on_a_hybrid_host() {
    privileged!();
    if !has_unified() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let (state, log) = (work.path().join("state"), work.path().join("log"));
    let id = format!("cgroups-{}", std::process::id());
    let path = format!("/accelgate-test-{}/{id}", std::process::id());
    let pid_file = work.path().join("pid");
    // A block device of this machine to throttle.
    let mut disks: Vec<String> = std::fs::read_dir("/sys/dev/block")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    disks.sort();
    let disk = disks.first().expect("a block device").clone();
    let (major, minor) = disk.split_once(':').unwrap();
    let bundle = common::runnable_bundle(|spec| {
        spec["process"]["args"] = json!(["sleep", "60"]);
        spec["linux"]["cgroupsPath"] = json!(path);
        spec["linux"]["resources"] = json!({
            "cpu": {"cpus": "0", "mems": "0"},
            "blockIO": {"throttleReadBpsDevice": [{"major": major.parse::<i64>().unwrap(), "minor": minor.parse::<i64>().unwrap(), "rate": 1048576}]},
            "pids": {"limit": 33}
        });
    });
    let text = || std::fs::read_to_string(&log).unwrap_or_default();
    let created = oci(
        &state,
        &log,
        &[
            "create",
            "--bundle",
            bundle.dir.path().to_str().unwrap(),
            "--pid-file",
            pid_file.to_str().unwrap(),
            &id,
        ],
    );
    assert!(created.status.success(), "{}", text());
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    let read = |controller: &str, file: &str| common::cgroup_v1_read(&pid, controller, file);
    let checks = [
        (cgroup_of(&pid, "cpuset"), path.clone()),
        (read("cpuset", "cpuset.cpus"), "0".to_owned()),
        (read("cpuset", "cpuset.mems"), "0".to_owned()),
        (
            read("blkio", "blkio.throttle.read_bps_device"),
            format!("{disk} 1048576"),
        ),
        (read("pids", "pids.max"), "33".to_owned()),
        // Placed in the controller-less cgroup2 hierarchy too.
        (cgroup_of(&pid, ""), path.clone()),
    ];
    let dirs = [
        common::cgroup_v1_dir(&pid, "cpuset"),
        Path::new(UNIFIED).join(path.trim_start_matches('/')),
    ];
    let deleted = oci(&state, &log, &["delete", "--force", &id]);
    assert!(deleted.status.success(), "{}", text());
    for (found, expected) in checks {
        assert_eq!(found, expected, "{}", text());
    }
    for dir in dirs {
        assert!(!dir.exists(), "{} is left", dir.display());
        // Their parent, made for this container, went too.
        assert!(!dir.parent().unwrap().exists(), "{} is left", dir.display());
    }
}

#[test]
fn cgroup_v2_files_are_refused_by_key_on_v1_controllers() {
    privileged!();
    let bundle = common::runnable_bundle(|spec| {
        spec["linux"]["resources"] = json!({"unified": {"memory.high": "1000000"}});
    });
    let output = common::run_sandbox(bundle.dir.path(), None, &["true"]);
    let stderr = common::stderr(&output);
    assert_eq!(output.status.code(), Some(125), "{stderr}");
    assert!(
        stderr.contains("linux.resources.unified[\"memory.high\"]"),
        "{stderr}"
    );
}

/// A process in a cgroup of the test's, killed and the cgroup removed when dropped.
struct Frozen {
    child: std::process::Child,
    cgroups: Vec<Cgroup>,
}

impl Drop for Frozen {
    fn drop(&mut self) {
        let _ = set_frozen("test", &self.cgroups, false);
        let _ = self.child.kill();
        let _ = self.child.wait();
        for cgroup in self.cgroups.drain(..) {
            cgroup.remove();
        }
    }
}

/// `pause` on a unified host: the freezer is the container's cgroup2 cgroup's `cgroup.freeze`,
/// checked in this hybrid host's cgroup2 hierarchy (which has it, controllers or not).
#[test]
fn cgroup_freeze_pauses_a_cgroup2_cgroup() {
    privileged!();
    if !has_unified() {
        return;
    }
    let name = format!("/accelgate-test-freeze-{}", std::process::id());
    let cgroup = Cgroup::make(Path::new(UNIFIED), Path::new(&name)).unwrap();
    let test = Frozen {
        child: Command::new("sleep").arg("60").spawn().unwrap(),
        cgroups: vec![cgroup],
    };
    std::fs::write(
        test.cgroups[0].path().join("cgroup.procs"),
        test.child.id().to_string(),
    )
    .unwrap();
    let events = |test: &Frozen| {
        std::fs::read_to_string(test.cgroups[0].path().join("cgroup.events")).unwrap()
    };
    assert!(!frozen(&test.cgroups));
    set_frozen("test", &test.cgroups, true).unwrap();
    assert!(frozen(&test.cgroups));
    assert!(events(&test).contains("frozen 1"), "{}", events(&test));
    set_frozen("test", &test.cgroups, false).unwrap();
    assert!(!frozen(&test.cgroups));
    assert!(events(&test).contains("frozen 0"), "{}", events(&test));
    let path = test.cgroups[0].path().to_path_buf();
    drop(test);
    assert!(!path.exists(), "{} is left", path.display());
}

/// A unified host, as a private mount namespace shows one (cgroup2 mounted at /sys/fs/cgroup,
/// the v1 hierarchies gone from view, as crun needs on this host): `accelgate run` finds the
/// unified mode itself, clones the sandbox into a cgroup2 cgroup of its own, attaches the
/// device program (a workload with CAP_MKNOD makes and opens /dev/null's numbers, not
/// /dev/mem's), and removes the cgroup at the end.
#[test]
fn a_unified_host_runs_the_sandbox_in_a_cgroup2_cgroup_under_its_device_program() {
    privileged!();
    if !has_unified() {
        return;
    }
    let bundle = common::runnable_bundle(|spec| {
        for set in ["bounding", "effective", "permitted"] {
            spec["process"]["capabilities"][set] = json!(["CAP_MKNOD"]);
        }
        spec["process"]["args"] = json!([
            "sh",
            "-c",
            "cat /proc/self/cgroup; mknod /dev/made-null c 1 3 && head -c 0 /dev/made-null && echo null=open; \
             mknod /dev/made-mem c 1 1; head -c 0 /dev/made-mem && echo mem=open; true"
        ]);
    });
    let command = format!(
        "umount -R /sys/fs/cgroup 2>/dev/null; mount -t cgroup2 none /sys/fs/cgroup && exec {} run --bundle {}",
        env!("CARGO_BIN_EXE_accelgate"),
        bundle.dir.path().display()
    );
    let output = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &command])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let (stdout, stderr) = (common::stdout(&output), common::stderr(&output));
    assert!(output.status.success(), "{stdout}{stderr}");
    let own = stdout
        .lines()
        .find_map(|l| l.strip_prefix("0::/"))
        .unwrap_or_else(|| panic!("{stdout}"));
    // A cgroup2 cgroup of the sandbox's own, gone now.
    assert!(own.starts_with("accelgate-"), "{stdout}");
    assert!(!Path::new(UNIFIED).join(own).exists(), "{own} is left");
    // CAP_MKNOD works for the numbers the spec allows (the default rules' /dev/null)...
    assert!(stdout.contains("null=open"), "{stdout}{stderr}");
    // ...and the program refuses /dev/mem's, as the v1 device cgroup does on this host.
    assert!(!stdout.contains("mem=open"), "{stdout}{stderr}");
    assert!(
        stderr.contains("mknod: /dev/made-mem: Operation not permitted"),
        "{stderr}"
    );
}
