//! OCI bundle to plan: an arbitrary spec (JSON bytes as they come, or a structured spec
//! serialised to `config.json`) against a small host (a committed fixture chosen by a byte, or
//! a synthetic one written by the fixture builder) through `boot::compile`. Whatever compiles
//! must keep the plan's invariants: mounts parents before children, mounts to one destination
//! in spec order, every device node under `/dev`, no path leaving the rootfs, every granted
//! accelerator one the host's discovery found.
#![no_main]

use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;

use accelgate::boot::{
    BootConfig, Bundle, DRIVER_CAPABILITIES, HostSnapshot, MOUNT_HINT_PREFIX, OVERLAY_ANNOTATION,
    ROOTFS_IMAGE_ANNOTATION, TPU_ANNOTATION, VISIBLE_DEVICES, compile,
};
use accelgate::fixture::{SyntheticHost, write_synthetic};
use accelgate::pci::{DevNode, HostRoot};
use accelgate::plan::{MountOrigin, PlannedDevice, SandboxPlan};
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

/// Path components specs use, and the ones that try to leave.
const PARTS: [&str; 16] = [
    "dev", "sys", "proc", "tmp", "pts", "shm", "fs", "cgroup", "..", ".", "", "accel0", "vfio",
    "nvidia0", "mqueue", "bin",
];
const TYPES: [&str; 14] = [
    "proc", "sysfs", "tmpfs", "devpts", "mqueue", "cgroup", "cgroup2", "bind", "overlay", "erofs",
    "fuse", "none", "", "ext4",
];
const OPTIONS: [&str; 16] = [
    "bind",
    "rbind",
    "ro",
    "rw",
    "nosuid",
    "nodev",
    "noexec",
    "rprivate",
    "rshared",
    "mode=755",
    "size=64k",
    "newinstance",
    "ptmxmode=0666",
    "gid=5",
    "strictatime",
    "relatime",
];
/// Bind sources: inside the bundle, absolute, missing.
const SOURCES: [&str; 7] = [
    "rootfs/bin",
    "data",
    "/proc",
    "/nonexistent",
    "tmpfs",
    "proc",
    "",
];
/// Annotation keys that change the plan.
const KEYS: [&str; 4] = [
    TPU_ANNOTATION,
    OVERLAY_ANNOTATION,
    ROOTFS_IMAGE_ANNOTATION,
    "dev.accelgate.x",
];
const VALUES: [&str; 10] = [
    "all", "0", "0,1", "1", "memory", "self", "none", "dir:/tmp", "7", "",
];

#[derive(Debug, Arbitrary)]
enum Part {
    Known(u8),
    Any(String),
}

#[derive(Debug, Arbitrary)]
struct FuzzPath {
    relative: bool,
    parts: Vec<Part>,
}

impl FuzzPath {
    fn text(&self) -> String {
        let parts: Vec<&str> = self
            .parts
            .iter()
            .map(|p| match p {
                Part::Known(i) => PARTS[usize::from(*i) % PARTS.len()],
                Part::Any(s) => s.as_str(),
            })
            .collect();
        let joined = parts.join("/");
        if self.relative {
            joined
        } else {
            format!("/{joined}")
        }
    }
}

fn pick<'a>(list: &[&'a str], i: u8) -> &'a str {
    list[usize::from(i) % list.len()]
}

#[derive(Debug, Arbitrary)]
struct FuzzMount {
    destination: FuzzPath,
    fs_type: u8,
    source: u8,
    options: Vec<u8>,
}

#[derive(Debug, Arbitrary)]
struct FuzzDevice {
    path: FuzzPath,
    kind: u8,
    major: Option<u16>,
    minor: u16,
    mode: Option<u16>,
}

#[derive(Debug, Arbitrary)]
struct FuzzSpec {
    args: Vec<String>,
    cwd: FuzzPath,
    readonly_root: bool,
    mounts: Vec<FuzzMount>,
    devices: Vec<FuzzDevice>,
    annotations: Vec<(u8, u8)>,
    hints: Vec<(String, String)>,
    gpus: Option<(u8, u8)>,
    masked: Vec<FuzzPath>,
    readonly: Vec<FuzzPath>,
    rlimits: Vec<(String, u64, u64)>,
}

impl FuzzSpec {
    /// The spec as `config.json`. Each tmpfs mount carries its spec index in its size, so that
    /// the plan shows the spec order of mounts with one destination.
    fn json(&self) -> Value {
        let mounts: Vec<Value> = self
            .mounts
            .iter()
            .enumerate()
            .map(|(index, m)| {
                let fs_type = pick(&TYPES, m.fs_type);
                let mut options: Vec<String> = m
                    .options
                    .iter()
                    .map(|o| pick(&OPTIONS, *o).to_owned())
                    .collect();
                options.retain(|o| !o.starts_with("size="));
                options.push(format!("size={index}k"));
                json!({
                    "destination": m.destination.text(),
                    "type": fs_type,
                    "source": pick(&SOURCES, m.source),
                    "options": options,
                })
            })
            .collect();
        let devices: Vec<Value> = self
            .devices
            .iter()
            .map(|d| {
                let mut device = json!({
                    "path": d.path.text(),
                    "type": pick(&["c", "b", "u", "p"], d.kind),
                    "minor": d.minor,
                });
                if let Some(major) = d.major {
                    device["major"] = json!(major);
                }
                if let Some(mode) = d.mode {
                    device["fileMode"] = json!(mode);
                }
                device
            })
            .collect();
        let mut annotations = serde_json::Map::new();
        for (key, value) in &self.annotations {
            annotations.insert(pick(&KEYS, *key).to_owned(), json!(pick(&VALUES, *value)));
        }
        for (name, value) in &self.hints {
            annotations.insert(format!("{MOUNT_HINT_PREFIX}{name}"), json!(value));
        }
        let mut env = vec!["PATH=/bin".to_owned()];
        if let Some((visible, caps)) = self.gpus {
            env.push(format!("{VISIBLE_DEVICES}={}", pick(&VALUES, visible)));
            env.push(format!(
                "{DRIVER_CAPABILITIES}={}",
                pick(&["compute,utility", "all", "graphics", ""], caps)
            ));
        }
        let rlimits: Vec<Value> = self
            .rlimits
            .iter()
            .map(|(kind, soft, hard)| json!({"type": kind, "soft": soft, "hard": hard}))
            .collect();
        let args = if self.args.is_empty() {
            vec!["/bin/sh".to_owned()]
        } else {
            self.args.clone()
        };
        json!({
            "ociVersion": "1.0.2",
            "process": {
                "user": {"uid": 0, "gid": 0},
                "args": args,
                "env": env,
                "cwd": self.cwd.text(),
                "rlimits": rlimits,
            },
            "root": {"path": "rootfs", "readonly": self.readonly_root},
            "mounts": mounts,
            "annotations": annotations,
            "linux": {
                "devices": devices,
                "maskedPaths": self.masked.iter().map(FuzzPath::text).collect::<Vec<_>>(),
                "readonlyPaths": self.readonly.iter().map(FuzzPath::text).collect::<Vec<_>>(),
            }
        })
    }
}

#[derive(Debug, Arbitrary)]
enum Input {
    Json(u8, Vec<u8>),
    Structured(u8, Box<FuzzSpec>),
}

struct World {
    hosts: Vec<HostSnapshot>,
    bundle: tempfile::TempDir,
    /// Keeps the synthetic host's tree alive.
    _synthetic: tempfile::TempDir,
}

/// Every committed fixture that discovery reads, and a synthetic host with two TPUs.
fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/sysfs");
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(&fixtures)
            .expect("fixtures/sysfs")
            .flatten()
            .map(|e| e.path())
            .collect();
        dirs.sort();
        let synthetic = tempfile::tempdir().expect("temporary host");
        let root = synthetic.path().join("host");
        write_synthetic(
            &root,
            SyntheticHost {
                functions: 6,
                tpus: 2,
            },
        )
        .expect("synthetic host");
        dirs.push(root);
        let hosts = dirs
            .iter()
            .filter_map(|dir| HostSnapshot::read(&HostRoot::at(dir).ok()?).ok())
            .collect();

        let bundle = tempfile::tempdir().expect("temporary bundle");
        let rootfs = bundle.path().join("rootfs");
        for dir in ["bin", "tmp", "etc"] {
            std::fs::create_dir_all(rootfs.join(dir)).expect("rootfs");
        }
        std::fs::create_dir_all(bundle.path().join("data")).expect("data");
        std::fs::write(rootfs.join("bin/sh"), "").expect("/bin/sh");
        std::fs::set_permissions(
            rootfs.join("bin/sh"),
            std::fs::Permissions::from_mode(0o755),
        )
        .expect("chmod /bin/sh");
        World {
            hosts,
            bundle,
            _synthetic: synthetic,
        }
    })
}

/// A clean absolute path: it names a place inside the rootfs, and cannot climb out of it.
fn inside(path: &Path) -> bool {
    path.is_absolute()
        && path
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
}

fn has_node(devices: &[PlannedDevice], node: &DevNode) -> bool {
    devices.iter().any(|d| {
        d.path == node.path
            && d.kind == node.kind.letter()
            && (d.major, d.minor) == (node.major, node.minor)
    })
}

fn check(plan: &SandboxPlan, host: &HostSnapshot) {
    let mounts = &plan.mounts;
    for (i, mount) in mounts.iter().enumerate() {
        assert!(
            inside(&mount.destination),
            "mount {}",
            mount.destination.display()
        );
        for later in &mounts[i + 1..] {
            assert!(
                !(mount.destination != later.destination
                    && mount.destination.starts_with(&later.destination)),
                "{} mounted before its parent {}",
                mount.destination.display(),
                later.destination.display()
            );
        }
    }
    // Spec mounts to one destination stay in spec order (the tag is the spec index).
    let tag = |m: &accelgate::plan::PlannedMount| {
        m.data.iter().find_map(|d| {
            d.strip_prefix("size=")?
                .strip_suffix('k')?
                .parse::<usize>()
                .ok()
        })
    };
    for (i, a) in mounts.iter().enumerate() {
        for b in &mounts[i + 1..] {
            if a.origin == MountOrigin::Spec
                && b.origin == MountOrigin::Spec
                && a.destination == b.destination
                && let (Some(x), Some(y)) = (tag(a), tag(b))
            {
                assert!(
                    x < y,
                    "{}: spec mounts {x} and {y} swapped",
                    a.destination.display()
                );
            }
        }
    }
    for device in &plan.devices {
        assert!(
            inside(&device.path)
                && device.path.starts_with("/dev")
                && device.path != Path::new("/dev"),
            "device node {}",
            device.path.display()
        );
    }
    for link in &plan.symlinks {
        assert!(
            inside(&link.path) && link.path.starts_with("/dev") && link.path != Path::new("/dev"),
            "symlink {}",
            link.path.display()
        );
    }
    for path in plan.masked_paths.iter().chain(&plan.readonly_paths) {
        assert!(inside(path), "masked or read-only path {}", path.display());
    }
    assert!(
        inside(&plan.process.cwd),
        "cwd {}",
        plan.process.cwd.display()
    );
    if let Some(executable) = &plan.process.executable {
        assert!(inside(executable), "executable {}", executable.display());
    }
    if let Some(upper) = &plan.rootfs.overlay_upper {
        assert!(inside(upper), "overlay upper {}", upper.display());
    }

    let discovery = &host.discovery;
    for index in &plan.accelerators.tpus {
        let chip = discovery
            .tpus
            .get(*index)
            .unwrap_or_else(|| panic!("TPU {index} not discovered"));
        for node in &chip.nodes {
            assert!(
                has_node(&plan.devices, node),
                "TPU {index}: node {} not granted",
                node.path.display()
            );
        }
    }
    for index in &plan.accelerators.gpus {
        let gpu = discovery
            .gpus
            .get(*index)
            .unwrap_or_else(|| panic!("GPU {index} not discovered"));
        let node = gpu.nodes.first().expect("a granted GPU has a node");
        assert!(
            has_node(&plan.devices, node),
            "GPU {index}: node {} not granted",
            node.path.display()
        );
    }
}

fuzz_target!(|input: Input| {
    let world = world();
    let (host, bytes) = match input {
        Input::Json(host, bytes) => (host, bytes),
        Input::Structured(host, spec) => (host, serde_json::to_vec(&spec.json()).expect("json")),
    };
    let host = &world.hosts[usize::from(host) % world.hosts.len()];
    std::fs::write(world.bundle.path().join("config.json"), &bytes).expect("config.json");
    let Ok(bundle) = Bundle::load(world.bundle.path()) else {
        return;
    };
    let config = BootConfig {
        container_id: "fuzz".into(),
        ..Default::default()
    };
    if let Ok(plan) = compile(&bundle, host, &config) {
        check(&plan, host);
    }
});
