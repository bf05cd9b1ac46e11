//! Each malformed fixture host: discovery finishes (no panic, no hang), exits 0, keeps the
//! good devices, and warns naming the offending file.

mod common;

use std::time::Duration;

/// Runs `discover --json` on a fixture; returns the parsed document and stderr.
fn discover(name: &str) -> (serde_json::Value, String) {
    let root = common::fixture(name);
    let output = common::accelgate(
        &["discover", "--root", root.to_str().unwrap(), "--json"],
        Duration::from_secs(30),
    );
    assert_eq!(
        output.status.code(),
        Some(0),
        "{name}: {}",
        common::stderr(&output)
    );
    (
        serde_json::from_slice(&output.stdout).unwrap(),
        common::stderr(&output),
    )
}

fn warning_paths(found: &serde_json::Value) -> Vec<String> {
    found["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["path"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn bad_hex_names_the_device_and_numa_files() {
    let (found, stderr) = discover("bad-hex");
    let paths = warning_paths(&found);
    assert!(
        paths.contains(&"/sys/devices/pci0000:00/0000:00:05.0/device".to_owned()),
        "{paths:?}"
    );
    assert!(
        paths.contains(&"/sys/devices/pci0000:00/0000:00:04.0/numa_node".to_owned()),
        "{paths:?}"
    );
    assert!(
        stderr.contains("\"0x0x63\\n\"") && stderr.contains("not a hex number"),
        "{stderr}"
    );
    assert_eq!(
        found["tpus"].as_array().unwrap().len(),
        1,
        "the readable chip stays"
    );
    assert!(found["tpus"][0]["numa_node"].is_null());
}

#[test]
fn unknown_google_id_is_unsupported_not_guessed() {
    let (found, stderr) = discover("unknown-google-id");
    assert_eq!(found["unsupported"][0]["device_id"], "0x0099");
    assert_eq!(found["unsupported"][0]["bdf"], "0000:00:05.0");
    assert!(
        stderr.contains("/sys/devices/pci0000:00/0000:00:05.0/device"),
        "{stderr}"
    );
    assert_eq!(found["tpus"].as_array().unwrap().len(), 1);
}

#[test]
fn missing_device_file_is_named() {
    let (found, stderr) = discover("missing-device-file");
    assert_eq!(
        warning_paths(&found),
        ["/sys/devices/pci0000:00/0000:00:05.0/device"]
    );
    assert!(stderr.contains("No such file"), "{stderr}");
    assert_eq!(found["tpus"].as_array().unwrap().len(), 1);
}

#[test]
fn symlink_loop_stops_and_names_a_link_in_the_loop() {
    let (found, stderr) = discover("symlink-loop");
    let paths = warning_paths(&found);
    assert_eq!(paths.len(), 1, "{paths:?}");
    assert!(
        paths[0].starts_with("/sys/devices/pci0000:00/loop-"),
        "{paths:?}"
    );
    assert!(
        stderr.contains("too many levels of symbolic links"),
        "{stderr}"
    );
    assert_eq!(found["tpus"].as_array().unwrap().len(), 2);
}

#[test]
fn symlink_escape_is_refused_naming_the_link() {
    let (found, stderr) = discover("symlink-escape");
    assert_eq!(warning_paths(&found), ["/sys/bus/pci/devices/0000:00:06.0"]);
    assert!(stderr.contains("leaves /sys"), "{stderr}");
    assert_eq!(found["tpus"].as_array().unwrap().len(), 2);
}

#[test]
fn drm_accel_261_is_not_a_tpu() {
    let (found, stderr) = discover("drm-accel-261");
    assert!(found["tpus"].as_array().unwrap().is_empty());
    assert_eq!(
        warning_paths(&found),
        ["/sys/devices/pci0000:00/0000:00:0b.0/accel/accel0/dev"]
    );
    assert!(
        stderr.contains("DRM accel") && stderr.contains("261"),
        "{stderr}"
    );
}
