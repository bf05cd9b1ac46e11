//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// `fixtures/sysfs` in this checkout.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/sysfs")
}

/// `fixtures/sysfs/<name>`.
pub fn fixture(name: &str) -> PathBuf {
    fixtures_dir().join(name)
}

/// Whether `ACCELGATE_BLESS=1` asks to rewrite golden files instead of comparing.
pub fn bless() -> bool {
    std::env::var_os("ACCELGATE_BLESS").is_some_and(|v| v == "1")
}

/// Runs the `accelgate` binary, killing it (and failing the test) if it takes longer than
/// `limit`: malformed hosts must never hang it.
pub fn accelgate(args: &[&str], limit: Duration) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_accelgate"))
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn accelgate");
    let started = Instant::now();
    loop {
        if child.try_wait().expect("wait for accelgate").is_some() {
            return child.wait_with_output().expect("collect accelgate output");
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("accelgate {args:?} ran longer than {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Stdout of a run as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Stderr of a run as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Whether a privileged test may run. When it may not, it says why on stderr and returns
/// false, unless `ACCELGATE_REQUIRE_PRIVILEGED=1`, where it panics so the run fails.
pub fn privileged(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    let reason = format!("{test}: needs root (CAP_MKNOD)");
    if std::env::var_os("ACCELGATE_REQUIRE_PRIVILEGED").is_some_and(|v| v == "1") {
        panic!("{reason}, and ACCELGATE_REQUIRE_PRIVILEGED=1 forbids skipping");
    }
    eprintln!("SKIPPED {reason}");
    false
}
