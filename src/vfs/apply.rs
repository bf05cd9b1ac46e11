//! `apply`: makes a [`SandboxPlan`]'s filesystem real inside a fresh mount namespace, through a
//! [`Sys`], every target resolved inside the rootfs by file descriptor.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, OFlag, openat};
use nix::sys::stat::{Mode, mkdirat};

use super::VfsError;
use super::rootdir::{FileInfo, FileKind, RootDir};
use super::system::{MountFlags, NodeType, Sys, proc_fd_path};
use crate::plan::{OverlayMode, PlannedDevice, PlannedMount, SandboxPlan, SourceKind};

/// How a plan meets the host it runs on.
#[derive(Debug, Clone, Default)]
pub struct ApplyOptions {
    /// The host's `/dev`, to bind device nodes from when `mknod` is not allowed (a user
    /// namespace); `None` on a fixture host, whose nodes exist only in its `dev.list`.
    pub host_dev: Option<PathBuf>,
    /// Whether the sandbox has its own user namespace (device nodes are then bind-mounted).
    pub user_namespace: bool,
}

/// One step of `apply` failed: which step, on which path, and the errno.
fn step(step: &str, path: impl Into<PathBuf>, source: io::Error) -> VfsError {
    VfsError::Step {
        step: step.to_owned(),
        path: path.into(),
        source,
    }
}

fn errno_io(errno: Errno) -> io::Error {
    io::Error::from(errno)
}

const DIR_MODE: u32 = 0o755;

/// Applies `plan` in the current (new, private) mount namespace and pivots into it: the rootfs
/// (bind, overlay or image), every mount in order onto a target resolved inside the rootfs,
/// `/dev` nodes made with `mknodat` relative to the `/dev` directory fd and checked with a
/// stat, the `/dev` links, masked and read-only paths, `pivot_root`, and a read-only root last.
///
/// On return the process's root and cwd are the sandbox's `/`. Everything is confined to this
/// mount namespace (the root is made a recursive slave first), so a failure leaves nothing on
/// the host: the namespace dies with the process.
pub fn apply(plan: &SandboxPlan, sys: &dyn Sys, options: &ApplyOptions) -> Result<(), VfsError> {
    sys.make_root_rslave()
        .map_err(|e| step("make the mount namespace a slave", "/", e))?;
    let root_path = attach_rootfs(plan, sys)?;
    let root = RootDir::open(&root_path)?;
    let mut volumes: BTreeMap<String, OwnedFd> = BTreeMap::new();
    for mount in &plan.mounts {
        mount_one(&root, mount, plan, sys, options, &mut volumes)?;
    }
    make_devices(&root, &plan.devices, sys, options)?;
    for link in &plan.symlinks {
        let (parent, name) = parent_and_name(&link.path)?;
        let dir = ensure_dir(&root, &parent)?;
        sys.symlinkat(&link.target, dir.as_fd(), &name)
            .map_err(|e| step("create symlink", &link.path, e))?;
    }
    for path in &plan.masked_paths {
        mask(&root, path, sys)?;
    }
    for path in &plan.readonly_paths {
        make_readonly(&root, path, sys)?;
    }
    sys.pivot_root(root.as_fd())
        .map_err(|e| step("pivot_root", &root_path, e))?;
    if plan.rootfs.remount_readonly_after_setup {
        sys.remount_root_readonly()
            .map_err(|e| step("make the root read-only", "/", e))?;
    }
    Ok(())
}

/// Mounts the rootfs over its own path (so that it is a mount point to pivot into) and returns
/// the host path of the new root: the rootfs itself, or the merged overlay.
fn attach_rootfs(plan: &SandboxPlan, sys: &dyn Sys) -> Result<PathBuf, VfsError> {
    let rootfs = &plan.rootfs;
    let cwd = AT_FDCWD;
    let lower = match &rootfs.image {
        Some(image) => sys
            .fs_mount(
                "erofs",
                &image.display().to_string(),
                &[],
                super::abi::MOUNT_ATTR_RDONLY,
            )
            .map_err(|e| step("mount the EROFS image", image, e))?,
        None => sys
            .open_tree(cwd, &rootfs.path, true, true)
            .map_err(|e| step("bind the rootfs", &rootfs.path, e))?,
    };
    let open_dir = |path: &Path| {
        nix::fcntl::open(
            path,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| step("open", path, errno_io(e)))
    };
    if rootfs.overlay == OverlayMode::None {
        let target = open_dir(&rootfs.path)?;
        sys.move_mount(lower.as_fd(), target.as_fd())
            .map_err(|e| step("attach the rootfs", &rootfs.path, e))?;
        return Ok(rootfs.path.clone());
    }

    // An overlay: its layers are staged on a private tmpfs mounted over the rootfs path, which
    // becomes the new root's parent and vanishes with the namespace.
    let (upper, work) = match &rootfs.overlay {
        OverlayMode::SelfBacked => {
            let hidden = rootfs.overlay_upper.as_ref().ok_or_else(|| {
                step(
                    "find the self overlay directory",
                    &rootfs.path,
                    io::Error::other("the plan names none"),
                )
            })?;
            let inside = RootDir::open(&rootfs.path)?;
            let name = hidden.file_name().unwrap_or_default();
            let dir = ensure_dir(&inside, &Path::new("/").join(name))?;
            let upper = ensure_child_dir(dir.as_fd(), OsStr::new("upper"), hidden)?;
            let work = ensure_child_dir(dir.as_fd(), OsStr::new("work"), hidden)?;
            // Hide the directory from the workload with a whiteout in the upper layer.
            match sys.mknodat(upper.as_fd(), name, NodeType::Char, 0, 0, 0) {
                Err(e) if e.raw_os_error() != Some(libc::EEXIST) => {
                    return Err(step("hide the self overlay", hidden, e));
                }
                _ => {}
            }
            (Some(upper), Some(work))
        }
        OverlayMode::Dir(dir) => {
            let base = open_dir(dir)?;
            let upper = ensure_child_dir(base.as_fd(), OsStr::new("upper"), dir)?;
            let work = ensure_child_dir(base.as_fd(), OsStr::new("work"), dir)?;
            (Some(upper), Some(work))
        }
        OverlayMode::Memory | OverlayMode::None => (None, None),
    };
    let stage = sys
        .fs_mount("tmpfs", "accelgate-stage", &["mode=0700".to_owned()], 0)
        .map_err(|e| step("mount the overlay stage", &rootfs.path, e))?;
    let target = open_dir(&rootfs.path)?;
    sys.move_mount(stage.as_fd(), target.as_fd())
        .map_err(|e| step("attach the overlay stage", &rootfs.path, e))?;
    let stage_dir = nix::fcntl::open(
        &rootfs.path,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| step("open the overlay stage", &rootfs.path, errno_io(e)))?;
    let lower_dir = ensure_child_dir(stage_dir.as_fd(), OsStr::new("lower"), &rootfs.path)?;
    sys.move_mount(lower.as_fd(), lower_dir.as_fd())
        .map_err(|e| step("attach the overlay's lower layer", &rootfs.path, e))?;
    let lower_dir = ensure_child_dir(stage_dir.as_fd(), OsStr::new("lower"), &rootfs.path)?;
    let (upper, work) = match (upper, work) {
        (Some(upper), Some(work)) => (upper, work),
        _ => (
            ensure_child_dir(stage_dir.as_fd(), OsStr::new("upper"), &rootfs.path)?,
            ensure_child_dir(stage_dir.as_fd(), OsStr::new("work"), &rootfs.path)?,
        ),
    };
    let data = vec![
        format!("lowerdir={}", proc_fd_path(lower_dir.as_fd())),
        format!("upperdir={}", proc_fd_path(upper.as_fd())),
        format!("workdir={}", proc_fd_path(work.as_fd())),
    ];
    let overlay = sys
        .fs_mount("overlay", "overlay", &data, 0)
        .map_err(|e| step("mount the overlay", &rootfs.path, e))?;
    let merged = ensure_child_dir(stage_dir.as_fd(), OsStr::new("merged"), &rootfs.path)?;
    sys.move_mount(overlay.as_fd(), merged.as_fd())
        .map_err(|e| step("attach the overlay", &rootfs.path, e))?;
    Ok(rootfs.path.join("merged"))
}

/// An `O_PATH` fd of directory `name` under `dir`, made if missing; a symlink is refused.
fn ensure_child_dir(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    context: &Path,
) -> Result<OwnedFd, VfsError> {
    match mkdirat(dir, name, Mode::from_bits_truncate(DIR_MODE)) {
        Ok(()) | Err(Errno::EEXIST) => {}
        Err(e) => return Err(step("create directory", context.join(name), errno_io(e))),
    }
    let fd = openat(
        dir,
        name,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| step("open directory", context.join(name), errno_io(e)))?;
    Ok(fd)
}

/// Splits a clean absolute path into its parent and last component.
fn parent_and_name(path: &Path) -> Result<(PathBuf, OsString), VfsError> {
    match (path.parent(), path.components().next_back()) {
        (Some(parent), Some(Component::Normal(name))) => {
            Ok((parent.to_path_buf(), name.to_owned()))
        }
        _ => Err(step(
            "split path",
            path,
            io::Error::new(io::ErrorKind::InvalidInput, "not a clean absolute path"),
        )),
    }
}

/// An `O_PATH` fd of the directory `path` inside `root`, made if missing (see
/// [`RootDir::create_dir_all`]).
fn ensure_dir(root: &RootDir, path: &Path) -> Result<OwnedFd, VfsError> {
    root.create_dir_all(path)
}

/// The mount point for `mount`, resolved inside the root and created to match its source:
/// a directory, or an empty file for a file bind. proc and sysfs go only onto real directories:
/// a symlink there is refused (CVE-2019-19921).
fn mount_point(root: &RootDir, mount: &PlannedMount) -> Result<OwnedFd, VfsError> {
    let path = &mount.destination;
    let wants_file = mount.bind.is_some_and(|b| b.kind == SourceKind::File);
    if mount.fs_type == "proc" || mount.fs_type == "sysfs" {
        if let Some(info) = root.lstat(path)? {
            if info.kind != FileKind::Directory {
                return Err(VfsError::Refused {
                    path: path.clone(),
                    reason: format!(
                        "{} must be mounted on a real directory, not a {:?}",
                        mount.fs_type, info.kind
                    ),
                });
            }
        }
    }
    if !wants_file {
        return ensure_dir(root, path);
    }
    let (parent, name) = parent_and_name(path)?;
    let dir = ensure_dir(root, &parent)?;
    match openat(
        dir.as_fd(),
        name.as_os_str(),
        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o644),
    ) {
        Ok(_) | Err(Errno::EEXIST) => {}
        Err(e) => return Err(step("create file mount point", path, errno_io(e))),
    }
    let fd = root.open_at(path, OFlag::O_PATH)?;
    let info = super::rootdir::fstat_info(fd.as_fd())
        .map_err(|e| step("stat mount point", path, errno_io(e)))?;
    if info.kind == FileKind::Directory {
        return Err(VfsError::Refused {
            path: path.clone(),
            reason: "a file bind cannot go onto a directory".into(),
        });
    }
    Ok(fd)
}

fn mount_one(
    root: &RootDir,
    mount: &PlannedMount,
    plan: &SandboxPlan,
    sys: &dyn Sys,
    options: &ApplyOptions,
    volumes: &mut BTreeMap<String, OwnedFd>,
) -> Result<(), VfsError> {
    let dest = &mount.destination;
    let target = mount_point(root, mount)?;
    let mut flags = MountFlags::from_options(&mount.options, mount.propagation.as_deref());
    let mut host_sysfs = false;
    let what = format!("mount {} at", mount.fs_type);
    let cwd = AT_FDCWD;

    let detached = if let Some(name) = &mount.volume {
        if !volumes.contains_key(name) {
            let volume = plan
                .volumes
                .iter()
                .find(|v| &v.name == name)
                .ok_or_else(|| {
                    step(
                        &what,
                        dest,
                        io::Error::other(format!("the plan has no volume {name:?}")),
                    )
                })?;
            let data: Vec<String> = volume
                .options
                .iter()
                .filter(|o| o.contains('='))
                .cloned()
                .collect();
            let fs = sys
                .fs_mount("tmpfs", &volume.source, &data, 0)
                .map_err(|e| step("create pod volume", dest, e))?;
            volumes.insert(name.clone(), fs);
        }
        let volume = &volumes[name];
        sys.open_tree(volume.as_fd(), Path::new(""), true, true)
    } else if let Some(bind) = mount.bind {
        let tree = sys.open_tree(cwd, Path::new(&mount.source), bind.recursive, false);
        if let Ok(tree) = &tree {
            let info = super::rootdir::fstat_info(tree.as_fd())
                .map_err(|e| step("stat bind source", &mount.source, errno_io(e)))?;
            if (info.kind == FileKind::Directory) != (bind.kind == SourceKind::Directory) {
                return Err(VfsError::Refused {
                    path: PathBuf::from(&mount.source),
                    reason: format!(
                        "the bind source changed since planning: now a {:?}",
                        info.kind
                    ),
                });
            }
        }
        tree
    } else {
        match sys.fs_mount(&mount.fs_type, &mount.source, &mount.data, flags.attrs) {
            // A user namespace may mount sysfs only with a network namespace of its own; bind
            // the host's, read-only, as runc does.
            Err(e)
                if mount.fs_type == "sysfs"
                    && options.user_namespace
                    && e.raw_os_error() == Some(libc::EPERM) =>
            {
                host_sysfs = true;
                flags.attrs |= super::abi::MOUNT_ATTR_RDONLY;
                sys.open_tree(cwd, Path::new("/sys"), true, false)
            }
            other => other,
        }
    };

    match detached {
        Ok(tree) => {
            sys.move_mount(tree.as_fd(), target.as_fd())
                .map_err(|e| step(&what, dest, e))?;
            let recursive = mount.bind.is_some_and(|b| b.recursive) || host_sysfs;
            let needs_attrs = mount.bind.is_some() || mount.volume.is_some() || host_sysfs;
            if (needs_attrs && flags.attrs != 0) || flags.propagation != 0 {
                let set = MountFlags {
                    attrs: if needs_attrs { flags.attrs } else { 0 },
                    ..flags
                };
                sys.mount_setattr(tree.as_fd(), recursive || flags.recursive_propagation, set)
                    .map_err(|e| step("set mount attributes", dest, e))?;
            }
            Ok(())
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => legacy(mount, &target, flags, sys),
        Err(e) => Err(step(&what, dest, e)),
    }
}

/// `mount(2)` onto `/proc/self/fd/N` for kernels without the new mount API (before 5.2).
fn legacy(
    mount: &PlannedMount,
    target: &OwnedFd,
    flags: MountFlags,
    sys: &dyn Sys,
) -> Result<(), VfsError> {
    let dest = &mount.destination;
    let what = format!("mount {} (mount(2)) at", mount.fs_type);
    if let Some(bind) = mount.bind {
        let mut bind_flags = libc::MS_BIND;
        if bind.recursive {
            bind_flags |= libc::MS_REC;
        }
        sys.legacy_mount(&mount.source, target.as_fd(), "", bind_flags, "")
            .map_err(|e| step(&what, dest, e))?;
        if flags.attrs != 0 {
            let remount = libc::MS_REMOUNT | libc::MS_BIND | flags.legacy_flags();
            sys.legacy_mount("", target.as_fd(), "", remount, "")
                .map_err(|e| step("remount", dest, e))?;
        }
    } else {
        let data = mount.data.join(",");
        sys.legacy_mount(
            &mount.source,
            target.as_fd(),
            &mount.fs_type,
            flags.legacy_flags(),
            &data,
        )
        .map_err(|e| step(&what, dest, e))?;
    }
    if flags.propagation != 0 {
        let mut propagation = flags.propagation;
        if flags.recursive_propagation {
            propagation |= libc::MS_REC;
        }
        sys.legacy_mount("", target.as_fd(), "", propagation, "")
            .map_err(|e| step("set propagation", dest, e))?;
    }
    Ok(())
}

/// Makes each device node with `mknodat` relative to its `/dev` directory fd, sets its mode and
/// owner, and checks with a stat that the type and numbers are the plan's; in a user namespace
/// (or when `mknod` is refused) the host's node is bind-mounted onto an empty file instead.
fn make_devices(
    root: &RootDir,
    devices: &[PlannedDevice],
    sys: &dyn Sys,
    options: &ApplyOptions,
) -> Result<(), VfsError> {
    for device in devices {
        let (parent, name) = parent_and_name(&device.path)?;
        // An O_PATH directory fd serves as the dirfd of mknodat, fchmodat and fchownat.
        let dir = ensure_dir(root, &parent)?;
        let kind = match device.kind {
            'b' => NodeType::Block,
            'p' => NodeType::Fifo,
            _ => NodeType::Char,
        };
        let made = if options.user_namespace {
            Err(io::Error::from_raw_os_error(libc::EPERM))
        } else {
            sys.mknodat(
                dir.as_fd(),
                &name,
                kind,
                device.mode,
                device.major,
                device.minor,
            )
        };
        match made {
            Ok(()) => {
                sys.fchmodat(dir.as_fd(), &name, device.mode)
                    .map_err(|e| step("chmod device", &device.path, e))?;
                sys.fchownat(dir.as_fd(), &name, device.uid, device.gid)
                    .map_err(|e| step("chown device", &device.path, e))?;
            }
            Err(e) if e.raw_os_error() == Some(libc::EPERM) && kind != NodeType::Fifo => {
                bind_host_node(dir.as_fd(), &name, device, sys, options)?;
            }
            Err(e) => return Err(step("mknod", &device.path, e)),
        }
        verify_node(dir.as_fd(), &name, device, sys)?;
    }
    Ok(())
}

fn bind_host_node(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    device: &PlannedDevice,
    sys: &dyn Sys,
    options: &ApplyOptions,
) -> Result<(), VfsError> {
    let host_dev = options.host_dev.as_ref().ok_or_else(|| VfsError::Refused {
        path: device.path.clone(),
        reason: "mknod is not allowed here and a fixture host has no node to bind".into(),
    })?;
    let rel = device.path.strip_prefix("/dev").unwrap_or(&device.path);
    let source = host_dev.join(rel);
    let file = openat(
        dir,
        name,
        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| step("create device mount point", &device.path, errno_io(e)))?;
    drop(file);
    let target = openat(
        dir,
        name,
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| step("open device mount point", &device.path, errno_io(e)))?;
    let tree = sys
        .open_tree(AT_FDCWD, &source, false, false)
        .map_err(|e| step("bind host device", &source, e))?;
    sys.move_mount(tree.as_fd(), target.as_fd())
        .map_err(|e| step("bind host device", &device.path, e))
}

fn verify_node(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    device: &PlannedDevice,
    sys: &dyn Sys,
) -> Result<(), VfsError> {
    let info: FileInfo = sys
        .lstat_at(dir, name)
        .map_err(|e| step("stat device", &device.path, e))?;
    let expected = match device.kind {
        'b' => FileKind::BlockDevice,
        'p' => FileKind::Fifo,
        _ => FileKind::CharDevice,
    };
    let rdev = nix::sys::stat::makedev(u64::from(device.major), u64::from(device.minor));
    if info.kind != expected || (expected != FileKind::Fifo && info.rdev != rdev) {
        return Err(VfsError::Refused {
            path: device.path.clone(),
            reason: format!(
                "made a {:?} {}:{}, found a {:?} {}:{}",
                expected,
                device.major,
                device.minor,
                info.kind,
                nix::sys::stat::major(info.rdev),
                nix::sys::stat::minor(info.rdev)
            ),
        });
    }
    Ok(())
}

/// Hides `path`: a directory under an empty read-only tmpfs, anything else under the sandbox's
/// `/dev/null`, checked to be char 1:3 first (a swapped `/dev/null` was CVE-2025-31133).
fn mask(root: &RootDir, path: &Path, sys: &dyn Sys) -> Result<(), VfsError> {
    let target = match root.open_at(path, OFlag::O_PATH) {
        Ok(fd) => fd,
        Err(e) if e.is_missing() => return Ok(()),
        Err(e) => return Err(e),
    };
    let info = super::rootdir::fstat_info(target.as_fd())
        .map_err(|e| step("stat masked path", path, errno_io(e)))?;
    let cover = if info.kind == FileKind::Directory {
        sys.fs_mount(
            "tmpfs",
            "tmpfs",
            &["size=0".to_owned(), "mode=0555".to_owned()],
            super::abi::MOUNT_ATTR_RDONLY,
        )
        .map_err(|e| step("mask directory", path, e))?
    } else {
        let null = root.open_at(Path::new("/dev/null"), OFlag::O_PATH | OFlag::O_NOFOLLOW)?;
        let null_info = super::rootdir::fstat_info(null.as_fd())
            .map_err(|e| step("stat /dev/null", "/dev/null", errno_io(e)))?;
        if null_info.kind != FileKind::CharDevice || null_info.rdev != nix::sys::stat::makedev(1, 3)
        {
            return Err(VfsError::Refused {
                path: "/dev/null".into(),
                reason: "not the null device (char 1:3); refusing to mask with it".into(),
            });
        }
        sys.open_tree(null.as_fd(), Path::new(""), false, false)
            .map_err(|e| step("mask file", path, e))?
    };
    sys.move_mount(cover.as_fd(), target.as_fd())
        .map_err(|e| step("mask", path, e))?;
    // Read-only, so that writes to a masked file do not even reach /dev/null.
    let flags = MountFlags {
        attrs: super::abi::MOUNT_ATTR_RDONLY,
        ..MountFlags::default()
    };
    sys.mount_setattr(cover.as_fd(), false, flags)
        .map_err(|e| step("make the mask read-only", path, e))
}

/// Binds `path` onto itself read-only (and nosuid, nodev, noexec), submounts included.
fn make_readonly(root: &RootDir, path: &Path, sys: &dyn Sys) -> Result<(), VfsError> {
    let target = match root.open_at(path, OFlag::O_PATH) {
        Ok(fd) => fd,
        Err(e) if e.is_missing() => return Ok(()),
        Err(e) => return Err(e),
    };
    let tree = sys
        .open_tree(target.as_fd(), Path::new(""), true, false)
        .map_err(|e| step("bind read-only path", path, e))?;
    sys.move_mount(tree.as_fd(), target.as_fd())
        .map_err(|e| step("bind read-only path", path, e))?;
    let flags = MountFlags::from_options(
        &[
            "ro".into(),
            "nosuid".into(),
            "nodev".into(),
            "noexec".into(),
        ],
        None,
    );
    sys.mount_setattr(tree.as_fd(), true, flags)
        .map_err(|e| step("make read-only", path, e))
}
