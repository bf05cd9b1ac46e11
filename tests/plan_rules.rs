//! One test (or table) per plan rule of docs/plan.md, bad input included. Bundles are built
//! in temporary directories; hosts are the committed fixtures.

mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use accelgate::boot::{BootConfig, BootError, Selection};
use accelgate::plan::{MountOrigin, OverlayMode, SandboxPlan, SourceKind};
use common::TempBundle;
use serde_json::{Value, json};

fn mounts(plan: &SandboxPlan) -> Vec<String> {
    plan.mounts
        .iter()
        .map(|m| m.destination.display().to_string())
        .collect()
}

fn mount<'a>(plan: &'a SandboxPlan, destination: &str) -> &'a accelgate::plan::PlannedMount {
    plan.mounts
        .iter()
        .find(|m| m.destination == Path::new(destination))
        .unwrap_or_else(|| panic!("no mount at {destination}"))
}

fn device<'a>(plan: &'a SandboxPlan, path: &str) -> Option<&'a accelgate::plan::PlannedDevice> {
    plan.devices.iter().find(|d| d.path == Path::new(path))
}

fn with_mounts(list: Value) -> impl FnOnce(&mut Value) {
    move |spec| spec["mounts"] = list
}

fn error(bundle: &TempBundle, host: &str) -> String {
    accelgate::pci::error_chain(&bundle.plan(host).expect_err("the plan must fail"))
}

// Rule 1: mandatory mounts.

#[test]
fn mandatory_mounts_are_added_right_after_the_root() {
    let plan = TempBundle::new(with_mounts(
        json!([{"destination": "/data", "type": "tmpfs", "source": "tmpfs"}]),
    ))
    .plan("cpu-only")
    .unwrap();
    assert_eq!(mounts(&plan)[..4], ["/proc", "/sys", "/dev", "/dev/pts"]);
    assert!(
        plan.mounts[..4]
            .iter()
            .all(|m| m.origin == MountOrigin::Mandatory)
    );
    assert_eq!(mount(&plan, "/proc").options, ["nosuid", "noexec", "nodev"]);
    assert!(plan.rules.iter().any(|r| r.contains("/proc: mandatory")));
}

#[test]
fn a_spec_dev_and_dev_pts_keep_their_options_but_get_the_right_types() {
    let plan = TempBundle::new(with_mounts(json!([
        {"destination": "/dev", "type": "bind", "source": "/nonexistent", "options": ["nosuid", "mode=700"]},
        {"destination": "/dev/pts", "type": "tmpfs", "source": "x", "options": ["noexec"]}
    ])))
    .plan("cpu-only");
    // `type: bind` wins for /dev, and then the source must exist.
    assert!(matches!(plan, Err(BootError::HostPath { .. })));
    let plan = TempBundle::new(with_mounts(json!([
        {"destination": "/dev", "type": "devtmpfs", "source": "dev", "options": ["nosuid", "mode=700"]},
        {"destination": "/dev/pts", "type": "tmpfs", "source": "x", "options": ["noexec"]}
    ])))
    .plan("cpu-only")
    .unwrap();
    let dev = mount(&plan, "/dev");
    assert_eq!(
        (dev.fs_type.as_str(), dev.options.clone(), dev.data.clone()),
        ("tmpfs", vec!["nosuid".into()], vec!["mode=700".into()])
    );
    assert_eq!(mount(&plan, "/dev/pts").fs_type, "devpts");
}

#[test]
fn cgroup_mounts_after_the_first_are_dropped() {
    let plan = TempBundle::new(with_mounts(json!([
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["ro"]},
        {"destination": "/cg2", "type": "cgroup2", "source": "cgroup"},
        {"destination": "/cg3", "type": "cgroup", "source": "cgroup"}
    ])))
    .plan("cpu-only")
    .unwrap();
    assert_eq!(
        plan.mounts
            .iter()
            .filter(|m| m.origin == MountOrigin::Cgroup)
            .count(),
        1
    );
    assert!(!mounts(&plan).contains(&"/cg2".to_owned()));
    assert!(
        plan.rules
            .iter()
            .filter(|r| r.contains("a second cgroup mount"))
            .count()
            == 2
    );
}

// Rule 2: destinations.

#[test]
fn destinations_are_cleaned_and_bad_ones_name_the_mount() {
    let plan = TempBundle::new(with_mounts(
        json!([{"destination": "//a/./b//c/../d/", "type": "tmpfs", "source": "t"}]),
    ))
    .plan("cpu-only")
    .unwrap();
    assert!(mounts(&plan).contains(&"/a/b/d".to_owned()));
    for (destination, reason) in [
        ("relative/dir", "not an absolute path"),
        ("/a/../../etc", "climbs above /"),
        ("/", "cannot mount over /"),
    ] {
        let bundle = TempBundle::new(with_mounts(json!([
            {"destination": "/ok", "type": "tmpfs", "source": "t"},
            {"destination": destination, "type": "tmpfs", "source": "t"}
        ])));
        let err = error(&bundle, "cpu-only");
        assert!(
            err.contains("mounts[1].destination") && err.contains(reason),
            "{destination}: {err}"
        );
    }
}

// Rule 3: order.

#[test]
fn mounts_are_ordered_parents_first_and_stably() {
    let plan = TempBundle::new(with_mounts(json!([
        {"destination": "/foo/bar/baz", "type": "tmpfs", "source": "t"},
        {"destination": "/foo/qux-quz", "type": "tmpfs", "source": "t"},
        {"destination": "/foo/qux", "type": "tmpfs", "source": "t"},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "t"},
        {"destination": "/foo", "type": "tmpfs", "source": "t"},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup"},
        {"destination": "/some/very/very/deep/path", "type": "tmpfs", "source": "t"},
        {"destination": "/bbb", "type": "tmpfs", "source": "first"},
        {"destination": "/aaa", "type": "tmpfs", "source": "t"},
        {"destination": "/bbb", "type": "tmpfs", "source": "second"}
    ])))
    .plan("cpu-only")
    .unwrap();
    assert_eq!(
        mounts(&plan),
        [
            "/proc",
            "/sys",
            "/dev",
            "/dev/pts",
            "/dev/shm",
            "/foo",
            "/foo/bar/baz",
            "/foo/qux-quz",
            "/foo/qux",
            "/sys/fs/cgroup",
            "/some/very/very/deep/path",
            "/bbb",
            "/aaa",
            "/bbb",
            "/tmp"
        ]
    );
    let sources: Vec<&str> = plan
        .mounts
        .iter()
        .filter(|m| m.destination == Path::new("/bbb"))
        .map(|m| m.source.as_str())
        .collect();
    assert_eq!(sources, ["first", "second"]);
}

// Rule 4: types and options.

#[test]
fn filesystem_types_and_options() {
    let plan = TempBundle::new(with_mounts(json!([
        {"destination": "/t", "type": "tmpfs", "source": "t", "options": ["ro", "noexec", "nosuid", "mode=1777", "size=64m", "rshared", "weird"]},
        {"destination": "/s", "type": "none", "source": "none"},
        {"destination": "/nine", "type": "9p", "source": "share"},
        {"destination": "/mq", "type": "mqueue", "source": "mqueue", "options": ["noatime", "atime"]},
        {"destination": "/p2", "type": "proc", "source": "proc", "options": ["hidepid=2", "subset=pid"]}
    ])))
    .plan("cpu-only")
    .unwrap();
    let t = mount(&plan, "/t");
    assert_eq!(t.options, ["ro", "noexec", "nosuid"]);
    assert_eq!(t.data, ["mode=1777", "size=64m"]);
    assert_eq!(t.propagation.as_deref(), Some("rshared"));
    assert_eq!(mount(&plan, "/s").fs_type, "sysfs");
    assert!(!mounts(&plan).contains(&"/nine".to_owned()));
    assert!(
        plan.rules
            .iter()
            .any(|r| r.contains("unknown filesystem type \"9p\""))
    );
    assert!(
        plan.rules
            .iter()
            .any(|r| r.contains("\"weird\": unknown mount option"))
    );
    assert!(mount(&plan, "/mq").options.is_empty());
    assert_eq!(mount(&plan, "/p2").data, ["hidepid=2", "subset=pid"]);
}

#[test]
fn bad_mount_options_are_errors_naming_the_mount() {
    for (options, expected) in [
        (
            json!(["size=64m", "color=blue"]),
            "tmpfs does not take \"color\"",
        ),
        (json!(["mode=rwx"]), "tmpfs mode=\"rwx\""),
        (json!(["a=b=c"]), "more than one `=`"),
    ] {
        let bundle = TempBundle::new(with_mounts(
            json!([{"destination": "/t", "type": "tmpfs", "source": "t", "options": options}]),
        ));
        let err = error(&bundle, "cpu-only");
        assert!(
            err.contains("mounts[0].options") && err.contains(expected),
            "{err}"
        );
    }
}

// Rule 5: binds.

#[test]
fn binds_need_a_source_and_record_its_kind() {
    let bundle = TempBundle::new(with_mounts(json!([
        {"destination": "/data", "source": "data", "options": ["rbind", "ro"]},
        {"destination": "/etc/hostname", "type": "bind", "source": "hostname"},
        {"destination": "/any", "type": "ext4", "source": "data", "options": ["bind"]}
    ])));
    fs::create_dir(bundle.dir.path().join("data")).unwrap();
    fs::write(bundle.dir.path().join("hostname"), "h\n").unwrap();
    let plan = bundle.plan("cpu-only").unwrap();
    let data = mount(&plan, "/data");
    assert_eq!(data.fs_type, "bind");
    assert_eq!(
        data.source,
        bundle.dir.path().join("data").display().to_string()
    );
    assert_eq!(
        (data.bind.unwrap().kind, data.bind.unwrap().recursive),
        (SourceKind::Directory, true)
    );
    assert_eq!(
        mount(&plan, "/etc/hostname").bind.unwrap().kind,
        SourceKind::File
    );
    assert_eq!(mount(&plan, "/any").fs_type, "bind");

    let missing = TempBundle::new(with_mounts(
        json!([{"destination": "/x", "type": "bind", "source": "/no/such/dir"}]),
    ));
    let err = error(&missing, "cpu-only");
    assert!(
        err.contains("bind source of /x") && err.contains("/no/such/dir"),
        "{err}"
    );
}

// Rule 6: /tmp.

#[test]
fn tmp_gets_a_tmpfs_only_when_that_hides_nothing() {
    type Setup = fn(&Path);
    let cases: [(&str, Setup, Value, bool); 7] = [
        ("empty /tmp", |_| {}, json!([]), true),
        (
            "no /tmp",
            |r| fs::remove_dir(r.join("tmp")).unwrap(),
            json!([]),
            true,
        ),
        (
            "/tmp with a file",
            |r| fs::write(r.join("tmp/keep"), "x").unwrap(),
            json!([]),
            false,
        ),
        (
            "/tmp a file",
            |r| {
                fs::remove_dir(r.join("tmp")).unwrap();
                fs::write(r.join("tmp"), "x").unwrap()
            },
            json!([]),
            false,
        ),
        (
            "/tmp a symlink",
            |r| {
                fs::remove_dir(r.join("tmp")).unwrap();
                symlink("/var/tmp", r.join("tmp")).unwrap()
            },
            json!([]),
            false,
        ),
        (
            "a submount under /tmp",
            |_| {},
            json!([{"destination": "/tmp/cache", "type": "tmpfs", "source": "t"}]),
            false,
        ),
        (
            "an explicit /tmp mount",
            |_| {},
            json!([{"destination": "/tmp", "type": "tmpfs", "source": "mine"}]),
            false,
        ),
    ];
    for (name, setup, list, internal) in cases {
        let bundle = TempBundle::new(with_mounts(list));
        setup(&bundle.rootfs());
        let plan = bundle.plan("cpu-only").unwrap();
        let tmp = plan.mounts.iter().find(|m| m.origin == MountOrigin::Tmp);
        assert_eq!(tmp.is_some(), internal, "{name}");
        if let Some(tmp) = tmp {
            assert_eq!(
                (tmp.fs_type.as_str(), tmp.data.clone()),
                ("tmpfs", vec!["mode=01777".to_owned()]),
                "{name}"
            );
        }
    }
}

// Rule 7: cgroups.

#[test]
fn a_cgroup_mount_follows_the_host_layout() {
    let bundle = TempBundle::new(|spec| {
        spec["mounts"] = json!([{"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["ro"]}]);
        spec["linux"]["cgroupsPath"] = json!("/pods/p1/c1");
    });
    let unified = bundle.plan("cpu-only").unwrap();
    assert_eq!(mount(&unified, "/sys/fs/cgroup").fs_type, "cgroup2");

    // A v1 host: a fixture copy whose /sys/fs/cgroup has controller directories.
    let host = tempfile::tempdir().unwrap();
    accelgate::fixture::scenario("cpu-only")
        .unwrap()
        .write(host.path())
        .unwrap();
    fs::remove_file(host.path().join("sys/fs/cgroup/cgroup.controllers")).unwrap();
    for controller in ["cpu,cpuacct", "memory", "unified"] {
        fs::create_dir(host.path().join("sys/fs/cgroup").join(controller)).unwrap();
    }
    // The spec's cgroup exists under memory only; elsewhere the inherited one (`/`) is shown.
    fs::create_dir_all(host.path().join("sys/fs/cgroup/memory/pods/p1/c1")).unwrap();
    let bundle_dir = accelgate::boot::Bundle::load(bundle.dir.path()).unwrap();
    let snapshot =
        accelgate::boot::HostSnapshot::read(&accelgate::pci::HostRoot::at(host.path()).unwrap())
            .unwrap();
    let plan = accelgate::boot::compile(
        &bundle_dir,
        &snapshot,
        &BootConfig {
            container_id: "c1".into(),
            ..Default::default()
        },
    )
    .unwrap();
    let cgroup: Vec<_> = plan
        .mounts
        .iter()
        .filter(|m| m.origin == MountOrigin::Cgroup)
        .collect();
    assert_eq!(
        cgroup.len(),
        3,
        "a tmpfs and two controllers (not `unified`)"
    );
    assert_eq!(cgroup[0].fs_type, "tmpfs");
    assert!(
        cgroup[2]
            .source
            .ends_with("sys/fs/cgroup/memory/pods/p1/c1"),
        "{}",
        cgroup[2].source
    );
    assert!(
        cgroup[1].source.ends_with("sys/fs/cgroup/cpu,cpuacct/"),
        "{}",
        cgroup[1].source
    );
}

// Rule 8: pod mount hints.

fn hinted(options: &str, mount_options: Value) -> TempBundle {
    TempBundle::new(move |spec| {
        spec["annotations"] = json!({
            "dev.gvisor.spec.mount.cache.source": "/var/lib/kubelet/pods/p/volumes/cache",
            "dev.gvisor.spec.mount.cache.type": "tmpfs",
            "dev.gvisor.spec.mount.cache.share": "pod",
            "dev.gvisor.spec.mount.cache.options": options
        });
        spec["mounts"] = json!([
            {"destination": "/cache", "type": "bind", "source": "/var/lib/kubelet/pods/p/volumes/cache", "options": mount_options},
            {"destination": "/cache2", "type": "bind", "source": "/var/lib/kubelet/pods/p/volumes/cache", "options": ["ro", "noexec"]}
        ]);
    })
}

#[test]
fn pod_volumes_are_recorded_once_and_checked_against_the_master() {
    let plan = hinted("rw,noexec", json!(["rbind", "noexec"]))
        .plan("cpu-only")
        .unwrap();
    assert_eq!(plan.volumes.len(), 1);
    assert_eq!(
        (
            plan.volumes[0].name.as_str(),
            plan.volumes[0].share.as_str()
        ),
        ("cache", "pod")
    );
    for destination in ["/cache", "/cache2"] {
        let m = mount(&plan, destination);
        assert_eq!(
            (m.fs_type.as_str(), m.volume.as_deref()),
            ("tmpfs", Some("cache")),
            "{destination}"
        );
    }
    let err = error(&hinted("ro", json!(["rbind"])), "cpu-only");
    assert!(
        err.contains("mounts[/cache].options") && err.contains("read-write"),
        "{err}"
    );
}

// Rule 9: devices.

#[test]
fn devices_defaults_symlinks_and_overrides() {
    let plan = TempBundle::new(|spec| {
        spec["linux"]["devices"] = json!([
            {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229},
            {"path": "/dev/sdb", "type": "b", "major": 8, "minor": 16, "fileMode": 432, "uid": 6, "gid": 7},
            {"path": "/dev/tun0", "type": "u", "major": 10, "minor": 200},
            {"path": "/dev/fifo", "type": "p", "major": 0, "minor": 0},
            {"path": "/dev/tty", "type": "c", "major": 5, "minor": 0, "fileMode": 384}
        ]);
    })
    .plan("cpu-only")
    .unwrap();
    for name in ["null", "zero", "full", "random", "urandom"] {
        assert_eq!(
            device(&plan, &format!("/dev/{name}")).unwrap().mode,
            0o666,
            "{name}"
        );
    }
    assert_eq!(device(&plan, "/dev/fuse").unwrap().mode, 0o666);
    let sdb = device(&plan, "/dev/sdb").unwrap();
    assert_eq!((sdb.kind, sdb.mode, sdb.uid, sdb.gid), ('b', 0o660, 6, 7));
    assert_eq!(device(&plan, "/dev/tun0").unwrap().kind, 'c');
    assert_eq!(device(&plan, "/dev/fifo").unwrap().kind, 'p');
    assert_eq!(
        device(&plan, "/dev/tty").unwrap().mode,
        0o600,
        "the spec's tty replaces the default"
    );
    assert_eq!(
        plan.devices
            .iter()
            .filter(|d| d.path == Path::new("/dev/tty"))
            .count(),
        1
    );
    let links: Vec<(String, String)> = plan
        .symlinks
        .iter()
        .map(|l| (l.path.display().to_string(), l.target.display().to_string()))
        .collect();
    assert!(links.contains(&("/dev/fd".into(), "/proc/self/fd".into())));
    assert!(links.contains(&("/dev/stderr".into(), "/proc/self/fd/2".into())));
    assert!(links.contains(&("/dev/ptmx".into(), "pts/ptmx".into())));
    assert!(
        !links.iter().any(|(p, _)| p == "/dev/core"),
        "fixture hosts have no /proc/kcore"
    );
}

#[test]
fn an_invalid_device_type_names_the_path() {
    let bundle = TempBundle::new(|spec| {
        spec["linux"]["devices"] =
            json!([{"path": "/dev/weird", "type": "x", "major": 1, "minor": 1}]);
    });
    let err = error(&bundle, "cpu-only");
    assert!(
        err.contains("linux.devices[0].type") && err.contains("/dev/weird"),
        "{err}"
    );
}

// Rule 10: GPUs.

fn gpu_bundle(env: &[&str], hooks: Value, devices: Value) -> TempBundle {
    let env: Vec<String> = env.iter().map(|e| (*e).to_owned()).collect();
    TempBundle::new(move |spec| {
        let mut list = vec![json!("PATH=/bin")];
        list.extend(env.into_iter().map(Value::String));
        spec["process"]["env"] = Value::Array(list);
        spec["hooks"] = hooks;
        spec["linux"]["devices"] = devices;
    })
}

fn legacy_hook() -> Value {
    json!({"prestart": [{"path": "/usr/bin/nvidia-container-runtime-hook"}]})
}

#[test]
fn the_legacy_hook_with_visible_devices_asks_for_those_gpus() {
    let plan = gpu_bundle(&["NVIDIA_VISIBLE_DEVICES=1,3"], legacy_hook(), json!([]))
        .plan("nvidia-h100x8")
        .unwrap();
    assert_eq!(plan.accelerators.gpus, [1, 3]);
    assert_eq!(
        plan.accelerators.driver_capabilities,
        ["compute", "utility"]
    );
    // GPU 1 is 0000:43:00.0 with minor 3; GPU 3 is 0000:61:00.0 with minor 1.
    assert!(device(&plan, "/dev/nvidia3").is_some() && device(&plan, "/dev/nvidia1").is_some());
    for other in [0, 2, 4, 5, 6, 7] {
        assert!(
            device(&plan, &format!("/dev/nvidia{other}")).is_none(),
            "only the selected GPUs: {other}"
        );
    }
    assert_eq!(
        device(&plan, "/dev/nvidiactl").map(|d| (d.major, d.minor)),
        Some((195, 255))
    );
    assert_eq!(
        device(&plan, "/dev/nvidia-uvm").map(|d| (d.major, d.minor)),
        Some((510, 0))
    );
    assert!(
        device(&plan, "/dev/nvidia-uvm-tools").is_none(),
        "uvm-tools only when asked"
    );
    assert_eq!(plan.env, ["NVIDIA_VISIBLE_DEVICES=1,3"]);
}

#[test]
fn gpu_request_variants() {
    let cdi = json!({"createContainer": [{"path": "/usr/bin/nvidia-cdi-hook"}]});
    // (env, hooks, the GPUs granted; None when GPUs are not requested)
    type Case<'a> = (Vec<&'a str>, Value, Option<Vec<usize>>);
    let cases: [Case; 7] = [
        (
            vec!["NVIDIA_VISIBLE_DEVICES=all"],
            legacy_hook(),
            Some((0..8).collect()),
        ),
        (
            vec!["NVIDIA_VISIBLE_DEVICES=none"],
            legacy_hook(),
            Some(vec![]),
        ),
        (vec!["NVIDIA_VISIBLE_DEVICES=void"], legacy_hook(), None),
        (vec!["NVIDIA_VISIBLE_DEVICES="], legacy_hook(), None),
        (vec![], legacy_hook(), None),
        (
            vec!["NVIDIA_VISIBLE_DEVICES=2", "NVIDIA_VISIBLE_DEVICES=void"],
            cdi.clone(),
            Some(vec![2]),
        ),
        (vec!["NVIDIA_VISIBLE_DEVICES=4"], json!({}), None),
    ];
    for (env, hooks, expected) in cases {
        let plan = gpu_bundle(&env, hooks, json!([]))
            .plan("nvidia-h100x8")
            .unwrap();
        let got = (!plan.accelerators.driver_capabilities.is_empty())
            .then(|| plan.accelerators.gpus.clone());
        assert_eq!(got, expected, "{env:?}");
    }
}

#[test]
fn asking_for_a_gpu_the_host_lacks_names_it() {
    let err = error(
        &gpu_bundle(&["NVIDIA_VISIBLE_DEVICES=9"], legacy_hook(), json!([])),
        "nvidia-h100x8",
    );
    assert!(
        err.contains("NVIDIA_VISIBLE_DEVICES=9") && err.contains("GPU 9"),
        "{err}"
    );
    let err = error(
        &gpu_bundle(&["NVIDIA_VISIBLE_DEVICES=0"], legacy_hook(), json!([])),
        "tpu-v5e-8",
    );
    assert!(err.contains("NVIDIA driver"), "{err}");
    let err = error(
        &gpu_bundle(
            &["NVIDIA_VISIBLE_DEVICES=MIG-5c1e3b2a-1111"],
            legacy_hook(),
            json!([]),
        ),
        "nvidia-h100x8",
    );
    assert!(err.contains("MIG devices are not supported"), "{err}");
    let err = error(
        &gpu_bundle(
            &[
                "NVIDIA_VISIBLE_DEVICES=0",
                "NVIDIA_DRIVER_CAPABILITIES=compute,warp",
            ],
            legacy_hook(),
            json!([]),
        ),
        "nvidia-h100x8",
    );
    assert!(err.contains("\"warp\""), "{err}");
}

#[test]
fn a_stale_uvm_major_in_the_spec_is_replaced_and_logged() {
    let plan = gpu_bundle(
        &[],
        json!({}),
        json!([
            {"path": "/dev/nvidiactl", "type": "c", "major": 195, "minor": 255},
            {"path": "/dev/nvidia-uvm", "type": "c", "major": 235, "minor": 0},
            {"path": "/dev/nvidia-uvm-tools", "type": "c", "major": 235, "minor": 1}
        ]),
    )
    .plan("nvidia-h100x8")
    .unwrap();
    assert_eq!(device(&plan, "/dev/nvidia-uvm").map(|d| d.major), Some(510));
    assert_eq!(
        device(&plan, "/dev/nvidia-uvm-tools").map(|d| d.major),
        Some(510)
    );
    assert!(
        plan.rules
            .iter()
            .any(|r| r.contains("/dev/nvidia-uvm: the spec's 235:0 replaced by 510:0")),
        "{:#?}",
        plan.rules
    );
    assert!(
        plan.accelerators.gpus.is_empty(),
        "nvidiactl alone is the driver without GPUs"
    );
}

// Rule 11: TPUs.

#[test]
fn tpus_by_annotation_flag_or_device() {
    let annotated =
        TempBundle::new(|spec| spec["annotations"] = json!({"dev.accelgate.tpu": "all"}));
    let plan = annotated.plan("tpu-v4-8").unwrap();
    assert_eq!(plan.accelerators.tpus, [0, 1, 2, 3]);
    for i in 0..4 {
        assert_eq!(
            device(&plan, &format!("/dev/accel{i}")).map(|d| (d.major, d.minor)),
            Some((121, i))
        );
    }
    assert!(
        plan.rlimits
            .iter()
            .any(|r| r.kind == "RLIMIT_MEMLOCK" && r.soft == u64::MAX && r.hard == u64::MAX)
    );
    assert_eq!(
        plan.mounts
            .iter()
            .filter(|m| m.origin == MountOrigin::Tpu)
            .count(),
        4
    );

    let flagged = TempBundle::new(|_| {});
    let config = BootConfig {
        container_id: "t".into(),
        tpus: Some(Selection::Indices(vec![1, 6])),
        ..Default::default()
    };
    let plan = flagged.plan_with("tpu-v5e-8", config).unwrap();
    assert_eq!(plan.accelerators.tpus, [1, 6]);
    assert_eq!(
        device(&plan, "/dev/vfio/1").map(|d| (d.major, d.minor)),
        Some((245, 7))
    );
    assert_eq!(
        device(&plan, "/dev/vfio/6").map(|d| (d.major, d.minor)),
        Some((245, 1))
    );
    assert!(device(&plan, "/dev/vfio/vfio").is_some());
    assert!(device(&plan, "/dev/vfio/0").is_none());
    assert!(mounts(&plan).contains(&"/sys/kernel/iommu_groups/6".to_owned()));

    let by_device = TempBundle::new(|spec| {
        spec["linux"]["devices"] =
            json!([{"path": "/dev/vfio/2", "type": "c", "major": 511, "minor": 2}]);
        spec["process"]["env"] = json!(["PATH=/bin", "TPU_WORKER_ID=0"]);
    });
    let plan = by_device.plan("tpu-v5e-8").unwrap();
    assert_eq!(plan.accelerators.tpus, [2]);
    assert_eq!(
        device(&plan, "/dev/vfio/2").map(|d| (d.major, d.minor)),
        Some((245, 5)),
        "host numbers replace the spec's"
    );
}

#[test]
fn tpu_requests_the_host_cannot_meet_are_refused() {
    let err = error(
        &TempBundle::new(|spec| spec["annotations"] = json!({"dev.accelgate.tpu": "0,8"})),
        "tpu-v5e-8",
    );
    assert!(
        err.contains("dev.accelgate.tpu=0,8") && err.contains("chip 8"),
        "{err}"
    );
    let err = error(
        &TempBundle::new(|spec| spec["annotations"] = json!({"dev.accelgate.tpu": "all"})),
        "cpu-only",
    );
    assert!(err.contains("TPU chips"), "{err}");
    let bluefield = TempBundle::new(|spec| {
        spec["linux"]["devices"] =
            json!([{"path": "/dev/vfio/96", "type": "c", "major": 245, "minor": 4}]);
    });
    let err = error(&bluefield, "mixed");
    assert!(
        err.contains("IOMMU group 96 holds no Google TPU") && err.contains("15b3:c2d5"),
        "{err}"
    );
    let err = error(
        &TempBundle::new(|spec| {
            spec["linux"]["devices"] =
                json!([{"path": "/dev/accel7", "type": "c", "major": 121, "minor": 7}]);
        }),
        "tpu-v4-8",
    );
    assert!(
        err.contains("/dev/accel7") && err.contains("accel7"),
        "{err}"
    );
}

// Rule 12: the executable.

#[test]
fn the_executable_is_resolved_inside_the_rootfs() {
    let bundle = TempBundle::new(|spec| {
        spec["process"]["args"] = json!(["tool", "--flag"]);
        spec["process"]["env"] = json!(["PATH=/opt/none:/usr/local/bin:/bin"]);
    });
    let rootfs = bundle.rootfs();
    fs::create_dir_all(rootfs.join("usr/local/bin")).unwrap();
    fs::write(rootfs.join("usr/local/bin/tool"), "").unwrap();
    fs::set_permissions(
        rootfs.join("usr/local/bin/tool"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    assert_eq!(
        bundle.plan("cpu-only").unwrap().process.executable,
        Some(PathBuf::from("/usr/local/bin/tool"))
    );

    // A relative name with a slash is taken from cwd; a symlink climbing out stays inside.
    let bundle = TempBundle::new(|spec| {
        spec["process"]["args"] = json!(["./run"]);
        spec["process"]["cwd"] = json!("/bin");
    });
    symlink("../../../../bin/sh", bundle.rootfs().join("bin/run")).unwrap();
    assert_eq!(
        bundle.plan("cpu-only").unwrap().process.executable,
        Some(PathBuf::from("/bin/run"))
    );
}

#[test]
fn a_missing_or_non_executable_program_is_an_error() {
    let missing = TempBundle::new(|spec| spec["process"]["args"] = json!(["nosuch"]));
    assert!(error(&missing, "cpu-only").contains("not found on PATH=/usr/bin:/bin"));
    let plain = TempBundle::new(|spec| spec["process"]["args"] = json!(["/data.txt"]));
    fs::write(plain.rootfs().join("data.txt"), "x").unwrap();
    assert!(error(&plain, "cpu-only").contains("/data.txt is not executable"));
    // A host binary reached through an absolute symlink is not in the container.
    let escape = TempBundle::new(|spec| spec["process"]["args"] = json!(["/bin/host-true"]));
    symlink("/bin/true", escape.rootfs().join("bin/host-true")).unwrap();
    assert!(error(&escape, "cpu-only").contains("does not exist in the container"));
    let empty = TempBundle::new(|spec| spec["process"]["args"] = json!([]));
    assert!(error(&empty, "cpu-only").contains("process.args"));
}

#[test]
fn an_executable_can_come_from_a_bind_mount() {
    let bundle = TempBundle::new(|spec| {
        spec["process"]["args"] = json!(["/opt/tools/run"]);
        spec["mounts"] = json!([{"destination": "/opt/tools", "type": "bind", "source": "tools"}]);
    });
    fs::create_dir(bundle.dir.path().join("tools")).unwrap();
    fs::write(bundle.dir.path().join("tools/run"), "").unwrap();
    fs::set_permissions(
        bundle.dir.path().join("tools/run"),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    assert_eq!(
        bundle.plan("cpu-only").unwrap().process.executable,
        Some(PathBuf::from("/opt/tools/run"))
    );
}

// Rule 13: read-only root; overlays.

#[test]
fn a_read_only_root_is_made_read_only_last() {
    let plan = TempBundle::new(|spec| spec["root"]["readonly"] = json!(true))
        .plan("cpu-only")
        .unwrap();
    assert!(plan.rootfs.readonly && plan.rootfs.remount_readonly_after_setup);
    let config = BootConfig {
        container_id: "c9".into(),
        overlay: Some(OverlayMode::SelfBacked),
        ..Default::default()
    };
    let plan = TempBundle::new(|_| {})
        .plan_with("cpu-only", config)
        .unwrap();
    assert_eq!(plan.rootfs.overlay, OverlayMode::SelfBacked);
    assert!(
        plan.rootfs
            .overlay_upper
            .unwrap()
            .ends_with(".accelgate-overlay.c9")
    );
    let err = error(
        &TempBundle::new(|spec| spec["annotations"] = json!({"dev.accelgate.overlay": "disk"})),
        "cpu-only",
    );
    assert!(err.contains("dev.accelgate.overlay"), "{err}");
}

#[test]
fn an_erofs_image_rootfs_defers_what_needs_the_mounted_image() {
    let bundle = TempBundle::new(|spec| spec["process"]["args"] = json!(["/bin/app"]));
    let image = bundle.dir.path().join("rootfs.erofs");
    fs::write(&image, b"\xe2\xe1\xf5\xe0").unwrap();
    let config = BootConfig {
        container_id: "e".into(),
        rootfs_image: Some(image.clone()),
        ..Default::default()
    };
    let plan = bundle.plan_with("cpu-only", config).unwrap();
    assert_eq!(plan.rootfs.image, Some(image));
    assert_eq!(plan.process.executable, None);
    assert!(plan.mounts.iter().all(|m| m.origin != MountOrigin::Tmp));
}

// Rule 14: least privilege.

#[test]
fn nothing_is_granted_that_was_not_asked_for() {
    for host in ["tpu-v5e-8", "tpu-v4-8", "nvidia-h100x8", "tpu7x", "mixed"] {
        let plan = TempBundle::new(|_| {}).plan(host).unwrap();
        assert!(
            plan.accelerators.gpus.is_empty() && plan.accelerators.tpus.is_empty(),
            "{host}"
        );
        let paths: Vec<String> = plan
            .devices
            .iter()
            .map(|d| d.path.display().to_string())
            .collect();
        assert_eq!(
            paths,
            [
                "/dev/null",
                "/dev/zero",
                "/dev/full",
                "/dev/random",
                "/dev/urandom",
                "/dev/tty"
            ],
            "{host}"
        );
        assert!(
            plan.mounts.iter().all(|m| m.origin != MountOrigin::Tpu),
            "{host}"
        );
        assert!(plan.rlimits.is_empty() && plan.env.is_empty(), "{host}");
    }
}

#[test]
fn unknown_accelgate_annotations_are_errors() {
    let err = error(
        &TempBundle::new(|spec| spec["annotations"] = json!({"dev.accelgate.tpus": "all"})),
        "cpu-only",
    );
    assert!(
        err.contains("dev.accelgate.tpus") && err.contains("unknown annotation"),
        "{err}"
    );
}
