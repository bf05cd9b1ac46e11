//! The real [`Sys`]: the new mount API by raw system call (no well-kept crate wraps
//! `open_tree`, `fsopen`/`fsconfig`/`fsmount`, `move_mount` and `mount_setattr` with the fd-only
//! semantics this needs), plus `nix` for the rest.
#![allow(unsafe_code)]

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::fcntl::AtFlags;
use nix::mount::{MntFlags, MsFlags};
use nix::sys::stat::{FchmodatFlags, Mode, SFlag, makedev};
use nix::unistd::{Gid, Uid};

use super::abi::{
    AT_EMPTY_PATH, AT_RECURSIVE, AT_SYMLINK_NOFOLLOW, FSCONFIG_CMD_CREATE, FSCONFIG_SET_FLAG,
    FSCONFIG_SET_STRING, FSMOUNT_CLOEXEC, FSOPEN_CLOEXEC, MOUNT_ATTR_RDONLY,
    MOVE_MOUNT_F_EMPTY_PATH, MOVE_MOUNT_T_EMPTY_PATH, MountAttr, OPEN_TREE_CLOEXEC,
    OPEN_TREE_CLONE,
};
use super::rootdir::FileInfo;
use super::system::{MountFlags, NodeType, Sys, proc_fd_path};

/// The running kernel.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealSys;

fn c_string(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "a NUL byte in a path or option",
        )
    })
}

/// A syscall's result as an fd or the errno.
fn fd_result(ret: libc::c_long) -> io::Result<OwnedFd> {
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the syscalls passed here return a new descriptor on success, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(ret as i32) })
}

fn unit_result(ret: libc::c_long) -> io::Result<()> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

impl Sys for RealSys {
    fn make_root_rslave(&self) -> io::Result<()> {
        nix::mount::mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_SLAVE | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(io::Error::from)
    }

    fn open_tree(
        &self,
        dir: BorrowedFd<'_>,
        path: &Path,
        recursive: bool,
        follow: bool,
    ) -> io::Result<OwnedFd> {
        let path = c_string(path.as_os_str().as_bytes())?;
        let mut flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC;
        if path.as_bytes().is_empty() {
            flags |= AT_EMPTY_PATH;
        }
        if recursive {
            flags |= AT_RECURSIVE;
        }
        if !follow {
            flags |= AT_SYMLINK_NOFOLLOW;
        }
        // SAFETY: `path` is a NUL-terminated string that outlives the call; `dir` is a live
        // descriptor borrowed for the call.
        let ret =
            unsafe { libc::syscall(libc::SYS_open_tree, dir.as_raw_fd(), path.as_ptr(), flags) };
        fd_result(ret)
    }

    fn fs_mount(
        &self,
        fs_type: &str,
        source: &str,
        data: &[String],
        attrs: u64,
    ) -> io::Result<OwnedFd> {
        let fs_type = c_string(fs_type.as_bytes())?;
        // SAFETY: `fs_type` is NUL-terminated and outlives the call.
        let fs = fd_result(unsafe {
            libc::syscall(libc::SYS_fsopen, fs_type.as_ptr(), FSOPEN_CLOEXEC)
        })?;
        let config = |cmd: u32, key: Option<&str>, value: Option<&str>| -> io::Result<()> {
            let key = key.map(|k| c_string(k.as_bytes())).transpose()?;
            let value = value.map(|v| c_string(v.as_bytes())).transpose()?;
            let key_ptr = key.as_ref().map_or(std::ptr::null(), |k| k.as_ptr());
            let value_ptr = value.as_ref().map_or(std::ptr::null(), |v| v.as_ptr());
            // SAFETY: `fs` is the live fs-context descriptor; key and value are NUL-terminated
            // strings (or NULL where the command takes none) that outlive the call.
            unit_result(unsafe {
                libc::syscall(
                    libc::SYS_fsconfig,
                    fs.as_raw_fd(),
                    cmd,
                    key_ptr,
                    value_ptr,
                    0,
                )
            })
        };
        if !source.is_empty() {
            config(FSCONFIG_SET_STRING, Some("source"), Some(source))?;
        }
        for item in data {
            match item.split_once('=') {
                Some((key, value)) => config(FSCONFIG_SET_STRING, Some(key), Some(value))?,
                None => config(FSCONFIG_SET_FLAG, Some(item), None)?,
            }
        }
        config(FSCONFIG_CMD_CREATE, None, None)?;
        // SAFETY: `fs` is a live fs-context descriptor with a created superblock.
        fd_result(unsafe {
            libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), FSMOUNT_CLOEXEC, attrs)
        })
    }

    fn mount_setattr(
        &self,
        mount: BorrowedFd<'_>,
        recursive: bool,
        flags: MountFlags,
    ) -> io::Result<()> {
        let attr = MountAttr {
            attr_set: flags.attrs,
            attr_clr: 0,
            propagation: flags.propagation,
            userns_fd: 0,
        };
        let mut at_flags = AT_EMPTY_PATH;
        if recursive {
            at_flags |= AT_RECURSIVE;
        }
        // SAFETY: `mount` is live, the path is the empty C string, and `attr` is a valid
        // `struct mount_attr` whose size is passed with it.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_mount_setattr,
                mount.as_raw_fd(),
                c"".as_ptr(),
                at_flags,
                &attr as *const MountAttr,
                size_of::<MountAttr>(),
            )
        };
        unit_result(ret)
    }

    fn move_mount(&self, from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> io::Result<()> {
        // SAFETY: both descriptors are live; both paths are the empty C string, as the
        // *_EMPTY_PATH flags require.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_move_mount,
                from.as_raw_fd(),
                c"".as_ptr(),
                to.as_raw_fd(),
                c"".as_ptr(),
                MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
            )
        };
        unit_result(ret)
    }

    fn legacy_mount(
        &self,
        source: &str,
        target: BorrowedFd<'_>,
        fs_type: &str,
        flags: u64,
        data: &str,
    ) -> io::Result<()> {
        let target = proc_fd_path(target);
        let flags = MsFlags::from_bits_truncate(flags);
        let fs_type = (!fs_type.is_empty()).then_some(fs_type);
        let data = (!data.is_empty()).then_some(data);
        nix::mount::mount(Some(source), target.as_str(), fs_type, flags, data)
            .map_err(io::Error::from)
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
        let kind = match kind {
            NodeType::Char => SFlag::S_IFCHR,
            NodeType::Block => SFlag::S_IFBLK,
            NodeType::Fifo => SFlag::S_IFIFO,
        };
        let dev = makedev(u64::from(major), u64::from(minor));
        nix::sys::stat::mknodat(dir, name, kind, Mode::from_bits_truncate(mode), dev)
            .map_err(io::Error::from)
    }

    fn fchownat(&self, dir: BorrowedFd<'_>, name: &OsStr, uid: u32, gid: u32) -> io::Result<()> {
        nix::unistd::fchownat(
            dir,
            name,
            Some(Uid::from_raw(uid)),
            Some(Gid::from_raw(gid)),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(io::Error::from)
    }

    fn fchmodat(&self, dir: BorrowedFd<'_>, name: &OsStr, mode: u32) -> io::Result<()> {
        nix::sys::stat::fchmodat(
            dir,
            name,
            Mode::from_bits_truncate(mode),
            FchmodatFlags::FollowSymlink,
        )
        .map_err(io::Error::from)
    }

    fn symlinkat(&self, target: &Path, dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
        nix::unistd::symlinkat(target, dir, name).map_err(io::Error::from)
    }

    fn pivot_root(&self, new_root: BorrowedFd<'_>) -> io::Result<()> {
        nix::unistd::fchdir(new_root).map_err(io::Error::from)?;
        nix::unistd::pivot_root(".", ".").map_err(io::Error::from)?;
        // The old root now sits on top of the new one at "."; keep its unmount from propagating
        // to the host (MS_SLAVE, not MS_PRIVATE: runc PR 1500) and detach it.
        nix::mount::mount(
            None::<&str>,
            ".",
            None::<&str>,
            MsFlags::MS_SLAVE | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(io::Error::from)?;
        nix::mount::umount2(".", MntFlags::MNT_DETACH).map_err(io::Error::from)?;
        nix::unistd::chdir("/").map_err(io::Error::from)
    }

    fn lstat_at(&self, dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<FileInfo> {
        let st = nix::sys::stat::fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW)
            .map_err(io::Error::from)?;
        Ok(FileInfo::from_stat(&st))
    }

    fn remount_root_readonly(&self) -> io::Result<()> {
        let root = nix::fcntl::open(
            "/",
            nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        let flags = MountFlags {
            attrs: MOUNT_ATTR_RDONLY,
            ..MountFlags::default()
        };
        match self.mount_setattr(root.as_fd(), false, flags) {
            Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => nix::mount::mount(
                None::<&str>,
                "/",
                None::<&str>,
                MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY,
                None::<&str>,
            )
            .map_err(io::Error::from),
            other => other,
        }
    }
}
