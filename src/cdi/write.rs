//! Writing a spec so that an engine reading the directory never sees half a file.

use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::CdiError;
use super::spec::Spec;

/// Writes `spec` as `dir/<vendor.com>-<class>.json` (`nvidia.com-gpu.json`) and returns the path.
///
/// The JSON goes to a temporary file in `dir`, is synced, and is renamed over the old spec, and
/// then the directory is synced: engines that watch `dir` see the old spec or the new one. The
/// temporary name starts with a dot and does not end in `.json`, so engines never load it. `dir`
/// is created (mode 0755) when missing.
pub fn write_atomically(dir: &Path, spec: &Spec) -> Result<PathBuf, CdiError> {
    fs::create_dir_all(dir).map_err(|source| CdiError::CreateDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let name = format!("{}.json", spec.kind.replace('/', "-"));
    let target = dir.join(&name);
    let temporary = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut text = serde_json::to_vec_pretty(spec).map_err(|source| CdiError::Encode {
        kind: spec.kind.clone(),
        source,
    })?;
    text.push(b'\n');
    let written = write_synced(&temporary, &text).and_then(|()| {
        fs::rename(&temporary, &target)?;
        File::open(dir)?.sync_all()
    });
    written.map_err(|source| {
        let _ = fs::remove_file(&temporary);
        CdiError::Write {
            path: target.clone(),
            source,
        }
    })?;
    Ok(target)
}

fn write_synced(path: &Path, text: &[u8]) -> std::io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(path)?;
    file.write_all(text)?;
    // The umask may have narrowed the mode; engines running as other users must read it.
    file.set_permissions(fs::Permissions::from_mode(0o644))?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cdi::ContainerEdits;

    fn spec() -> Spec {
        Spec {
            cdi_version: "0.3.0".into(),
            kind: "google.com/tpu".into(),
            annotations: Default::default(),
            devices: Vec::new(),
            container_edits: ContainerEdits::default(),
        }
    }

    #[test]
    fn replaces_the_spec_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let specs = dir.path().join("cdi");
        let path = write_atomically(&specs, &spec()).unwrap();
        assert_eq!(path, specs.join("google.com-tpu.json"));
        let mut newer = spec();
        newer.cdi_version = "0.5.0".into();
        write_atomically(&specs, &newer).unwrap();
        let read: Spec = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        assert_eq!(read, newer);
        let names: Vec<_> = fs::read_dir(&specs)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["google.com-tpu.json"]);
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
    }

    #[test]
    fn an_unwritable_directory_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let not_a_dir = dir.path().join("file");
        fs::write(&not_a_dir, "").unwrap();
        let err = write_atomically(&not_a_dir, &spec()).unwrap_err();
        assert!(err.to_string().contains("file"), "{err}");
    }
}
