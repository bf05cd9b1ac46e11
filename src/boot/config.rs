use std::collections::HashMap;
use std::path::PathBuf;

use super::BootError;
use super::grant::{GRANTED_GPUS_ANNOTATION, GRANTED_TPUS_ANNOTATION};
use crate::plan::OverlayMode;

/// Annotation prefix of accelgate's own settings.
pub const ANNOTATION_PREFIX: &str = "dev.accelgate.";

/// `dev.accelgate.tpu`: which TPU chips to give the sandbox.
pub const TPU_ANNOTATION: &str = "dev.accelgate.tpu";

/// `dev.accelgate.overlay`: how to protect the rootfs from writes.
pub const OVERLAY_ANNOTATION: &str = "dev.accelgate.overlay";

/// `dev.accelgate.rootfs-image`: an EROFS image file to use as the rootfs.
pub const ROOTFS_IMAGE_ANNOTATION: &str = "dev.accelgate.rootfs-image";

const KNOWN_ANNOTATIONS: [&str; 5] = [
    TPU_ANNOTATION,
    OVERLAY_ANNOTATION,
    ROOTFS_IMAGE_ANNOTATION,
    GRANTED_TPUS_ANNOTATION,
    GRANTED_GPUS_ANNOTATION,
];

/// A choice of devices by discovery index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Every device of the kind on the host.
    All,
    /// These indices, in ascending order, without duplicates.
    Indices(Vec<usize>),
}

impl Selection {
    /// Parses `all` or a comma-separated list of indices (`0,1,3`).
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text == "all" {
            return Ok(Self::All);
        }
        let mut indices = text
            .split(',')
            .map(|part| {
                let part = part.trim();
                part.parse::<usize>()
                    .map_err(|_| format!("{part:?} is not an index; expected `all` or `0,1,...`"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        indices.sort_unstable();
        indices.dedup();
        Ok(Self::Indices(indices))
    }
}

/// What the operator decides for a sandbox, from command-line flags. Annotations
/// (`dev.accelgate.*`) fill in what the flags leave unset.
#[derive(Debug, Clone, Default)]
pub struct BootConfig {
    /// The container's name: the default cgroup path and the `self` overlay directory use it.
    pub container_id: String,
    /// `--overlay`.
    pub overlay: Option<OverlayMode>,
    /// `--rootfs-image`: an EROFS image to mount as the rootfs.
    pub rootfs_image: Option<PathBuf>,
    /// `--tpu`.
    pub tpus: Option<Selection>,
    /// Another runtime (runc, crun) applies the spec and accelgate only reads it (the seccomp
    /// agent, for the devices a container was given): fields accelgate cannot apply itself are
    /// then that runtime's business, not errors.
    pub applied_elsewhere: bool,
}

/// The settings in effect: flags first, then annotations, then defaults.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Overlay mode.
    pub overlay: OverlayMode,
    /// EROFS rootfs image.
    pub rootfs_image: Option<PathBuf>,
    /// TPU chips asked for by flag or annotation, and which of the two asked.
    pub tpus: Option<(Selection, &'static str)>,
}

impl Settings {
    /// Merges `config` with the spec's annotations; an unknown `dev.accelgate.*` annotation is
    /// an error, so a typo does not silently drop a setting.
    pub fn resolve(
        config: &BootConfig,
        annotations: &HashMap<String, String>,
    ) -> Result<Self, BootError> {
        let invalid = |name: &str, value: &str, reason: String| BootError::InvalidConfig {
            name: name.to_owned(),
            value: value.to_owned(),
            reason,
        };
        let mut names: Vec<&String> = annotations
            .keys()
            .filter(|k| k.starts_with(ANNOTATION_PREFIX))
            .collect();
        names.sort();
        if let Some(unknown) = names
            .iter()
            .find(|k| !KNOWN_ANNOTATIONS.contains(&k.as_str()))
        {
            return Err(invalid(
                unknown,
                &annotations[*unknown],
                format!(
                    "unknown annotation; accelgate knows {}",
                    KNOWN_ANNOTATIONS.join(", ")
                ),
            ));
        }
        let overlay = match (&config.overlay, annotations.get(OVERLAY_ANNOTATION)) {
            (Some(mode), _) => mode.clone(),
            (None, Some(text)) => {
                OverlayMode::parse(text).map_err(|r| invalid(OVERLAY_ANNOTATION, text, r))?
            }
            (None, None) => OverlayMode::None,
        };
        let rootfs_image = config
            .rootfs_image
            .clone()
            .or_else(|| annotations.get(ROOTFS_IMAGE_ANNOTATION).map(PathBuf::from));
        if let Some(image) = &rootfs_image {
            if !image.is_absolute() {
                return Err(invalid(
                    ROOTFS_IMAGE_ANNOTATION,
                    &image.display().to_string(),
                    "must be an absolute path".into(),
                ));
            }
        }
        let tpus = match (&config.tpus, annotations.get(TPU_ANNOTATION)) {
            (Some(selection), _) => Some((selection.clone(), "--tpu")),
            (None, Some(text)) => Some((
                Selection::parse(text).map_err(|r| invalid(TPU_ANNOTATION, text, r))?,
                TPU_ANNOTATION,
            )),
            (None, None) => None,
        };
        Ok(Self {
            overlay,
            rootfs_image,
            tpus,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selections_parse() {
        assert_eq!(Selection::parse("all"), Ok(Selection::All));
        assert_eq!(
            Selection::parse("3,1, 1"),
            Ok(Selection::Indices(vec![1, 3]))
        );
        assert!(Selection::parse("1,,2").is_err());
        assert!(Selection::parse("one").is_err());
        assert!(Selection::parse("-1").is_err());
    }

    #[test]
    fn overlay_modes_parse_and_print() {
        for text in ["none", "memory", "self", "dir:/var/lib/upper"] {
            assert_eq!(OverlayMode::parse(text).unwrap().to_string(), text);
        }
        assert!(OverlayMode::parse("dir:relative").is_err());
        assert!(OverlayMode::parse("disk").is_err());
    }

    #[test]
    fn flags_win_over_annotations_and_typos_are_errors() {
        let annotations: HashMap<String, String> = [
            (TPU_ANNOTATION.to_owned(), "0,1".to_owned()),
            (OVERLAY_ANNOTATION.to_owned(), "memory".to_owned()),
        ]
        .into();
        let config = BootConfig {
            tpus: Some(Selection::All),
            ..BootConfig::default()
        };
        let settings = Settings::resolve(&config, &annotations).unwrap();
        assert_eq!(settings.tpus, Some((Selection::All, "--tpu")));
        assert_eq!(settings.overlay, OverlayMode::Memory);
        let typo: HashMap<String, String> =
            [("dev.accelgate.tpus".to_owned(), "all".to_owned())].into();
        let err = Settings::resolve(&BootConfig::default(), &typo)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("dev.accelgate.tpus") && err.contains("unknown annotation"),
            "{err}"
        );
    }
}
