//! Privileged: containerd (Debian's 1.6, with its runc shim `containerd-shim-runc-v2`) drives
//! accelgate as the shim's runc binary (`ctr run --runc-binary`). The test starts a containerd
//! of its own (config, root, state, sockets and the shim's runc state in a temporary
//! directory; nothing in /etc), imports a busybox image it builds as an OCI archive, and on
//! any end kills what it started, unmounts what containerd mounted and removes its files.

#[macro_use]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The image the test builds and imports.
const IMAGE: &str = "localhost/accelgate-busybox:test";
/// Its containerd namespace.
const NAMESPACE: &str = "accelgate-test";
/// Where containerd 1.6's shims put their sockets, whatever the daemon's state directory.
const SHIM_SOCKETS: &str = "/run/containerd/s";

/// A containerd of the test's own; stopped and cleaned up on drop.
struct Containerd {
    home: tempfile::TempDir,
    daemon: Child,
    /// The directories of [`SHIM_SOCKETS`] that did not exist before, deepest first.
    made: Vec<PathBuf>,
}

fn sha256(path: &Path) -> String {
    let output = Command::new("sha256sum").arg(path).output().unwrap();
    assert!(output.status.success());
    common::stdout(&output)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

/// Stores `path` as a blob of the OCI layout at `layout`; returns its digest and size.
fn blob(layout: &Path, path: &Path) -> (String, u64) {
    let digest = sha256(path);
    std::fs::copy(path, layout.join("blobs/sha256").join(&digest)).unwrap();
    (
        format!("sha256:{digest}"),
        std::fs::metadata(path).unwrap().len(),
    )
}

/// An OCI archive of a one-layer image: a busybox rootfs, `sh` as its command.
fn busybox_image(dir: &Path) -> PathBuf {
    let rootfs = dir.join("rootfs");
    accelgate::fixture::write_busybox_rootfs(
        &rootfs,
        accelgate::fixture::Busybox::Copy(Path::new("/bin/busybox")),
    )
    .expect("copy /bin/busybox (install busybox-static: scripts/setup)");
    let layout = dir.join("layout");
    std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    let layer = dir.join("layer.tar");
    let tarred = Command::new("tar")
        .arg("-cf")
        .arg(&layer)
        .arg("-C")
        .arg(&rootfs)
        .arg(".")
        .status()
        .unwrap();
    assert!(tarred.success());
    let (layer_digest, layer_size) = blob(&layout, &layer);
    let write_json = |name: &str, value: serde_json::Value| {
        let path = dir.join(name);
        std::fs::write(&path, value.to_string()).unwrap();
        blob(&layout, &path)
    };
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let (config_digest, config_size) = write_json(
        "config.json",
        serde_json::json!({
            "architecture": arch,
            "os": "linux",
            "config": {"Cmd": ["sh"], "Env": ["PATH=/bin"]},
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]}
        }),
    );
    let (manifest_digest, manifest_size) = write_json(
        "manifest.json",
        serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer_size}]
        }),
    );
    std::fs::write(
        layout.join("index.json"),
        serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest_digest,
                "size": manifest_size,
                "annotations": {"io.containerd.image.name": IMAGE, "org.opencontainers.image.ref.name": "test"}
            }]
        })
        .to_string(),
    )
    .unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let archive = dir.join("image.tar");
    let tarred = Command::new("tar")
        .arg("-cf")
        .arg(&archive)
        .arg("-C")
        .arg(&layout)
        .arg(".")
        .status()
        .unwrap();
    assert!(tarred.success());
    archive
}

impl Containerd {
    fn start() -> Option<Self> {
        let found = [
            ("containerd", "--version"),
            ("ctr", "--version"),
            ("containerd-shim-runc-v2", "-v"),
        ]
        .iter()
        .all(|(tool, flag)| {
            Command::new(tool)
                .arg(flag)
                .output()
                .is_ok_and(|o| o.status.success())
        });
        if !found {
            if std::env::var_os("ACCELGATE_REQUIRE_PRIVILEGED").is_some_and(|v| v == "1") {
                panic!("containerd is not installed (scripts/setup installs it)");
            }
            eprintln!("SKIPPED: containerd is not installed");
            return None;
        }
        let made = Path::new(SHIM_SOCKETS)
            .ancestors()
            .take_while(|dir| !dir.exists())
            .map(Path::to_path_buf)
            .collect();

        let home = tempfile::tempdir().unwrap();
        let at = |name: &str| home.path().join(name).display().to_string();
        // Only the plugins ctr needs: no CRI (it wants CNI), the native snapshotter (overlay
        // may not stack on the test's filesystem).
        let config = format!(
            "version = 2\nroot = \"{}\"\nstate = \"{}\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\", \"io.containerd.snapshotter.v1.btrfs\", \"io.containerd.snapshotter.v1.zfs\", \"io.containerd.snapshotter.v1.devmapper\", \"io.containerd.snapshotter.v1.aufs\", \"io.containerd.snapshotter.v1.overlayfs\"]\n\
             [grpc]\n  address = \"{}\"\n[ttrpc]\n  address = \"{}\"\n[debug]\n  address = \"\"\n[metrics]\n  address = \"\"\n",
            at("root"),
            at("state"),
            at("containerd.sock"),
            at("containerd.sock.ttrpc"),
        );
        std::fs::write(home.path().join("config.toml"), config).unwrap();
        let log = std::fs::File::create(home.path().join("containerd.log")).unwrap();
        let daemon = Command::new("containerd")
            .arg("--config")
            .arg(home.path().join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let containerd = Self { home, daemon, made };
        let started = Instant::now();
        while !containerd.ctr(&["version"]).status.success() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "containerd did not start: {}",
                containerd.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(containerd)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.home.path().join("containerd.log")).unwrap_or_default()
    }

    /// The FIFOs of a task's stdio (ctr's default is under /run/containerd).
    fn fifo_dir(&self) -> String {
        self.home.path().join("fifo").display().to_string()
    }

    /// ctr's own arguments before `args`: this containerd, the test's namespace.
    fn ctr_args(&self, args: &[&str]) -> Vec<String> {
        let address = self.home.path().join("containerd.sock");
        let mut all = vec![
            "--address".to_owned(),
            address.display().to_string(),
            "--namespace".to_owned(),
            NAMESPACE.to_owned(),
        ];
        all.extend(args.iter().map(|a| (*a).to_owned()));
        all
    }

    /// `ctr` against this containerd, in the test's namespace, with the native snapshotter.
    fn ctr(&self, args: &[&str]) -> Output {
        Command::new("ctr")
            .env("CONTAINERD_SNAPSHOTTER", "native")
            .args(self.ctr_args(args))
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// The same as one shell command line, for `script`.
    fn command_line(&self, args: &[String]) -> String {
        let quoted: Vec<String> = self
            .ctr_args(&args.iter().map(String::as_str).collect::<Vec<_>>())
            .iter()
            .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
            .collect();
        format!("CONTAINERD_SNAPSHOTTER=native ctr {}", quoted.join(" "))
    }

    /// `ctr run`'s arguments with accelgate as the runc shim's binary, its state in the test's
    /// directory.
    fn run_args(&self, flags: &[&str], id: &str, command: &[&str]) -> Vec<String> {
        let (root, fifo) = (
            self.home.path().join("runc").display().to_string(),
            self.fifo_dir(),
        );
        let mut args = vec![
            "run",
            "--runc-binary",
            env!("CARGO_BIN_EXE_accelgate"),
            "--runc-root",
            &root,
            "--fifo-dir",
            &fifo,
        ];
        args.extend_from_slice(flags);
        args.extend_from_slice(&[IMAGE, id]);
        args.extend_from_slice(command);
        args.into_iter().map(str::to_owned).collect()
    }

    /// `ctr run` (see [`Self::run_args`]).
    fn run(&self, flags: &[&str], id: &str, command: &[&str]) -> Output {
        let args = self.run_args(flags, id, command);
        self.ctr(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let listed = self.ctr(&["container", "list", "--quiet"]);
        for id in common::stdout(&listed).lines() {
            let _ = self.ctr(&["task", "kill", "--signal", "SIGKILL", id]);
            let _ = self.ctr(&["task", "delete", "--force", id]);
            let _ = self.ctr(&["container", "delete", id]);
        }
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.daemon.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let started = Instant::now();
        while self.daemon.try_wait().ok().flatten().is_none() {
            if started.elapsed() > Duration::from_secs(10) {
                let _ = self.daemon.kill();
                let _ = self.daemon.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Whatever containerd left mounted under its root (snapshots, bundles), deepest first.
        let home = self.home.path().display().to_string();
        let mut mounts: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').nth(4).map(str::to_owned))
            .filter(|point| point.starts_with(&home))
            .collect();
        mounts.sort_by_key(|point| std::cmp::Reverse(point.len()));
        for point in mounts {
            let _ = nix::mount::umount2(point.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
        for dir in &self.made {
            // Only while empty: another containerd may have started meanwhile.
            let _ = std::fs::remove_dir(dir);
        }
    }
}

#[test]
fn ctr_runs_execs_kills_and_removes_through_accelgate() {
    privileged!();
    let Some(containerd) = Containerd::start() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let archive = busybox_image(work.path());
    let imported = containerd.ctr(&["image", "import", archive.to_str().unwrap()]);
    assert!(
        imported.status.success(),
        "{}{}",
        common::stderr(&imported),
        containerd.log()
    );

    // Output and exit status.
    let output = containerd.run(
        &["--rm"],
        "ctr-once",
        &["sh", "-c", "echo hello-from-ctr; exit 4"],
    );
    assert_eq!(
        output.status.code(),
        Some(4),
        "{}{}",
        common::stderr(&output),
        containerd.log()
    );
    assert_eq!(common::stdout(&output), "hello-from-ctr\n");

    // A terminal: `ctr run -t` takes its console from its stdin, so it runs under `script`,
    // which gives it a pty; the container's process gets one of its own from accelgate.
    let command = containerd.command_line(&containerd.run_args(
        &["--rm", "-t"],
        "ctr-tty",
        &["sh", "-c", "tty; exit 5"],
    ));
    let output = Command::new("timeout")
        .args(["60", "script", "--quiet", "--return", "--command", &command])
        .arg("/dev/null")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let printed = common::stdout(&output);
    assert_eq!(
        output.status.code(),
        Some(5),
        "{printed}{}{}",
        common::stderr(&output),
        containerd.log()
    );
    assert!(printed.contains("/dev/pts/"), "{printed}");

    // Detached, then exec, ps, pause/resume, kill, rm.
    let started = containerd.run(
        &["--detach"],
        "ctr-detached",
        &[
            "sh",
            "-c",
            "trap 'exit 0' TERM; while :; do sleep 0.1; done",
        ],
    );
    assert!(started.status.success(), "{}", common::stderr(&started));
    let fifo = containerd.fifo_dir();
    let exec = containerd.ctr(&[
        "task",
        "exec",
        "--fifo-dir",
        &fifo,
        "--exec-id",
        "e1",
        "ctr-detached",
        "sh",
        "-c",
        "echo from-exec; exit 7",
    ]);
    assert_eq!(
        exec.status.code(),
        Some(7),
        "{}{}",
        common::stderr(&exec),
        containerd.log()
    );
    assert_eq!(common::stdout(&exec), "from-exec\n");
    let tasks = common::stdout(&containerd.ctr(&["task", "list"]));
    let pid = tasks
        .lines()
        .find(|l| l.starts_with("ctr-detached "))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or_else(|| panic!("{tasks}"))
        .to_owned();
    // The shim's runc state is accelgate's.
    let state = Command::new(env!("CARGO_BIN_EXE_accelgate"))
        .arg("--root")
        .arg(containerd.home.path().join("runc").join(NAMESPACE))
        .args(["state", "ctr-detached"])
        .output()
        .unwrap();
    let state: serde_json::Value = serde_json::from_slice(&state.stdout).unwrap();
    assert_eq!(state["pid"].to_string(), pid);
    let ps = common::stdout(&containerd.ctr(&["task", "ps", "ctr-detached"]));
    assert!(ps.contains(&pid), "{ps}");
    assert!(
        containerd
            .ctr(&["task", "pause", "ctr-detached"])
            .status
            .success()
    );
    let tasks = common::stdout(&containerd.ctr(&["task", "list"]));
    assert!(tasks.contains("PAUSED"), "{tasks}");
    assert!(
        containerd
            .ctr(&["task", "resume", "ctr-detached"])
            .status
            .success()
    );
    let killed = containerd.ctr(&["task", "kill", "ctr-detached"]);
    assert!(killed.status.success(), "{}", common::stderr(&killed));
    let started = Instant::now();
    loop {
        let tasks = common::stdout(&containerd.ctr(&["task", "list"]));
        if tasks.contains("STOPPED") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{tasks}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let removed = containerd.ctr(&["task", "delete", "ctr-detached"]);
    assert!(removed.status.success(), "{}", common::stderr(&removed));
    let removed = containerd.ctr(&["container", "delete", "ctr-detached"]);
    assert!(removed.status.success(), "{}", common::stderr(&removed));
    let left: Vec<_> = std::fs::read_dir(containerd.home.path().join("runc").join(NAMESPACE))
        .unwrap()
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
