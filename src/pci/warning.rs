use std::error::Error;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::PciError;

/// Something odd about the host that discovery worked around: a bad attribute, a missing node,
/// a number that disagrees with `/proc/devices`. Discovery goes on; the operator should look.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    /// Host path of the offending file, link or node.
    pub path: PathBuf,
    /// What is wrong and what discovery did about it.
    pub message: String,
}

impl Warning {
    /// A warning about `path`.
    pub fn new(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self { path: path.into(), message: message.into() }
    }

    /// A warning from an error (with its whole source chain) and what discovery did about it.
    pub fn from_error(error: &PciError, consequence: &str) -> Self {
        Self::new(error.path(), format!("{}; {consequence}", error_chain(error)))
    }

    /// The path the warning is about.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// An error and all its sources, joined with `: `, as operators expect to read them.
pub fn error_chain(error: &dyn Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let _ = write!(text, ": {cause}");
        source = cause.source();
    }
    text
}
