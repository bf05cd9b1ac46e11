//! The `accelgate` command line as users run it: output, exit codes, help.

mod common;

use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(30);

fn root(name: &str) -> String {
    common::fixture(name).display().to_string()
}

#[test]
fn discover_prints_eight_v5e_chips_split_over_two_numa_nodes() {
    let output = common::accelgate(&["discover", "--root", &root("tpu-v5e-8")], LIMIT);
    assert_eq!(output.status.code(), Some(0));
    let text = common::stdout(&output);
    let rows: Vec<Vec<&str>> = text
        .lines()
        .filter(|l| l.starts_with("tpu "))
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 8, "{text}");
    // KIND INDEX MODEL BDF NODE TYPE MAJOR:MINOR NUMA IOMMU DRIVER
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row[1], i.to_string());
        assert_eq!(row[2], "v5e");
        assert_eq!(row[4], format!("/dev/vfio/{i}"));
        assert_eq!(row[7], if i < 4 { "0" } else { "1" }, "NUMA of chip {i}");
    }
    assert_eq!(
        rows[0][6], "245:6",
        "the group node's own minor, not the group number"
    );
    assert_eq!(rows[7][3], "0000:00:0b.0");
    assert!(text.contains("/dev/vfio/vfio c 10:196"), "{text}");
    assert!(
        common::stderr(&output).is_empty(),
        "{}",
        common::stderr(&output)
    );
}

#[test]
fn gpus_are_indexed_in_bus_order_not_by_minor() {
    let output = common::accelgate(
        &["discover", "--root", &root("nvidia-h100x8"), "--json"],
        LIMIT,
    );
    let found: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let gpus = found["gpus"].as_array().unwrap();
    let order: Vec<(u64, &str, u64)> = gpus
        .iter()
        .map(|g| {
            (
                g["index"].as_u64().unwrap(),
                g["bdf"].as_str().unwrap(),
                g["minor"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(order[0], (0, "0000:1b:00.0", 2));
    assert_eq!(order[2], (2, "0000:52:00.0", 0));
    assert_eq!(found["nvidia"]["driver_version"], "550.54.15");
    assert_eq!(found["nvidia"]["majors"]["nvidia-uvm"], 510);
    assert_eq!(found["schema"], "accelgate.discovery/v1");
}

#[test]
fn a_missing_root_exits_1_naming_it() {
    let output = common::accelgate(&["discover", "--root", "/nonexistent/host"], LIMIT);
    assert_eq!(output.status.code(), Some(1));
    let err = common::stderr(&output);
    assert!(err.contains("/nonexistent/host"), "{err}");
    let empty = tempfile::tempdir().unwrap();
    let output = common::accelgate(
        &["discover", "--root", empty.path().to_str().unwrap()],
        LIMIT,
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(
        common::stderr(&output).contains("has no sys directory"),
        "{}",
        common::stderr(&output)
    );
}

#[test]
fn a_broken_manifest_exits_1_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("sys")).unwrap();
    std::fs::write(
        dir.path().join("dev.list"),
        "/dev/accel0 c 121:0 0666\n/dev/accel1 q 121:1 0666\n",
    )
    .unwrap();
    let output = common::accelgate(&["discover", "--root", dir.path().to_str().unwrap()], LIMIT);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        common::stderr(&output).contains("dev.list:2:"),
        "{}",
        common::stderr(&output)
    );
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["discover", "--bogus"][..],
        &["frobnicate"],
        &[],
        &["--log-level", "loud", "discover"],
        // runc's globals mean nothing to the other commands: not silently ignored.
        &["--root", "fixtures/sysfs/tpu-v4-8", "discover"],
        &["--log", "/tmp/accelgate.log", "plan"],
        &["--systemd-cgroup", "discover"],
    ] {
        let output = common::accelgate(args, LIMIT);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(!common::stderr(&output).is_empty());
    }
}

#[test]
fn help_and_version() {
    let output = common::accelgate(&["--version"], LIMIT);
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(
        common::stdout(&output).trim(),
        format!("accelgate {}", env!("CARGO_PKG_VERSION"))
    );
    let help = common::stdout(&common::accelgate(&["--help"], LIMIT));
    assert!(
        help.contains("Examples:") && help.contains("discover"),
        "{help}"
    );
    let help = common::stdout(&common::accelgate(&["discover", "--help"], LIMIT));
    assert!(
        help.contains("--root") && help.contains("dev.list") && help.contains("--json"),
        "{help}"
    );
}

#[test]
fn log_level_debug_explains_itself_on_stderr() {
    let output = common::accelgate(
        &[
            "--log-level",
            "debug",
            "discover",
            "--root",
            &root("cpu-only"),
        ],
        LIMIT,
    );
    assert_eq!(output.status.code(), Some(0));
    assert!(
        common::stderr(&output).contains("scanned PCI functions"),
        "{}",
        common::stderr(&output)
    );
}

fn example(name: &str) -> String {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
        .display()
        .to_string()
}

#[test]
fn plan_prints_a_readable_plan() {
    let output = common::accelgate(
        &[
            "plan",
            "--bundle",
            &example("tpu-v5e"),
            "--root",
            &root("tpu-v5e-8"),
        ],
        LIMIT,
    );
    assert_eq!(output.status.code(), Some(0), "{}", common::stderr(&output));
    let text = common::stdout(&output);
    for expected in [
        "mounts (in order):",
        "/dev/vfio/0     c     245:6",
        "/dev/vfio/vfio",
        "RLIMIT_MEMLOCK soft unlimited",
        "tpus [0, 1]",
    ] {
        assert!(
            text.contains(expected),
            "{expected:?} missing from:\n{text}"
        );
    }
}

#[test]
fn plan_json_follows_the_schema() {
    let output = common::accelgate(
        &[
            "plan",
            "--bundle",
            &example("gpu-legacy-hook"),
            "--root",
            &root("nvidia-h100x8"),
            "--json",
        ],
        LIMIT,
    );
    assert_eq!(output.status.code(), Some(0), "{}", common::stderr(&output));
    let plan: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(plan["schema"], "accelgate.plan/v1");
    assert_eq!(plan["accelerators"]["gpus"], serde_json::json!([1, 3]));
    assert_eq!(
        plan["env"],
        serde_json::json!(["NVIDIA_VISIBLE_DEVICES=1,3"])
    );
    let first = &plan["mounts"][0];
    for key in ["destination", "type", "source", "options"] {
        assert!(first.get(key).is_some(), "mounts[0] lacks {key}");
    }
    let device = &plan["devices"][0];
    assert_eq!(
        (device["path"].as_str(), device["mode"].as_u64()),
        (Some("/dev/null"), Some(438))
    );
    assert_eq!(plan["rootfs"]["overlay"], "none");
}

#[test]
fn plan_flags_override_annotations_and_bad_input_exits_1() {
    let output = common::accelgate(
        &[
            "plan",
            "--bundle",
            &example("tpu-v4"),
            "--root",
            &root("tpu-v4-8"),
            "--tpu",
            "2",
            "--overlay",
            "memory",
            "--json",
        ],
        LIMIT,
    );
    let plan: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(plan["accelerators"]["tpus"], serde_json::json!([2]));
    assert_eq!(plan["rootfs"]["overlay"], "memory");
    let output = common::accelgate(&["plan", "--bundle", "/nonexistent/bundle"], LIMIT);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        common::stderr(&output).contains("/nonexistent/bundle/config.json"),
        "{}",
        common::stderr(&output)
    );
    let output = common::accelgate(&["plan", "--tpu", "first"], LIMIT);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn plan_reads_the_current_directory_by_default() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_accelgate"))
        .args(["plan", "--root", &root("cpu-only")])
        .current_dir(example("busybox"))
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn gate_flags_are_checked_before_anything_runs() {
    let busybox = example("busybox");
    let probe = example("tpu-probe");
    let cpu_only = root("cpu-only");
    let tpu_host = root("tpu-v4-8");
    for (args, needle) in [
        (
            vec!["run", "--simulate", "--bundle", probe.as_str()],
            "--root",
        ),
        (vec!["run", "--json", "--bundle", probe.as_str()], "--stats"),
        (
            vec!["run", "--policy", "lax", "--bundle", probe.as_str()],
            "enforce",
        ),
        (
            vec![
                "run",
                "--root",
                &cpu_only,
                "--simulate",
                "--bundle",
                &busybox,
            ],
            "no TPUs",
        ),
        (
            vec![
                "run",
                "--root",
                &tpu_host,
                "--sim-log",
                "/tmp/x",
                "--bundle",
                &probe,
            ],
            "--simulate",
        ),
    ] {
        let output = common::accelgate(&args, LIMIT);
        let stderr = common::stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
    let help = common::stdout(&common::accelgate(&["run", "--help"], LIMIT));
    for flag in [
        "--simulate",
        "--policy",
        "passthrough",
        "--stats",
        "--sim-log",
        "docs/gate.md",
    ] {
        assert!(
            help.contains(flag),
            "{flag} missing from run --help:\n{help}"
        );
    }
}
