//! The committed fixture hosts: each tree is exactly what its `accelgate::fixture` scenario
//! writes, and discovery on it gives exactly its `expected.json`.
//!
//! After changing a scenario or discovery on purpose, regenerate with
//! `ACCELGATE_BLESS=1 cargo test --test fixtures` and review the diff like code.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use accelgate::discovery::discover;
use accelgate::fixture::SCENARIOS;
use accelgate::pci::HostRoot;

#[derive(Debug, PartialEq, Eq)]
enum Entry {
    File(Vec<u8>),
    Link(PathBuf),
}

/// Files and links under `dir` (Git does not keep empty directories, so they do not count),
/// leaving out `expected.json`.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Entry> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Entry>) {
        for entry in fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            let kind = entry.file_type().unwrap();
            if kind.is_symlink() {
                out.insert(rel, Entry::Link(fs::read_link(&path).unwrap()));
            } else if kind.is_dir() {
                walk(root, &path, out);
            } else if rel != Path::new("expected.json") {
                out.insert(rel, Entry::File(fs::read(&path).unwrap()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

#[test]
fn committed_trees_are_what_the_scenarios_write() {
    for scenario in SCENARIOS {
        let committed = common::fixture(scenario.name);
        if common::bless() {
            for part in ["sys", "proc"] {
                let _ = fs::remove_dir_all(committed.join(part));
            }
            let _ = fs::remove_file(committed.join("dev.list"));
            scenario.write(&committed).unwrap();
            continue;
        }
        let fresh = tempfile::tempdir().unwrap();
        scenario.write(fresh.path()).unwrap();
        let (want, have) = (snapshot(fresh.path()), snapshot(&committed));
        let differing: Vec<&PathBuf> = want
            .keys()
            .chain(have.keys())
            .filter(|k| want.get(*k) != have.get(*k))
            .collect();
        assert!(
            differing.is_empty(),
            "fixtures/sysfs/{} differs from its scenario at {differing:?}; \
             run ACCELGATE_BLESS=1 cargo test --test fixtures and review",
            scenario.name
        );
    }
}

#[test]
fn every_fixture_directory_is_a_scenario() {
    for entry in fs::read_dir(common::fixtures_dir()).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            SCENARIOS.iter().any(|s| s.name == name),
            "fixtures/sysfs/{name} has no scenario in accelgate::fixture"
        );
    }
}

#[test]
fn discovery_matches_expected_json() {
    for scenario in SCENARIOS {
        let dir = common::fixture(scenario.name);
        let host = HostRoot::at(&dir).unwrap();
        let found = discover(&host).unwrap();
        let golden = dir.join("expected.json");
        if common::bless() {
            fs::write(
                &golden,
                serde_json::to_string_pretty(&found).unwrap() + "\n",
            )
            .unwrap();
            continue;
        }
        let found = serde_json::to_value(found).unwrap();
        let expected: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(&golden).unwrap()).unwrap();
        assert_eq!(
            found,
            expected,
            "discovery of fixtures/sysfs/{} differs from expected.json:\n{}",
            scenario.name,
            serde_json::to_string_pretty(&found).unwrap()
        );
    }
}

#[test]
fn the_cli_json_is_the_library_result() {
    for scenario in SCENARIOS {
        let dir = common::fixture(scenario.name);
        let output = common::accelgate(
            &["discover", "--root", dir.to_str().unwrap(), "--json"],
            std::time::Duration::from_secs(30),
        );
        assert_eq!(
            output.status.code(),
            Some(0),
            "{}: {}",
            scenario.name,
            common::stderr(&output)
        );
        let printed: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let expected: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
        assert_eq!(printed, expected, "{}", scenario.name);
    }
}

#[test]
fn the_examples_rootfs_is_the_placeholder_busybox_rootfs() {
    let committed = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/rootfs");
    if common::bless() {
        let _ = fs::remove_dir_all(&committed);
        accelgate::fixture::write_busybox_rootfs(
            &committed,
            accelgate::fixture::Busybox::Placeholder,
        )
        .unwrap();
        return;
    }
    let fresh = tempfile::tempdir().unwrap();
    accelgate::fixture::write_busybox_rootfs(
        fresh.path(),
        accelgate::fixture::Busybox::Placeholder,
    )
    .unwrap();
    let (want, have) = (snapshot(fresh.path()), snapshot(&committed));
    assert!(
        want == have,
        "examples/rootfs differs from write_busybox_rootfs(Placeholder); bless and review"
    );
}
