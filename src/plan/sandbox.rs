use std::path::PathBuf;

use serde::Serialize;

use super::OverlayMode;

/// Name and version of the plan's JSON schema.
pub const PLAN_SCHEMA: &str = "accelgate.plan/v1";

/// Everything a sandbox's filesystem and process must be, computed before anything is
/// touched. `accelgate plan --json` prints it; `accelgate run` applies it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SandboxPlan {
    /// Always [`PLAN_SCHEMA`].
    pub schema: &'static str,
    /// The container's name.
    pub container_id: String,
    /// The root filesystem.
    pub rootfs: RootfsPlan,
    /// Mounts in the order they are made: parents before children, spec order otherwise.
    pub mounts: Vec<PlannedMount>,
    /// Pod-level volumes the mounts refer to by name; created once per pod.
    pub volumes: Vec<SharedVolume>,
    /// Device nodes under `/dev`.
    pub devices: Vec<PlannedDevice>,
    /// Symbolic links under `/dev`.
    pub symlinks: Vec<PlannedSymlink>,
    /// Paths hidden from the workload (`/dev/null` over files, an empty read-only tmpfs over
    /// directories).
    pub masked_paths: Vec<PathBuf>,
    /// Paths made read-only.
    pub readonly_paths: Vec<PathBuf>,
    /// `NAME=value` entries added to the process environment.
    pub env: Vec<String>,
    /// Resource limits, spec first, then the ones accelerators need.
    pub rlimits: Vec<PlannedRlimit>,
    /// The workload.
    pub process: ProcessPlan,
    /// What accelerators the sandbox gets.
    pub accelerators: Accelerators,
    /// Why each rule fired, in order (also logged at debug level).
    pub rules: Vec<String>,
}

/// The root filesystem and how it is protected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RootfsPlan {
    /// Absolute host path of the rootfs directory (the mount point, with an image).
    pub path: PathBuf,
    /// Whether the workload sees it read-only.
    pub readonly: bool,
    /// Setup always runs read-write; a read-only root is remounted read-only last.
    pub remount_readonly_after_setup: bool,
    /// `none`, `memory`, `self` or `dir:PATH`.
    pub overlay: OverlayMode,
    /// For `self`: the hidden upper directory inside the rootfs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overlay_upper: Option<PathBuf>,
    /// An EROFS image mounted as the rootfs instead of the directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<PathBuf>,
}

/// Where a planned mount came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MountOrigin {
    /// `mounts[]` of the spec.
    Spec,
    /// A mandatory mount the spec lacked (/proc, /sys, /dev, /dev/pts).
    Mandatory,
    /// The internal /tmp tmpfs.
    Tmp,
    /// A cgroup mount derived from the spec's `/sys/fs/cgroup`.
    Cgroup,
    /// A sysfs path a TPU runtime reads.
    Tpu,
}

/// Whether a bind's source is a directory or a file, so the mount point is made to match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// A directory.
    Directory,
    /// Anything else (a file, a device node, a socket).
    File,
}

/// Who else sees a mount's contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// Only this sandbox: caching is safe.
    Exclusive,
    /// Other containers or the host may change it.
    Shared,
}

/// One mount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedMount {
    /// Clean absolute path inside the container.
    pub destination: PathBuf,
    /// Filesystem type (`proc`, `sysfs`, `tmpfs`, `devpts`, `mqueue`, `cgroup`, `cgroup2`,
    /// `bind`, `overlay`, `erofs`, `fuse`).
    #[serde(rename = "type")]
    pub fs_type: String,
    /// Source: a host path for binds, a label otherwise.
    pub source: String,
    /// Mount flags (`ro`, `nosuid`, `nodev`, `noexec`, `noatime`, ...).
    pub options: Vec<String>,
    /// Filesystem data (`mode=1777`, `size=64m`, `newinstance`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub data: Vec<String>,
    /// Propagation (`rprivate`, `slave`, ...), when the spec sets one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub propagation: Option<String>,
    /// For binds: what the source is, and whether submounts come along (`rbind`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind: Option<BindSource>,
    /// For binds and volumes: who else sees the contents.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access: Option<Access>,
    /// A pod volume (in [`SandboxPlan::volumes`]) this mount binds from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume: Option<String>,
    /// Where the mount came from.
    pub origin: MountOrigin,
}

/// The source of a bind mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BindSource {
    /// Directory or file.
    pub kind: SourceKind,
    /// `rbind`: submounts of the source come along.
    pub recursive: bool,
}

/// A volume shared by the containers of a pod (gVisor mount hints), made once per pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SharedVolume {
    /// The hint's name.
    pub name: String,
    /// `tmpfs` or `bind`.
    #[serde(rename = "type")]
    pub fs_type: String,
    /// The hint's source.
    pub source: String,
    /// `container`, `pod` or `shared`.
    pub share: String,
    /// The master mount's options.
    pub options: Vec<String>,
}

/// A device node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedDevice {
    /// Path inside the container, under `/dev`.
    pub path: PathBuf,
    /// `c`, `b` or `p`.
    #[serde(rename = "type")]
    pub kind: char,
    /// Major number (0 for FIFOs).
    pub major: u32,
    /// Minor number (0 for FIFOs).
    pub minor: u32,
    /// Permission bits (`438` is `0o666`).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
}

/// A symbolic link under `/dev`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedSymlink {
    /// The link.
    pub path: PathBuf,
    /// What it points at.
    pub target: PathBuf,
}

/// A resource limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedRlimit {
    /// `RLIMIT_MEMLOCK` and so on.
    #[serde(rename = "type")]
    pub kind: String,
    /// Soft limit; `u64::MAX` is unlimited.
    pub soft: u64,
    /// Hard limit; `u64::MAX` is unlimited.
    pub hard: u64,
    /// `spec` for the spec's own limits, which must be set; `tpu` for the ones accelerators
    /// want, which are raised as far as the launcher may (a warning says when that falls short).
    pub origin: String,
}

/// The workload process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProcessPlan {
    /// `process.args`.
    pub args: Vec<String>,
    /// `args[0]` resolved inside the container; `None` when it can only be resolved after the
    /// rootfs is mounted (an EROFS image).
    pub executable: Option<PathBuf>,
    /// Working directory inside the container.
    pub cwd: PathBuf,
}

/// The accelerators granted, by discovery index.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Accelerators {
    /// NVIDIA GPU indices (PCI bus order).
    pub gpus: Vec<usize>,
    /// TPU chip indices (PCI bus order).
    pub tpus: Vec<usize>,
    /// NVIDIA driver capabilities; empty without a GPU request.
    pub driver_capabilities: Vec<String>,
}
