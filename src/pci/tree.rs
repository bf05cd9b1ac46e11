use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

use super::PciError;

/// How many symbolic links one resolution may follow: Linux's `MAXSYMLINKS`.
pub const MAX_SYMLINKS: usize = 40;

/// sysfs attributes fit in a page and procfs driver files in a few; anything bigger is not an
/// attribute (a BAR `resource0`, a fixture mistake) and is refused rather than slurped.
const MAX_ATTRIBUTE_BYTES: usize = 64 * 1024;

/// One of the host's pseudo-filesystems (`/sys` or `/proc`), rooted at a directory on disk.
///
/// Every lookup stays beneath the root: symbolic links are followed one component at a time in
/// user space, a link that climbs above the root or is absolute is an error naming it, and a
/// loop stops after [`MAX_SYMLINKS`] links. Paths handed out are on-disk paths (for further
/// lookups); errors name host paths (`/sys/...`) so that messages do not depend on where a
/// fixture lives.
#[derive(Debug, Clone)]
pub struct HostTree {
    root: PathBuf,
    mount: &'static str,
}

enum Step {
    Parent,
    Name(OsString),
}

impl HostTree {
    /// A tree whose on-disk root `root` stands for the host's `mount` (`/sys`, `/proc`).
    pub fn new(root: impl Into<PathBuf>, mount: &'static str) -> Self {
        Self {
            root: root.into(),
            mount,
        }
    }

    /// The on-disk root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The host path this tree stands for (`/sys`).
    pub fn mount(&self) -> &'static str {
        self.mount
    }

    /// The host path of an on-disk path under this tree.
    pub fn host_path(&self, disk: &Path) -> PathBuf {
        match disk.strip_prefix(&self.root) {
            Ok(rel) if rel.as_os_str().is_empty() => PathBuf::from(self.mount),
            Ok(rel) => Path::new(self.mount).join(rel),
            Err(_) => disk.to_path_buf(),
        }
    }

    /// Resolves `rel` (relative to the tree root) to a symlink-free on-disk path beneath it.
    pub fn resolve(&self, rel: impl AsRef<Path>) -> Result<PathBuf, PciError> {
        self.walk(self.root.clone(), rel.as_ref())
    }

    /// Like [`resolve`](Self::resolve), but a path that does not exist is `None`.
    pub fn resolve_optional(&self, rel: impl AsRef<Path>) -> Result<Option<PathBuf>, PciError> {
        match self.resolve(rel) {
            Err(e) if e.is_not_found() => Ok(None),
            other => other.map(Some),
        }
    }

    /// Resolves `rel` relative to `dir`, a path this tree resolved earlier.
    pub fn resolve_under(&self, dir: &Path, rel: impl AsRef<Path>) -> Result<PathBuf, PciError> {
        self.walk(dir.to_path_buf(), rel.as_ref())
    }

    fn depth(&self, disk: &Path) -> usize {
        disk.strip_prefix(&self.root)
            .map_or(0, |rel| rel.components().count())
    }

    fn walk(&self, mut current: PathBuf, rel: &Path) -> Result<PathBuf, PciError> {
        let mut depth = self.depth(&current);
        let mut pending = Vec::new();
        push_steps(&mut pending, rel);
        let mut followed = 0;
        let mut last_link: Option<(PathBuf, PathBuf)> = None;
        while let Some(step) = pending.pop() {
            match step {
                Step::Parent if depth == 0 => {
                    return Err(match last_link {
                        Some((link, target)) => PciError::SymlinkEscape {
                            link: self.host_path(&link),
                            target,
                            tree: self.mount,
                        },
                        None => PciError::Invalid {
                            path: self.host_path(&current),
                            value: rel.display().to_string(),
                            reason: "climbs above the tree root",
                        },
                    });
                }
                Step::Parent => {
                    current.pop();
                    depth -= 1;
                }
                Step::Name(name) => {
                    let next = current.join(&name);
                    let meta =
                        fs::symlink_metadata(&next).map_err(|e| self.read_error(&next, e))?;
                    if !meta.file_type().is_symlink() {
                        current = next;
                        depth += 1;
                        continue;
                    }
                    followed += 1;
                    if followed > MAX_SYMLINKS {
                        return Err(PciError::SymlinkLoop {
                            link: self.host_path(&next),
                            limit: MAX_SYMLINKS,
                        });
                    }
                    let target = fs::read_link(&next).map_err(|e| self.read_error(&next, e))?;
                    if target.has_root() {
                        return Err(PciError::SymlinkEscape {
                            link: self.host_path(&next),
                            target,
                            tree: self.mount,
                        });
                    }
                    push_steps(&mut pending, &target);
                    last_link = Some((next, target));
                }
            }
        }
        Ok(current)
    }

    /// Reads an attribute file under a resolved directory, refusing to follow a final symlink
    /// (real attributes never are one) and anything too big to be an attribute.
    pub fn read(&self, file: &Path) -> Result<String, PciError> {
        let mut handle = File::options()
            .read(true)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(file)
            .map_err(|e| self.read_error(file, e))?;
        let mut bytes = Vec::new();
        let limit = MAX_ATTRIBUTE_BYTES as u64 + 1;
        handle
            .by_ref()
            .take(limit)
            .read_to_end(&mut bytes)
            .map_err(|e| self.read_error(file, e))?;
        if bytes.len() > MAX_ATTRIBUTE_BYTES {
            return Err(PciError::TooLarge {
                path: self.host_path(file),
                limit: MAX_ATTRIBUTE_BYTES,
            });
        }
        String::from_utf8(bytes).map_err(|e| PciError::Invalid {
            path: self.host_path(file),
            value: String::from_utf8_lossy(e.as_bytes()).into_owned(),
            reason: "not UTF-8 text",
        })
    }

    /// Like [`read`](Self::read), but a missing file is `None`.
    pub fn read_optional(&self, file: &Path) -> Result<Option<String>, PciError> {
        match self.read(file) {
            Err(e) if e.is_not_found() => Ok(None),
            other => other.map(Some),
        }
    }

    /// Reads and parses `file`: `None` when it is absent, an error naming it when the text
    /// does not parse.
    pub fn read_parsed<T>(
        &self,
        file: &Path,
        parse: impl Fn(&str) -> Result<T, &'static str>,
    ) -> Result<Option<T>, PciError> {
        let Some(text) = self.read_optional(file)? else {
            return Ok(None);
        };
        parse(&text).map(Some).map_err(|reason| PciError::Invalid {
            path: self.host_path(file),
            value: text,
            reason,
        })
    }

    /// Parses the name link `dir/name` points at: `None` when there is no such link.
    pub fn link_parsed<T>(
        &self,
        dir: &Path,
        name: &str,
        parse: impl Fn(&str) -> Result<T, &'static str>,
    ) -> Result<Option<T>, PciError> {
        let Some(target) = self.link_name(dir, name)? else {
            return Ok(None);
        };
        parse(&target)
            .map(Some)
            .map_err(|reason| PciError::Invalid {
                path: self.host_path(&dir.join(name)),
                value: target,
                reason,
            })
    }

    /// The last component of the target of link `dir/name` (a driver name, an IOMMU group
    /// number), checked to stay beneath the root; `None` when there is no such link.
    pub fn link_name(&self, dir: &Path, name: &str) -> Result<Option<String>, PciError> {
        let link = dir.join(name);
        let target = match fs::read_link(&link) {
            Ok(target) => target,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.read_error(&link, e)),
        };
        let escape = || PciError::SymlinkEscape {
            link: self.host_path(&link),
            target: target.clone(),
            tree: self.mount,
        };
        if target.has_root() {
            return Err(escape());
        }
        let mut depth = self.depth(dir);
        let mut last = None;
        for component in target.components() {
            match component {
                Component::ParentDir => {
                    depth = depth.checked_sub(1).ok_or_else(escape)?;
                    last = None;
                }
                Component::Normal(part) => {
                    depth += 1;
                    last = Some(part);
                }
                _ => {}
            }
        }
        let last = last.ok_or_else(|| PciError::Invalid {
            path: self.host_path(&link),
            value: target.display().to_string(),
            reason: "link target does not end in a name",
        })?;
        last.to_str()
            .map(|s| Some(s.to_owned()))
            .ok_or_else(|| PciError::Invalid {
                path: self.host_path(&link),
                value: target.display().to_string(),
                reason: "link target is not UTF-8",
            })
    }

    /// The names in a resolved directory, sorted; `None` when it does not exist.
    pub fn list(&self, dir: &Path) -> Result<Option<Vec<String>>, PciError> {
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.read_error(dir, e)),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| self.read_error(dir, e))?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(Some(names))
    }

    fn read_error(&self, disk: &Path, source: io::Error) -> PciError {
        PciError::Read {
            path: self.host_path(disk),
            source,
        }
    }
}

/// Pushes `path`'s components onto a stack so that they pop in order.
fn push_steps(pending: &mut Vec<Step>, path: &Path) {
    let steps: Vec<Step> = path
        .components()
        .filter_map(|component| match component {
            Component::ParentDir => Some(Step::Parent),
            Component::Normal(name) => Some(Step::Name(name.to_owned())),
            Component::CurDir | Component::RootDir | Component::Prefix(_) => None,
        })
        .collect();
    pending.extend(steps.into_iter().rev());
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn tree() -> (tempfile::TempDir, HostTree) {
        let dir = tempfile::tempdir().unwrap();
        let sys = dir.path().join("sys");
        fs::create_dir_all(sys.join("devices/pci0000:00/0000:00:04.0")).unwrap();
        fs::create_dir_all(sys.join("bus/pci/devices")).unwrap();
        fs::write(
            sys.join("devices/pci0000:00/0000:00:04.0/vendor"),
            "0x1ae0\n",
        )
        .unwrap();
        symlink(
            "../../../devices/pci0000:00/0000:00:04.0",
            sys.join("bus/pci/devices/0000:00:04.0"),
        )
        .unwrap();
        (dir, HostTree::new(sys, "/sys"))
    }

    #[test]
    fn follows_relative_links_beneath_the_root() {
        let (_dir, tree) = tree();
        let dev = tree.resolve("bus/pci/devices/0000:00:04.0").unwrap();
        assert_eq!(
            tree.host_path(&dev),
            Path::new("/sys/devices/pci0000:00/0000:00:04.0")
        );
        assert_eq!(tree.read(&dev.join("vendor")).unwrap(), "0x1ae0\n");
    }

    #[test]
    fn a_loop_is_an_error_naming_a_link() {
        let (_dir, tree) = tree();
        let devices = tree.root().join("bus/pci/devices");
        symlink("b", devices.join("a")).unwrap();
        symlink("a", devices.join("b")).unwrap();
        let err = tree.resolve("bus/pci/devices/a").unwrap_err();
        assert!(matches!(err, PciError::SymlinkLoop { .. }), "{err}");
        assert!(err.path().starts_with("/sys/bus/pci/devices/"), "{err}");
    }

    #[test]
    fn a_link_climbing_out_is_an_error_naming_it() {
        let (_dir, tree) = tree();
        let link = tree.root().join("bus/pci/devices/0000:00:05.0");
        symlink("../../../../etc", &link).unwrap();
        let err = tree.resolve("bus/pci/devices/0000:00:05.0").unwrap_err();
        assert_eq!(err.path(), Path::new("/sys/bus/pci/devices/0000:00:05.0"));
        assert!(matches!(err, PciError::SymlinkEscape { .. }), "{err}");
    }

    #[test]
    fn an_absolute_link_is_an_escape() {
        let (_dir, tree) = tree();
        symlink("/etc", tree.root().join("bus/pci/devices/x")).unwrap();
        let err = tree.resolve("bus/pci/devices/x").unwrap_err();
        assert!(matches!(err, PciError::SymlinkEscape { .. }), "{err}");
    }

    #[test]
    fn read_refuses_a_final_symlink_and_huge_files() {
        let (_dir, tree) = tree();
        let dev = tree.resolve("bus/pci/devices/0000:00:04.0").unwrap();
        symlink("vendor", dev.join("device")).unwrap();
        assert!(tree.read(&dev.join("device")).is_err());
        fs::write(dev.join("resource0"), vec![0u8; MAX_ATTRIBUTE_BYTES + 1]).unwrap();
        let err = tree.read(&dev.join("resource0")).unwrap_err();
        assert!(matches!(err, PciError::TooLarge { .. }), "{err}");
        assert!(tree.read_optional(&dev.join("absent")).unwrap().is_none());
    }

    #[test]
    fn link_name_checks_the_target_lexically() {
        let (_dir, tree) = tree();
        let dev = tree.resolve("bus/pci/devices/0000:00:04.0").unwrap();
        symlink("../../../kernel/iommu_groups/7", dev.join("iommu_group")).unwrap();
        symlink("../../../../../outside", dev.join("driver")).unwrap();
        assert_eq!(
            tree.link_name(&dev, "iommu_group").unwrap().as_deref(),
            Some("7")
        );
        assert!(matches!(
            tree.link_name(&dev, "driver").unwrap_err(),
            PciError::SymlinkEscape { .. }
        ));
        assert_eq!(tree.link_name(&dev, "absent").unwrap(), None);
    }

    #[test]
    fn a_caller_path_climbing_out_is_refused() {
        let (_dir, tree) = tree();
        assert!(tree.resolve("../etc").is_err());
    }
}
