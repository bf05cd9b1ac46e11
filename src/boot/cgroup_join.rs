//! How a new process joins its sandbox's cgroups, which the runtime has made and configured:
//! the first process of a sandbox and every process exec'd into it alike.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use super::BootError;

/// How a new process joins its cgroups: the cgroup2 one from its first instruction (`clone3`
/// with `CLONE_INTO_CGROUP`), the v1 ones by writing `0` to their `tasks` files itself before
/// anything else. Either way no process is migrated by pid: writing a pid to `cgroup.procs`
/// takes the kernel's global threadgroup lock, which waits for an RCU grace period (5 to 15 ms
/// on the development VM), while a thread moving itself does not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CgroupJoin {
    /// The `tasks` files of the v1 cgroups.
    pub tasks: Vec<PathBuf>,
    /// The cgroup2 cgroup's directory.
    pub unified: Option<PathBuf>,
}

/// [`CgroupJoin`]'s files, opened by the launcher (whose credentials the kernel checks).
pub(super) struct CgroupFds {
    pub(super) tasks: Vec<OwnedFd>,
    pub(super) unified: Option<OwnedFd>,
}

impl CgroupFds {
    pub(super) fn open(join: &CgroupJoin) -> Result<Self, BootError> {
        use nix::fcntl::{OFlag, open};
        use nix::sys::stat::Mode;
        let failed = |path: &PathBuf, e: nix::errno::Errno| {
            BootError::Launch(format!("open the cgroup {}: {e}", path.display()))
        };
        let tasks = join
            .tasks
            .iter()
            .map(|path| {
                open(path, OFlag::O_WRONLY | OFlag::O_CLOEXEC, Mode::empty())
                    .map_err(|e| failed(path, e))
            })
            .collect::<Result<_, _>>()?;
        let unified = join
            .unified
            .as_ref()
            .map(|path| {
                open(
                    path,
                    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| failed(path, e))
            })
            .transpose()?;
        Ok(Self { tasks, unified })
    }
}

/// In the new process: moves itself (its one thread) into each v1 cgroup, then tells the
/// launcher on `joined`.
pub(super) fn join_cgroups((tasks, joined): (Vec<OwnedFd>, Option<OwnedFd>)) -> Result<(), String> {
    for fd in tasks {
        std::fs::File::from(fd)
            .write_all(b"0")
            .map_err(|e| format!("join its cgroups: {e}"))?;
    }
    if let Some(joined) = joined {
        std::fs::File::from(joined)
            .write_all(b"j")
            .map_err(|e| format!("report its cgroups joined: {e}"))?;
    }
    Ok(())
}

/// In the launcher: whether the new process said it is in its v1 cgroups (`false`: it failed
/// before, and said why on its error pipe). No pipe: it had none to join.
pub(super) fn cgroups_joined(joined: Option<OwnedFd>) -> bool {
    let Some(joined) = joined else {
        return true;
    };
    let mut byte = [0u8; 1];
    matches!(std::fs::File::from(joined).read(&mut byte), Ok(1))
}
