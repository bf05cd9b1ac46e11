use std::ffi::OsStr;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::Path;

use super::FileInfo;
use super::abi::{
    MOUNT_ATTR_NOATIME, MOUNT_ATTR_NODEV, MOUNT_ATTR_NODIRATIME, MOUNT_ATTR_NOEXEC,
    MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY, MOUNT_ATTR_STRICTATIME, MS_PRIVATE, MS_SHARED, MS_SLAVE,
    MS_UNBINDABLE,
};

/// Mount attributes and propagation, from a plan's mount options.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MountFlags {
    /// `MOUNT_ATTR_*` bits to set.
    pub attrs: u64,
    /// `MS_PRIVATE`, `MS_SLAVE`, `MS_SHARED` or `MS_UNBINDABLE`; 0 to leave it.
    pub propagation: u64,
    /// Whether the propagation applies to the whole tree (`rprivate`, ...).
    pub recursive_propagation: bool,
}

impl MountFlags {
    /// Flags from a plan's option names (`ro`, `nosuid`, ...) and propagation (`rslave`, ...).
    pub fn from_options(options: &[String], propagation: Option<&str>) -> Self {
        let mut attrs = 0;
        for option in options {
            attrs |= match option.as_str() {
                "ro" => MOUNT_ATTR_RDONLY,
                "nosuid" => MOUNT_ATTR_NOSUID,
                "nodev" => MOUNT_ATTR_NODEV,
                "noexec" => MOUNT_ATTR_NOEXEC,
                "noatime" => MOUNT_ATTR_NOATIME,
                "strictatime" => MOUNT_ATTR_STRICTATIME,
                "nodiratime" => MOUNT_ATTR_NODIRATIME,
                _ => 0,
            };
        }
        let (propagation, recursive_propagation) = match propagation {
            Some(p) => {
                let recursive = p.starts_with('r');
                let kind = match p.trim_start_matches('r') {
                    "private" => MS_PRIVATE,
                    "slave" => MS_SLAVE,
                    "shared" => MS_SHARED,
                    "unbindable" => MS_UNBINDABLE,
                    _ => 0,
                };
                (kind, recursive)
            }
            None => (0, false),
        };
        Self {
            attrs,
            propagation,
            recursive_propagation,
        }
    }

    /// The same flags as `mount(2)` `MS_*` flags, for the legacy path.
    pub fn legacy_flags(&self) -> u64 {
        let pairs = [
            (MOUNT_ATTR_RDONLY, libc::MS_RDONLY),
            (MOUNT_ATTR_NOSUID, libc::MS_NOSUID),
            (MOUNT_ATTR_NODEV, libc::MS_NODEV),
            (MOUNT_ATTR_NOEXEC, libc::MS_NOEXEC),
            (MOUNT_ATTR_NOATIME, libc::MS_NOATIME),
            (MOUNT_ATTR_STRICTATIME, libc::MS_STRICTATIME),
            (MOUNT_ATTR_NODIRATIME, libc::MS_NODIRATIME),
        ];
        pairs
            .iter()
            .filter(|(attr, _)| self.attrs & attr != 0)
            .fold(0, |acc, (_, ms)| acc | ms)
    }
}

/// What kind of node `mknodat` makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeType {
    /// Character device.
    Char,
    /// Block device.
    Block,
    /// FIFO.
    Fifo,
}

/// The privileged system calls that applying a plan makes, behind a trait so that unit tests can
/// record them (youki's `Syscall`, Cloud Hypervisor's mock VFIO) while real runs make them.
///
/// Every operation that lands somewhere takes a file descriptor, not a path: targets are
/// resolved inside the rootfs first (`RootDir`), so a symlink planted in the image cannot
/// redirect them.
pub trait Sys {
    /// Makes every mount of this namespace a recursive slave, so nothing done here propagates
    /// back to the host.
    fn make_root_rslave(&self) -> io::Result<()>;
    /// `open_tree(OPEN_TREE_CLONE)`: a detached copy of the tree at `path` (relative to `dir`,
    /// or `dir` itself when `path` is empty), with submounts when `recursive`; a final symlink
    /// is refused unless `follow`.
    fn open_tree(
        &self,
        dir: BorrowedFd<'_>,
        path: &Path,
        recursive: bool,
        follow: bool,
    ) -> io::Result<OwnedFd>;
    /// `fsopen` + `fsconfig` + `fsmount`: a detached new filesystem of `fs_type` with `source`,
    /// filesystem data (`key=value` or flags) and mount attributes.
    fn fs_mount(
        &self,
        fs_type: &str,
        source: &str,
        data: &[String],
        attrs: u64,
    ) -> io::Result<OwnedFd>;
    /// `mount_setattr` on a mount (`mount` is its root).
    fn mount_setattr(
        &self,
        mount: BorrowedFd<'_>,
        recursive: bool,
        flags: MountFlags,
    ) -> io::Result<()>;
    /// `move_mount`: attaches the detached mount `from` onto `to`.
    fn move_mount(&self, from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> io::Result<()>;
    /// `mount(2)` onto `/proc/self/fd/<target>`: the fallback for kernels without the new API.
    fn legacy_mount(
        &self,
        source: &str,
        target: BorrowedFd<'_>,
        fs_type: &str,
        flags: u64,
        data: &str,
    ) -> io::Result<()>;
    /// `mknodat` relative to `dir`.
    fn mknodat(
        &self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        kind: NodeType,
        mode: u32,
        major: u32,
        minor: u32,
    ) -> io::Result<()>;
    /// `fchownat` relative to `dir`, not following a final symlink.
    fn fchownat(&self, dir: BorrowedFd<'_>, name: &OsStr, uid: u32, gid: u32) -> io::Result<()>;
    /// `fchmodat` relative to `dir` (device nodes are never symlinks).
    fn fchmodat(&self, dir: BorrowedFd<'_>, name: &OsStr, mode: u32) -> io::Result<()>;
    /// `symlinkat` relative to `dir`.
    fn symlinkat(&self, target: &Path, dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()>;
    /// `pivot_root(".", ".")` from `new_root`, then the old root made a recursive slave and
    /// detached, leaving the process in the new `/`.
    fn pivot_root(&self, new_root: BorrowedFd<'_>) -> io::Result<()>;
    /// What `name` in `dir` is, not following a final symlink (to verify a node once made).
    fn lstat_at(&self, dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<FileInfo>;
    /// Makes the root mount (not its submounts) read-only.
    fn remount_root_readonly(&self) -> io::Result<()>;
}

/// `/proc/self/fd/N` for a descriptor: how the legacy `mount(2)` reaches an fd's file.
pub fn proc_fd_path(fd: BorrowedFd<'_>) -> String {
    format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_become_attributes() {
        let opts: Vec<String> = ["ro", "nosuid", "nodev", "noexec", "relatime"]
            .iter()
            .map(|s| (*s).into())
            .collect();
        let flags = MountFlags::from_options(&opts, Some("rslave"));
        assert_eq!(
            flags.attrs,
            MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC
        );
        assert_eq!(
            (flags.propagation, flags.recursive_propagation),
            (MS_SLAVE, true)
        );
        assert_eq!(
            flags.legacy_flags(),
            libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC
        );
        let private = MountFlags::from_options(&[], Some("private"));
        assert_eq!(
            (private.propagation, private.recursive_propagation),
            (MS_PRIVATE, false)
        );
    }
}
