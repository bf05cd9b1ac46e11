//! `dev.list` manifests: the parser never panics, what it accepts is a clean node under `/dev`,
//! and writing the nodes back in the manifest's own format parses to the same nodes.
#![no_main]

use std::path::{Component, Path};

use accelgate::pci::{NodeKind, parse_manifest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let origin = Path::new("dev.list");
    let Ok(nodes) = parse_manifest(text, origin) else {
        return;
    };
    let mut written = String::new();
    for node in &nodes {
        assert!(
            node.path.starts_with("/dev")
                && node
                    .path
                    .components()
                    .all(|c| matches!(c, Component::RootDir | Component::Normal(_))),
            "{} accepted outside /dev",
            node.path.display()
        );
        assert!(node.mode <= 0o7777, "mode {:o} accepted", node.mode);
        let kind = match node.kind {
            NodeKind::Char => 'c',
            NodeKind::Block => 'b',
        };
        written.push_str(&format!(
            "{} {kind} {}:{} {:04o}\n",
            node.path.display(),
            node.major,
            node.minor,
            node.mode
        ));
    }
    let again = parse_manifest(&written, origin).expect("a written manifest parses");
    assert_eq!(again, nodes, "round trip of\n{written}");
});
