//! CDI specs: generation on fixture hosts (golden files), `check` against changed hosts, and
//! the `accelgate cdi` command line.
//!
//! Regenerate the golden specs after a deliberate change with
//! `ACCELGATE_BLESS=1 cargo test --test cdi` and review the diff. Absolute paths of this
//! checkout are written as `$REPO`.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use accelgate::cdi::{self, Kind, Spec, Stale};
use accelgate::discovery::discover;
use accelgate::pci::HostRoot;

const LIMIT: Duration = Duration::from_secs(30);

/// (fixture host, kind): every spec a fixture has.
const GOLDEN: &[(&str, Kind)] = &[
    ("nvidia-h100x8", Kind::Gpu),
    ("tpu-v5e-8", Kind::Tpu),
    ("tpu-v4-8", Kind::Tpu),
    ("tpu7x", Kind::Tpu),
    ("mixed", Kind::Tpu),
];

fn spec_for(root: &Path, kind: Kind) -> Result<Spec, cdi::CdiError> {
    let host = HostRoot::at(root).unwrap();
    let found = discover(&host).unwrap();
    cdi::generate(&found, &host, kind)
}

fn check_dir(root: &Path, dir: &Path) -> cdi::CheckReport {
    let host = HostRoot::at(root).unwrap();
    let found = discover(&host).unwrap();
    cdi::check(&[dir.to_path_buf()], &found, &host)
}

/// A copy of fixture `name` in a temporary directory, symlinks kept, to change.
fn fixture_copy(name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join(name);
    let status = Command::new("cp")
        .arg("-a")
        .arg(common::fixture(name))
        .arg(&root)
        .status()
        .unwrap();
    assert!(status.success());
    (dir, root)
}

/// Writes the spec of `kind` for `root` into `dir`.
fn write_spec(root: &Path, kind: Kind, dir: &Path) -> PathBuf {
    cdi::write_atomically(dir, &spec_for(root, kind).unwrap()).unwrap()
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{} lacks {from:?}", path.display());
    fs::write(path, text.replace(from, to)).unwrap();
}

fn problems(stale: &[Stale]) -> Vec<String> {
    stale.iter().map(ToString::to_string).collect()
}

#[test]
fn fixture_specs_match_their_golden_files() {
    let repo = env!("CARGO_MANIFEST_DIR");
    let golden_dir = Path::new(repo).join("tests/golden/cdi");
    for (host, kind) in GOLDEN {
        let spec = spec_for(&common::fixture(host), *kind).unwrap();
        let actual = serde_json::to_string_pretty(&spec)
            .unwrap()
            .replace(repo, "$REPO")
            + "\n";
        let golden = golden_dir.join(format!("{host}@{}.json", kind.name().replace('/', "-")));
        if common::bless() {
            fs::create_dir_all(&golden_dir).unwrap();
            fs::write(&golden, &actual).unwrap();
            continue;
        }
        let expected = fs::read_to_string(&golden).unwrap_or_default();
        assert!(
            actual == expected,
            "{kind} spec of {host} differs from {}:\n{actual}",
            golden.display()
        );
    }
}

#[test]
fn gpu_devices_are_named_by_pci_index_and_uuid_with_the_driver_minor() {
    let spec = spec_for(&common::fixture("nvidia-h100x8"), Kind::Gpu).unwrap();
    assert_eq!(spec.cdi_version, "0.5.0", "index names need 0.5.0, no more");
    let names: Vec<&str> = spec.devices.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names.len(), 8 + 8 + 1);
    assert_eq!(&names[..8], ["0", "1", "2", "3", "4", "5", "6", "7"]);
    assert!(
        names[8..16].iter().all(|n| n.starts_with("GPU-")),
        "{names:?}"
    );
    assert_eq!(names[16], "all");
    // GPU 0 (0000:1b:00.0) is the driver's minor 2: the index is not the minor.
    let first = &spec.devices[0].container_edits.device_nodes;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].path, Path::new("/dev/nvidia2"));
    assert_eq!((first[0].major, first[0].minor), (Some(195), Some(2)));
    let by_uuid = spec
        .devices
        .iter()
        .find(|d| d.name == "GPU-8d3ef2b7-5a1e-4c3b-9d2f-2c5a9e1f3b42")
        .unwrap();
    assert_eq!(by_uuid.container_edits, spec.devices[0].container_edits);
    let all = &spec.devices[16].container_edits.device_nodes;
    assert_eq!(all.len(), 8);
    let shared: Vec<&Path> = spec
        .container_edits
        .device_nodes
        .iter()
        .map(|n| n.path.as_path())
        .collect();
    assert_eq!(
        shared,
        ["/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools"].map(Path::new)
    );
}

#[test]
fn dynamic_majors_come_from_proc_devices_not_the_nodes() {
    for (fixture, line, new_line, node, expected) in [
        (
            "nvidia-h100x8",
            "510 nvidia-uvm",
            "505 nvidia-uvm",
            "/dev/nvidia-uvm",
            505,
        ),
        ("tpu-v5e-8", "245 vfio", "241 vfio", "/dev/vfio/0", 241),
    ] {
        let (_dir, root) = fixture_copy(fixture);
        edit(&root.join("proc/devices"), line, new_line);
        let kind = if fixture.starts_with("nvidia") {
            Kind::Gpu
        } else {
            Kind::Tpu
        };
        let spec = spec_for(&root, kind).unwrap();
        let found = spec
            .devices
            .iter()
            .flat_map(|d| &d.container_edits.device_nodes)
            .chain(&spec.container_edits.device_nodes)
            .find(|n| n.path == Path::new(node))
            .unwrap();
        assert_eq!(found.major, Some(expected), "{fixture} {node}");
    }
}

#[test]
fn a_host_without_the_kind_is_an_error_naming_it() {
    let root = common::fixture("mixed");
    let err = spec_for(&root, Kind::Gpu).unwrap_err();
    let message = err.to_string();
    assert!(message.contains(&root.display().to_string()), "{message}");
    assert!(message.contains("nvidia.com/gpu"), "{message}");
    // Only chips count on a host with a non-Google device bound to vfio-pci.
    let tpu = spec_for(&root, Kind::Tpu).unwrap();
    let nodes: Vec<&Path> = tpu
        .devices
        .iter()
        .flat_map(|d| &d.container_edits.device_nodes)
        .map(|n| n.path.as_path())
        .collect();
    assert!(!nodes.contains(&Path::new("/dev/vfio/96")), "{nodes:?}");
}

#[test]
fn check_finds_fresh_specs_current() {
    for (host, kind) in GOLDEN {
        let root = common::fixture(host);
        let specs = tempfile::tempdir().unwrap();
        let file = write_spec(&root, *kind, specs.path());
        let report = check_dir(&root, specs.path());
        assert_eq!(report.stale, [], "{host}");
        assert_eq!(report.checked, [file], "{host}");
    }
}

#[test]
fn check_names_a_changed_nvidia_uvm_major() {
    let (_dir, root) = fixture_copy("nvidia-h100x8");
    let specs = tempfile::tempdir().unwrap();
    let file = write_spec(&root, Kind::Gpu, specs.path());
    assert!(check_dir(&root, specs.path()).stale.is_empty());
    // The driver was reloaded and got another dynamic major.
    edit(
        &root.join("proc/devices"),
        "510 nvidia-uvm",
        "505 nvidia-uvm",
    );
    let report = check_dir(&root, specs.path());
    assert_eq!(report.checked, std::slice::from_ref(&file));
    assert_eq!(
        problems(&report.stale),
        [
            format!(
                "{}: containerEdits.deviceNodes[1].major: nvidia.com/gpu: /dev/nvidia-uvm major is 510 in the spec, 505 on the host",
                file.display()
            ),
            format!(
                "{}: containerEdits.deviceNodes[2].major: nvidia.com/gpu: /dev/nvidia-uvm-tools major is 510 in the spec, 505 on the host",
                file.display()
            ),
        ]
    );
}

#[test]
fn check_names_a_missing_gpu_and_a_gpu_missing_from_the_spec() {
    let (_dir, root) = fixture_copy("nvidia-h100x8");
    let specs = tempfile::tempdir().unwrap();
    let file = write_spec(&root, Kind::Gpu, specs.path());
    let spec = spec_for(&root, Kind::Gpu).unwrap();
    let last = &spec.devices[7];
    let node = last.container_edits.device_nodes[0]
        .path
        .display()
        .to_string();
    // The last GPU in PCI order (index 7, 0000:df:00.0) is no longer the driver's.
    fs::remove_dir_all(root.join("proc/driver/nvidia/gpus/0000:df:00.0")).unwrap();
    let stale = problems(&check_dir(&root, specs.path()).stale);
    let file = file.display();
    for expected in [
        format!("{file}: devices[7].name: nvidia.com/gpu=7: the host has no such device"),
        format!(
            "{file}: devices[15].name: nvidia.com/gpu=GPU-8d3ef2ba-5a1e-4c3b-9d2f-2c5a9e1f3b45: the host has no such device"
        ),
        format!(
            "{file}: devices[16].containerEdits.deviceNodes[7].path: nvidia.com/gpu=all: {node} is not on the host"
        ),
    ] {
        assert!(stale.contains(&expected), "{expected}\nnot in {stale:#?}");
    }
    assert_eq!(stale.len(), 3, "{stale:#?}");

    // A spec that lacks a device the host has.
    let (_dir, root) = fixture_copy("tpu-v4-8");
    let mut spec = spec_for(&root, Kind::Tpu).unwrap();
    spec.devices.retain(|d| d.name != "2");
    let file = cdi::write_atomically(specs.path(), &spec).unwrap();
    let stale = check_dir(&root, specs.path()).stale;
    let tpu: Vec<String> = problems(&stale)
        .into_iter()
        .filter(|p| p.contains("google.com/tpu"))
        .collect();
    assert_eq!(
        tpu,
        [format!(
            "{}: devices: google.com/tpu=2: on the host but in no spec",
            file.display()
        )]
    );
}

#[test]
fn check_names_the_file_and_field_that_do_not_parse() {
    let root = common::fixture("tpu-v4-8");
    let specs = tempfile::tempdir().unwrap();
    write_spec(&root, Kind::Tpu, specs.path());
    let bad = specs.path().join("broken.json");
    fs::write(
        &bad,
        r#"{"cdiVersion": "0.5.0", "kind": "google.com/tpu",
            "devices": [{"name": "0", "containerEdits": {"deviceNodes": [{"path": "/dev/accel0", "major": "121"}]}}]}"#,
    )
    .unwrap();
    fs::write(
        specs.path().join("truncated.json"),
        r#"{"cdiVersion": "0.5.0", "kind""#,
    )
    .unwrap();
    fs::write(specs.path().join("nvidia.yaml"), "cdiVersion: 0.5.0\n").unwrap();
    fs::write(
        specs.path().join("other.json"),
        r#"{"cdiVersion": "0.3.0", "kind": "vendor.com/net", "devices": []}"#,
    )
    .unwrap();
    let report = check_dir(&root, specs.path());
    let stale = problems(&report.stale);
    assert_eq!(stale.len(), 2, "{stale:#?}");
    assert!(
        stale[0].starts_with(&format!(
            "{}: devices[0].containerEdits.deviceNodes[0].major: not a CDI spec: invalid type: string \"121\"",
            bad.display()
        )),
        "{}",
        stale[0]
    );
    assert!(
        stale[1].contains("truncated.json") && stale[1].contains("not a CDI spec: EOF"),
        "{}",
        stale[1]
    );
    assert_eq!(report.not_read, [specs.path().join("nvidia.yaml")]);
    assert_eq!(report.checked, [specs.path().join("google.com-tpu.json")]);
}

/// Found by the `cdi` fuzz target: a spec followed by more JSON was checked as if the rest were
/// not there, although engines refuse the file.
#[test]
fn check_names_a_spec_with_trailing_data() {
    let root = common::fixture("tpu-v4-8");
    let specs = tempfile::tempdir().unwrap();
    let path = write_spec(&root, Kind::Tpu, specs.path());
    let mut text = fs::read_to_string(&path).unwrap();
    text.push_str("\n{\"kind\": \"google.com/tpu\"}\n");
    fs::write(&path, text).unwrap();
    let report = check_dir(&root, specs.path());
    assert!(report.checked.is_empty(), "{report:?}");
    let stale = problems(&report.stale);
    assert!(
        stale.iter().any(|s| s.starts_with(&format!(
            "{}: not a CDI spec: trailing characters",
            path.display()
        ))),
        "{stale:#?}"
    );
}

#[test]
fn check_names_a_missing_spec_and_a_version_too_low() {
    let root = common::fixture("tpu-v4-8");
    let specs = tempfile::tempdir().unwrap();
    let report = check_dir(&root, specs.path());
    assert_eq!(
        problems(&report.stale),
        [format!(
            "google.com/tpu: the host has TPU chips but no spec in {}",
            specs.path().display()
        )]
    );
    let mut spec = spec_for(&root, Kind::Tpu).unwrap();
    spec.cdi_version = "0.3.0".into();
    let file = cdi::write_atomically(specs.path(), &spec).unwrap();
    assert_eq!(
        problems(&check_dir(&root, specs.path()).stale),
        [format!(
            "{}: cdiVersion: 0.3.0 is below 0.5.0, which the spec's fields need; engines refuse it",
            file.display()
        )]
    );
}

#[test]
fn cli_generate_writes_one_file_per_kind_and_check_agrees() {
    let specs = tempfile::tempdir().unwrap();
    let out = specs.path().display().to_string();
    let root = common::fixture("tpu-v5e-8").display().to_string();
    let output = common::accelgate(
        &["cdi", "generate", "--root", &root, "--output", &out],
        LIMIT,
    );
    assert_eq!(output.status.code(), Some(0), "{}", common::stderr(&output));
    let stdout = common::stdout(&output);
    assert!(
        stdout.starts_with(&format!(
            "wrote {out}/google.com-tpu.json: google.com/tpu, cdiVersion 0.5.0, devices 0 1 2 3 4 5 6 7 all"
        )),
        "{stdout}"
    );
    let stderr = common::stderr(&output);
    assert!(stderr.contains("has no NVIDIA GPUs"), "{stderr}");
    assert!(stderr.contains("RLIMIT_MEMLOCK"), "{stderr}");
    let names: Vec<_> = fs::read_dir(specs.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["google.com-tpu.json"]);

    let output = common::accelgate(&["cdi", "check", "--root", &root, "--dir", &out], LIMIT);
    assert_eq!(output.status.code(), Some(0), "{}", common::stdout(&output));
    assert_eq!(
        common::stdout(&output),
        format!("1 spec file(s) checked in {out}: current\n")
    );
    // The same spec checked against another host is stale.
    let other = common::fixture("tpu-v4-8").display().to_string();
    let output = common::accelgate(&["cdi", "check", "--root", &other, "--dir", &out], LIMIT);
    assert_eq!(output.status.code(), Some(1));
    let stdout = common::stdout(&output);
    assert!(stdout.contains("stale: "), "{stdout}");
    assert!(
        stdout.contains("/dev/vfio/0 is not on the host"),
        "{stdout}"
    );
}

#[test]
fn cli_generate_to_stdout_prints_json_and_refuses_a_kind_the_host_lacks() {
    let root = common::fixture("nvidia-h100x8").display().to_string();
    let output = common::accelgate(
        &[
            "cdi", "generate", "--root", &root, "--kind", "gpu", "--output", "-",
        ],
        LIMIT,
    );
    assert_eq!(output.status.code(), Some(0), "{}", common::stderr(&output));
    let spec: Spec = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(spec.kind, "nvidia.com/gpu");

    let output = common::accelgate(
        &[
            "cdi", "generate", "--root", &root, "--kind", "tpu", "--output", "-",
        ],
        LIMIT,
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    assert_eq!(
        common::stderr(&output),
        format!(
            "error: no spec written: host {root} has no TPU chips, so there is no google.com/tpu spec\n"
        )
    );

    let cpu_only = common::fixture("cpu-only").display().to_string();
    let output = common::accelgate(
        &["cdi", "generate", "--root", &cpu_only, "--output", "-"],
        LIMIT,
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(
        common::stderr(&output).contains(&format!(
            "error: host {cpu_only} has no NVIDIA GPUs or TPU chips"
        )),
        "{}",
        common::stderr(&output)
    );
}

#[test]
fn cli_usage_errors_exit_2_and_help_explains_both_commands() {
    for args in [
        &["cdi", "generate", "--kind", "fpga"][..],
        &["cdi", "check", "--bogus"],
        &["cdi"],
    ] {
        let output = common::accelgate(args, LIMIT);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
    }
    let output = common::accelgate(&["cdi", "--help"], LIMIT);
    let help = common::stdout(&output);
    for needle in [
        "generate",
        "check",
        "podman run --device nvidia.com/gpu=0",
        "docs/cdi.md",
    ] {
        assert!(help.contains(needle), "{needle}: {help}");
    }
    let output = common::accelgate(&["cdi", "generate", "--help"], LIMIT);
    let help = common::stdout(&output);
    for needle in [
        "--kind",
        "--output",
        "/var/run/cdi",
        "GPU-",
        "cdiVersion",
        "Exit status",
    ] {
        assert!(help.contains(needle), "{needle}: {help}");
    }
    let output = common::accelgate(&["cdi", "check", "--help"], LIMIT);
    let help = common::stdout(&output);
    for needle in [
        "--dir",
        "/etc/cdi",
        "stale:",
        "Exit status: 0 current, 1 stale",
    ] {
        assert!(help.contains(needle), "{needle}: {help}");
    }
}
