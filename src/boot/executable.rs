//! Resolving `process.args[0]` inside the container, as `execvp` would there.

use std::path::{Path, PathBuf};

use super::BootError;
use super::paths::clean_absolute;
use crate::vfs::{FileInfo, FileKind, VfsError};

/// `PATH` when the process environment has none (runc's and Docker's default).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Resolves `name` the way the container's `execvp` would: a name with a `/` is taken from
/// `cwd`; a bare name is searched on `path_env`. `stat` looks a container path up (following
/// symlinks inside the container).
pub fn resolve_executable(
    name: &str,
    path_env: &str,
    cwd: &Path,
    stat: &dyn Fn(&Path) -> Result<Option<FileInfo>, VfsError>,
) -> Result<PathBuf, BootError> {
    let error = |reason: String| BootError::Executable {
        name: name.to_owned(),
        reason,
    };
    if name.is_empty() {
        return Err(error("empty".into()));
    }
    let absolute = |candidate: &Path| -> Result<PathBuf, BootError> {
        let joined = cwd.join(candidate);
        clean_absolute(&joined.to_string_lossy())
            .map_err(|r| error(format!("{}: {r}", joined.display())))
    };
    let candidates: Vec<PathBuf> = if name.contains('/') {
        vec![absolute(Path::new(name))?]
    } else {
        path_env
            .split(':')
            .filter(|dir| !dir.is_empty())
            .map(|dir| absolute(&Path::new(dir).join(name)))
            .collect::<Result<_, _>>()?
    };
    let mut not_executable = None;
    for candidate in &candidates {
        match stat(candidate).map_err(BootError::Rootfs)? {
            Some(info) if info.kind == FileKind::File && info.is_executable() => {
                return Ok(candidate.clone());
            }
            Some(info) if info.kind == FileKind::File => {
                not_executable.get_or_insert_with(|| {
                    format!(
                        "{} is not executable (mode {:04o})",
                        candidate.display(),
                        info.mode
                    )
                });
            }
            Some(info) => {
                not_executable.get_or_insert_with(|| {
                    format!("{} is a {:?}, not a file", candidate.display(), info.kind)
                });
            }
            None => {}
        }
    }
    Err(error(not_executable.unwrap_or_else(|| {
        if name.contains('/') {
            format!(
                "{} does not exist in the container",
                candidates[0].display()
            )
        } else {
            format!("not found on PATH={path_env}")
        }
    })))
}
