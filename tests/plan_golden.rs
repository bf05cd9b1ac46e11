//! Golden plans: each example bundle on a fixture host gives exactly its committed plan.
//!
//! Regenerate after a deliberate change with `ACCELGATE_BLESS=1 cargo test --test plan_golden`
//! and review the diff. Absolute paths of this checkout are written as `$REPO`.

mod common;

use std::fs;
use std::path::Path;

use accelgate::boot::{BootConfig, Bundle, HostSnapshot, compile};
use accelgate::pci::HostRoot;

/// (example bundle, fixture host)
const CASES: &[(&str, &str)] = &[
    ("busybox", "cpu-only"),
    ("mounts", "cpu-only"),
    ("gpu-legacy-hook", "nvidia-h100x8"),
    ("gpu-cdi", "nvidia-h100x8"),
    ("gpu-devices", "nvidia-h100x8"),
    ("tpu-v4", "tpu-v4-8"),
    ("tpu-v5e", "tpu-v5e-8"),
    ("readonly-overlay", "cpu-only"),
    ("busybox-tpu", "tpu7x"),
];

fn plan_json(bundle: &str, host: &str) -> String {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bundle = Bundle::load(repo.join("examples").join(bundle)).unwrap();
    let snapshot = HostSnapshot::read(&HostRoot::at(common::fixture(host)).unwrap()).unwrap();
    let config = BootConfig {
        container_id: "golden".into(),
        ..BootConfig::default()
    };
    let plan = compile(&bundle, &snapshot, &config).unwrap();
    let canonical = fs::canonicalize(repo).unwrap();
    serde_json::to_string_pretty(&plan)
        .unwrap()
        .replace(canonical.to_str().unwrap(), "$REPO")
        + "\n"
}

#[test]
fn example_plans_match_their_golden_files() {
    let golden_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/plan");
    for (bundle, host) in CASES {
        let actual = plan_json(bundle, host);
        let golden = golden_dir.join(format!("{bundle}@{host}.json"));
        if common::bless() {
            fs::create_dir_all(&golden_dir).unwrap();
            fs::write(&golden, &actual).unwrap();
            continue;
        }
        let expected = fs::read_to_string(&golden).unwrap_or_default();
        assert!(
            actual == expected,
            "plan of examples/{bundle} on {host} differs from {}:\n{actual}",
            golden.display()
        );
    }
}

#[test]
fn every_golden_file_has_a_case() {
    let golden_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/plan");
    for entry in fs::read_dir(golden_dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            CASES.iter().any(|(b, h)| name == format!("{b}@{h}.json")),
            "tests/golden/plan/{name} has no case"
        );
    }
}
