//! Privileged: a fixture's `dev.list` made into real device nodes reads exactly like the
//! manifest, so discovery on a real `/dev` is what the fixtures test.

mod common;

use accelgate::discovery::discover;
use accelgate::fixture::{SCENARIOS, materialize_dev};
use accelgate::pci::{DevSource, HostRoot, HostTree};

#[test]
fn materialised_nodes_read_like_the_manifest() {
    if !common::privileged("materialised_nodes_read_like_the_manifest") {
        return;
    }
    for scenario in SCENARIOS {
        let fixture = common::fixture(scenario.name);
        let manifest = HostRoot::at(&fixture).unwrap();
        let DevSource::Manifest { nodes, .. } = manifest.dev() else {
            panic!("{} has no dev.list", scenario.name);
        };
        // The temporary directory (and every node in it) is removed when it drops, also when an
        // assertion below fails.
        let dev = tempfile::tempdir().unwrap();
        let nodes: Vec<_> = nodes.values().cloned().collect();
        materialize_dev(&nodes, dev.path()).unwrap();
        let real = HostRoot::new(
            &fixture,
            HostTree::new(fixture.join("sys"), "/sys"),
            HostTree::new(fixture.join("proc"), "/proc"),
            DevSource::Directory(dev.path().to_path_buf()),
        );
        let from_manifest = serde_json::to_value(discover(&manifest).unwrap()).unwrap();
        let from_nodes = serde_json::to_value(discover(&real).unwrap()).unwrap();
        assert_eq!(from_nodes, from_manifest, "{}", scenario.name);
        for node in &nodes {
            let read = real.dev().node(&node.path).unwrap().unwrap();
            assert_eq!(read, *node, "{}: {}", scenario.name, node.path.display());
        }
    }
}

#[test]
fn a_root_with_real_nodes_prefers_them_over_dev_list() {
    if !common::privileged("a_root_with_real_nodes_prefers_them_over_dev_list") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    SCENARIOS[0].write(root.path()).unwrap();
    let node =
        accelgate::pci::parse_manifest("/dev/vfio/vfio c 10:196 0666\n", std::path::Path::new("x"))
            .unwrap();
    materialize_dev(&node, &root.path().join("dev")).unwrap();
    let host = HostRoot::at(root.path()).unwrap();
    assert!(matches!(host.dev(), DevSource::Directory(_)));
    assert!(
        host.dev()
            .node(std::path::Path::new("/dev/vfio/vfio"))
            .unwrap()
            .is_some()
    );
    assert!(
        host.dev()
            .node(std::path::Path::new("/dev/null"))
            .unwrap()
            .is_none(),
        "dev.list is not consulted"
    );
}
