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
    /// What is wrong and what discovery did about it, naming the path.
    pub message: String,
}

impl Warning {
    /// A warning about `path`; the message starts with the path so it reads on its own.
    pub fn new(path: impl Into<PathBuf>, detail: impl std::fmt::Display) -> Self {
        let path = path.into();
        let message = format!("{}: {detail}", path.display());
        Self { path, message }
    }

    /// A warning from an error (whose message names the path, followed by its whole source
    /// chain) and what discovery did about it.
    pub fn from_error(error: &PciError, consequence: &str) -> Self {
        let message = format!("{}; {consequence}", error_chain(error));
        Self {
            path: error.path().to_path_buf(),
            message,
        }
    }

    /// The path the warning is about.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The value of a lookup, or `None` with a warning saying `consequence` when it failed: how
/// discovery keeps going past one bad file.
pub fn or_warn<T>(
    result: Result<Option<T>, PciError>,
    consequence: &str,
    warnings: &mut Vec<Warning>,
) -> Option<T> {
    result.unwrap_or_else(|e| {
        warnings.push(Warning::from_error(&e, consequence));
        None
    })
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
