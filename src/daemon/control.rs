//! The control socket: one JSON request per connection (`{"command":"ps"}`,
//! `{"command":"stats","id":ID}`), one JSON answer, then the daemon closes it.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::DaemonError;
use super::containers::{Containers, Ps};
use crate::supervisor::stats::Stats;

/// Where `accelgate daemon` and its clients meet by default.
pub const DEFAULT_CONTROL: &str = "/run/accelgate/control.sock";

/// How long either side waits for the other.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The most a request may take.
const MAX_REQUEST: u64 = 4096;

/// A request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "lowercase")]
pub enum Request {
    /// The containers.
    Ps,
    /// The counts of one container, or of all.
    Stats {
        /// The container; all when absent.
        id: Option<String>,
    },
}

/// An answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Response {
    /// To `ps`.
    Ps(Ps),
    /// To `stats`.
    Stats(Vec<Stats>),
    /// What was wrong with the request.
    Error(String),
}

/// Answers one request on `stream`.
pub fn answer(stream: UnixStream, containers: &Containers) {
    let _ = stream.set_read_timeout(Some(TIMEOUT));
    let _ = stream.set_write_timeout(Some(TIMEOUT));
    let mut line = String::new();
    let read = BufReader::new((&stream).take(MAX_REQUEST)).read_line(&mut line);
    let response = match read.map_err(|e| e.to_string()).and_then(|_| {
        serde_json::from_str::<Request>(&line).map_err(|e| format!("bad request: {e}"))
    }) {
        Ok(Request::Ps) => Response::Ps(containers.ps()),
        Ok(Request::Stats { id }) => match containers.stats(id.as_deref()) {
            Some(stats) => Response::Stats(stats),
            None => Response::Error(format!(
                "no container {}",
                id.as_deref().unwrap_or_default()
            )),
        },
        Err(message) => Response::Error(message),
    };
    if let Ok(mut text) = serde_json::to_string(&response) {
        text.push('\n');
        let _ = (&stream).write_all(text.as_bytes());
    }
}

/// Sends `request` to the daemon at `path` and returns its answer; an error answer is an error.
pub fn request(path: &Path, request: &Request) -> Result<Response, DaemonError> {
    let socket = |what, source| DaemonError::Socket {
        path: path.to_path_buf(),
        what,
        source,
    };
    let mut stream = UnixStream::connect(path).map_err(|e| socket("connect", e))?;
    stream
        .set_read_timeout(Some(TIMEOUT))
        .map_err(|e| socket("set a timeout", e))?;
    let mut text = serde_json::to_string(request).map_err(|e| DaemonError::Control {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    text.push('\n');
    stream
        .write_all(text.as_bytes())
        .map_err(|e| socket("send", e))?;
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .map_err(|e| socket("receive", e))?;
    let control = |message: String| DaemonError::Control {
        path: path.to_path_buf(),
        message,
    };
    match serde_json::from_str::<Response>(&answer) {
        Ok(Response::Error(message)) => Err(control(message)),
        Ok(response) => Ok(response),
        Err(e) => Err(control(format!("unreadable answer: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_answers_round_trip_over_a_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let containers = std::sync::Arc::new(Containers::default());
        let served = std::sync::Arc::clone(&containers);
        let server = std::thread::spawn(move || {
            for _ in 0..3 {
                let (stream, _) = listener.accept().unwrap();
                answer(stream, &served);
            }
        });
        assert!(
            matches!(request(&path, &Request::Ps), Ok(Response::Ps(ps)) if ps.containers.is_empty())
        );
        assert!(matches!(
            request(&path, &Request::Stats { id: None }),
            Ok(Response::Stats(all)) if all.is_empty()
        ));
        let missing = request(
            &path,
            &Request::Stats {
                id: Some("x".into()),
            },
        )
        .unwrap_err();
        assert!(missing.to_string().contains("no container x"), "{missing}");
        server.join().unwrap();
    }
}
