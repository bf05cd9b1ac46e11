//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

/// Returns from the test unless it may run privileged here (see [`privileged`]); under
/// `ACCELGATE_REQUIRE_PRIVILEGED=1` it fails instead.
#[allow(unused_macros)]
macro_rules! privileged {
    () => {
        if !common::privileged(module_path!()) {
            return;
        }
    };
}

/// This checkout.
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

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

/// A bundle in a temporary directory: `config.json` from a minimal spec that `edit` adjusts,
/// and a rootfs holding an executable `/bin/sh` and an empty `/tmp`.
pub struct TempBundle {
    /// The bundle directory (removed on drop).
    pub dir: tempfile::TempDir,
}

impl TempBundle {
    /// A bundle whose spec is the minimal one after `edit`.
    pub fn new(edit: impl FnOnce(&mut serde_json::Value)) -> Self {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let rootfs = dir.path().join("rootfs");
        std::fs::create_dir_all(rootfs.join("bin")).unwrap();
        std::fs::create_dir_all(rootfs.join("tmp")).unwrap();
        std::fs::write(rootfs.join("bin/sh"), "").unwrap();
        std::fs::set_permissions(
            rootfs.join("bin/sh"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        let mut spec = serde_json::json!({
            "ociVersion": "1.0.2",
            "process": { "user": { "uid": 0, "gid": 0 }, "args": ["/bin/sh"], "env": ["PATH=/usr/bin:/bin"], "cwd": "/" },
            "root": { "path": "rootfs" },
            "mounts": [],
            "linux": {}
        });
        edit(&mut spec);
        std::fs::write(
            dir.path().join("config.json"),
            serde_json::to_string_pretty(&spec).unwrap(),
        )
        .unwrap();
        Self { dir }
    }

    /// The rootfs directory.
    pub fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    /// Compiles the bundle against a fixture host with a default config.
    pub fn plan(
        &self,
        host: &str,
    ) -> Result<accelgate::plan::SandboxPlan, accelgate::boot::BootError> {
        self.plan_with(
            host,
            accelgate::boot::BootConfig {
                container_id: "test".into(),
                ..Default::default()
            },
        )
    }

    /// Compiles the bundle against a fixture host with `config`.
    pub fn plan_with(
        &self,
        host: &str,
        config: accelgate::boot::BootConfig,
    ) -> Result<accelgate::plan::SandboxPlan, accelgate::boot::BootError> {
        let bundle = accelgate::boot::Bundle::load(self.dir.path())?;
        let root = accelgate::pci::HostRoot::at(fixture(host)).unwrap();
        let snapshot = accelgate::boot::HostSnapshot::read(&root)?;
        accelgate::boot::compile(&bundle, &snapshot, &config)
    }
}

/// A spec like runc's default, running `/bin/sh` from `rootfs`.
pub fn runnable_spec() -> serde_json::Value {
    serde_json::json!({
        "ociVersion": "1.0.2",
        "process": {
            "user": {"uid": 0, "gid": 0},
            "args": ["/bin/sh", "-c", "true"],
            "env": ["PATH=/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {
                "bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "effective": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "permitted": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
            },
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": false},
        "hostname": "sandbox",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}
        ],
        "linux": {
            "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
            "maskedPaths": ["/proc/kcore", "/proc/keys", "/sys/firmware"],
            "readonlyPaths": ["/proc/sys", "/proc/sysrq-trigger"]
        }
    })
}

/// A bundle that runs: a busybox rootfs copied from the host's `/bin/busybox` and
/// [`runnable_spec`] after `edit`.
pub fn runnable_bundle(edit: impl FnOnce(&mut serde_json::Value)) -> TempBundle {
    let bundle = TempBundle::new(|spec| {
        *spec = runnable_spec();
        edit(spec);
    });
    std::fs::remove_dir_all(bundle.rootfs()).unwrap();
    accelgate::fixture::write_busybox_rootfs(
        &bundle.rootfs(),
        accelgate::fixture::Busybox::Copy(Path::new("/bin/busybox")),
    )
    .expect("copy /bin/busybox (install busybox-static: scripts/setup)");
    bundle
}

/// What the host looks like: its mount table and a directory listing. Equal before and after a
/// sandbox means the sandbox touched neither.
#[derive(Debug, PartialEq, Eq)]
pub struct HostView {
    mountinfo: Vec<String>,
    listing: Vec<String>,
}

/// The host's mount table (this test process lives in the host's mount namespace) and the
/// recursive listing of `canary`.
pub fn host_view(canary: &Path) -> HostView {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let mut listing = Vec::new();
    let mut stack = vec![canary.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            listing.push(entry.path().display().to_string());
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(entry.path());
            }
        }
    }
    listing.sort();
    HostView { mountinfo, listing }
}

/// Runs `accelgate run` on `bundle` (host root `root`, or the real host) with `command`.
pub fn run_sandbox(bundle: &Path, root: Option<&str>, command: &[&str]) -> Output {
    let mut args = vec![
        "run".to_owned(),
        "--bundle".to_owned(),
        bundle.display().to_string(),
    ];
    if let Some(root) = root {
        args.push("--root".into());
        args.push(fixture(root).display().to_string());
    }
    if !command.is_empty() {
        args.push("--".into());
        args.extend(command.iter().map(|s| (*s).to_owned()));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    accelgate(&args, Duration::from_secs(60))
}

/// Builds examples/tpu-probe/tpu-probe when it is missing or older than its source (as
/// scripts/setup does), atomically, so that concurrent test binaries never run half a file.
pub fn probe() -> PathBuf {
    static BUILD: Once = Once::new();
    example_binary("tpu-probe", &BUILD)
}

/// examples/nvidia-probe/nvidia-probe, built as [`probe`] builds its.
pub fn nvidia_probe() -> PathBuf {
    static BUILD: Once = Once::new();
    example_binary("nvidia-probe", &BUILD)
}

fn example_binary(name: &str, once: &Once) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name);
    let binary = dir.join(name);
    once.call_once(|| {
        let source = dir.join(format!("{name}.c"));
        let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        if modified(&binary) >= modified(&source) {
            return;
        }
        let temporary = dir.join(format!("{name}.tmp.{}", std::process::id()));
        let status = Command::new("cc")
            .args(["-static", "-O2", "-pthread", "-o"])
            .arg(&temporary)
            .arg(&source)
            .status()
            .expect("run cc (install gcc and libc6-dev: scripts/setup)");
        assert!(status.success(), "building {} failed", source.display());
        std::fs::rename(&temporary, &binary).unwrap();
    });
    binary
}

/// The v1 cgroup directory of process `pid` for `controller`, on the host.
pub fn cgroup_v1_dir(pid: &str, controller: &str) -> PathBuf {
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let path = cgroups
        .lines()
        .find_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, names, path) = (parts.next()?, parts.next()?, parts.next()?);
            names
                .split(',')
                .any(|n| n == controller)
                .then(|| path.to_owned())
        })
        .unwrap_or_else(|| panic!("process {pid} has no {controller} cgroup"));
    Path::new("/sys/fs/cgroup")
        .join(controller)
        .join(path.trim_start_matches('/'))
}

/// A file of process `pid`'s v1 `controller` cgroup, trimmed.
pub fn cgroup_v1_read(pid: &str, controller: &str, file: &str) -> String {
    std::fs::read_to_string(cgroup_v1_dir(pid, controller).join(file))
        .unwrap()
        .trim()
        .to_owned()
}

/// `accelgate --root STATE ARGS...`, its stderr in `log`. `create`'s and a detached `exec`'s
/// stdout go there too: the process they leave running inherits it, and a pipe would stay open
/// as long as it lives.
pub fn oci(state: &Path, log: &Path, args: &[&str]) -> Output {
    let file = || {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap()
    };
    let detached = args.first() == Some(&"exec") && args.contains(&"-d");
    let stdout = if args.first() == Some(&"create") || detached {
        Stdio::from(file())
    } else {
        Stdio::piped()
    };
    Command::new(env!("CARGO_BIN_EXE_accelgate"))
        .arg("--root")
        .arg(state)
        .args(args)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(file())
        .output()
        .unwrap()
}

/// Accepts one connection on `listener` and returns the fd it carries (`SCM_RIGHTS`).
pub fn receive_fd(listener: &std::os::unix::net::UnixListener) -> std::os::fd::OwnedFd {
    use std::mem::MaybeUninit;

    use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, recvmsg};
    let (stream, _) = listener.accept().unwrap();
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut data = [0u8; 64];
    recvmsg(
        &stream,
        &mut [std::io::IoSliceMut::new(&mut data)],
        &mut control,
        RecvFlags::empty(),
    )
    .unwrap();
    control
        .drain()
        .find_map(|message| match message {
            RecvAncillaryMessage::ScmRights(mut fds) => fds.next(),
            _ => None,
        })
        .expect("an fd over SCM_RIGHTS")
}
