//! Mount rules: the spec's mounts made safe and complete, in mount order.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use oci_spec::runtime::Mount;

use super::hints::{MountHint, Share};
use super::options;
use super::paths::{clean_absolute, is_proper_ancestor};
use super::{BootError, Bundle, Rules};
use crate::plan::{Access, BindSource, MountOrigin, PlannedMount, SharedVolume, SourceKind};
use crate::vfs::{FileKind, RootDir, VfsError};

/// Filesystem types accelgate mounts. Anything else is skipped with a rule, as gVisor does.
pub const KNOWN_TYPES: [&str; 11] = [
    "proc", "sysfs", "tmpfs", "devpts", "mqueue", "cgroup", "cgroup2", "bind", "overlay", "erofs",
    "fuse",
];

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// A mount with the given fields and nothing else.
pub fn plain_mount(
    destination: &str,
    fs_type: &str,
    source: &str,
    options: &[&str],
    data: &[&str],
    origin: MountOrigin,
) -> PlannedMount {
    PlannedMount {
        destination: PathBuf::from(destination),
        fs_type: fs_type.to_owned(),
        source: source.to_owned(),
        options: strings(options),
        data: strings(data),
        propagation: None,
        bind: None,
        access: None,
        volume: None,
        origin,
    }
}

/// A read-only bind of a host directory.
pub fn readonly_bind(
    destination: PathBuf,
    source: &Path,
    recursive: bool,
    origin: MountOrigin,
) -> PlannedMount {
    PlannedMount {
        destination,
        fs_type: "bind".into(),
        source: source.display().to_string(),
        options: strings(&["ro", "nosuid", "nodev", "noexec"]),
        data: Vec::new(),
        propagation: None,
        bind: Some(BindSource {
            kind: SourceKind::Directory,
            recursive,
        }),
        access: Some(Access::Shared),
        volume: None,
        origin,
    }
}

/// The spec's mounts, turned into planned mounts in spec order.
#[derive(Debug, Default)]
pub struct SpecMounts {
    /// Planned mounts, spec order.
    pub mounts: Vec<PlannedMount>,
    /// Pod volumes the mounts use, once each.
    pub volumes: Vec<SharedVolume>,
    /// The first cgroup mount (its destination and flags) to expand for the host's layout, and
    /// its position in `mounts`.
    pub cgroup: Option<(usize, PathBuf, Vec<String>)>,
}

/// Compiles `mounts[]`: destinations cleaned (relative or climbing ones are errors), `/dev` a
/// tmpfs and `/dev/pts` a devpts whatever type the spec gave, `bind`/`rbind` options make a
/// bind of any type, `none` is sysfs, unknown types are skipped, cgroup mounts after the first
/// are dropped, bind sources must exist, and pod mount hints apply.
pub fn spec_mounts(
    bundle: &Bundle,
    hints: &[MountHint],
    rules: &mut Rules,
) -> Result<SpecMounts, BootError> {
    let mut out = SpecMounts::default();
    let list: Vec<Mount> = bundle.spec.mounts().clone().unwrap_or_default();
    for (index, mount) in list.iter().enumerate() {
        let field = |name: &str| format!("mounts[{index}].{name}");
        let raw = mount.destination().to_string_lossy().into_owned();
        let destination = clean_absolute(&raw).map_err(|reason| BootError::InvalidField {
            field: field("destination"),
            reason: format!("{raw:?}: {reason}"),
        })?;
        if destination == Path::new("/") {
            return Err(BootError::InvalidField {
                field: field("destination"),
                reason: "cannot mount over /".into(),
            });
        }
        let given_type = mount.typ().clone().unwrap_or_default();
        let spec_options = mount.options().clone().unwrap_or_default();
        let asks_bind =
            given_type == "bind" || spec_options.iter().any(|o| o == "bind" || o == "rbind");
        let fs_type = if asks_bind {
            "bind".to_owned()
        } else if destination == Path::new("/dev") {
            "tmpfs".to_owned()
        } else if destination == Path::new("/dev/pts") {
            "devpts".to_owned()
        } else if given_type == "none" {
            "sysfs".to_owned()
        } else {
            given_type.clone()
        };
        if fs_type != given_type && !given_type.is_empty() {
            rules.add(format!(
                "mount {}: type {given_type:?} taken as {fs_type}",
                destination.display()
            ));
        }
        if !KNOWN_TYPES.contains(&fs_type.as_str()) {
            rules.add(format!(
                "mount {}: unknown filesystem type {given_type:?}; skipped",
                destination.display()
            ));
            continue;
        }
        if (fs_type == "cgroup" || fs_type == "cgroup2") && out.cgroup.is_some() {
            rules.add(format!(
                "mount {}: a second cgroup mount; dropped",
                destination.display()
            ));
            continue;
        }
        let parsed =
            options::parse(&fs_type, &spec_options).map_err(|reason| BootError::InvalidField {
                field: field("options"),
                reason,
            })?;
        let mut parsed = parsed;
        if fs_type == "devpts" {
            // Every sandbox gets its own pty namespace, with a usable /dev/pts/ptmx.
            for (key, option) in [
                ("newinstance", "newinstance"),
                ("ptmxmode", "ptmxmode=0666"),
            ] {
                if !parsed.data.iter().any(|d| d.split('=').next() == Some(key)) {
                    parsed.data.push(option.to_owned());
                    rules.add(format!(
                        "mount {}: devpts gets {option}",
                        destination.display()
                    ));
                }
            }
        }
        for ignored in &parsed.ignored {
            rules.add(format!(
                "mount {}: option {ignored}; ignored",
                destination.display()
            ));
        }
        let source = mount
            .source()
            .as_ref()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let hint = hints.iter().find(|h| h.source == source);
        let mut planned = PlannedMount {
            destination: destination.clone(),
            fs_type: fs_type.clone(),
            source: if source.is_empty() {
                fs_type.clone()
            } else {
                source.clone()
            },
            options: parsed.flags.clone(),
            data: parsed.data,
            propagation: parsed.propagation,
            bind: None,
            access: None,
            volume: None,
            origin: MountOrigin::Spec,
        };
        match hint {
            Some(hint) if hint.is_pod_volume() => {
                hint.check_compatible(&parsed.flags, &destination.display().to_string())?;
                planned.fs_type = hint.fs_type.clone();
                planned.data.clear();
                planned.volume = Some(hint.name.clone());
                planned.access = Some(Access::Exclusive);
                if !out.volumes.iter().any(|v| v.name == hint.name) {
                    out.volumes.push(SharedVolume {
                        name: hint.name.clone(),
                        fs_type: hint.fs_type.clone(),
                        source: hint.source.clone(),
                        share: hint.share.name().to_owned(),
                        options: hint.options.clone(),
                    });
                }
                rules.add(format!(
                    "mount {}: pod volume {:?} ({}, share={}), made once per pod and bound here",
                    destination.display(),
                    hint.name,
                    hint.fs_type,
                    hint.share.name()
                ));
            }
            _ if fs_type == "bind" => {
                if source.is_empty() {
                    return Err(BootError::InvalidField {
                        field: field("source"),
                        reason: "a bind mount needs a source".into(),
                    });
                }
                let host = bundle.host_path(Path::new(&source));
                let host = match in_rootfs(bundle, &host)? {
                    Some(inside) => {
                        rules.add(format!(
                            "mount {}: bind source {} is in the rootfs; resolved inside it: {}",
                            destination.display(),
                            host.display(),
                            inside.display()
                        ));
                        inside
                    }
                    None => host,
                };
                let meta = std::fs::metadata(&host).map_err(|e| BootError::HostPath {
                    what: format!("bind source of {}", destination.display()),
                    path: host.clone(),
                    source: e,
                })?;
                // The source is opened without following a final symlink when it is mounted,
                // so that swapping it for a link during set-up cannot redirect the bind; a
                // source that already is a link is refused here.
                if std::fs::symlink_metadata(&host).is_ok_and(|m| m.file_type().is_symlink()) {
                    return Err(BootError::InvalidField {
                        field: field("source"),
                        reason: format!(
                            "{} is a symlink; give the path it points to",
                            host.display()
                        ),
                    });
                }
                let kind = if meta.is_dir() {
                    SourceKind::Directory
                } else {
                    SourceKind::File
                };
                planned.source = host.display().to_string();
                planned.bind = Some(BindSource {
                    kind,
                    recursive: parsed.bind.unwrap_or(false),
                });
                planned.access = Some(match hint.map(|h| h.share) {
                    Some(Share::Container) => Access::Exclusive,
                    _ => Access::Shared,
                });
            }
            _ => {}
        }
        if fs_type == "cgroup" || fs_type == "cgroup2" {
            out.cgroup = Some((
                out.mounts.len(),
                destination.clone(),
                planned.options.clone(),
            ));
        }
        out.mounts.push(planned);
    }
    Ok(out)
}

/// The mandatory mounts the spec lacks, in the order they go right after the root.
///
/// `/sys` is a fresh read-only sysfs on a real host; on a fixture host it is the fixture's
/// `sys/` tree, bound read-only, so the workload sees the host it is told about.
pub fn mandatory_mounts(
    present: &[PlannedMount],
    sys_bind: Option<&Path>,
    rules: &mut Rules,
) -> Vec<PlannedMount> {
    let has = |dest: &str| present.iter().any(|m| m.destination == Path::new(dest));
    let mut mounts = Vec::new();
    if !has("/proc") {
        mounts.push(plain_mount(
            "/proc",
            "proc",
            "proc",
            &["nosuid", "noexec", "nodev"],
            &[],
            MountOrigin::Mandatory,
        ));
    }
    if !has("/sys") {
        mounts.push(match sys_bind {
            Some(source) => readonly_bind("/sys".into(), source, true, MountOrigin::Mandatory),
            None => plain_mount(
                "/sys",
                "sysfs",
                "sysfs",
                &["nosuid", "noexec", "nodev", "ro"],
                &[],
                MountOrigin::Mandatory,
            ),
        });
    }
    if !has("/dev") {
        mounts.push(plain_mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime"],
            &["mode=755", "size=65536k"],
            MountOrigin::Mandatory,
        ));
    }
    if !has("/dev/pts") {
        mounts.push(plain_mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &["nosuid", "noexec"],
            &["newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
            MountOrigin::Mandatory,
        ));
    }
    for mount in &mounts {
        rules.add(format!(
            "mount {}: mandatory and missing from the spec; added",
            mount.destination.display()
        ));
    }
    mounts
}

/// A bind source under the bundle's rootfs belongs to the container: it is resolved inside the
/// rootfs (symlinks followed as the container would see them, never out of it), so that a link
/// in its path cannot bind a host directory (the CVE-2021-25741 class). Returns the resolved
/// host path, or `None` for a source outside the rootfs.
fn in_rootfs(bundle: &Bundle, source: &Path) -> Result<Option<PathBuf>, BootError> {
    let Some(root) = bundle.spec.root().as_ref() else {
        return Ok(None);
    };
    let given = bundle.host_path(root.path());
    let lexical = |path: &Path| clean_absolute(&path.to_string_lossy()).ok();
    let Some(source) = lexical(source) else {
        return Ok(None);
    };
    let Ok(real_root) = std::fs::canonicalize(&given) else {
        return Ok(None);
    };
    let relative = [lexical(&given), Some(real_root.clone())]
        .into_iter()
        .flatten()
        .find_map(|rootfs| source.strip_prefix(&rootfs).ok().map(Path::to_path_buf));
    let Some(relative) = relative else {
        return Ok(None);
    };
    let host_error = |e: VfsError| BootError::HostPath {
        what: "bind source in the rootfs".into(),
        path: source.clone(),
        source: std::io::Error::other(e.to_string()),
    };
    let fd = RootDir::open(&real_root)
        .and_then(|dir| {
            dir.open_at(
                &relative,
                nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_NOFOLLOW,
            )
        })
        .map_err(host_error)?;
    let link = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
    std::fs::read_link(&link)
        .map(Some)
        .map_err(|source| BootError::HostPath {
            what: "bind source in the rootfs".into(),
            path: relative,
            source,
        })
}

/// Orders mounts parents-first with a stable order: a mount moves only when one of its
/// ancestors (by path component) comes later; otherwise, and among equals, the given order
/// stands. gVisor sorts by destination length with an unstable sort, which can swap mounts the
/// spec put in order; the runtime spec says "in the listed order".
pub fn order_parents_first(mounts: Vec<PlannedMount>) -> Vec<PlannedMount> {
    // Kahn's algorithm over "is a proper ancestor of", always taking the earliest ready mount.
    let count = mounts.len();
    let mut waiting_on = vec![0usize; count];
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); count];
    for (i, mount) in mounts.iter().enumerate() {
        for (j, other) in mounts.iter().enumerate() {
            if is_proper_ancestor(&other.destination, &mount.destination) {
                waiting_on[i] += 1;
                children[j].push(i);
            }
        }
    }
    let mut ready: BTreeSet<usize> = (0..count).filter(|&i| waiting_on[i] == 0).collect();
    let mut order = Vec::with_capacity(count);
    while let Some(i) = ready.pop_first() {
        order.push(i);
        for &child in &children[i] {
            waiting_on[child] -= 1;
            if waiting_on[child] == 0 {
                ready.insert(child);
            }
        }
    }
    let mut slots: Vec<Option<PlannedMount>> = mounts.into_iter().map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}

/// Whether to mount an internal tmpfs on `/tmp` (mode 01777): not when the spec mounts `/tmp`
/// or anything under it, nor when the rootfs's `/tmp` has files or is not a directory (a file, a
/// symlink). `rootfs` is `None` when it cannot be inspected before mounting (an image).
pub fn tmp_mount(
    mounts: &[PlannedMount],
    rootfs: Option<&RootDir>,
    rules: &mut Rules,
) -> Result<Option<PlannedMount>, BootError> {
    let tmp = Path::new("/tmp");
    if let Some(m) = mounts
        .iter()
        .find(|m| m.destination == tmp || is_proper_ancestor(tmp, &m.destination))
    {
        rules.add(format!(
            "/tmp: the spec mounts {}; no internal tmpfs",
            m.destination.display()
        ));
        return Ok(None);
    }
    let Some(rootfs) = rootfs else {
        rules.add("/tmp: the rootfs image cannot be inspected before mounting; no internal tmpfs");
        return Ok(None);
    };
    let verdict = match rootfs.lstat(tmp).map_err(BootError::Rootfs)? {
        None => None,
        Some(info) if info.kind == FileKind::Directory => {
            if rootfs.is_empty_dir(tmp).map_err(BootError::Rootfs)? {
                None
            } else {
                Some("is not empty")
            }
        }
        Some(info) if info.kind == FileKind::Symlink => Some("is a symlink"),
        Some(_) => Some("is not a directory"),
    };
    if let Some(why) = verdict {
        rules.add(format!("/tmp: the rootfs's /tmp {why}; no internal tmpfs"));
        return Ok(None);
    }
    rules.add("/tmp: empty or absent in the rootfs; internal tmpfs with mode 01777");
    Ok(Some(plain_mount(
        "/tmp",
        "tmpfs",
        "tmpfs",
        &["nosuid", "nodev"],
        &["mode=01777"],
        MountOrigin::Tmp,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(dest: &str) -> PlannedMount {
        plain_mount(dest, "tmpfs", "tmpfs", &[], &[], MountOrigin::Spec)
    }

    fn order(list: &[&str]) -> Vec<String> {
        order_parents_first(list.iter().map(|d| at(d)).collect())
            .into_iter()
            .map(|m| m.destination.display().to_string())
            .collect()
    }

    #[test]
    fn parents_come_first_and_ties_keep_spec_order() {
        assert_eq!(
            order(&[
                "/foo/bar/baz",
                "/foo/qux-quz",
                "/foo/qux",
                "/foo",
                "/some/very/very/deep/path"
            ]),
            [
                "/foo",
                "/foo/bar/baz",
                "/foo/qux-quz",
                "/foo/qux",
                "/some/very/very/deep/path"
            ]
        );
        assert_eq!(
            order(&["/dev/shm", "/proc", "/dev", "/sys/fs/cgroup", "/sys"]),
            ["/proc", "/dev", "/dev/shm", "/sys", "/sys/fs/cgroup"]
        );
        // Equal lengths and unrelated paths keep their order (an unstable length sort may not).
        assert_eq!(
            order(&["/bbb", "/aaa", "/ccc", "/a/b"]),
            ["/bbb", "/aaa", "/ccc", "/a/b"]
        );
        // The same destination twice: the later one shadows the earlier, so the order stays.
        let twice = order_parents_first(vec![
            plain_mount("/data", "tmpfs", "first", &[], &[], MountOrigin::Spec),
            plain_mount("/data", "tmpfs", "second", &[], &[], MountOrigin::Spec),
        ]);
        assert_eq!(twice[1].source, "second");
    }
}
