//! The host's cgroup hierarchies, from its mount table: cgroup v1 (a hierarchy per controller),
//! unified (one cgroup2 hierarchy, at `/sys/fs/cgroup` on a systemd host), or hybrid (the v1
//! hierarchies, and a cgroup2 one with no controllers, at `/sys/fs/cgroup/unified`), with the
//! cgroup this process is in in each. Read from text, so that tests give any host.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// How the host mounts cgroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupMode {
    /// cgroup v1 only.
    Legacy,
    /// v1 controllers, and a cgroup2 hierarchy beside them (without controllers, usually).
    Hybrid,
    /// cgroup2 only.
    Unified,
}

/// One mounted hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    /// Where it is mounted.
    pub mount: PathBuf,
    /// This process's cgroup in it, from the hierarchy's root (`/` when unknown).
    pub own: PathBuf,
}

/// The hierarchies of the host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hierarchies {
    /// cgroup v1, by controller (`memory`, `cpu`, `devices`, ...; `systemd` for `name=systemd`).
    pub v1: BTreeMap<String, Hierarchy>,
    /// The cgroup2 hierarchy.
    pub unified: Option<Hierarchy>,
}

/// The v1 controllers the runtime knows; other mount options of a v1 mount are not controllers.
const V1_CONTROLLERS: [&str; 13] = [
    "blkio",
    "cpu",
    "cpuacct",
    "cpuset",
    "devices",
    "freezer",
    "hugetlb",
    "memory",
    "misc",
    "net_cls",
    "net_prio",
    "perf_event",
    "pids",
];

impl Hierarchies {
    /// This process's hierarchies (`/proc/self/mountinfo`, `/proc/self/cgroup`).
    pub fn read() -> Self {
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        Self::parse(
            &read("/proc/self/mountinfo"),
            &read("/proc/self/cgroup"),
            Path::new("/"),
        )
    }

    /// The hierarchies in `mountinfo` (its mount points taken under `root`, so that a test can
    /// lay a host out in a directory), with this process's cgroups from `own` (the text of
    /// `/proc/self/cgroup`).
    pub fn parse(mountinfo: &str, own: &str, root: &Path) -> Self {
        let mut own_v1: BTreeMap<&str, &str> = BTreeMap::new();
        let mut own_v2 = None;
        for line in own.lines() {
            let mut parts = line.splitn(3, ':');
            let (Some(_), Some(controllers), Some(path)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            if controllers.is_empty() {
                own_v2 = Some(path);
            }
            for controller in controllers.split(',') {
                own_v1.insert(controller.strip_prefix("name=").unwrap_or(controller), path);
            }
        }
        let mut hierarchies = Self::default();
        for line in mountinfo.lines() {
            let Some((before, after)) = line.split_once(" - ") else {
                continue;
            };
            let fields: Vec<&str> = before.split(' ').collect();
            let after: Vec<&str> = after.split(' ').collect();
            let (Some(mount_root), Some(point), Some(fs_type), Some(options)) =
                (fields.get(3), fields.get(4), after.first(), after.get(2))
            else {
                continue;
            };
            let mount = root.join(point.trim_start_matches('/'));
            // Inside a cgroup namespace or a bind mount, the mount shows a subtree.
            let own_in = |path: &str| {
                Path::new(path)
                    .strip_prefix(mount_root)
                    .map(|p| Path::new("/").join(p))
                    .unwrap_or_else(|_| PathBuf::from("/"))
            };
            match *fs_type {
                "cgroup2" if hierarchies.unified.is_none() => {
                    hierarchies.unified = Some(Hierarchy {
                        mount,
                        own: own_in(own_v2.unwrap_or("/")),
                    });
                }
                "cgroup" => {
                    for option in options.split(',') {
                        let name = match option.strip_prefix("name=") {
                            Some(name) => name,
                            None if V1_CONTROLLERS.contains(&option) => option,
                            None => continue,
                        };
                        hierarchies
                            .v1
                            .entry(name.to_owned())
                            .or_insert_with(|| Hierarchy {
                                mount: mount.clone(),
                                own: own_in(own_v1.get(name).copied().unwrap_or("/")),
                            });
                    }
                }
                _ => {}
            }
        }
        hierarchies
    }

    /// How the host mounts cgroups; `None` where it mounts none.
    pub fn mode(&self) -> Option<CgroupMode> {
        let v1 = self.v1.keys().any(|name| name != "systemd");
        match (v1, self.unified.is_some()) {
            (true, true) => Some(CgroupMode::Hybrid),
            (true, false) => Some(CgroupMode::Legacy),
            (false, true) => Some(CgroupMode::Unified),
            (false, false) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This development VM's mount table: hybrid, `cpu` and `cpuacct` mounted apart.
    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn hybrid_legacy_and_unified_hosts_are_told_apart() {
        let own = "5:devices:/\n4:memory:/api/x\n1:name=systemd:/\n0::/\n";
        let hybrid = Hierarchies::parse(HYBRID, own, Path::new("/"));
        assert_eq!(hybrid.mode(), Some(CgroupMode::Hybrid));
        assert_eq!(
            hybrid.v1["memory"],
            Hierarchy {
                mount: "/sys/fs/cgroup/memory".into(),
                own: "/api/x".into()
            }
        );
        assert_eq!(
            hybrid.v1["systemd"].mount,
            Path::new("/sys/fs/cgroup/systemd")
        );
        assert_eq!(
            hybrid.unified.as_ref().unwrap().mount,
            Path::new("/sys/fs/cgroup/unified")
        );
        assert!(!hybrid.v1.contains_key("xattr"));

        let legacy: String = HYBRID
            .lines()
            .filter(|l| !l.contains("cgroup2"))
            .map(|l| format!("{l}\n"))
            .collect();
        let legacy = Hierarchies::parse(&legacy, own, Path::new("/"));
        assert_eq!(legacy.mode(), Some(CgroupMode::Legacy));

        // A unified host, seen from inside a cgroup namespace whose root is /pod.
        let unified = Hierarchies::parse(
            "29 23 0:26 /pod /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n",
            "0::/pod/c1\n",
            Path::new("/tmp/host"),
        );
        assert_eq!(unified.mode(), Some(CgroupMode::Unified));
        assert_eq!(
            unified.unified,
            Some(Hierarchy {
                mount: "/tmp/host/sys/fs/cgroup".into(),
                own: "/c1".into()
            })
        );
        assert_eq!(Hierarchies::parse("", "", Path::new("/")).mode(), None);
    }
}
