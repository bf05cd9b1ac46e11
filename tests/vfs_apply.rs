//! `vfs::apply` driven through the recording `Sys`: the calls a plan turns into, in order, and
//! the symlink tricks it must not fall for. Plans come from `boot::compile`, which `vfs` itself
//! never imports.

use std::fs;
use std::os::unix::fs::symlink;

use std::path::{Path, PathBuf};

use accelgate::boot::{BootConfig, Bundle, HostSnapshot, compile};
use accelgate::fixture::{Busybox, write_busybox_rootfs};
use accelgate::pci::HostRoot;
use accelgate::vfs::recording::{Call, RecordingSys};
use accelgate::vfs::{ApplyOptions, NodeType, VfsError, apply};

/// A bundle in a temporary directory with a placeholder busybox rootfs, and its plan on the
/// `cpu-only` fixture host.
fn planned(
    spec_extra: serde_json::Value,
    before: impl FnOnce(&Path),
) -> (tempfile::TempDir, accelgate::plan::SandboxPlan) {
    let dir = tempfile::tempdir().unwrap();
    let rootfs = dir.path().join("rootfs");
    write_busybox_rootfs(&rootfs, Busybox::Placeholder).unwrap();
    fs::create_dir(dir.path().join("data")).unwrap();
    fs::write(dir.path().join("hostname"), "h\n").unwrap();
    before(&rootfs);
    let mut spec = serde_json::json!({
        "ociVersion": "1.0.2",
        "process": {"user": {"uid": 0, "gid": 0}, "args": ["/bin/sh"], "cwd": "/"},
        "root": {"path": "rootfs", "readonly": true},
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/data", "type": "bind", "source": "data", "options": ["rbind", "ro"]},
            {"destination": "/etc/hostname", "type": "bind", "source": "hostname", "options": ["bind"]}
        ],
        "linux": {"devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}],
                  "maskedPaths": ["/proc/kcore"]}
    });
    if let serde_json::Value::Object(extra) = spec_extra {
        for (key, value) in extra {
            spec[key] = value;
        }
    }
    fs::write(dir.path().join("config.json"), spec.to_string()).unwrap();
    let bundle = Bundle::load(dir.path()).unwrap();
    let host = HostRoot::at(Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/sysfs/cpu-only"))
        .unwrap();
    let snapshot = HostSnapshot::read(&host).unwrap();
    let plan = compile(
        &bundle,
        &snapshot,
        &BootConfig {
            container_id: "t".into(),
            ..Default::default()
        },
    )
    .unwrap();
    (dir, plan)
}

fn rootfs(plan: &accelgate::plan::SandboxPlan) -> PathBuf {
    plan.rootfs.path.clone()
}

#[test]
fn applies_a_plan_in_order_through_descriptors() {
    let (_dir, plan) = planned(serde_json::json!({}), |_| {});
    let sys = RecordingSys::new();
    apply(&plan, &sys, &ApplyOptions::default()).unwrap();
    let calls = sys.calls.borrow();
    let root = rootfs(&plan);
    assert_eq!(calls[0], Call::MakeRootRslave);
    assert_eq!(
        calls[1],
        Call::OpenTree {
            path: root.clone(),
            recursive: true,
            follow: true
        }
    );
    assert_eq!(
        calls[2],
        Call::MoveMount {
            from: root.display().to_string(),
            to: root.clone()
        }
    );
    // Every mount lands on its target inside the rootfs, in plan order.
    let targets: Vec<PathBuf> = calls
        .iter()
        .filter_map(|c| match c {
            Call::MoveMount { to, .. } => Some(to.clone()),
            _ => None,
        })
        .skip(1)
        .collect();
    let planned: Vec<PathBuf> = plan
        .mounts
        .iter()
        .map(|m| root.join(m.destination.strip_prefix("/").unwrap()))
        .collect();
    assert_eq!(targets[..planned.len()], planned[..]);
    // The file bind got a file mount point, the directory bind a directory.
    assert!(root.join("etc/hostname").is_file());
    assert!(root.join("data").is_dir());
    // Binds are opened without following a final symlink; rbind is recursive.
    assert!(calls.iter().any(|c| matches!(c, Call::OpenTree { path, recursive: true, follow: false } if path.ends_with("data"))));
    // Nodes are made relative to /dev, chmod'ed and chown'ed.
    assert!(calls.contains(&Call::Mknod {
        path: root.join("dev/null"),
        kind: NodeType::Char,
        mode: 0o666,
        major: 1,
        minor: 3
    }));
    assert!(calls.contains(&Call::Mknod {
        path: root.join("dev/fuse"),
        kind: NodeType::Char,
        mode: 0o666,
        major: 10,
        minor: 229
    }));
    assert!(calls.contains(&Call::Chmod {
        path: root.join("dev/fuse"),
        mode: 0o666
    }));
    assert!(calls.contains(&Call::Symlink {
        path: root.join("dev/ptmx"),
        target: "pts/ptmx".into()
    }));
    let n = calls.len();
    assert_eq!(
        calls[n - 2],
        Call::PivotRoot {
            new_root: root.clone()
        }
    );
    assert_eq!(
        calls[n - 1],
        Call::RemountRootReadonly,
        "a read-only root is made read-only last"
    );
}

#[test]
fn a_dev_symlink_to_a_host_directory_creates_nothing_outside() {
    let canary = tempfile::tempdir().unwrap();
    let target = canary.path().to_path_buf();
    let (_dir, plan) = planned(serde_json::json!({}), |rootfs| {
        symlink(&target, rootfs.join("dev")).unwrap()
    });
    let sys = RecordingSys::new();
    apply(&plan, &sys, &ApplyOptions::default()).unwrap();
    assert_eq!(
        fs::read_dir(canary.path()).unwrap().count(),
        0,
        "nothing in the host directory"
    );
    let root = rootfs(&plan);
    let inside = root.join(target.strip_prefix("/").unwrap());
    assert!(inside.is_dir(), "the link was followed inside the rootfs");
    for call in sys.calls.borrow().iter() {
        if let Call::Mknod { path, .. } | Call::Symlink { path, .. } = call {
            assert!(path.starts_with(&inside), "{path:?} is outside {inside:?}");
        }
    }
}

#[test]
fn mount_destinations_that_are_links_out_stay_inside() {
    let (_dir, plan) = planned(
        serde_json::json!({"mounts": [
            {"destination": "/up", "type": "tmpfs", "source": "t"},
            {"destination": "/abs", "type": "tmpfs", "source": "t"}
        ]}),
        |rootfs| {
            symlink("../../../../..", rootfs.join("up")).unwrap();
            symlink("/", rootfs.join("abs")).unwrap();
        },
    );
    let sys = RecordingSys::new();
    apply(&plan, &sys, &ApplyOptions::default()).unwrap();
    let root = rootfs(&plan);
    for call in sys.calls.borrow().iter() {
        if let Call::MoveMount { to, .. } = call {
            assert!(
                to.starts_with(&root),
                "a mount landed on {to:?}, outside {root:?}"
            );
        }
    }
}

#[test]
fn proc_on_a_symlink_is_refused() {
    let (_dir, plan) = planned(serde_json::json!({}), |rootfs| {
        symlink("etc", rootfs.join("proc")).unwrap()
    });
    let err = apply(&plan, &RecordingSys::new(), &ApplyOptions::default()).unwrap_err();
    assert!(
        matches!(&err, VfsError::Refused { path, .. } if path == Path::new("/proc")),
        "{err}"
    );
}

#[test]
fn a_bind_source_swapped_for_a_symlink_is_refused() {
    let (dir, plan) = planned(serde_json::json!({}), |_| {});
    fs::remove_dir(dir.path().join("data")).unwrap();
    symlink("/etc", dir.path().join("data")).unwrap();
    let err = apply(&plan, &RecordingSys::new(), &ApplyOptions::default()).unwrap_err();
    assert!(err.to_string().contains("data"), "{err}");
}

#[test]
fn without_the_new_mount_api_mounts_use_proc_fd_paths() {
    let (_dir, plan) = planned(serde_json::json!({}), |_| {});
    let mut sys = RecordingSys::new();
    // The rootfs bind takes two calls of the new API (open_tree, move_mount).
    sys.new_mount_api_calls = Some(std::cell::Cell::new(2));
    let root = rootfs(&plan);
    apply(&plan, &sys, &ApplyOptions::default()).unwrap();
    let calls = sys.calls.borrow();
    let legacy: Vec<&Call> = calls
        .iter()
        .filter(|c| matches!(c, Call::LegacyMount { .. }))
        .collect();
    assert!(
        legacy.iter().any(|c| matches!(c, Call::LegacyMount { fs_type, target, .. } if fs_type == "proc" && *target == root.join("proc"))),
        "{legacy:?}"
    );
    let data = legacy
        .iter()
        .position(|c| matches!(c, Call::LegacyMount { target, flags, .. } if *target == root.join("data") && flags & libc::MS_BIND != 0 && flags & libc::MS_REC != 0))
        .expect("the /data bind");
    assert!(
        matches!(legacy[data + 1], Call::LegacyMount { flags, .. } if flags & libc::MS_REMOUNT != 0 && flags & libc::MS_RDONLY != 0),
        "{legacy:?}"
    );
}
