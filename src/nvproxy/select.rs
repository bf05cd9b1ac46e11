//! Which ABI a host's NVIDIA driver gets: its version's, when the tree supports it; else the
//! one the operator names; else a refusal that names the nearest supported versions and the
//! override.

use super::table::Abi;
use super::tree;
use super::version::DriverVersion;

/// What the operator may say of the ABI to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AbiChoice {
    /// The host driver's version, which must be supported.
    #[default]
    Host,
    /// This version of the tree, whatever the host runs (`--nvidia-driver-abi VERSION`).
    Version(DriverVersion),
}

impl std::str::FromStr for AbiChoice {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if text == "host" {
            return Ok(Self::Host);
        }
        let version = DriverVersion::parse(text).map_err(|e| format!("{text:?}: {e}"))?;
        if tree::find(version).is_none() {
            return Err(format!(
                "{version} is not in the tree of driver versions (`accelgate nvidia versions` lists them)"
            ));
        }
        Ok(Self::Version(version))
    }
}

/// Why no ABI could be chosen.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SelectError {
    /// The host's driver version could not be read.
    #[error(
        "the host's NVIDIA driver version is unknown (no /proc/driver/nvidia/version or \
         /sys/module/nvidia/version); name the ABI to use with --nvidia-driver-abi VERSION"
    )]
    UnknownHostVersion,
    /// The host runs a version the tree does not support.
    #[error(
        "NVIDIA driver {version} is not supported{nearest}; run with \
         --nvidia-driver-abi VERSION to use a supported version's tables on it \
         (`accelgate nvidia versions` lists them)"
    )]
    Unsupported {
        /// The host's version.
        version: DriverVersion,
        /// ", nearest supported: A, B", or empty.
        nearest: String,
    },
    /// The tree could not be folded (a bug, caught by the tree's tests).
    #[error("the driver ABI tree: {0}")]
    Tree(String),
}

/// The ABI for a host whose driver is `host` (None when unknown), as `choice` says.
pub fn select(host: Option<DriverVersion>, choice: AbiChoice) -> Result<&'static Abi, SelectError> {
    let version = match choice {
        AbiChoice::Version(version) => version,
        AbiChoice::Host => {
            let version = host.ok_or(SelectError::UnknownHostVersion)?;
            if !tree::find(version).is_some_and(|n| n.supported) {
                let nearest = tree::nearest(version);
                let nearest = if nearest.is_empty() {
                    String::new()
                } else {
                    let names: Vec<String> = nearest.iter().map(ToString::to_string).collect();
                    format!(" (nearest supported: {})", names.join(", "))
                };
                return Err(SelectError::Unsupported { version, nearest });
            }
            version
        }
    };
    tree::abi(version).map_err(SelectError::Tree)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_versions_are_refused_naming_the_nearest() {
        let host = |text: &str| Some(DriverVersion::parse(text).unwrap());
        assert_eq!(
            select(host("550.90.12"), AbiChoice::Host)
                .unwrap()
                .version
                .to_string(),
            "550.90.12"
        );
        let error = select(host("550.100.01"), AbiChoice::Host)
            .unwrap_err()
            .to_string();
        assert!(error.contains("550.100.01 is not supported"), "{error}");
        assert!(
            error.contains("nearest supported: 550.90.12, 570.124.06"),
            "{error}"
        );
        assert!(error.contains("--nvidia-driver-abi"), "{error}");
        // An intermediate node of the tree is not supported either.
        assert!(select(host("575.51.02"), AbiChoice::Host).is_err());
        let chosen: AbiChoice = "570.124.06".parse().unwrap();
        assert_eq!(
            select(host("575.51.02"), chosen)
                .unwrap()
                .version
                .to_string(),
            "570.124.06"
        );
        assert!("570.1.1".parse::<AbiChoice>().is_err());
        assert_eq!(
            select(None, AbiChoice::Host),
            Err(SelectError::UnknownHostVersion)
        );
    }
}
