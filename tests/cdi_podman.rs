//! Real podman (Debian 12's 4.3, runc) reads the specs `accelgate cdi generate` writes, and a
//! container asking for `google.com/tpu=all`, `nvidia.com/gpu=1` or `nvidia.com/gpu=GPU-<uuid>`
//! sees exactly those device nodes with the host's numbers.
//!
//! The hosts are fixture copies whose `dev.list` is materialised with `mknod`, so every
//! `hostPath` exists. Podman gets its own containers.conf, storage.conf, storage, run and
//! temporary directories under one temporary directory, and a cgroup parent of its own.
//! Podman 4.3 reads specs only from /etc/cdi and /var/run/cdi (`cdi_spec_dirs` arrived in
//! later containers.conf versions), so each podman runs in a private mount namespace where a
//! tmpfs covers /run and the test's spec directory is bound on /run/cdi (and a tmpfs covers
//! /etc/cdi when the host has one): nothing is written to /etc or the host's /run.
//!
//! Host settings the containers.conf carries: `default_ulimits` at or below the hard limits
//! (root here lacks CAP_SYS_RESOURCE, and podman's defaults would raise nofile and nproc),
//! `cgroup_manager = "cgroupfs"` (no systemd), and runc (crun 1.8 refuses hybrid cgroup v1/v2
//! hosts; runc refuses `--cgroups=disabled`, so the containers get a cgroup parent that the
//! test removes).

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use accelgate::fixture::{Busybox, materialize_dev, write_busybox_rootfs};
use accelgate::pci::parse_manifest;
use nix::sys::resource::{Resource, getrlimit};

const TEST: &str = "cdi_podman";
const LIMIT: Duration = Duration::from_secs(60);

/// A podman with everything of its own under one temporary directory.
struct PodmanLab {
    dir: tempfile::TempDir,
    cgroup_parent: String,
}

impl PodmanLab {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let lab = Self {
            cgroup_parent: format!("accelgate-cdi-test-{}", std::process::id()),
            dir,
        };
        for sub in ["cdi", "storage", "run", "tmp", "xdg", "hosts"] {
            fs::create_dir(lab.path(sub)).unwrap();
        }
        write_busybox_rootfs(
            &lab.path("rootfs"),
            Busybox::Copy(Path::new("/bin/busybox")),
        )
        .expect("copy /bin/busybox (install busybox-static: scripts/setup)");
        let limit = |resource| getrlimit(resource).unwrap().1.min(1024);
        fs::write(
            lab.path("containers.conf"),
            format!(
                "[containers]\n\
                 default_ulimits = [\"nofile={n}:{n}\", \"nproc={p}:{p}\"]\n\
                 [engine]\n\
                 cgroup_manager = \"cgroupfs\"\n\
                 events_logger = \"none\"\n\
                 lock_type = \"file\"\n\
                 runtime = \"runc\"\n\
                 tmp_dir = \"{tmp}\"\n",
                n = limit(Resource::RLIMIT_NOFILE),
                p = limit(Resource::RLIMIT_NPROC),
                tmp = lab.path("tmp").display(),
            ),
        )
        .unwrap();
        fs::write(
            lab.path("storage.conf"),
            format!(
                "[storage]\ndriver = \"vfs\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n",
                lab.path("storage").display(),
                lab.path("run").display()
            ),
        )
        .unwrap();
        lab
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A copy of fixture `name` whose `dev.list` nodes are real (`mknod`) under its `dev/`.
    fn host(&self, name: &str) -> PathBuf {
        let root = self.path("hosts").join(name);
        let copied = Command::new("cp")
            .arg("-a")
            .arg(common::fixture(name))
            .arg(&root)
            .status()
            .unwrap();
        assert!(copied.success());
        let manifest = root.join("dev.list");
        let nodes = parse_manifest(&fs::read_to_string(&manifest).unwrap(), &manifest).unwrap();
        materialize_dev(&nodes, &root.join("dev")).unwrap();
        root
    }

    /// `accelgate cdi generate` for `host` into the lab's spec directory.
    fn generate(&self, host: &Path, kind: &str) {
        let output = common::accelgate(
            &[
                "cdi",
                "generate",
                "--root",
                host.to_str().unwrap(),
                "--kind",
                kind,
                "--output",
                self.path("cdi").to_str().unwrap(),
            ],
            LIMIT,
        );
        assert_eq!(output.status.code(), Some(0), "{}", common::stderr(&output));
    }

    /// Runs `podman ARGS` with the lab's configuration in a private mount namespace.
    fn podman(&self, args: &[&str]) -> Output {
        let script = "set -e; mount -t tmpfs accelgate-cdi-test /run; mkdir /run/cdi; \
                      mount --bind \"$1\" /run/cdi; \
                      if [ -d /etc/cdi ]; then mount -t tmpfs accelgate-cdi-test /etc/cdi; fi; \
                      shift; exec timeout 120 podman \"$@\"";
        Command::new("unshare")
            .args([
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                script,
                "sh",
            ])
            .arg(self.path("cdi"))
            .arg("--root")
            .arg(self.path("storage"))
            .arg("--runroot")
            .arg(self.path("run"))
            .args(args)
            .env("CONTAINERS_CONF", self.path("containers.conf"))
            .env("CONTAINERS_STORAGE_CONF", self.path("storage.conf"))
            .env("XDG_RUNTIME_DIR", self.path("xdg"))
            .env_remove("CONTAINER_HOST")
            .env_remove("CONTAINER_CONNECTION")
            .output()
            .expect("run unshare and podman (install podman: scripts/setup)")
    }

    /// The character and block nodes a container sees under /dev, as `PATH c MAJOR:MINOR`.
    fn dev_nodes(&self, extra: &[&str]) -> BTreeSet<String> {
        let rootfs = self.path("rootfs");
        let parent = format!("/{}", self.cgroup_parent);
        let mut args = vec![
            "run",
            "--rm",
            "--network",
            "none",
            "--cgroup-parent",
            &parent,
            "--rootfs",
        ];
        // With --rootfs, the first argument after the options is the rootfs.
        args.extend_from_slice(extra);
        args.extend_from_slice(&[rootfs.to_str().unwrap(), "ls", "-lnR", "/dev"]);
        let output = self.podman(&args);
        assert_eq!(
            output.status.code(),
            Some(0),
            "podman {args:?}:\n{}{}",
            common::stdout(&output),
            common::stderr(&output)
        );
        parse_listing(&common::stdout(&output))
    }
}

impl Drop for PodmanLab {
    fn drop(&mut self) {
        // `--rm` removes each container; this catches one left by a failed run.
        let _ = self.podman(&["rm", "--all", "--force"]);
        for hierarchy in cgroup_mounts() {
            remove_tree(&hierarchy.join(&self.cgroup_parent));
        }
    }
}

/// Mount points of every cgroup hierarchy (v1 controllers and the v2 tree).
fn cgroup_mounts() -> Vec<PathBuf> {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let fs_type = right.split_whitespace().next()?;
            let mount_point = left.split_whitespace().nth(4)?;
            matches!(fs_type, "cgroup" | "cgroup2").then(|| PathBuf::from(mount_point))
        })
        .collect()
}

/// Removes a cgroup directory and its children, deepest first (cgroups are removed with rmdir).
fn remove_tree(dir: &Path) {
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&entry.path());
            }
        }
        let _ = fs::remove_dir(dir);
    }
}

/// `ls -lnR /dev` output as `PATH c MAJOR:MINOR` lines for its device nodes.
fn parse_listing(text: &str) -> BTreeSet<String> {
    let mut dir = String::new();
    let mut nodes = BTreeSet::new();
    for line in text.lines() {
        if let Some(header) = line.strip_suffix(':') {
            dir = header.to_owned();
            continue;
        }
        let kind = match line.chars().next() {
            Some(kind @ ('c' | 'b')) => kind,
            _ => continue,
        };
        // crw-rw-rw-  1 0  0  245,   6 Nov 30 10:00 0   (busybox may print "245,6")
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (major, minor, name) = match fields[4].split_once(',') {
            Some((major, "")) => (major, fields[5], fields[9]),
            Some((major, minor)) => (major, minor, fields[8]),
            None => panic!("unexpected ls line {line:?}"),
        };
        nodes.insert(format!("{dir}/{name} {kind} {major}:{minor}"));
    }
    nodes
}

/// What `extra` adds to the container's /dev over a container without devices.
fn added_nodes(baseline: &BTreeSet<String>, with: &BTreeSet<String>) -> Vec<String> {
    let gone: Vec<&String> = baseline.difference(with).collect();
    assert!(gone.is_empty(), "the devices took away nodes: {gone:?}");
    with.difference(baseline).cloned().collect()
}

fn lines(expected: &[&str]) -> Vec<String> {
    let mut lines: Vec<String> = expected.iter().map(|s| (*s).to_owned()).collect();
    lines.sort();
    lines
}

fn cgroups_left(parent: &str) -> Vec<PathBuf> {
    cgroup_mounts()
        .into_iter()
        .map(|h| h.join(parent))
        .filter(|p| p.exists())
        .collect()
}

#[test]
fn podman_gives_a_container_exactly_the_cdi_devices_it_asks_for() {
    if !common::privileged(TEST) {
        return;
    }
    let run_cdi_existed = Path::new("/run/cdi").exists();
    let lab = PodmanLab::new();
    let cgroup_parent = lab.cgroup_parent.clone();
    let lab_path = lab.dir.path().to_path_buf();

    let tpu_host = lab.host("tpu-v5e-8");
    let gpu_host = lab.host("nvidia-h100x8");
    lab.generate(&tpu_host, "tpu");
    lab.generate(&gpu_host, "gpu");

    let baseline = lab.dev_nodes(&[]);
    assert!(baseline.contains("/dev/null c 1:3"), "{baseline:?}");

    // On a real host the chips' sysfs directories are in the container's sysfs already; here
    // the fixture's sys tree stands in for /sys, as accelgate's own plan does on fixture hosts.
    let sys_bind = format!("{}:/sys:ro", tpu_host.join("sys").display());
    let tpus = lab.dev_nodes(&["--device", "google.com/tpu=all", "-v", &sys_bind]);
    assert_eq!(
        added_nodes(&baseline, &tpus),
        lines(&[
            "/dev/vfio/0 c 245:6",
            "/dev/vfio/1 c 245:7",
            "/dev/vfio/2 c 245:5",
            "/dev/vfio/3 c 245:4",
            "/dev/vfio/4 c 245:2",
            "/dev/vfio/5 c 245:3",
            "/dev/vfio/6 c 245:1",
            "/dev/vfio/7 c 245:0",
            "/dev/vfio/vfio c 10:196",
        ])
    );

    let shared = [
        "/dev/nvidiactl c 195:255",
        "/dev/nvidia-uvm c 510:0",
        "/dev/nvidia-uvm-tools c 510:1",
    ];
    // GPU 1 in PCI order is 0000:43:00.0, the driver's minor 3.
    let gpu1 = lab.dev_nodes(&["--device", "nvidia.com/gpu=1"]);
    let mut expected = shared.to_vec();
    expected.push("/dev/nvidia3 c 195:3");
    assert_eq!(added_nodes(&baseline, &gpu1), lines(&expected));

    // GPU 6 (0000:d1:00.0, minor 4) by UUID.
    let by_uuid = lab.dev_nodes(&[
        "--device",
        "nvidia.com/gpu=GPU-8d3ef2b9-5a1e-4c3b-9d2f-2c5a9e1f3b44",
    ]);
    let mut expected = shared.to_vec();
    expected.push("/dev/nvidia4 c 195:4");
    assert_eq!(added_nodes(&baseline, &by_uuid), lines(&expected));

    // A device the specs do not have is refused, not ignored.
    let output = lab.podman(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--device",
        "nvidia.com/gpu=8",
        "--rootfs",
        lab.path("rootfs").to_str().unwrap(),
        "true",
    ]);
    assert_ne!(output.status.code(), Some(0));
    assert!(
        common::stderr(&output).contains("nvidia.com/gpu=8"),
        "{}",
        common::stderr(&output)
    );

    // Why the lowest cdiVersion: podman 4.3 refuses a spec that declares 0.6.0.
    let spec_file = lab.path("cdi").join("google.com-tpu.json");
    let text = fs::read_to_string(&spec_file).unwrap();
    fs::write(
        &spec_file,
        text.replace(r#""cdiVersion": "0.5.0""#, r#""cdiVersion": "0.6.0""#),
    )
    .unwrap();
    let output = lab.podman(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--device",
        "google.com/tpu=all",
        "--rootfs",
        lab.path("rootfs").to_str().unwrap(),
        "true",
    ]);
    assert_ne!(output.status.code(), Some(0));
    assert!(
        common::stderr(&output).contains("unresolvable CDI devices google.com/tpu=all"),
        "{}",
        common::stderr(&output)
    );

    drop(lab);
    assert!(!lab_path.exists(), "{} left behind", lab_path.display());
    assert_eq!(cgroups_left(&cgroup_parent), Vec::<PathBuf>::new());
    assert_eq!(Path::new("/run/cdi").exists(), run_cdi_existed);
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(lab_path.to_str().unwrap()) && !mounts.contains("accelgate-cdi-test"),
        "mounts left behind:\n{mounts}"
    );
}
