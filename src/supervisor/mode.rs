//! How strictly the gate applies the families' rulings.

use std::fmt;

use serde::Serialize;

/// How strictly rulings are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Apply rulings as they are: content checks emulated or checked, denials denied.
    Enforce,
    /// Content checks only audited (logged when they would fail); everything allowed continues;
    /// denials denied. runc-level security with a record of what enforce would refuse.
    Passthrough,
    /// Allow everything; log what enforce would deny (a sniffer).
    Audit,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Enforce => "enforce",
            Self::Passthrough => "passthrough",
            Self::Audit => "audit",
        })
    }
}
