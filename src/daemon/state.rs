//! The runtime-spec's container process state: what runc and crun send an agent with the
//! seccomp listener. runc sends compact JSON (`ociVersion` "1.0.2-dev"), crun pretty-printed
//! JSON with `ociVersion` "0.2.0"; neither version is checked, only the fields used here.

use std::collections::HashMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::DaemonError;
use crate::supervisor::Mode;

/// The name `fds` gives the seccomp listener.
pub const SECCOMP_FD_NAME: &str = "seccompFd";

/// `ContainerProcessState` (config-linux.md, "Container Process State").
#[derive(Debug, Clone, Deserialize)]
pub struct ProcessState {
    /// Names of the fds sent with the message, in order.
    #[serde(default)]
    pub fds: Vec<String>,
    /// The container process, in the runtime's pid namespace.
    #[serde(default)]
    pub pid: i32,
    /// `linux.seccomp.listenerMetadata`.
    #[serde(default)]
    pub metadata: String,
    /// The container's state.
    pub state: ContainerState,
}

/// The container's `state` (runtime.md).
#[derive(Debug, Clone, Deserialize)]
pub struct ContainerState {
    /// Container ID.
    pub id: String,
    /// `creating` for the first process, `running` for one exec'd into it.
    #[serde(default)]
    pub status: String,
    /// Absolute path of the bundle.
    #[serde(default)]
    pub bundle: PathBuf,
    /// The spec's annotations.
    #[serde(default)]
    pub annotations: HashMap<String, String>,
}

impl ProcessState {
    /// Parses a message; an empty one (crun connects early, and closes without sending when it
    /// fails later) is an error like any other.
    pub fn parse(bytes: &[u8]) -> Result<Self, DaemonError> {
        if bytes.is_empty() {
            return Err(DaemonError::Agent("empty message".into()));
        }
        let state: Self = serde_json::from_slice(bytes)
            .map_err(|e| DaemonError::Agent(format!("not a container process state: {e}")))?;
        if state.state.id.is_empty() {
            return Err(DaemonError::Agent("the state has no container id".into()));
        }
        Ok(state)
    }

    /// Where the seccomp listener is among the fds sent: by name, else the only one.
    pub fn seccomp_fd_index(&self, received: usize) -> Option<usize> {
        match self.fds.iter().position(|n| n == SECCOMP_FD_NAME) {
            Some(index) => (index < received).then_some(index),
            None if self.fds.is_empty() && received == 1 => Some(0),
            None => None,
        }
    }
}

/// What `accelgate seccomp-profile` writes into `listenerMetadata`: `accelgate policy=MODE
/// simulate=yes|no`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metadata {
    /// The policy the profile's routing was made for.
    pub policy: Mode,
    /// Whether it routes opens for simulated devices.
    pub simulate: bool,
}

/// The first word of accelgate's metadata.
const METADATA_TAG: &str = "accelgate";

impl Metadata {
    /// The text for `listenerMetadata`.
    pub fn render(self) -> String {
        format!(
            "{METADATA_TAG} policy={} simulate={}",
            self.policy,
            if self.simulate { "yes" } else { "no" }
        )
    }

    /// Parses accelgate's metadata; `None` for anything else (another profile's, or none).
    pub fn parse(text: &str) -> Option<Self> {
        let mut words = text.split_whitespace();
        if words.next() != Some(METADATA_TAG) {
            return None;
        }
        let (mut policy, mut simulate) = (None, None);
        for word in words {
            match word.split_once('=') {
                Some(("policy", value)) => {
                    policy = <Mode as clap::ValueEnum>::from_str(value, false).ok();
                }
                Some(("simulate", "yes")) => simulate = Some(true),
                Some(("simulate", "no")) => simulate = Some(false),
                _ => return None,
            }
        }
        Some(Self {
            policy: policy?,
            simulate: simulate?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runc_and_crun_states_parse() {
        let runc = br#"{"ociVersion":"1.0.2-dev","fds":["seccompFd"],"pid":12551,"metadata":"accelgate policy=audit simulate=yes","state":{"ociVersion":"1.0.2-dev","id":"t2","status":"creating","pid":12551,"bundle":"/tmp/rbundle"}}"#;
        let state = ProcessState::parse(runc).unwrap();
        assert_eq!(state.state.id, "t2");
        assert_eq!(state.seccomp_fd_index(1), Some(0));
        assert_eq!(
            Metadata::parse(&state.metadata),
            Some(Metadata {
                policy: Mode::Audit,
                simulate: true
            })
        );
        let crun = b"{\n  \"ociVersion\": \"0.2.0\",\n  \"fds\": [\n    \"seccompFd\"\n  ],\n  \"pid\": 7,\n  \"metadata\": \"\",\n  \"state\": {\n    \"ociVersion\": \"0.2.0\",\n    \"id\": \"c1\",\n    \"status\": \"creating\",\n    \"pid\": 7,\n    \"bundle\": \"/b\",\n    \"annotations\": {\"a\": \"b\"}\n  }\n}";
        let state = ProcessState::parse(crun).unwrap();
        assert_eq!(state.state.annotations["a"], "b");
        assert_eq!(Metadata::parse(&state.metadata), None);
    }

    #[test]
    fn bad_messages_are_errors() {
        assert!(ProcessState::parse(b"").is_err());
        assert!(ProcessState::parse(b"{not json").is_err());
        assert!(ProcessState::parse(br#"{"state":{"id":""}}"#).is_err());
        let state = ProcessState::parse(br#"{"fds":["other"],"state":{"id":"x"}}"#).unwrap();
        assert_eq!(state.seccomp_fd_index(1), None);
    }

    #[test]
    fn metadata_round_trips() {
        let metadata = Metadata {
            policy: Mode::Enforce,
            simulate: false,
        };
        assert_eq!(Metadata::parse(&metadata.render()), Some(metadata));
        assert_eq!(Metadata::parse("accelgate policy=enforce"), None);
    }
}
