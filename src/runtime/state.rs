//! The OCI state of a container, as hooks read it on stdin.

use std::collections::HashMap;
use std::path::PathBuf;

use serde::Serialize;

/// The runtime-spec version whose state this is.
const OCI_VERSION: &str = "1.2.0";

/// Where a container is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Being created: the process exists, the workload does not run yet.
    Creating,
    /// Created and waiting for `start`.
    Created,
    /// The workload runs.
    Running,
    /// Its processes are frozen (`pause`; runc's status beyond the runtime-spec's four).
    Paused,
    /// The workload has exited.
    Stopped,
}

/// The runtime-spec's state document.
#[derive(Debug, Clone, Serialize)]
pub struct State {
    #[serde(rename = "ociVersion")]
    oci_version: &'static str,
    /// The container's id.
    pub id: String,
    /// Its status.
    pub status: Status,
    /// The container's process as the host sees it (absent once stopped).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    /// The bundle directory.
    pub bundle: PathBuf,
    /// The spec's annotations.
    #[serde(skip_serializing_if = "HashMap::is_empty")]
    pub annotations: HashMap<String, String>,
}

impl State {
    /// A state with no pid yet.
    pub fn new(
        id: impl Into<String>,
        status: Status,
        bundle: PathBuf,
        annotations: HashMap<String, String>,
    ) -> Self {
        Self {
            oci_version: OCI_VERSION,
            id: id.into(),
            status,
            pid: None,
            bundle,
            annotations,
        }
    }

    /// The JSON text.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The container process state a seccomp agent gets with the listener, the one fd sent
    /// (runtime-spec config-linux.md, "Container Process State"; the framing runc sends), for
    /// the process `pid` (the container's first, or one exec'd into it).
    pub fn agent_message(&self, pid: i32, metadata: Option<&str>) -> String {
        #[derive(Serialize)]
        struct ProcessState<'a> {
            #[serde(rename = "ociVersion")]
            oci_version: &'static str,
            fds: [&'static str; 1],
            pid: i32,
            #[serde(skip_serializing_if = "Option::is_none")]
            metadata: Option<&'a str>,
            state: &'a State,
        }
        serde_json::to_string(&ProcessState {
            oci_version: OCI_VERSION,
            fds: [SECCOMP_FD],
            pid,
            metadata,
            state: self,
        })
        .unwrap_or_default()
    }
}

/// The name the process state gives the seccomp listener in `fds`.
const SECCOMP_FD: &str = "seccompFd";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_has_the_spec_keys() {
        let mut state = State::new("c1", Status::Creating, "/b".into(), HashMap::new());
        state.pid = Some(42);
        assert_eq!(
            state.to_json(),
            r#"{"ociVersion":"1.2.0","id":"c1","status":"creating","pid":42,"bundle":"/b"}"#
        );
        assert_eq!(
            state.agent_message(42, Some("m")),
            r#"{"ociVersion":"1.2.0","fds":["seccompFd"],"pid":42,"metadata":"m","state":{"ociVersion":"1.2.0","id":"c1","status":"creating","pid":42,"bundle":"/b"}}"#
        );
    }
}
