use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

use serde::Serialize;

use super::{PciError, Warning};

/// Character or block device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum NodeKind {
    /// A character device (`c`).
    #[serde(rename = "c")]
    Char,
    /// A block device (`b`).
    #[serde(rename = "b")]
    Block,
}

impl NodeKind {
    /// The letter `ls -l`, `mknod` and OCI specs use: `c` or `b`.
    pub const fn letter(self) -> char {
        match self {
            Self::Char => 'c',
            Self::Block => 'b',
        }
    }
}

/// A device node on the host: where it is and which driver answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DevNode {
    /// Host path, always under `/dev`.
    pub path: PathBuf,
    /// Character or block.
    #[serde(rename = "type")]
    pub kind: NodeKind,
    /// Major number.
    pub major: u32,
    /// Minor number.
    pub minor: u32,
    /// Permission bits (`0o666`).
    #[serde(skip)]
    pub mode: u32,
}

impl DevNode {
    /// `major:minor`, as `ls` and `/sys/.../dev` print it.
    pub fn numbers(&self) -> String {
        format!("{}:{}", self.major, self.minor)
    }
}

/// Where the host's device nodes are read from.
///
/// Git cannot store device nodes, so a fixture describes its `/dev` in a manifest (`dev.list`);
/// a real host, or a fixture materialised with `mknod`, has a directory of real nodes.
#[derive(Debug, Clone)]
pub enum DevSource {
    /// A directory of real device nodes standing for `/dev`.
    Directory(PathBuf),
    /// A `dev.list` manifest, one node a line: `<path> <c|b> <major>:<minor> <octal mode>`.
    Manifest {
        /// On-disk path of the manifest (it may not exist: a host with no nodes).
        path: PathBuf,
        /// The nodes it lists, by host path.
        nodes: BTreeMap<PathBuf, DevNode>,
    },
}

impl DevSource {
    /// Reads and parses a `dev.list` manifest.
    pub fn manifest(path: &Path) -> Result<Self, PciError> {
        let text = fs::read_to_string(path).map_err(|source| PciError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let nodes = parse_manifest(&text, path)?;
        let nodes = nodes
            .into_iter()
            .map(|node| (node.path.clone(), node))
            .collect();
        Ok(Self::Manifest {
            path: path.to_path_buf(),
            nodes,
        })
    }

    /// The node at host path `path` (`/dev/vfio/0`), `None` when there is none.
    pub fn node(&self, path: &Path) -> Result<Option<DevNode>, PciError> {
        match self {
            Self::Manifest { nodes, .. } => Ok(nodes.get(path).cloned()),
            Self::Directory(dir) => {
                let rel = path.strip_prefix("/dev").map_err(|_| PciError::Invalid {
                    path: path.to_path_buf(),
                    value: path.display().to_string(),
                    reason: "device paths must be under /dev",
                })?;
                stat_node(&dir.join(rel), path)
            }
        }
    }

    /// The device nodes directly inside host directory `dir` (`/dev`, `/dev/nvidia-caps`),
    /// sorted by path.
    pub fn children(&self, dir: &Path) -> Result<Vec<DevNode>, PciError> {
        match self {
            Self::Manifest { nodes, .. } => Ok(nodes
                .values()
                .filter(|n| n.path.parent() == Some(dir))
                .cloned()
                .collect()),
            Self::Directory(root) => {
                let Ok(rel) = dir.strip_prefix("/dev") else {
                    return Ok(Vec::new());
                };
                let entries = match fs::read_dir(root.join(rel)) {
                    Ok(entries) => entries,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
                    Err(source) => {
                        return Err(PciError::Read {
                            path: dir.to_path_buf(),
                            source,
                        });
                    }
                };
                let mut found = Vec::new();
                for entry in entries {
                    let entry = entry.map_err(|source| PciError::Read {
                        path: dir.to_path_buf(),
                        source,
                    })?;
                    let host = dir.join(entry.file_name());
                    match stat_node(&entry.path(), &host) {
                        Ok(Some(node)) => found.push(node),
                        Ok(None) | Err(PciError::NotADevice { .. }) => {}
                        Err(e) => return Err(e),
                    }
                }
                found.sort_by(|a, b| a.path.cmp(&b.path));
                Ok(found)
            }
        }
    }
}

impl DevSource {
    /// The character node at host path `path`, or `None` with a warning saying `what` lacks
    /// it (missing, unreadable, or not a character device).
    pub fn char_node(
        &self,
        path: &Path,
        what: &str,
        warnings: &mut Vec<Warning>,
    ) -> Option<DevNode> {
        match self.node(path) {
            Ok(Some(node)) if node.kind == NodeKind::Char => Some(node),
            Ok(Some(_)) => {
                warnings.push(Warning::new(
                    path,
                    format!("a block device, not the character device of {what}; ignored"),
                ));
                None
            }
            Ok(None) => {
                warnings.push(Warning::new(path, format!("no device node for {what}")));
                None
            }
            Err(e) => {
                warnings.push(Warning::from_error(
                    &e,
                    &format!("no device node for {what}"),
                ));
                None
            }
        }
    }
}

/// N when `path` is `prefix` followed by decimal digits only (`/dev/accel3` for `/dev/accel`).
pub fn node_number(path: &Path, prefix: &str) -> Option<u32> {
    let digits = path.to_str()?.strip_prefix(prefix)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Warns when `node`'s major is not `expected`, which `authority` (`/proc/devices vfio`)
/// vouches for: a stale node left from an earlier driver load, or a wrong fixture.
pub fn check_major(node: &DevNode, expected: u32, authority: &str, warnings: &mut Vec<Warning>) {
    if node.major != expected {
        warnings.push(Warning::new(
            &node.path,
            format!(
                "major {} disagrees with {authority} major {expected}",
                node.major
            ),
        ));
    }
}

fn stat_node(disk: &Path, host: &Path) -> Result<Option<DevNode>, PciError> {
    let meta = match fs::symlink_metadata(disk) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(PciError::Read {
                path: host.to_path_buf(),
                source,
            });
        }
    };
    let kind = if meta.file_type().is_char_device() {
        NodeKind::Char
    } else if meta.file_type().is_block_device() {
        NodeKind::Block
    } else {
        return Err(PciError::NotADevice {
            path: host.to_path_buf(),
        });
    };
    let rdev = meta.rdev();
    Ok(Some(DevNode {
        path: host.to_path_buf(),
        kind,
        major: nix::sys::stat::major(rdev) as u32,
        minor: nix::sys::stat::minor(rdev) as u32,
        mode: meta.mode() & 0o7777,
    }))
}

/// Parses a `dev.list` manifest; `origin` names it in errors.
///
/// One node a line, `<path> <c|b> <major>:<minor> <octal mode>` (`/dev/vfio/0 c 245:2 0666`);
/// `#` starts a comment; blank lines are ignored. Paths must be absolute, under `/dev`, without
/// `.` or `..`, and listed once.
pub fn parse_manifest(text: &str, origin: &Path) -> Result<Vec<DevNode>, PciError> {
    let mut nodes: Vec<DevNode> = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.split_once('#').map_or(raw, |(before, _)| before).trim();
        if line.is_empty() {
            continue;
        }
        let error = |reason: String| PciError::Manifest {
            path: origin.to_path_buf(),
            line: index + 1,
            reason,
        };
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [path, kind, numbers, mode] = fields[..] else {
            return Err(error(format!(
                "expected `<path> <c|b> <major>:<minor> <octal mode>`, got {line:?}"
            )));
        };
        let path = PathBuf::from(path);
        let clean = path.is_absolute()
            && path.starts_with("/dev")
            && path.components().count() > 2
            && path
                .components()
                .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
        if !clean {
            return Err(error(format!(
                "{} is not a clean absolute path under /dev",
                path.display()
            )));
        }
        let kind = match kind {
            "c" => NodeKind::Char,
            "b" => NodeKind::Block,
            other => return Err(error(format!("type {other:?} is not `c` or `b`"))),
        };
        let (major, minor) = super::attr::parse_dev_numbers(numbers)
            .map_err(|reason| error(format!("{numbers:?}: {reason}")))?;
        let mode = u32::from_str_radix(mode, 8)
            .ok()
            .filter(|m| *m <= 0o7777)
            .ok_or_else(|| error(format!("mode {mode:?} is not octal permission bits")))?;
        if nodes.iter().any(|n| n.path == path) {
            return Err(error(format!("{} is listed twice", path.display())));
        }
        nodes.push(DevNode {
            path,
            kind,
            major,
            minor,
            mode,
        });
    }
    Ok(nodes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nodes_comments_and_blank_lines() {
        let text = "# vfio\n/dev/vfio/vfio c 10:196 0666\n\n/dev/vfio/0 c 245:2 0666 # group 0\n\
                    /dev/sda b 8:0 660\n";
        let nodes = parse_manifest(text, Path::new("dev.list")).unwrap();
        assert_eq!(nodes.len(), 3);
        assert_eq!(nodes[1].path, Path::new("/dev/vfio/0"));
        assert_eq!(
            (nodes[1].major, nodes[1].minor, nodes[1].mode),
            (245, 2, 0o666)
        );
        assert_eq!(nodes[2].kind, NodeKind::Block);
    }

    #[test]
    fn errors_name_the_line() {
        let cases = [
            ("/dev/accel0 c 121:0", "expected"),
            ("dev/accel0 c 121:0 0666", "not a clean absolute path"),
            ("/dev/../etc/passwd c 1:3 0666", "not a clean absolute path"),
            ("/etc/shadow c 1:3 0666", "not a clean absolute path"),
            ("/dev/accel0 x 121:0 0666", "is not `c` or `b`"),
            ("/dev/accel0 c 121-0 0666", "not MAJOR:MINOR"),
            ("/dev/accel0 c 121:0 0999", "not octal"),
            (
                "/dev/accel0 c 121:0 0666\n/dev/accel0 c 121:1 0666",
                "listed twice",
            ),
        ];
        for (text, expected) in cases {
            let err = parse_manifest(text, Path::new("fx/dev.list"))
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("fx/dev.list:"), "{err}");
            assert!(err.contains(expected), "{text:?}: {err}");
        }
    }

    #[test]
    fn numbered_nodes() {
        assert_eq!(node_number(Path::new("/dev/accel3"), "/dev/accel"), Some(3));
        assert_eq!(
            node_number(Path::new("/dev/accel/accel0"), "/dev/accel"),
            None
        );
        assert_eq!(
            node_number(Path::new("/dev/vfio/12"), "/dev/vfio/"),
            Some(12)
        );
        assert_eq!(node_number(Path::new("/dev/vfio/vfio"), "/dev/vfio/"), None);
        assert_eq!(node_number(Path::new("/dev/nvidia"), "/dev/nvidia"), None);
        assert_eq!(
            node_number(Path::new("/dev/nvidia99999999999"), "/dev/nvidia"),
            None
        );
    }

    #[test]
    fn children_lists_one_directory() {
        let text = "/dev/nvidia0 c 195:0 0666\n/dev/nvidia-caps/nvidia-cap1 c 509:1 0400\n";
        let nodes = parse_manifest(text, Path::new("dev.list")).unwrap();
        let source = DevSource::Manifest {
            path: "dev.list".into(),
            nodes: nodes.into_iter().map(|n| (n.path.clone(), n)).collect(),
        };
        let top = source.children(Path::new("/dev")).unwrap();
        assert_eq!(top.len(), 1);
        let caps = source.children(Path::new("/dev/nvidia-caps")).unwrap();
        assert_eq!(caps[0].numbers(), "509:1");
    }

    #[test]
    fn a_real_directory_is_read_with_stat() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("accel0"), "").unwrap();
        let source = DevSource::Directory(dir.path().to_path_buf());
        let err = source.node(Path::new("/dev/accel0")).unwrap_err();
        assert!(matches!(err, PciError::NotADevice { .. }));
        assert_eq!(source.node(Path::new("/dev/accel1")).unwrap(), None);
        assert!(source.children(Path::new("/dev")).unwrap().is_empty());
    }
}
