//! The new mount API (`include/uapi/linux/mount.h`, Linux 5.2 and 5.12) and `close_range`,
//! pinned to the kernel's values: `open_tree`, `move_mount`, `fsopen`, `fsconfig`, `fsmount`
//! and `mount_setattr` let every mount be made onto a file descriptor rather than a path.

/// `open_tree`: make a detached copy of the tree (a bind mount not yet attached).
pub const OPEN_TREE_CLONE: u32 = 0x1;
/// `open_tree` and friends: close the result on exec.
pub const OPEN_TREE_CLOEXEC: u32 = 0o2_000_000;
/// `AT_RECURSIVE`: include submounts (`rbind`), or apply to the whole tree (`mount_setattr`).
pub const AT_RECURSIVE: u32 = 0x8000;
/// `AT_EMPTY_PATH`: operate on the file descriptor itself.
pub const AT_EMPTY_PATH: u32 = 0x1000;
/// `AT_SYMLINK_NOFOLLOW`: do not follow a final symlink.
pub const AT_SYMLINK_NOFOLLOW: u32 = 0x100;

/// `move_mount`: the source is the file descriptor itself.
pub const MOVE_MOUNT_F_EMPTY_PATH: u32 = 0x4;
/// `move_mount`: the target is the file descriptor itself.
pub const MOVE_MOUNT_T_EMPTY_PATH: u32 = 0x40;

/// `fsopen`: close on exec.
pub const FSOPEN_CLOEXEC: u32 = 0x1;
/// `fsmount`: close on exec.
pub const FSMOUNT_CLOEXEC: u32 = 0x1;

/// `fsconfig` commands.
pub const FSCONFIG_SET_FLAG: u32 = 0;
/// Set a string parameter.
pub const FSCONFIG_SET_STRING: u32 = 1;
/// Create the superblock.
pub const FSCONFIG_CMD_CREATE: u32 = 6;

/// Mount attributes (`MOUNT_ATTR_*`) for `fsmount` and `mount_setattr`.
pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
/// No set-user-ID.
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
/// No device files.
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
/// No execution.
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;
/// The atime field's mask.
pub const MOUNT_ATTR__ATIME: u64 = 0x70;
/// Update atime relative to mtime (the default).
pub const MOUNT_ATTR_RELATIME: u64 = 0x0;
/// Never update atime.
pub const MOUNT_ATTR_NOATIME: u64 = 0x10;
/// Always update atime.
pub const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
/// Never update directory atime.
pub const MOUNT_ATTR_NODIRATIME: u64 = 0x80;

/// Propagation types for `mount_attr.propagation` (the `MS_*` values).
pub const MS_PRIVATE: u64 = 1 << 18;
/// Slave propagation.
pub const MS_SLAVE: u64 = 1 << 19;
/// Shared propagation.
pub const MS_SHARED: u64 = 1 << 20;
/// Unbindable.
pub const MS_UNBINDABLE: u64 = 1 << 17;

/// `struct mount_attr` (`MOUNT_ATTR_SIZE_VER0`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MountAttr {
    /// Attributes to set.
    pub attr_set: u64,
    /// Attributes to clear.
    pub attr_clr: u64,
    /// Propagation type (`MS_*`), or 0 to leave it.
    pub propagation: u64,
    /// A user namespace fd for `MOUNT_ATTR_IDMAP`.
    pub userns_fd: u64,
}

const _: () = assert!(size_of::<MountAttr>() == 32);

/// `close_range`: set close-on-exec instead of closing.
pub const CLOSE_RANGE_CLOEXEC: u32 = 1 << 2;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_match_the_uapi_headers() {
        assert_eq!(OPEN_TREE_CLOEXEC, libc::O_CLOEXEC as u32);
        assert_eq!(AT_RECURSIVE, libc::AT_RECURSIVE as u32);
        assert_eq!(AT_EMPTY_PATH, libc::AT_EMPTY_PATH as u32);
        assert_eq!(AT_SYMLINK_NOFOLLOW, libc::AT_SYMLINK_NOFOLLOW as u32);
        assert_eq!(MS_PRIVATE, libc::MS_PRIVATE);
        assert_eq!(MS_SLAVE, libc::MS_SLAVE);
        assert_eq!(MS_SHARED, libc::MS_SHARED);
        assert_eq!(MS_UNBINDABLE, libc::MS_UNBINDABLE);
        assert_eq!(CLOSE_RANGE_CLOEXEC, libc::CLOSE_RANGE_CLOEXEC);
        assert_eq!(size_of::<MountAttr>(), 32, "MOUNT_ATTR_SIZE_VER0");
    }
}
