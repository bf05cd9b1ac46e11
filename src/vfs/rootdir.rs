use std::ffi::OsString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, OpenHow, ResolveFlag, openat, openat2, readlinkat};
use nix::sys::stat::{Mode, SFlag, fstat, fstatat};

use super::VfsError;
use crate::pci::MAX_SYMLINKS;

/// What a path inside a rootfs is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A directory.
    Directory,
    /// A regular file.
    File,
    /// A symbolic link (only from [`RootDir::lstat`]).
    Symlink,
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
    /// A FIFO.
    Fifo,
    /// A socket.
    Socket,
}

/// The parts of `stat` the planner and the launcher look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileInfo {
    /// File type.
    pub kind: FileKind,
    /// Permission bits, including setuid/setgid/sticky.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Device numbers, for device nodes.
    pub rdev: u64,
}

impl FileInfo {
    /// The facts of a `stat` result.
    pub fn from_stat(st: &nix::sys::stat::FileStat) -> Self {
        let format = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits());
        let kind = match format {
            SFlag::S_IFDIR => FileKind::Directory,
            SFlag::S_IFLNK => FileKind::Symlink,
            SFlag::S_IFCHR => FileKind::CharDevice,
            SFlag::S_IFBLK => FileKind::BlockDevice,
            SFlag::S_IFIFO => FileKind::Fifo,
            SFlag::S_IFSOCK => FileKind::Socket,
            _ => FileKind::File,
        };
        Self {
            kind,
            mode: st.st_mode & 0o7777,
            uid: st.st_uid,
            gid: st.st_gid,
            rdev: st.st_rdev,
        }
    }

    /// The same facts from a host `stat` (for bind sources outside any root).
    pub fn from_metadata(meta: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let t = meta.file_type();
        let kind = if t.is_dir() {
            FileKind::Directory
        } else if t.is_symlink() {
            FileKind::Symlink
        } else if t.is_char_device() {
            FileKind::CharDevice
        } else if t.is_block_device() {
            FileKind::BlockDevice
        } else if t.is_fifo() {
            FileKind::Fifo
        } else if t.is_socket() {
            FileKind::Socket
        } else {
            FileKind::File
        };
        Self {
            kind,
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
            rdev: meta.rdev(),
        }
    }

    /// Whether anyone may execute it.
    pub fn is_executable(&self) -> bool {
        self.mode & 0o111 != 0
    }
}

/// How paths are resolved inside the root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolver {
    /// `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`, falling back to [`Resolver::Walk`]
    /// on kernels without it (before 5.6).
    Kernel,
    /// A component-by-component walk with `O_PATH | O_NOFOLLOW` directory fds that treats the
    /// root as `/`: `..` at the root stays there and absolute links restart at it.
    Walk,
}

/// A directory treated as `/`: every lookup is resolved inside it, through file descriptors,
/// the way the kernel resolves paths for a process chrooted there.
///
/// Joining strings onto a rootfs path and handing them to a syscall lets a symlink in the image
/// (`/dev -> /host/dir`) redirect the host's runtime outside the rootfs; that is how runc, crun and
/// youki had their container-escape CVEs. Nothing here does that.
#[derive(Debug)]
pub struct RootDir {
    fd: OwnedFd,
    path: PathBuf,
    resolver: Resolver,
}

const PATH_FLAGS: OFlag = OFlag::O_PATH.union(OFlag::O_CLOEXEC);

impl RootDir {
    /// Opens `path` (a host directory) as a root.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, VfsError> {
        let path = path.into();
        let fd = nix::fcntl::open(&path, PATH_FLAGS | OFlag::O_DIRECTORY, Mode::empty()).map_err(
            |e| VfsError::OpenRoot {
                root: path.clone(),
                source: e.into(),
            },
        )?;
        Ok(Self {
            fd,
            path,
            resolver: Resolver::Kernel,
        })
    }

    /// The same root, resolving with `resolver` (tests force the user-space walk with it).
    pub fn with_resolver(mut self, resolver: Resolver) -> Self {
        self.resolver = resolver;
        self
    }

    /// The host path of the root, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The root's own descriptor.
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Opens `path` (absolute or relative, both taken from the root) with `flags`, following
    /// symlinks inside the root and refusing magic links.
    pub fn open_at(&self, path: &Path, flags: OFlag) -> Result<OwnedFd, VfsError> {
        let flags = flags | OFlag::O_CLOEXEC;
        if self.resolver == Resolver::Kernel {
            let how = OpenHow::new()
                .flags(flags)
                .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
            match openat2(self.fd.as_fd(), relative(path), how) {
                Err(Errno::ENOSYS) => {
                    tracing::debug!("openat2 unavailable; resolving in user space");
                }
                other => return other.map_err(|e| self.error(e, path)),
            }
        }
        let follow_last = !flags.contains(OFlag::O_NOFOLLOW);
        let target = self
            .walk(path, follow_last)
            .map_err(|e| self.error(e, path))?;
        let kind = fstat(target.as_fd())
            .map_err(|e| self.error(e, path))?
            .st_mode
            & SFlag::S_IFMT.bits();
        if flags.contains(OFlag::O_DIRECTORY) && kind != SFlag::S_IFDIR.bits() {
            return Err(self.error(Errno::ENOTDIR, path));
        }
        if flags.contains(OFlag::O_PATH) {
            return Ok(target);
        }
        if kind == SFlag::S_IFLNK.bits() {
            return Err(self.error(Errno::ELOOP, path));
        }
        // Re-open the resolved descriptor with the requested flags through its /proc link, so
        // the final open cannot be redirected either.
        let proc_path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&target));
        nix::fcntl::open(proc_path.as_str(), flags, Mode::empty()).map_err(|e| self.error(e, path))
    }

    /// What `path` is, following symlinks inside the root; `None` when it does not exist.
    pub fn stat(&self, path: &Path) -> Result<Option<FileInfo>, VfsError> {
        match self.open_at(path, OFlag::O_PATH) {
            Ok(fd) => {
                let st = fstat(fd.as_fd()).map_err(|e| self.error(e, path))?;
                Ok(Some(FileInfo::from_stat(&st)))
            }
            Err(e) if e.is_missing() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// What `path` itself is (a final symlink is reported, not followed); `None` when it does not
    /// exist.
    pub fn lstat(&self, path: &Path) -> Result<Option<FileInfo>, VfsError> {
        let Some((parent, name)) = split_last(path) else {
            return self.stat(path);
        };
        let dir = match self.open_at(&parent, OFlag::O_PATH | OFlag::O_DIRECTORY) {
            Ok(dir) => dir,
            Err(e) if e.is_missing() => return Ok(None),
            Err(e) => return Err(e),
        };
        match fstatat(dir.as_fd(), name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(FileInfo::from_stat(&st))),
            Err(Errno::ENOENT | Errno::ENOTDIR) => Ok(None),
            Err(e) => Err(self.error(e, path)),
        }
    }

    /// Whether the directory at `path` holds nothing but `.` and `..`.
    pub fn is_empty_dir(&self, path: &Path) -> Result<bool, VfsError> {
        let fd = self.open_at(path, OFlag::O_RDONLY | OFlag::O_DIRECTORY)?;
        let mut dir = nix::dir::Dir::from_fd(fd).map_err(|e| self.error(e, path))?;
        for entry in dir.iter() {
            let entry = entry.map_err(|e| self.error(e, path))?;
            let name = entry.file_name().to_bytes();
            if name != b"." && name != b".." {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Resolves `path` with the user-space walk: `O_PATH` fds all the way, the root's own fd
    /// standing in for `/`.
    /// An `O_PATH` fd of directory `path`, creating each missing component with `mkdirat`
    /// (mode 0755) relative to its parent's fd; symlinks on the way are followed inside the
    /// root, so `/dev -> /host/dir` makes the rootfs's own `/host/dir`.
    pub fn create_dir_all(&self, path: &Path) -> Result<OwnedFd, VfsError> {
        // Most mount points exist already: one `openat2` resolves them the same way the walk
        // would (inside the root, magic links refused), instead of four syscalls a component.
        // The walk takes over where it finds nothing, and where the kernel gives up because a
        // `..` raced with a mount or rename elsewhere (EAGAIN, EXDEV).
        if self.resolver == Resolver::Kernel {
            match self.open_at(path, PATH_FLAGS | OFlag::O_DIRECTORY) {
                Ok(fd) => return Ok(fd),
                Err(e)
                    if e.is_missing()
                        || matches!(e.errno(), Some(Errno::EAGAIN | Errno::EXDEV)) => {}
                Err(e) => return Err(e),
            }
        }
        let fd = self
            .walk_creating(path, true, true)
            .map_err(|e| self.error(e, path))?;
        let st = fstat(fd.as_fd()).map_err(|e| self.error(e, path))?;
        if st.st_mode & SFlag::S_IFMT.bits() != SFlag::S_IFDIR.bits() {
            return Err(self.error(Errno::ENOTDIR, path));
        }
        Ok(fd)
    }

    fn walk(&self, path: &Path, follow_last: bool) -> Result<OwnedFd, Errno> {
        self.walk_creating(path, follow_last, false)
    }

    fn walk_creating(
        &self,
        path: &Path,
        follow_last: bool,
        create: bool,
    ) -> Result<OwnedFd, Errno> {
        let mut stack: Vec<OwnedFd> = Vec::new();
        let mut pending: Vec<OsString> = Vec::new();
        push_components(&mut pending, path);
        let mut followed = 0;
        while let Some(part) = pending.pop() {
            if part.as_bytes() == b".." {
                stack.pop();
                continue;
            }
            let dir = stack.last().map_or(self.fd.as_fd(), AsFd::as_fd);
            let open = || {
                openat(
                    dir.as_fd(),
                    part.as_os_str(),
                    PATH_FLAGS | OFlag::O_NOFOLLOW,
                    Mode::empty(),
                )
            };
            let fd = match open() {
                Err(Errno::ENOENT) if create => {
                    match nix::sys::stat::mkdirat(
                        dir.as_fd(),
                        part.as_os_str(),
                        Mode::from_bits_truncate(0o755),
                    ) {
                        Ok(()) | Err(Errno::EEXIST) => open()?,
                        Err(e) => return Err(e),
                    }
                }
                other => other?,
            };
            let st = fstat(fd.as_fd())?;
            let is_link = st.st_mode & SFlag::S_IFMT.bits() == SFlag::S_IFLNK.bits();
            if is_link && (follow_last || !pending.is_empty()) {
                followed += 1;
                if followed > MAX_SYMLINKS {
                    return Err(Errno::ELOOP);
                }
                let target = readlinkat(dir.as_fd(), part.as_os_str())?;
                let target = PathBuf::from(target);
                if target.has_root() {
                    stack.clear();
                }
                push_components(&mut pending, &target);
                continue;
            }
            if !pending.is_empty() && st.st_mode & SFlag::S_IFMT.bits() != SFlag::S_IFDIR.bits() {
                return Err(Errno::ENOTDIR);
            }
            stack.push(fd);
        }
        match stack.pop() {
            Some(fd) => Ok(fd),
            None => self
                .fd
                .try_clone()
                .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(0))),
        }
    }
}

/// `fstat` of a descriptor as [`FileInfo`].
pub fn fstat_info(fd: BorrowedFd<'_>) -> Result<FileInfo, Errno> {
    fstat(fd).map(|st| FileInfo::from_stat(&st))
}

/// `path` without its leading `/`, so that `openat2` takes it from the root; `.` for the root.
fn relative(path: &Path) -> &Path {
    let rel = path.strip_prefix("/").unwrap_or(path);
    if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    }
}

fn push_components(pending: &mut Vec<OsString>, path: &Path) {
    let parts: Vec<OsString> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name.to_owned()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect();
    pending.extend(parts.into_iter().rev());
}

/// Splits off the last normal component; `None` for the root and for paths ending in `..`.
fn split_last(path: &Path) -> Option<(PathBuf, OsString)> {
    match path.components().next_back()? {
        Component::Normal(name) => Some((
            path.parent().unwrap_or(Path::new("/")).to_path_buf(),
            name.to_owned(),
        )),
        _ => None,
    }
}

impl RootDir {
    fn error(&self, errno: Errno, path: &Path) -> VfsError {
        VfsError::Resolve {
            root: self.path.clone(),
            path: path.to_path_buf(),
            source: errno.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::{PermissionsExt, symlink};

    use super::*;

    /// A rootfs with the links that broke other runtimes.
    fn rootfs() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("usr/bin")).unwrap();
        fs::create_dir_all(root.join("tmp")).unwrap();
        fs::create_dir_all(root.join("empty")).unwrap();
        fs::write(root.join("usr/bin/tool"), "#!/bin/sh\n").unwrap();
        fs::set_permissions(root.join("usr/bin/tool"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(root.join("tmp/file"), "x").unwrap();
        symlink("usr/bin", root.join("bin")).unwrap();
        symlink("/", root.join("up-abs")).unwrap();
        symlink("../../../..", root.join("up-rel")).unwrap();
        symlink("/etc/passwd", root.join("host-passwd")).unwrap();
        symlink("loop-b", root.join("loop-a")).unwrap();
        symlink("loop-a", root.join("loop-b")).unwrap();
        dir
    }

    fn both(dir: &Path) -> [RootDir; 2] {
        [
            RootDir::open(dir).unwrap(),
            RootDir::open(dir).unwrap().with_resolver(Resolver::Walk),
        ]
    }

    #[test]
    fn links_resolve_inside_the_root() {
        let dir = rootfs();
        for root in both(dir.path()) {
            let r = root.resolver;
            let tool = root.stat(Path::new("/bin/tool")).unwrap().unwrap();
            assert_eq!(tool.kind, FileKind::File, "{r:?}");
            assert!(tool.is_executable());
            // `/`, `../../..` and `/etc/passwd` all stay inside.
            for escape in [
                "/up-abs/usr/bin/tool",
                "/up-rel/usr/bin/tool",
                "/../../usr/bin/tool",
            ] {
                assert!(
                    root.stat(Path::new(escape)).unwrap().is_some(),
                    "{r:?} {escape}"
                );
            }
            assert_eq!(root.stat(Path::new("/host-passwd")).unwrap(), None, "{r:?}");
            assert_eq!(
                root.lstat(Path::new("/host-passwd")).unwrap().unwrap().kind,
                FileKind::Symlink
            );
            let err = root.stat(Path::new("/loop-a")).unwrap_err();
            assert_eq!(err.errno(), Some(Errno::ELOOP), "{r:?}");
        }
    }

    #[test]
    fn directories_are_made_inside_the_root_whether_they_exist_or_not() {
        let dir = rootfs();
        for root in both(dir.path()) {
            let r = root.resolver;
            let same = |fd: &OwnedFd, host: &Path| {
                let st = fstat(fd.as_fd()).unwrap();
                let meta = fs::metadata(host).unwrap();
                use std::os::unix::fs::MetadataExt;
                (st.st_dev, st.st_ino) == (meta.dev(), meta.ino())
            };
            // Existing, through links that point up and out: the rootfs's own directories.
            for (path, host) in [("/up-abs/usr/bin", "usr/bin"), ("/up-rel/tmp", "tmp")] {
                let fd = root.create_dir_all(Path::new(path)).unwrap();
                assert!(same(&fd, &dir.path().join(host)), "{r:?} {path}");
            }
            // Missing: made, also under a link.
            let fd = root
                .create_dir_all(Path::new("/up-abs/new/deeper"))
                .unwrap();
            assert!(same(&fd, &dir.path().join("new/deeper")), "{r:?}");
            fs::remove_dir_all(dir.path().join("new")).unwrap();
            let err = root.create_dir_all(Path::new("/tmp/file/x")).unwrap_err();
            assert_eq!(err.errno(), Some(Errno::ENOTDIR), "{r:?}");
            let err = root.create_dir_all(Path::new("/tmp/file")).unwrap_err();
            assert_eq!(err.errno(), Some(Errno::ENOTDIR), "{r:?}");
        }
    }

    #[test]
    fn empty_directories_are_told_apart() {
        let dir = rootfs();
        for root in both(dir.path()) {
            assert!(root.is_empty_dir(Path::new("/empty")).unwrap());
            assert!(!root.is_empty_dir(Path::new("/tmp")).unwrap());
            assert!(root.is_empty_dir(Path::new("/tmp/file")).is_err());
            assert_eq!(root.stat(Path::new("/tmp/file/x")).unwrap(), None);
        }
    }
}
