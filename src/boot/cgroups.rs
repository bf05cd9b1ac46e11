//! The container's view of cgroups: what a spec's `/sys/fs/cgroup` mount turns into.

use std::path::{Path, PathBuf};

use crate::pci::HostRoot;
use crate::plan::{BindSource, MountOrigin, PlannedMount, SourceKind};

/// How the host's cgroup hierarchies are mounted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupLayout {
    /// cgroup v2 only: one `cgroup2` mount.
    Unified,
    /// The host tree has no `sys/fs/cgroup` (a fixture may leave it out): no cgroup mount.
    Absent,
    /// cgroup v1 (or hybrid): one hierarchy per controller directory of `/sys/fs/cgroup`.
    Legacy {
        /// Controller directories (`cpu,cpuacct`, `memory`, `systemd`), sorted, each with the
        /// cgroup this process is in there (from `/proc/self/cgroup`; `/` when unknown).
        controllers: Vec<(String, PathBuf)>,
    },
}

impl CgroupLayout {
    /// Reads the layout from the host's `/sys/fs/cgroup`: `cgroup.controllers` there means
    /// cgroup v2; controller directories mean v1; an empty one, v2 (every current kernel offers
    /// it).
    pub fn read(host: &HostRoot) -> Self {
        let tree = host.sys();
        let Ok(Some(dir)) = tree.resolve_optional("fs/cgroup") else {
            return Self::Absent;
        };
        if dir.join("cgroup.controllers").exists() {
            return Self::Unified;
        }
        let own = host
            .proc()
            .read_optional(&host.proc().root().join("self/cgroup"))
            .ok()
            .flatten()
            .unwrap_or_default();
        let controllers: Vec<(String, PathBuf)> = tree
            .list(&dir)
            .ok()
            .flatten()
            .unwrap_or_default()
            .into_iter()
            .filter(|name| name != "unified")
            .filter(|name| std::fs::symlink_metadata(dir.join(name)).is_ok_and(|m| m.is_dir()))
            .map(|name| {
                let path = own_cgroup(&own, &name).unwrap_or_else(|| PathBuf::from("/"));
                (name, path)
            })
            .collect();
        if controllers.is_empty() {
            Self::Unified
        } else {
            Self::Legacy { controllers }
        }
    }

    /// The mounts that stand for one cgroup mount at `destination` with `flags`: a `cgroup2`
    /// mount, or a tmpfs with each v1 controller's cgroup bound under it: `cgroups_path` where
    /// that cgroup exists on the host, else the cgroup the workload inherits from the launcher
    /// (accelgate does not create cgroups).
    pub fn mounts(
        &self,
        destination: &Path,
        flags: &[String],
        host_cgroup_root: &Path,
        cgroups_path: &Path,
    ) -> Vec<PlannedMount> {
        let mount = |destination: PathBuf,
                     fs_type: &str,
                     source: String,
                     options: Vec<String>,
                     data: Vec<String>| PlannedMount {
            destination,
            fs_type: fs_type.to_owned(),
            source,
            options,
            data,
            propagation: None,
            bind: None,
            access: None,
            volume: None,
            origin: MountOrigin::Cgroup,
        };
        let mut options = flags.to_vec();
        for flag in ["nosuid", "nodev", "noexec"] {
            if !options.iter().any(|f| f == flag) {
                options.push(flag.to_owned());
            }
        }
        match self {
            Self::Absent => Vec::new(),
            Self::Unified => vec![mount(
                destination.to_path_buf(),
                "cgroup2",
                "cgroup".into(),
                options,
                Vec::new(),
            )],
            Self::Legacy { controllers } => {
                let mut mounts = vec![mount(
                    destination.to_path_buf(),
                    "tmpfs",
                    "tmpfs".into(),
                    vec!["nosuid".into(), "nodev".into(), "noexec".into()],
                    vec!["mode=755".into()],
                )];
                let relative = |path: &Path| path.strip_prefix("/").unwrap_or(path).to_path_buf();
                for (controller, own) in controllers {
                    let wanted = host_cgroup_root
                        .join(controller)
                        .join(relative(cgroups_path));
                    let source = if wanted.is_dir() {
                        wanted
                    } else {
                        host_cgroup_root.join(controller).join(relative(own))
                    };
                    let mut bind = mount(
                        destination.join(controller),
                        "bind",
                        source.display().to_string(),
                        options.clone(),
                        Vec::new(),
                    );
                    bind.bind = Some(BindSource {
                        kind: SourceKind::Directory,
                        recursive: false,
                    });
                    mounts.push(bind);
                }
                mounts
            }
        }
    }
}

/// This process's cgroup in the v1 hierarchy mounted at directory `name` (`cpu,cpuacct`,
/// `systemd` for `name=systemd`), from `/proc/self/cgroup` lines `ID:CONTROLLERS:PATH`.
fn own_cgroup(proc_self_cgroup: &str, name: &str) -> Option<PathBuf> {
    proc_self_cgroup.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let matches = controllers == name || controllers.strip_prefix("name=") == Some(name);
        matches.then(|| PathBuf::from(path))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_is_one_mount_and_v1_one_per_controller() {
        let unified = CgroupLayout::Unified.mounts(
            Path::new("/sys/fs/cgroup"),
            &["ro".into()],
            Path::new("/sys/fs/cgroup"),
            Path::new("/c1"),
        );
        assert_eq!(unified.len(), 1);
        assert_eq!(
            (unified[0].fs_type.as_str(), unified[0].options.join(",")),
            ("cgroup2", "ro,nosuid,nodev,noexec".to_owned())
        );
        let legacy = CgroupLayout::Legacy {
            controllers: vec![
                ("cpu,cpuacct".into(), "/".into()),
                ("memory".into(), "/own".into()),
            ],
        };
        let mounts = legacy.mounts(
            Path::new("/sys/fs/cgroup"),
            &[],
            Path::new("/sys/fs/cgroup"),
            Path::new("/pod/c1"),
        );
        assert_eq!(mounts.len(), 3);
        assert_eq!(
            mounts[1].destination,
            Path::new("/sys/fs/cgroup/cpu,cpuacct")
        );
        // /pod/c1 does not exist here, so the inherited cgroup is shown.
        assert_eq!(mounts[2].source, "/sys/fs/cgroup/memory/own");
        assert_eq!(
            own_cgroup("4:memory:/a/b\n1:name=systemd:/s\n0::/", "systemd"),
            Some(PathBuf::from("/s"))
        );
    }

    #[test]
    fn the_layout_comes_from_the_host_tree() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("sys/fs/cgroup/memory")).unwrap();
        std::fs::create_dir_all(dir.path().join("sys/fs/cgroup/cpu,cpuacct")).unwrap();
        std::fs::create_dir_all(dir.path().join("sys/fs/cgroup/unified")).unwrap();
        std::os::unix::fs::symlink("cpu,cpuacct", dir.path().join("sys/fs/cgroup/cpu")).unwrap();
        let host = HostRoot::at(dir.path()).unwrap();
        assert_eq!(
            CgroupLayout::read(&host),
            CgroupLayout::Legacy {
                controllers: vec![
                    ("cpu,cpuacct".into(), "/".into()),
                    ("memory".into(), "/".into())
                ]
            }
        );
        std::fs::write(
            dir.path().join("sys/fs/cgroup/cgroup.controllers"),
            "cpu memory\n",
        )
        .unwrap();
        assert_eq!(
            CgroupLayout::read(&HostRoot::at(dir.path()).unwrap()),
            CgroupLayout::Unified
        );
    }
}
