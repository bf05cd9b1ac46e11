//! A [`Sys`] that records calls instead of making them, for unit tests of `apply`: youki's
//! `TestHelperSyscall` idea. Targets are reported by the path behind their descriptor.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use super::rootdir::{FileInfo, FileKind};
use super::system::{MountFlags, NodeType, Sys, proc_fd_path};

/// One recorded call, with descriptors replaced by the paths behind them. Variants mirror the
/// [`Sys`] methods one to one, with the same argument names.
#[allow(missing_docs)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    MakeRootRslave,
    OpenTree {
        path: PathBuf,
        recursive: bool,
        follow: bool,
    },
    FsMount {
        fs_type: String,
        source: String,
        data: Vec<String>,
        attrs: u64,
    },
    MountSetattr {
        target: PathBuf,
        recursive: bool,
        flags: MountFlags,
    },
    MoveMount {
        from: String,
        to: PathBuf,
    },
    LegacyMount {
        source: String,
        target: PathBuf,
        fs_type: String,
        flags: u64,
        data: String,
    },
    Mknod {
        path: PathBuf,
        kind: NodeType,
        mode: u32,
        major: u32,
        minor: u32,
    },
    Chown {
        path: PathBuf,
        uid: u32,
        gid: u32,
    },
    Chmod {
        path: PathBuf,
        mode: u32,
    },
    Symlink {
        path: PathBuf,
        target: PathBuf,
    },
    PivotRoot {
        new_root: PathBuf,
    },
    RemountRootReadonly,
}

/// Records every call; mount-making calls return a descriptor of a scratch directory (or of
/// the source, for `open_tree`) so that `apply` can go on; `mknodat` remembers the node so
/// that the verifying stat sees it.
pub struct RecordingSys {
    /// The calls made so far, in order.
    pub calls: RefCell<Vec<Call>>,
    nodes: RefCell<BTreeMap<PathBuf, FileInfo>>,
    scratch: tempfile::TempDir,
    /// When set, the new mount API answers ENOSYS (a kernel before 5.2) after this many of
    /// its calls have succeeded (the rootfs bind needs `open_tree`; what follows can do
    /// without).
    pub new_mount_api_calls: Option<std::cell::Cell<usize>>,
}

impl Default for RecordingSys {
    fn default() -> Self {
        Self::new()
    }
}

impl RecordingSys {
    /// A recorder with an empty scratch directory.
    ///
    /// # Panics
    /// When no temporary directory can be made (it is a test fake).
    pub fn new() -> Self {
        Self {
            calls: RefCell::new(Vec::new()),
            nodes: RefCell::new(BTreeMap::new()),
            scratch: tempfile::tempdir().unwrap(),
            new_mount_api_calls: None,
        }
    }

    fn record(&self, call: Call) {
        self.calls.borrow_mut().push(call);
    }

    fn scratch_fd(&self) -> io::Result<OwnedFd> {
        Ok(nix::fcntl::open(
            self.scratch.path(),
            OFlag::O_PATH | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?)
    }

    fn unsupported(&self) -> io::Result<()> {
        match &self.new_mount_api_calls {
            Some(left) if left.get() == 0 => Err(io::Error::from_raw_os_error(libc::ENOSYS)),
            Some(left) => {
                left.set(left.get() - 1);
                Ok(())
            }
            None => Ok(()),
        }
    }
}

/// The path behind a descriptor, for the record.
pub fn fd_path(fd: BorrowedFd<'_>) -> PathBuf {
    std::fs::read_link(proc_fd_path(fd)).unwrap_or_default()
}

impl Sys for RecordingSys {
    fn make_root_rslave(&self) -> io::Result<()> {
        self.record(Call::MakeRootRslave);
        Ok(())
    }

    fn open_tree(
        &self,
        dir: BorrowedFd<'_>,
        path: &Path,
        recursive: bool,
        follow: bool,
    ) -> io::Result<OwnedFd> {
        self.unsupported()?;
        let full = if path.as_os_str().is_empty() {
            fd_path(dir)
        } else {
            path.to_path_buf()
        };
        self.record(Call::OpenTree {
            path: full.clone(),
            recursive,
            follow,
        });
        let mut flags = OFlag::O_PATH | OFlag::O_CLOEXEC;
        if !follow {
            flags |= OFlag::O_NOFOLLOW;
        }
        Ok(nix::fcntl::open(&full, flags, Mode::empty())?)
    }

    fn fs_mount(
        &self,
        fs_type: &str,
        source: &str,
        data: &[String],
        attrs: u64,
    ) -> io::Result<OwnedFd> {
        self.unsupported()?;
        self.record(Call::FsMount {
            fs_type: fs_type.into(),
            source: source.into(),
            data: data.to_vec(),
            attrs,
        });
        self.scratch_fd()
    }

    fn mount_setattr(
        &self,
        mount: BorrowedFd<'_>,
        recursive: bool,
        flags: MountFlags,
    ) -> io::Result<()> {
        self.record(Call::MountSetattr {
            target: fd_path(mount),
            recursive,
            flags,
        });
        Ok(())
    }

    fn move_mount(&self, from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> io::Result<()> {
        let from = fd_path(from);
        let from = if from == self.scratch.path() {
            "(new filesystem)".to_owned()
        } else {
            from.display().to_string()
        };
        self.record(Call::MoveMount {
            from,
            to: fd_path(to),
        });
        Ok(())
    }

    fn legacy_mount(
        &self,
        source: &str,
        target: BorrowedFd<'_>,
        fs_type: &str,
        flags: u64,
        data: &str,
    ) -> io::Result<()> {
        self.record(Call::LegacyMount {
            source: source.into(),
            target: fd_path(target),
            fs_type: fs_type.into(),
            flags,
            data: data.into(),
        });
        Ok(())
    }

    fn mknodat(
        &self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        kind: NodeType,
        mode: u32,
        major: u32,
        minor: u32,
    ) -> io::Result<()> {
        let path = fd_path(dir).join(name);
        let file_kind = match kind {
            NodeType::Char => FileKind::CharDevice,
            NodeType::Block => FileKind::BlockDevice,
            NodeType::Fifo => FileKind::Fifo,
        };
        let rdev = nix::sys::stat::makedev(u64::from(major), u64::from(minor));
        self.nodes.borrow_mut().insert(
            path.clone(),
            FileInfo {
                kind: file_kind,
                mode,
                uid: 0,
                gid: 0,
                rdev,
            },
        );
        self.record(Call::Mknod {
            path,
            kind,
            mode,
            major,
            minor,
        });
        Ok(())
    }

    fn fchownat(&self, dir: BorrowedFd<'_>, name: &OsStr, uid: u32, gid: u32) -> io::Result<()> {
        self.record(Call::Chown {
            path: fd_path(dir).join(name),
            uid,
            gid,
        });
        Ok(())
    }

    fn fchmodat(&self, dir: BorrowedFd<'_>, name: &OsStr, mode: u32) -> io::Result<()> {
        self.record(Call::Chmod {
            path: fd_path(dir).join(name),
            mode,
        });
        Ok(())
    }

    fn symlinkat(&self, target: &Path, dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
        self.record(Call::Symlink {
            path: fd_path(dir).join(name),
            target: target.to_path_buf(),
        });
        Ok(())
    }

    fn lstat_at(&self, dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<FileInfo> {
        let path = fd_path(dir).join(name);
        self.nodes
            .borrow()
            .get(&path)
            .copied()
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))
    }

    fn pivot_root(&self, new_root: BorrowedFd<'_>) -> io::Result<()> {
        self.record(Call::PivotRoot {
            new_root: fd_path(new_root),
        });
        Ok(())
    }

    fn remount_root_readonly(&self) -> io::Result<()> {
        self.record(Call::RemountRootReadonly);
        Ok(())
    }
}
