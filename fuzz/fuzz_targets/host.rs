//! Discovery of arbitrary hosts: sysfs and procfs trees written by the fixture builder (PCI
//! functions, TPU and NVIDIA pieces, then odd attribute text, huge values, missing files,
//! symlink loops and links that climb out of the root or point at a canary tree next to it).
//! Discovery must not panic, must name only places inside the host (`/sys`, `/proc`, `/dev`
//! or the host's own `dev.list`: a path outside the root in what it reports means it read
//! there), and must report every `/sys/bus/pci/devices` entry it skipped.
#![no_main]

use std::path::{Component, Path, PathBuf};

use accelgate::discovery::discover;
use accelgate::fixture::{HostBuilder, PciFunction};
use accelgate::pci::{Bdf, HostRoot, NodeKind};
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

/// sysfs path components discovery looks at.
const PARTS: [&str; 32] = [
    "bus",
    "pci",
    "devices",
    "drivers",
    "class",
    "accel",
    "vfio",
    "dev",
    "char",
    "kernel",
    "iommu_groups",
    "0000:00:04.0",
    "vendor",
    "device",
    "numa_node",
    "driver",
    "iommu_group",
    "pci0000:00",
    "accel0",
    "subsystem",
    "module",
    "nvidia",
    "version",
    "virtual",
    "misc",
    "physfn",
    "virtfn0",
    "vfio-dev",
    "vfio0",
    "0",
    "vfio-pci",
    "accel_type",
];
/// Attribute text discovery expects, and near misses.
const TEXTS: [&str; 16] = [
    "0x1ae0\n",
    "0x10de\n",
    "0x0063\n",
    "0x005e\n",
    "0x2330\n",
    "0x120000\n",
    "0x030200\n",
    "-1\n",
    "121:0\n",
    "245:0\n",
    "tpu_common\n",
    "0x\n",
    "99999999999999999999\n",
    "1:\n",
    "\u{feff}0x1ae0",
    "",
];
const DRIVERS: [&str; 5] = ["vfio-pci", "accel", "nvidia", "pcieport", "nvme"];
const VENDORS: [u16; 4] = [0x1ae0, 0x10de, 0x8086, 0x144d];
const DEVICES: [u16; 6] = [0x0063, 0x005e, 0x0027, 0x006f, 0x2330, 0x0075];
const CLASSES: [u32; 4] = [0x120000, 0x030200, 0x060400, 0x010802];

#[derive(Debug, Arbitrary)]
enum Part {
    Known(u8),
    Any(String),
}

/// A path relative to `sys/` (or `proc/`), of clean components only: the builder writes where
/// it is told, and the fuzzer must not make it write outside its temporary directory.
#[derive(Debug, Arbitrary)]
struct Rel(Vec<Part>);

impl Rel {
    fn path(&self) -> Option<PathBuf> {
        let mut path = PathBuf::new();
        for part in &self.0 {
            let name = match part {
                Part::Known(i) => PARTS[usize::from(*i) % PARTS.len()],
                Part::Any(s) => s.as_str(),
            };
            let clean = !name.is_empty()
                && !name.contains(['/', '\0'])
                && matches!(
                    Path::new(name).components().next(),
                    Some(Component::Normal(_))
                );
            if !clean {
                return None;
            }
            path.push(name);
        }
        (path.components().count() > 0).then_some(path)
    }
}

#[derive(Debug, Arbitrary)]
enum Text {
    Known(u8),
    Bytes(Vec<u8>),
    Number(u64, bool),
    /// A value far beyond an attribute's size.
    Huge(u8, u16),
}

impl Text {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Self::Known(i) => TEXTS[usize::from(*i) % TEXTS.len()].as_bytes().to_vec(),
            Self::Bytes(b) => b.clone(),
            Self::Number(n, hex) if *hex => format!("{n:#x}\n").into_bytes(),
            Self::Number(n, _) => format!("{n}\n").into_bytes(),
            Self::Huge(byte, kib) => vec![*byte; (usize::from(*kib) % 96 + 1) * 1024],
        }
    }
}

#[derive(Debug, Arbitrary)]
enum Target {
    /// Relative, climbing `ups` levels first.
    Relative(u8, Rel),
    /// The canary tree next to the host, absolute.
    Canary,
    /// The canary through `..`s.
    ClimbToCanary(u8),
    /// Itself.
    Loop,
    Raw(String),
}

#[derive(Debug, Arbitrary)]
enum Op {
    Pci {
        domain: u8,
        bus: u8,
        slot: u8,
        vendor: u8,
        device: u8,
        class: u8,
        driver: Option<u8>,
        group: Option<u8>,
        parent: Option<u8>,
        numa: i8,
    },
    Accel {
        function: u8,
        index: u8,
        major: u16,
        minor: u8,
    },
    VfioContainer,
    VfioGroup {
        group: u8,
        major: u16,
        minor: u8,
    },
    VfioDev {
        function: u8,
        index: u8,
        major: u16,
    },
    NvidiaDriver {
        nvrm: String,
        version: String,
    },
    NvidiaGpu {
        function: u8,
        model: String,
        uuid: String,
        minor: u8,
    },
    CharMajor {
        major: u16,
        name: String,
    },
    Node {
        path: String,
        block: bool,
        major: u16,
        minor: u16,
        mode: u16,
    },
    RemoveNode(String),
    Write(Rel, Text),
    WriteProc(Rel, Text),
    Link(Rel, Target),
    Remove(Rel),
}

/// Whether `rel` can be written under `base` without following a link: no component of it
/// that exists already is a symlink (which could lead anywhere).
fn unlinked(base: &Path, rel: &Path) -> bool {
    let mut at = base.to_path_buf();
    rel.components().all(|c| {
        at.push(c);
        !std::fs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_symlink())
    })
}

/// Runs `ops` on a builder: the builder's own pieces first, then raw files and links, each
/// only where it writes inside the host.
fn build(root: &Path, canary: &Path, ops: &[Op]) -> std::io::Result<Vec<Bdf>> {
    let mut b = HostBuilder::new(root)?;
    let mut functions: Vec<Bdf> = Vec::new();
    let function = |functions: &[Bdf], i: u8| {
        functions
            .get(usize::from(i) % functions.len().max(1))
            .copied()
    };
    for op in ops {
        // Errors of one op (a missing parent, a clash) leave the host as it is.
        let _ = match op {
            Op::Pci {
                domain,
                bus,
                slot,
                vendor,
                device,
                class,
                driver,
                group,
                parent,
                numa,
            } => {
                let Some(bdf) = Bdf::new(u32::from(*domain % 4), *bus, slot % 32, slot / 32) else {
                    continue;
                };
                let mut f = PciFunction::new(
                    bdf,
                    VENDORS[usize::from(*vendor) % VENDORS.len()],
                    DEVICES[usize::from(*device) % DEVICES.len()],
                    CLASSES[usize::from(*class) % CLASSES.len()],
                )
                .numa(i32::from(*numa));
                if let Some(d) = driver {
                    f = f.driver(DRIVERS[usize::from(*d) % DRIVERS.len()]);
                }
                if let Some(g) = group {
                    f = f.group(u32::from(*g));
                }
                if let Some(p) = parent.and_then(|p| function(&functions, p)) {
                    f = f.behind(p);
                }
                let done = b.pci(&f).map(|_| ());
                if done.is_ok() && !functions.contains(&bdf) {
                    functions.push(bdf);
                }
                done
            }
            Op::Accel {
                function: f,
                index,
                major,
                minor,
            } => match function(&functions, *f) {
                Some(bdf) => b
                    .accel(
                        bdf,
                        u32::from(*index % 8),
                        u32::from(*major),
                        u32::from(*minor),
                    )
                    .map(|_| ()),
                None => Ok(()),
            },
            Op::VfioContainer => b.vfio_container().map(|_| ()),
            Op::VfioGroup {
                group,
                major,
                minor,
            } => b
                .vfio_group(u32::from(*group), u32::from(*major), u32::from(*minor))
                .map(|_| ()),
            Op::VfioDev {
                function: f,
                index,
                major,
            } => match function(&functions, *f) {
                Some(bdf) => b
                    .vfio_dev(bdf, u32::from(*index % 8), u32::from(*major))
                    .map(|_| ()),
                None => Ok(()),
            },
            Op::NvidiaDriver { nvrm, version } => b.nvidia_driver(nvrm, version).map(|_| ()),
            Op::NvidiaGpu {
                function: f,
                model,
                uuid,
                minor,
            } => match function(&functions, *f) {
                Some(bdf) => b
                    .nvidia_gpu(bdf, model, uuid, u32::from(*minor))
                    .map(|_| ()),
                None => Ok(()),
            },
            Op::CharMajor { major, name } => {
                b.char_major(u32::from(*major), name);
                Ok(())
            }
            Op::Node {
                path,
                block,
                major,
                minor,
                mode,
            } => {
                let kind = if *block {
                    NodeKind::Block
                } else {
                    NodeKind::Char
                };
                b.node(
                    path,
                    kind,
                    u32::from(*major),
                    u32::from(*minor),
                    u32::from(*mode),
                );
                Ok(())
            }
            Op::RemoveNode(path) => {
                b.remove_node(path);
                Ok(())
            }
            Op::Write(..) | Op::WriteProc(..) | Op::Link(..) | Op::Remove(..) => Ok(()),
        };
    }
    let sys = root.join("sys");
    for op in ops {
        let _ = match op {
            Op::Write(rel, text) => match rel.path().filter(|p| unlinked(&sys, p)) {
                Some(path) => b.write(path, text.bytes()).map(|_| ()),
                None => Ok(()),
            },
            Op::WriteProc(rel, text) => {
                match rel.path().filter(|p| unlinked(&root.join("proc"), p)) {
                    Some(path) => b
                        .write_proc(&path.to_string_lossy(), text.bytes())
                        .map(|_| ()),
                    None => Ok(()),
                }
            }
            Op::Link(rel, target) => match rel.path().filter(|p| unlinked(&sys, p)) {
                Some(at) => {
                    let depth = at.components().count();
                    let text = match target {
                        Target::Relative(ups, to) => {
                            let mut t = PathBuf::new();
                            for _ in 0..(ups % 8) {
                                t.push("..");
                            }
                            t.push(to.path().unwrap_or_default());
                            t
                        }
                        Target::Canary => canary.join("0000:00:04.0"),
                        Target::ClimbToCanary(extra) => {
                            let mut t = PathBuf::new();
                            for _ in 0..(depth + 1 + usize::from(extra % 3)) {
                                t.push("..");
                            }
                            t.join("canary/0000:00:04.0")
                        }
                        Target::Loop => PathBuf::from(at.file_name().unwrap_or_default()),
                        Target::Raw(s) => PathBuf::from(s),
                    };
                    if text.as_os_str().is_empty() {
                        Ok(())
                    } else {
                        b.raw_link(at, text).map(|_| ())
                    }
                }
                None => Ok(()),
            },
            Op::Remove(rel) => match rel.path().filter(|p| unlinked(&sys, p)) {
                Some(path) => b.remove(path).map(|_| ()),
                None => Ok(()),
            },
            _ => Ok(()),
        };
    }
    b.finish()?;
    Ok(functions)
}

/// A host path discovery may name: inside the host's trees, or the host's `dev.list`.
fn inside(path: &Path, root: &Path) -> bool {
    ["/sys", "/proc", "/dev"]
        .iter()
        .any(|m| path.starts_with(m))
        || path.starts_with(root)
}

fuzz_target!(|ops: Vec<Op>| {
    let dir = tempfile::tempdir().expect("temporary directory");
    let root = dir.path().join("host");
    let canary = dir.path().join("canary");
    // A TPU v4 the host does not have: reading it means leaving the root.
    let canary_function = canary.join("0000:00:04.0");
    std::fs::create_dir_all(&canary_function).expect("canary");
    for (name, text) in [
        ("vendor", "0x1ae0\n"),
        ("device", "0x005e\n"),
        ("class", "0x120000\n"),
    ] {
        std::fs::write(canary_function.join(name), text).expect("canary attribute");
    }
    if build(&root, &canary, &ops).is_err() {
        return;
    }
    let Ok(host) = HostRoot::at(&root) else {
        return;
    };
    let Ok(discovery) = discover(&host) else {
        return;
    };
    for warning in &discovery.warnings {
        assert!(
            inside(warning.path(), &root),
            "a warning outside the root: {}",
            warning.message
        );
    }
    for device in &discovery.pci.devices {
        assert!(
            device.sysfs_path.starts_with("/sys"),
            "{} read from {}",
            device.bdf,
            device.sysfs_path.display()
        );
    }
    for chip in &discovery.tpus {
        for path in &chip.sysfs_paths {
            assert!(
                path.starts_with("/sys"),
                "TPU {} at {}",
                chip.index,
                path.display()
            );
        }
    }
    // Every entry of /sys/bus/pci/devices is either a function or a warning.
    let listing = root.join("sys/bus/pci/devices");
    if std::fs::symlink_metadata(&listing).is_ok_and(|m| m.is_dir()) {
        for entry in std::fs::read_dir(&listing).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let found = Bdf::parse(&name).is_ok_and(|bdf| discovery.pci.get(bdf).is_some());
            let reported = discovery.warnings.iter().any(|w| w.message.contains(&name));
            assert!(
                found || reported,
                "{name} skipped silently: {:?}",
                discovery.warnings
            );
        }
    }
});
