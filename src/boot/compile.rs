//! `compile`: an OCI bundle, a host snapshot and a config in; a [`SandboxPlan`] out.

use std::path::{Path, PathBuf};

use super::bundle::required_process;
use super::cgroups::CgroupLayout;
use super::config::{BootConfig, Settings};
use super::devices::{DevTree, describe, host_device, spec_device};
use super::executable::{DEFAULT_PATH, resolve_executable};
use super::fields::check_supported;
use super::gpu::{VISIBLE_DEVICES, gpu_request};
use super::grant::Grant;
use super::hints::parse_hints;
use super::mounts::{mandatory_mounts, order_parents_first, readonly_bind, spec_mounts, tmp_mount};
use super::paths::{clean_absolute, is_proper_ancestor};
use super::tpu::tpu_request;
use super::{BootError, Bundle, Rules};
use crate::discovery::{Discovery, discover};
use crate::nvproxy::abi as nv;
use crate::pci::HostRoot;
use crate::plan::OverlayMode;
use crate::plan::{
    Accelerators, MountOrigin, PLAN_SCHEMA, PlannedDevice, PlannedMount, PlannedRlimit,
    ProcessPlan, RootfsPlan, SandboxPlan, SourceKind,
};
use crate::tpuproxy::DriverModel;
use crate::vfs::{DeviceRegistry, FileInfo, RootDir, VfsError};

/// What `compile` knows of the host: discovery plus the few facts mounts depend on.
#[derive(Debug, Clone)]
pub struct HostSnapshot {
    /// The accelerators.
    pub discovery: Discovery,
    /// On-disk root of the host's `/sys`: the source of sysfs binds.
    pub sys_root: PathBuf,
    /// Whether the sandbox gets a fresh sysfs (the running host) rather than a read-only bind of
    /// `sys_root` (a fixture host).
    pub fresh_sysfs: bool,
    /// How cgroups are mounted on the host.
    pub cgroups: CgroupLayout,
    /// Whether the host has `/proc/kcore` (for the `/dev/core` link).
    pub has_kcore: bool,
}

impl HostSnapshot {
    /// Discovers the host behind `host`.
    pub fn read(host: &HostRoot) -> Result<Self, BootError> {
        let sys_root = host.sys().root();
        Ok(Self {
            discovery: discover(host).map_err(BootError::Host)?,
            sys_root: std::fs::canonicalize(sys_root).map_err(|source| BootError::HostPath {
                what: "host /sys".into(),
                path: sys_root.to_path_buf(),
                source,
            })?,
            fresh_sysfs: host.origin() == Path::new("/"),
            cgroups: CgroupLayout::read(host),
            has_kcore: host.proc().root().join("kcore").exists(),
        })
    }
}

/// RLIMIT_MEMLOCK: TPUs pin DMA buffers in the caller's address space (VFIO MAP_DMA, gasket
/// MAP_BUFFER) and are charged against it.
const MEMLOCK: &str = "RLIMIT_MEMLOCK";

/// Turns a bundle into a plan for `host` under `config`.
///
/// Pure except for what it must look at on disk: bind sources on the host, and the rootfs,
/// which is read only through [`RootDir`] (fd-based, symlinks resolved inside it) for the /tmp
/// and executable rules. Every rule that fires is recorded in the plan's `rules` and logged at
/// debug level.
pub fn compile(
    bundle: &Bundle,
    host: &HostSnapshot,
    config: &BootConfig,
) -> Result<SandboxPlan, BootError> {
    let spec = &bundle.spec;
    if !config.applied_elsewhere {
        check_supported(spec)?;
    }
    let mut rules = Rules::default();
    let annotations = spec.annotations().clone().unwrap_or_default();
    let settings = Settings::resolve(config, &annotations)?;
    let rootfs = rootfs_plan(bundle, &settings, &config.container_id, &mut rules)?;
    let rootfs_view = match &rootfs.image {
        Some(_) => None,
        None => Some(RootDir::open(&rootfs.path).map_err(BootError::Rootfs)?),
    };

    let (hints, dropped) = parse_hints(&annotations)?;
    for reason in dropped {
        rules.add(reason);
    }
    let linux = spec.linux().as_ref();
    let spec_devices: Vec<PlannedDevice> = linux
        .and_then(|l| l.devices().clone())
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, d)| spec_device(i, d))
        .collect::<Result<_, _>>()?;

    // Mounts in spec order, then the mandatory ones in front, then cgroups expanded.
    let compiled = spec_mounts(bundle, &hints, &mut rules)?;
    let sys_bind = (!host.fresh_sysfs).then_some(host.sys_root.as_path());
    let mut mounts = mandatory_mounts(&compiled.mounts, sys_bind, &mut rules);
    let mut spec_list = compiled.mounts;
    if let Some(source) = sys_bind {
        for mount in spec_list
            .iter_mut()
            .filter(|m| m.destination == Path::new("/sys") && m.fs_type == "sysfs")
        {
            *mount = readonly_bind(mount.destination.clone(), source, true, MountOrigin::Spec);
            rules.add(format!(
                "mount /sys: a fixture host; its sys tree {} bound read-only instead of sysfs",
                source.display()
            ));
        }
    }
    if let Some((at, destination, flags)) = &compiled.cgroup {
        let cgroups_path = cgroups_path(bundle, &config.container_id)?;
        let expanded = host.cgroups.mounts(
            destination,
            flags,
            &host.sys_root.join("fs/cgroup"),
            &cgroups_path,
        );
        rules.add(format!(
            "mount {}: the container's cgroups ({}), sub-cgroup {}",
            destination.display(),
            match &host.cgroups {
                CgroupLayout::Absent =>
                    "none: the host tree has no fs/cgroup; not mounted".to_owned(),
                CgroupLayout::Unified => "cgroup2".to_owned(),
                CgroupLayout::Legacy { controllers } => {
                    let names: Vec<&str> = controllers.iter().map(|(c, _)| c.as_str()).collect();
                    format!("v1: {}", names.join(" "))
                }
            },
            cgroups_path.display()
        ));
        spec_list.splice(*at..=*at, expanded);
    }
    mounts.extend(spec_list);

    // Devices: defaults, then the spec's with host numbers where the host decides them.
    let mut dev = DevTree::with_defaults(host.has_kcore);
    let registry = host.discovery.registry().map_err(BootError::Registry)?;
    for mut device in spec_devices.iter().cloned() {
        use_host_numbers(&mut device, &registry, &host.discovery, &mut rules);
        let path = device.path.clone();
        if let Some(old) = dev.set_device(device) {
            rules.add(format!(
                "device {}: the spec's entry replaces the default ({old})",
                path.display()
            ));
        }
    }

    let mut env = Vec::new();
    let mut accelerators = Accelerators::default();
    let mut rlimits = spec_rlimits(bundle)?;
    let device_paths: Vec<&Path> = spec_devices.iter().map(|d| d.path.as_path()).collect();

    // A device plugin's grant bounds what the spec asks for (`grant.rs`).
    let granted = Grant::read(&annotations, &host.discovery)?;
    if let Some(request) = granted.bound_gpus(gpu_request(spec, &host.discovery)?)? {
        let nvidia =
            host.discovery
                .nvidia
                .as_ref()
                .ok_or_else(|| BootError::MissingAccelerator {
                    requested: request.why.clone(),
                    what: "an NVIDIA driver".into(),
                })?;
        let host_node = |path: &str| nvidia.nodes.iter().find(|n| n.path == Path::new(path));
        let ctl = host_node(nv::CTL_PATH).ok_or_else(|| BootError::MissingAccelerator {
            requested: request.why.clone(),
            what: nv::CTL_PATH.into(),
        })?;
        grant(&mut dev, host_device(ctl), &mut rules);
        let uvm_major = nvidia
            .majors
            .get(nv::UVM_MAJOR_NAME)
            .copied()
            .ok_or_else(|| BootError::MissingAccelerator {
                requested: request.why.clone(),
                what: "nvidia-uvm (no nvidia-uvm major in /proc/devices; is the module loaded?)"
                    .into(),
            })?;
        let mut uvm_nodes = vec![(nv::UVM_PATH, 0)];
        if request.uvm_tools {
            uvm_nodes.push((nv::UVM_TOOLS_PATH, 1));
        }
        for (path, minor) in uvm_nodes {
            let mode = host_node(path).map_or(0o666, |n| n.mode);
            let device = PlannedDevice {
                path: path.into(),
                kind: 'c',
                major: uvm_major,
                minor,
                mode,
                uid: 0,
                gid: 0,
            };
            grant(&mut dev, device, &mut rules);
        }
        for index in &request.gpus {
            let gpu = &host.discovery.gpus[*index];
            let node = gpu
                .nodes
                .first()
                .ok_or_else(|| BootError::MissingAccelerator {
                    requested: request.why.clone(),
                    what: format!("a device node for GPU {index} ({})", gpu.bdf),
                })?;
            grant(&mut dev, host_device(node), &mut rules);
        }
        let list = if request.gpus.is_empty() {
            "none".to_owned()
        } else {
            request
                .gpus
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        env.push(format!("{VISIBLE_DEVICES}={list}"));
        rules.add(format!(
            "gpu: {} asks for GPUs [{list}] with capabilities {}",
            request.why,
            request.capabilities.join(",")
        ));
        accelerators.gpus = request.gpus;
        accelerators.driver_capabilities = request.capabilities;
    }

    let tpu_selection = settings.tpus.as_ref().map(|(s, from)| (s, *from));
    let tpus = tpu_request(&device_paths, tpu_selection, &host.discovery)?;
    if let Some(request) = granted.bound_tpus(tpus)? {
        for index in &request.chips {
            let chip = &host.discovery.tpus[*index];
            if chip.nodes.is_empty() {
                return Err(BootError::MissingAccelerator {
                    requested: request.why.join(", "),
                    what: format!("a device node for TPU chip {index} ({})", chip.bdfs[0]),
                });
            }
            for node in &chip.nodes {
                grant(&mut dev, host_device(node), &mut rules);
            }
            for sysfs in &chip.sysfs_paths {
                mounts.push(sysfs_bind(host, sysfs));
            }
            if chip.driver == DriverModel::Vfio {
                for group in &chip.iommu_groups {
                    mounts.push(sysfs_bind(
                        host,
                        &Path::new("/sys/kernel/iommu_groups").join(group.to_string()),
                    ));
                }
            }
        }
        if host
            .discovery
            .tpus
            .iter()
            .any(|c| request.chips.contains(&c.index) && c.driver == DriverModel::Vfio)
        {
            let container = host
                .discovery
                .vfio
                .as_ref()
                .and_then(|v| v.nodes.first())
                .ok_or_else(|| BootError::MissingAccelerator {
                    requested: request.why.join(", "),
                    what: crate::vfio::abi::CONTAINER_PATH.into(),
                })?;
            grant(&mut dev, host_device(container), &mut rules);
        }
        rlimits.retain(|r| r.kind != MEMLOCK);
        rlimits.push(PlannedRlimit {
            kind: MEMLOCK.into(),
            soft: u64::MAX,
            hard: u64::MAX,
            origin: "tpu".into(),
        });
        rules.add(format!(
            "tpu: {} asks for chips {:?}; their sysfs directories bound read-only, RLIMIT_MEMLOCK unlimited",
            request.why.join(", "),
            request.chips
        ));
        accelerators.tpus = request.chips;
    }

    if let Some(tmp) = tmp_mount(&mounts, rootfs_view.as_ref(), &mut rules)? {
        mounts.push(tmp);
    }
    let mounts = order_parents_first(mounts);
    let process = process_plan(bundle, &mounts, rootfs_view.as_ref(), &mut rules)?;
    let (devices, symlinks) = dev.into_parts();
    Ok(SandboxPlan {
        schema: PLAN_SCHEMA,
        container_id: config.container_id.clone(),
        rootfs,
        mounts,
        volumes: compiled.volumes,
        devices,
        symlinks,
        masked_paths: clean_list(
            linux.and_then(|l| l.masked_paths().clone()),
            "linux.maskedPaths",
        )?,
        readonly_paths: clean_list(
            linux.and_then(|l| l.readonly_paths().clone()),
            "linux.readonlyPaths",
        )?,
        env,
        rlimits,
        process,
        accelerators,
        rules: rules.into_inner(),
    })
}

/// Adds an accelerator node, noting when it replaces what the spec said.
fn grant(dev: &mut DevTree, device: PlannedDevice, rules: &mut Rules) {
    let path = device.path.clone();
    let new = describe(&device);
    if let Some(old) = dev.set_device(device) {
        if old != new {
            rules.add(format!(
                "device {}: host node {new} replaces the spec's {old}",
                path.display()
            ));
        }
    }
}

/// Spec devices whose numbers the host decides (dynamic majors, VFIO group minors, accel
/// nodes) get the host's numbers, from the device registry; a stale `nvidia-uvm` major is the
/// most common way GPU containers break.
fn use_host_numbers(
    device: &mut PlannedDevice,
    registry: &DeviceRegistry,
    host: &Discovery,
    rules: &mut Rules,
) {
    let accelerator = registry
        .by_path(&device.path)
        .filter(|(_, registered)| registered.class.is_accelerator());
    let majors = host.nvidia.as_ref().map(|n| &n.majors);
    let (major, minor, authority) = if let Some(((_, major, minor), _)) = accelerator {
        (major, minor, "the host's node")
    } else if device.path == Path::new(nv::UVM_PATH) || device.path == Path::new(nv::UVM_TOOLS_PATH)
    {
        match majors.and_then(|m| m.get(nv::UVM_MAJOR_NAME)) {
            Some(major) => (*major, device.minor, "/proc/devices nvidia-uvm"),
            None => return,
        }
    } else if device.path.starts_with(nv::CAPS_DIR) {
        match majors.and_then(|m| m.get(nv::CAPS_MAJOR_NAME)) {
            Some(major) => (*major, device.minor, "/proc/devices nvidia-caps"),
            None => return,
        }
    } else {
        return;
    };
    if (device.major, device.minor) != (major, minor) {
        rules.add(format!(
            "device {}: the spec's {}:{} replaced by {major}:{minor} from {authority}",
            device.path.display(),
            device.major,
            device.minor
        ));
        device.major = major;
        device.minor = minor;
    }
}

/// A read-only bind of a host sysfs path (`/sys/devices/...`) onto the same path.
fn sysfs_bind(host: &HostSnapshot, sysfs: &Path) -> PlannedMount {
    let rel = sysfs.strip_prefix("/sys").unwrap_or(sysfs);
    readonly_bind(
        sysfs.to_path_buf(),
        &host.sys_root.join(rel),
        false,
        MountOrigin::Tpu,
    )
}

fn rootfs_plan(
    bundle: &Bundle,
    settings: &Settings,
    container_id: &str,
    rules: &mut Rules,
) -> Result<RootfsPlan, BootError> {
    let root = bundle
        .spec
        .root()
        .as_ref()
        .ok_or_else(|| BootError::InvalidField {
            field: "root".into(),
            reason: "missing; a bundle needs root.path".into(),
        })?;
    let given = bundle.host_path(root.path());
    let readonly = root.readonly().unwrap_or(false);
    let image = settings.rootfs_image.clone();
    if let Some(image) = &image {
        let meta = std::fs::metadata(image).map_err(|source| BootError::HostPath {
            what: "EROFS rootfs image".into(),
            path: image.clone(),
            source,
        })?;
        if !meta.is_file() {
            return Err(BootError::InvalidConfig {
                name: "rootfs image".into(),
                value: image.display().to_string(),
                reason: "not a regular file".into(),
            });
        }
    }
    // The mount point, or the rootfs itself: symlinks in the host path are the host's business,
    // resolved once here so that every later step sees the same directory.
    let path = std::fs::canonicalize(&given).map_err(|source| BootError::HostPath {
        what: "rootfs (root.path)".into(),
        path: given.clone(),
        source,
    })?;
    if !path.is_dir() {
        return Err(BootError::InvalidField {
            field: "root.path".into(),
            reason: format!("{} is not a directory", path.display()),
        });
    }
    if let Some(image) = &image {
        rules.add(format!(
            "rootfs: EROFS image {} mounted at {}",
            image.display(),
            path.display()
        ));
    }
    let overlay_upper = match &settings.overlay {
        OverlayMode::SelfBacked => Some(path.join(format!(".accelgate-overlay.{container_id}"))),
        OverlayMode::Dir(dir) => {
            if !dir.is_dir() {
                return Err(BootError::InvalidConfig {
                    name: "overlay".into(),
                    value: settings.overlay.to_string(),
                    reason: format!("{} is not a directory", dir.display()),
                });
            }
            None
        }
        OverlayMode::None | OverlayMode::Memory => None,
    };
    if settings.overlay != OverlayMode::None {
        rules.add(format!(
            "rootfs: overlay {} keeps writes away from the rootfs",
            settings.overlay
        ));
    }
    if readonly {
        rules.add("rootfs: read-only; setup runs read-write and the root is made read-only last");
    }
    Ok(RootfsPlan {
        path,
        readonly,
        remount_readonly_after_setup: readonly,
        overlay: settings.overlay.clone(),
        overlay_upper,
        image,
    })
}

fn cgroups_path(bundle: &Bundle, container_id: &str) -> Result<PathBuf, BootError> {
    match bundle
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().clone())
    {
        Some(path) => {
            clean_absolute(&path.to_string_lossy()).map_err(|reason| BootError::InvalidField {
                field: "linux.cgroupsPath".into(),
                reason: format!("{}: {reason}", path.display()),
            })
        }
        None => Ok(PathBuf::from("/").join(container_id)),
    }
}

fn spec_rlimits(bundle: &Bundle) -> Result<Vec<PlannedRlimit>, BootError> {
    let limits = bundle
        .spec
        .process()
        .as_ref()
        .and_then(|p| p.rlimits().clone())
        .unwrap_or_default();
    limits
        .iter()
        .map(|limit| {
            let kind = serde_json::to_value(limit.typ())
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            if limit.soft() > limit.hard() {
                return Err(BootError::InvalidField {
                    field: format!("process.rlimits[{kind}]"),
                    reason: format!(
                        "soft limit {} is above the hard limit {}",
                        limit.soft(),
                        limit.hard()
                    ),
                });
            }
            if super::process::rlimit_resource(&kind).is_none() {
                return Err(BootError::InvalidField {
                    field: format!("process.rlimits[{kind}]"),
                    reason: "not a resource limit Linux has".into(),
                });
            }
            Ok(PlannedRlimit {
                kind,
                soft: limit.soft(),
                hard: limit.hard(),
                origin: "spec".into(),
            })
        })
        .collect()
}

fn clean_list(paths: Option<Vec<String>>, field: &str) -> Result<Vec<PathBuf>, BootError> {
    paths
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, p)| {
            clean_absolute(p).map_err(|reason| BootError::InvalidField {
                field: format!("{field}[{i}]"),
                reason: format!("{p:?}: {reason}"),
            })
        })
        .collect()
}

/// The process: args, a clean cwd, and `args[0]` resolved inside the container as its
/// `execvp` would, looking through bind mounts to their sources and into the rootfs through
/// [`RootDir`].
fn process_plan(
    bundle: &Bundle,
    mounts: &[PlannedMount],
    rootfs: Option<&RootDir>,
    rules: &mut Rules,
) -> Result<ProcessPlan, BootError> {
    let process = required_process(&bundle.spec)?;
    let args = process.args().clone().unwrap_or_default();
    let raw_cwd = process.cwd().to_string_lossy().into_owned();
    let cwd = clean_absolute(&raw_cwd).map_err(|reason| BootError::InvalidField {
        field: "process.cwd".into(),
        reason: format!("{raw_cwd:?}: {reason}"),
    })?;
    if cwd.starts_with("/proc") {
        // /proc/self/fd/N as cwd reached the host through a leaked fd (CVE-2024-21626).
        return Err(BootError::InvalidField {
            field: "process.cwd".into(),
            reason: format!(
                "{}: a working directory under /proc is refused",
                cwd.display()
            ),
        });
    }
    let Some(name) = args.first() else {
        return Err(BootError::InvalidField {
            field: "process.args".into(),
            reason: "empty; nothing to run".into(),
        });
    };
    let Some(rootfs) = rootfs else {
        rules.add(format!(
            "process: {name:?} is resolved after the rootfs image is mounted"
        ));
        return Ok(ProcessPlan {
            args,
            executable: None,
            cwd,
        });
    };
    let env = process.env().clone().unwrap_or_default();
    let path_env = env
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    let stat = |path: &Path| container_stat(path, mounts, rootfs);
    let executable = resolve_executable(name, path_env, &cwd, &stat)?;
    rules.add(format!("process: {name:?} is {}", executable.display()));
    Ok(ProcessPlan {
        args,
        executable: Some(executable),
        cwd,
    })
}

/// What `path` will be inside the container: through the innermost mount covering it (a bind
/// shows its source; other filesystems start empty), else the rootfs.
fn container_stat(
    path: &Path,
    mounts: &[PlannedMount],
    rootfs: &RootDir,
) -> Result<Option<FileInfo>, VfsError> {
    let covering = mounts
        .iter()
        .rev()
        .filter(|m| m.destination == path || is_proper_ancestor(&m.destination, path))
        .max_by_key(|m| m.destination.components().count());
    let Some(mount) = covering else {
        return rootfs.stat(path);
    };
    let Some(bind) = &mount.bind else {
        return Ok(None);
    };
    let rel = path
        .strip_prefix(&mount.destination)
        .unwrap_or(Path::new(""));
    match bind.kind {
        SourceKind::Directory => RootDir::open(&mount.source)?.stat(&Path::new("/").join(rel)),
        SourceKind::File if rel.as_os_str().is_empty() => Ok(std::fs::metadata(&mount.source)
            .ok()
            .map(|m| FileInfo::from_metadata(&m))),
        SourceKind::File => Ok(None),
    }
}
