//! CDI specs: the parser never panics, a spec it reads writes back to the same spec, and
//! `cdi::check` of a directory holding the input against a fixture host names the file either
//! as checked (one of our kinds) or as stale with the field that does not parse.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use accelgate::cdi::{Kind, Spec, check, minimum_version};
use accelgate::discovery::{Discovery, discover};
use accelgate::pci::HostRoot;
use libfuzzer_sys::fuzz_target;

/// Fixture hosts with GPUs, TPUs, both and neither.
const HOSTS: [&str; 5] = ["mixed", "nvidia-h100x8", "tpu-v4-8", "tpu7x", "cpu-only"];

struct World {
    hosts: Vec<(HostRoot, Discovery)>,
    dir: tempfile::TempDir,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/sysfs");
        let hosts = HOSTS
            .iter()
            .map(|name| {
                let host = HostRoot::at(fixtures.join(name)).expect("fixture host");
                let discovery = discover(&host).expect("fixture discovery");
                (host, discovery)
            })
            .collect();
        World {
            hosts,
            dir: tempfile::tempdir().expect("temporary spec directory"),
        }
    })
}

fuzz_target!(|input: (u8, &[u8])| {
    let (host, bytes) = input;
    let parsed = serde_json::from_slice::<Spec>(bytes);
    if let Ok(spec) = &parsed {
        let written = serde_json::to_vec(spec).expect("a spec serialises");
        let again: Spec = serde_json::from_slice(&written).expect("a written spec parses");
        assert_eq!(&again, spec, "round trip");
        assert_eq!(minimum_version(&again), minimum_version(spec));
    }

    let world = world();
    let (root, discovery) = &world.hosts[usize::from(host) % world.hosts.len()];
    let file: PathBuf = world.dir.path().join("fuzz.json");
    std::fs::write(&file, bytes).expect("write the spec");
    let report = check(&[world.dir.path().to_path_buf()], discovery, root);
    match &parsed {
        Ok(spec) if Kind::from_name(&spec.kind).is_some() => {
            assert_eq!(report.checked, std::slice::from_ref(&file), "{report:?}");
        }
        Ok(_) => assert!(report.checked.is_empty(), "{report:?}"),
        Err(_) => assert!(
            report
                .stale
                .iter()
                .any(|s| s.file.as_ref() == Some(&file) && s.problem.starts_with("not a CDI spec")),
            "a spec that does not parse is named: {report:?}"
        ),
    }
});
