use std::fs;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{Process, Spec};

use super::BootError;

/// An OCI bundle: a directory holding `config.json` (and usually the rootfs).
#[derive(Debug, Clone)]
pub struct Bundle {
    /// Absolute path of the bundle directory.
    pub dir: PathBuf,
    /// The parsed `config.json`.
    pub spec: Spec,
}

/// Device types a spec may give, checked before `oci-spec` sees the file so that a bad one is
/// reported with its device path instead of a bare serde message.
const DEVICE_TYPES: [&str; 4] = ["b", "c", "u", "p"];

impl Bundle {
    /// Loads `dir/config.json`.
    pub fn load(dir: impl AsRef<Path>) -> Result<Self, BootError> {
        let dir = std::path::absolute(dir.as_ref()).map_err(|source| BootError::HostPath {
            what: "bundle directory".into(),
            path: dir.as_ref().to_path_buf(),
            source,
        })?;
        let path = dir.join("config.json");
        let text = fs::read_to_string(&path).map_err(|source| BootError::ReadSpec {
            path: path.clone(),
            source,
        })?;
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|source| BootError::ParseSpec {
                path: path.clone(),
                source,
            })?;
        check_device_types(&value)?;
        // From the text, not the value, so that errors carry a line and column, and through
        // serde_path_to_error so that they name the field (`mounts[0].options`).
        let mut reader = serde_json::Deserializer::from_str(&text);
        let spec: Spec =
            serde_path_to_error::deserialize(&mut reader).map_err(|e| BootError::SpecField {
                path: path.clone(),
                field: e.path().to_string(),
                source: e.into_inner(),
            })?;
        Ok(Self { dir, spec })
    }

    /// A host path from the spec: absolute as is, relative to the bundle otherwise.
    pub fn host_path(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.dir.join(path)
        }
    }
}

/// The spec's process, which a bundle must have.
pub fn required_process(spec: &Spec) -> Result<&Process, BootError> {
    spec.process()
        .as_ref()
        .ok_or_else(|| BootError::InvalidField {
            field: "process".into(),
            reason: "missing; a bundle needs a process to run".into(),
        })
}

fn check_device_types(spec: &serde_json::Value) -> Result<(), BootError> {
    let Some(devices) = spec.pointer("/linux/devices").and_then(|d| d.as_array()) else {
        return Ok(());
    };
    for (index, device) in devices.iter().enumerate() {
        let path = device
            .get("path")
            .and_then(|p| p.as_str())
            .unwrap_or("(no path)");
        let kind = device.get("type").and_then(|t| t.as_str());
        if !kind.is_some_and(|k| DEVICE_TYPES.contains(&k)) {
            return Err(BootError::InvalidField {
                field: format!("linux.devices[{index}].type"),
                reason: format!(
                    "{path}: type {} is not one of b, c, u, p",
                    kind.map_or_else(|| "(missing)".to_owned(), |k| format!("{k:?}"))
                ),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle_with(config: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("config.json"), config).unwrap();
        dir
    }

    #[test]
    fn a_bad_device_type_names_the_device() {
        let dir = bundle_with(
            r#"{"ociVersion":"1.0.2","linux":{"devices":[{"path":"/dev/x","type":"q","major":1,"minor":2}]}}"#,
        );
        let err = Bundle::load(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("linux.devices[0].type")
                && err.contains("/dev/x")
                && err.contains("\"q\""),
            "{err}"
        );
    }

    #[test]
    fn missing_or_broken_config_is_named() {
        let empty = tempfile::tempdir().unwrap();
        assert!(
            Bundle::load(empty.path())
                .unwrap_err()
                .to_string()
                .contains("config.json")
        );
        let dir = bundle_with("{ not json");
        let err = Bundle::load(dir.path()).unwrap_err();
        assert!(matches!(err, BootError::ParseSpec { .. }), "{err}");
    }

    #[test]
    fn a_type_error_names_the_field_path() {
        let dir =
            bundle_with(r#"{"ociVersion":"1.0.2","mounts":[{"destination":"/x","options":"ro"}]}"#);
        let err = Bundle::load(dir.path()).unwrap_err();
        let text = crate::pci::error_chain(&err);
        assert!(text.contains("mounts[0].options"), "{text}");
        assert!(text.contains("line 1"), "{text}");
    }

    #[test]
    fn relative_host_paths_are_taken_from_the_bundle() {
        let dir = bundle_with(r#"{"ociVersion":"1.0.2"}"#);
        let bundle = Bundle::load(dir.path()).unwrap();
        assert_eq!(
            bundle.host_path(Path::new("rootfs")),
            dir.path().join("rootfs")
        );
        assert_eq!(bundle.host_path(Path::new("/srv")), Path::new("/srv"));
    }
}
