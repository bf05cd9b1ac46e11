use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use super::{DevSource, HostTree, PciError, ProcDevices};

/// The host as discovery sees it: its `/sys`, `/proc` and `/dev`.
///
/// Production code uses [`HostRoot::system`]; tests, demos and CI point it at a fixture
/// directory with [`HostRoot::at`]. Nothing in accelgate opens an absolute host path directly.
#[derive(Debug, Clone)]
pub struct HostRoot {
    origin: PathBuf,
    sys: HostTree,
    proc: HostTree,
    dev: DevSource,
}

/// How deep under `DIR/dev` to look for a real device node before falling back to `dev.list`
/// (`/dev/vfio/0` is two levels down).
const DEV_PROBE_DEPTH: usize = 2;

impl HostRoot {
    /// The running host: `/sys`, `/proc` and `/dev`.
    pub fn system() -> Self {
        Self {
            origin: PathBuf::from("/"),
            sys: HostTree::new("/sys", "/sys"),
            proc: HostTree::new("/proc", "/proc"),
            dev: DevSource::Directory(PathBuf::from("/dev")),
        }
    }

    /// A host tree under `dir`: `dir/sys`, `dir/proc`, and device nodes from `dir/dev` when it
    /// holds real device nodes, else from the manifest `dir/dev.list`.
    pub fn at(dir: impl AsRef<Path>) -> Result<Self, PciError> {
        let dir = dir.as_ref();
        fs::metadata(dir).map_err(|source| PciError::Read {
            path: dir.to_path_buf(),
            source,
        })?;
        let sys = dir.join("sys");
        if !sys.is_dir() {
            return Err(PciError::MissingTree {
                root: dir.to_path_buf(),
                what: "sys",
            });
        }
        let dev_dir = dir.join("dev");
        let manifest = dir.join("dev.list");
        let dev = if holds_device_nodes(&dev_dir, DEV_PROBE_DEPTH) {
            DevSource::Directory(dev_dir)
        } else if manifest.exists() {
            DevSource::manifest(&manifest)?
        } else {
            tracing::debug!(root = %dir.display(), "no device nodes and no dev.list: an empty /dev");
            DevSource::Manifest {
                path: manifest,
                nodes: BTreeMap::new(),
            }
        };
        Ok(Self::new(
            dir,
            HostTree::new(sys, "/sys"),
            HostTree::new(dir.join("proc"), "/proc"),
            dev,
        ))
    }

    /// A host from explicit parts; `origin` is what messages call the root.
    pub fn new(origin: impl Into<PathBuf>, sys: HostTree, proc: HostTree, dev: DevSource) -> Self {
        Self {
            origin: origin.into(),
            sys,
            proc,
            dev,
        }
    }

    /// The directory this host was read from (`/` for the running host).
    pub fn origin(&self) -> &Path {
        &self.origin
    }

    /// The host's `/sys`.
    pub fn sys(&self) -> &HostTree {
        &self.sys
    }

    /// The host's `/proc`.
    pub fn proc(&self) -> &HostTree {
        &self.proc
    }

    /// The host's device nodes.
    pub fn dev(&self) -> &DevSource {
        &self.dev
    }

    /// Where this host's device node `path` (`/dev/...`) is on disk: `path` itself on the
    /// running host, `DIR/dev/...` under a fixture root (where `dev.list` nodes are
    /// materialised). A path outside `/dev` is returned as it is.
    pub fn node_on_disk(&self, path: &Path) -> PathBuf {
        let Ok(rel) = path.strip_prefix("/dev") else {
            return path.to_path_buf();
        };
        match &self.dev {
            DevSource::Directory(dir) => dir.join(rel),
            DevSource::Manifest { path: manifest, .. } => manifest.with_file_name("dev").join(rel),
        }
    }

    /// `/proc/devices`, or `None` when the host has none to read.
    pub fn proc_devices(&self) -> Result<Option<ProcDevices>, PciError> {
        let path = self.proc.root().join("devices");
        match self.proc.read_optional(&path)? {
            Some(text) => ProcDevices::parse(&text, &self.proc.host_path(&path)).map(Some),
            None => Ok(None),
        }
    }
}

fn holds_device_nodes(dir: &Path, depth: usize) -> bool {
    let Ok(entries) = fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|entry| match entry.file_type() {
        Ok(t) if t.is_char_device() || t.is_block_device() => true,
        Ok(t) if t.is_dir() && depth > 1 => holds_device_nodes(&entry.path(), depth - 1),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_root_without_sys_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = HostRoot::at(dir.path()).unwrap_err();
        assert!(
            matches!(err, PciError::MissingTree { what: "sys", .. }),
            "{err}"
        );
        let err = HostRoot::at(dir.path().join("absent")).unwrap_err();
        assert!(err.is_not_found(), "{err}");
    }

    #[test]
    fn a_fixture_root_reads_its_manifest() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("sys")).unwrap();
        fs::create_dir(dir.path().join("dev")).unwrap();
        fs::write(dir.path().join("dev.list"), "/dev/accel0 c 121:0 0666\n").unwrap();
        let host = HostRoot::at(dir.path()).unwrap();
        let node = host.dev().node(Path::new("/dev/accel0")).unwrap().unwrap();
        assert_eq!(node.numbers(), "121:0");
        assert_eq!(host.proc_devices().unwrap(), None);
        assert_eq!(
            host.node_on_disk(Path::new("/dev/accel0")),
            dir.path().join("dev/accel0")
        );
        let system = HostRoot::system();
        assert_eq!(
            system.node_on_disk(Path::new("/dev/vfio/0")),
            Path::new("/dev/vfio/0")
        );
    }
}
