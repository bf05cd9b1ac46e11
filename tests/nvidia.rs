//! Privileged: NVIDIA GPUs behind the gate, end to end. Real sandboxes run
//! examples/nvidia-probe (a CUDA start-up on the driver's ABI) against the simulated RM
//! (`--simulate`) on fixture hosts of two driver branches, with GPUs asked for as
//! nvidia-docker users ask (`NVIDIA_VISIBLE_DEVICES` and the NVIDIA hook) and as CDI does
//! (spec devices); the race between the gate's copy and a thread rewriting the command is
//! checked in the simulator's log. Unprivileged: `accelgate nvidia versions` and the refusal of
//! an unsupported host driver.

#[macro_use]
mod common;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use common::TempBundle;

/// examples/nvidia-probe's bundle with absolute paths and `edit` applied.
fn probe_bundle(edit: impl FnOnce(&mut serde_json::Value)) -> TempBundle {
    let binary = common::nvidia_probe();
    TempBundle::new(|spec| {
        let text =
            std::fs::read_to_string(common::repo().join("examples/nvidia-probe/config.json"));
        *spec = serde_json::from_str(&text.unwrap()).unwrap();
        spec["root"]["path"] = common::repo()
            .join("examples/rootfs")
            .display()
            .to_string()
            .into();
        for mount in spec["mounts"].as_array_mut().unwrap() {
            if mount["destination"] == "/nvidia-probe" {
                mount["source"] = binary.display().to_string().into();
            }
        }
        edit(spec);
    })
}

/// The same bundle asking for GPUs as CDI does: spec devices, no hook, no variable.
fn cdi_style(spec: &mut serde_json::Value, root: &str, minors: &[u32]) {
    spec["hooks"] = serde_json::json!({});
    let env = spec["process"]["env"].as_array_mut().unwrap();
    env.retain(|v| !v.as_str().unwrap().starts_with("NVIDIA_VISIBLE_DEVICES"));
    let uvm = uvm_major(root);
    let mut devices = vec![
        serde_json::json!({"path": "/dev/nvidiactl", "type": "c", "major": 195, "minor": 255}),
        serde_json::json!({"path": "/dev/nvidia-uvm", "type": "c", "major": uvm, "minor": 0}),
    ];
    for minor in minors {
        devices.push(serde_json::json!({
            "path": format!("/dev/nvidia{minor}"), "type": "c", "major": 195, "minor": minor
        }));
    }
    spec["linux"]["devices"] = serde_json::Value::Array(devices);
}

fn uvm_major(root: &str) -> u32 {
    let devices = std::fs::read_to_string(common::fixture(root).join("proc/devices")).unwrap();
    devices
        .lines()
        .find_map(|l| l.trim().strip_suffix(" nvidia-uvm"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn run_probe(root: &str, bundle: &Path, flags: &[&str], args: &[&str]) -> Output {
    let root = common::fixture(root).display().to_string();
    let bundle = bundle.display().to_string();
    let mut all = vec!["run", "--root", &root, "--simulate", "--bundle", &bundle];
    all.extend_from_slice(flags);
    all.push("--");
    all.push("/nvidia-probe");
    all.extend_from_slice(args);
    common::accelgate(&all, Duration::from_secs(120))
}

/// The simulator's log: (request, the argument it received, whether the executing thread had
/// CAP_SYS_ADMIN).
fn sim_log(path: &Path) -> Vec<(String, Vec<u8>, bool)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| {
            let record: serde_json::Value = serde_json::from_str(line).unwrap();
            let received = record["received"].as_str().unwrap_or("");
            let bytes = (0..received.len() / 2)
                .map(|i| u8::from_str_radix(&received[2 * i..2 * i + 2], 16).unwrap())
                .collect();
            (
                record["request"].as_str().unwrap().to_owned(),
                bytes,
                record["executor_cap_sys_admin"].as_bool().unwrap(),
            )
        })
        .collect()
}

fn stats_json(stderr: &str) -> serde_json::Value {
    let start = stderr
        .find("{\n")
        .unwrap_or_else(|| panic!("no stats in:\n{stderr}"));
    serde_json::from_str(&stderr[start..]).unwrap()
}

fn assert_started(output: &Output, granted: usize) {
    let stdout = common::stdout(output);
    assert!(
        output.status.success() && !stdout.contains("UNEXPECTED"),
        "{stdout}\n{}",
        common::stderr(output)
    );
    // The sandbox sees only its GPUs, in CARD_INFO and in the probed ids.
    assert!(stdout.contains(&format!("cards: {granted}\n")), "{stdout}");
    assert!(stdout.contains(&format!("probed: {granted}\n")), "{stdout}");
}

#[test]
fn a_cuda_start_up_completes_in_enforce_mode_on_two_driver_branches() {
    privileged!();
    for root in ["nvidia-h100x8", "nvidia-h100x8-r580"] {
        // As nvidia-docker asks: NVIDIA_VISIBLE_DEVICES=0,2 and the NVIDIA hook.
        let bundle = probe_bundle(|_| {});
        let log = bundle.dir.path().join("sim.log");
        let log_arg = log.display().to_string();
        let output = run_probe(
            root,
            bundle.dir.path(),
            &["--sim-log", &log_arg],
            &["startup"],
        );
        assert_started(&output, 2);
        // The privilege oracle: no call ran with CAP_SYS_ADMIN in effect.
        let records = sim_log(&log);
        assert!(!records.is_empty());
        assert!(records.iter().all(|(_, _, admin)| !admin), "{records:?}");

        // As CDI asks: spec devices for GPUs 1 and 3 (their nodes, whatever their minors).
        let bundle = probe_bundle(|spec| cdi_style(spec, root, &[3, 1]));
        let output = run_probe(root, bundle.dir.path(), &[], &["startup"]);
        assert_started(&output, 2);
    }
}

#[test]
fn a_racing_thread_never_gets_a_refused_command_to_the_driver_in_enforce_mode() {
    privileged!();
    let get_pids = 0x2080_018d_u32.to_ne_bytes();
    let mut reached = Vec::new();
    for mode in ["enforce", "passthrough"] {
        let bundle = probe_bundle(|_| {});
        let log = bundle.dir.path().join("sim.log");
        let log_arg = log.display().to_string();
        let output = run_probe(
            "nvidia-h100x8",
            bundle.dir.path(),
            &["--policy", mode, "--sim-log", &log_arg],
            &["race", "4000"],
        );
        assert!(output.status.success(), "{}", common::stderr(&output));
        let controls: Vec<Vec<u8>> = sim_log(&log)
            .into_iter()
            .filter(|(request, bytes, _)| request == "NV_ESC_RM_CONTROL" && bytes.len() == 32)
            .map(|(_, bytes, _)| bytes)
            .collect();
        assert!(controls.len() > 100, "{mode}: {} controls", controls.len());
        reached.push(controls.iter().filter(|b| b[8..12] == get_pids).count());
    }
    assert_eq!(reached[0], 0, "enforce let GPU_GET_PIDS reach the driver");
    // The control: without the copy, the flipped command does reach it.
    assert!(
        reached[1] > 0,
        "passthrough never raced: the test proves nothing"
    );
}

#[test]
fn audit_names_every_call_and_what_enforce_would_deny() {
    privileged!();
    let bundle = probe_bundle(|_| {});
    let output = run_probe(
        "nvidia-h100x8-r580",
        bundle.dir.path(),
        &["--policy", "audit", "--stats", "--json"],
        &["startup"],
    );
    let stats = stats_json(&common::stderr(&output));
    let counted = |request: &str, verdict: &str| {
        stats["counts"].as_array().unwrap().iter().any(|c| {
            c["request"] == request && c["verdict"] == verdict && c["count"].as_u64() > Some(0)
        })
    };
    for allowed in [
        "NV_ESC_CHECK_VERSION_STR",
        "NV_ESC_CARD_INFO",
        "NV01_ROOT_CLIENT",
        "NV0000_CTRL_CMD_GPU_GET_PROBED_IDS",
        "NV2080_CTRL_CMD_GPU_GET_NAME_STRING",
        "UVM_INITIALIZE",
        "NV_ESC_RM_FREE",
    ] {
        assert!(counted(allowed, "allowed"), "{allowed}: {stats:#}");
    }
    // What enforce would deny, by level and number.
    let unlisted: Vec<(String, u64)> = stats["unlisted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["request"].as_str().unwrap().to_owned(),
                u["number"].as_u64().unwrap(),
            )
        })
        .collect();
    for number in [0x2080_0999_u64, 0x2080_018d] {
        assert!(
            unlisted
                .iter()
                .any(|(r, n)| r.contains("RM_CONTROL") && *n == number),
            "{number:#x}: {unlisted:?}"
        );
    }
    assert!(
        unlisted
            .iter()
            .any(|(r, n)| r.contains("RM_ALLOC") && *n == 0xdead)
    );
}

#[test]
fn versions_are_listed_and_an_unsupported_host_driver_is_refused_by_name() {
    let output = common::accelgate(&["nvidia", "versions"], Duration::from_secs(30));
    let stdout = common::stdout(&output);
    assert!(output.status.success());
    for line in [
        "535.129.03   supported",
        "580.65.06    supported",
        "575.51.02    internal",
    ] {
        assert!(stdout.contains(line), "{line}:\n{stdout}");
    }
    // A host whose driver the tree does not know: the run is refused before anything starts.
    let host = tempfile::tempdir().unwrap();
    copy_tree(&common::fixture("nvidia-h100x8"), host.path());
    let version = host.path().join("proc/driver/nvidia/version");
    let text = std::fs::read_to_string(&version).unwrap();
    std::fs::write(&version, text.replace("550.54.15", "550.100.01")).unwrap();
    std::fs::write(
        host.path().join("sys/module/nvidia/version"),
        "550.100.01\n",
    )
    .unwrap();
    let bundle = probe_bundle(|_| {});
    let root = host.path().display().to_string();
    let dir = bundle.dir.path().display().to_string();
    let output = common::accelgate(
        &["run", "--root", &root, "--simulate", "--bundle", &dir],
        Duration::from_secs(60),
    );
    let stderr = common::stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "NVIDIA driver 550.100.01 is not supported (nearest supported: 550.90.12, 570.124.06)"
        ) && stderr.contains("--nvidia-driver-abi"),
        "{stderr}"
    );
}

/// Copies a fixture tree (symlinks as symlinks).
fn copy_tree(from: &Path, to: &Path) {
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", from.display()))
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn processes_execd_into_a_gpu_container_are_gated_by_its_service() {
    privileged!();
    let bundle = probe_bundle(|spec| {
        spec["process"]["args"] = serde_json::json!(["/bin/sleep", "60"]);
    });
    let state = tempfile::tempdir().unwrap();
    let dir = bundle.dir.path().display().to_string();
    let root = common::fixture("nvidia-h100x8").display().to_string();
    let id = format!("nv-exec-{}", std::process::id());
    let log = state.path().join("log");
    let oci = |args: &[&str]| common::oci(state.path(), &log, args);
    let created = oci(&[
        "create",
        "--bundle",
        &dir,
        "--host-root",
        &root,
        "--simulate",
        &id,
    ]);
    let logged = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(created.status.success(), "{}", logged());
    let delete = || oci(&["delete", "--force", &id]);
    let started = oci(&["start", &id]);
    assert!(started.status.success(), "{}", logged());
    for _ in 0..2 {
        let output = oci(&["exec", &id, "/nvidia-probe", "startup"]);
        let stdout = common::stdout(&output);
        if !output.status.success() || stdout.contains("UNEXPECTED") {
            delete();
            panic!("{stdout}\n{}", logged());
        }
        assert!(stdout.contains("cards: 2\n"), "{stdout}");
    }
    // Both exec'd processes were served by the container's one gate service.
    let stats = oci(&["stats", "--json", &id]);
    delete();
    let stats: serde_json::Value = serde_json::from_str(&common::stdout(&stats)).unwrap();
    let card_info = stats["counts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["request"] == "NV_ESC_CARD_INFO" && c["verdict"] == "emulated")
        .map(|c| c["count"].as_u64().unwrap());
    assert_eq!(card_info, Some(2), "{stats:#}");
}
