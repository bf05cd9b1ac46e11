//! Which `cdiVersion` a spec needs.
//!
//! Engines refuse a spec whose version they do not know, and old engines know only old
//! versions: Debian 12's podman 4.3 reads up to 0.5.0, containerd 1.7 and CRI-O 1.27 up to
//! 0.5.0 or 0.6.0. So a spec declares the lowest version that has every field it uses. The
//! rules are those of the reference implementation (`specs-go/version.go`):
//!
//! | version | first needed for |
//! |---|---|
//! | 0.3.0 | everything else (the earliest version engines still accept) |
//! | 0.4.0 | a mount `type` |
//! | 0.5.0 | a device node `hostPath`; a device name that starts with a digit (`0`) |
//! | 0.6.0 | `annotations` on the spec or a device; a dot in the class (`vendor.com/a.b`) |
//! | 0.7.0 | `intelRdt`, `additionalGIDs` (not modelled here) |
//! | 1.1.0 | `netDevices` (not modelled here) |

use super::spec::Spec;

const V030: &str = "0.3.0";
const V040: &str = "0.4.0";
const V050: &str = "0.5.0";
const V060: &str = "0.6.0";

/// The lowest `cdiVersion` that expresses `spec`.
pub fn minimum_version(spec: &Spec) -> &'static str {
    if needs_v060(spec) {
        V060
    } else if needs_v050(spec) {
        V050
    } else if needs_v040(spec) {
        V040
    } else {
        V030
    }
}

fn all_edits(spec: &Spec) -> impl Iterator<Item = &super::ContainerEdits> {
    std::iter::once(&spec.container_edits).chain(spec.devices.iter().map(|d| &d.container_edits))
}

fn needs_v060(spec: &Spec) -> bool {
    let class = spec.kind.split_once('/').map_or("", |(_, class)| class);
    !spec.annotations.is_empty()
        || spec.devices.iter().any(|d| !d.annotations.is_empty())
        || class.contains('.')
}

fn needs_v050(spec: &Spec) -> bool {
    spec.devices
        .iter()
        .any(|d| !d.name.starts_with(|c: char| c.is_ascii_alphabetic()))
        || all_edits(spec)
            .flat_map(|e| &e.device_nodes)
            .any(|n| n.host_path.is_some())
}

fn needs_v040(spec: &Spec) -> bool {
    all_edits(spec)
        .flat_map(|e| &e.mounts)
        .any(|m| m.mount_type.is_some())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::cdi::{ContainerEdits, Device, DeviceNode, Mount};

    fn spec(kind: &str, name: &str, edits: ContainerEdits) -> Spec {
        Spec {
            cdi_version: String::new(),
            kind: kind.into(),
            annotations: Default::default(),
            devices: vec![Device {
                name: name.into(),
                annotations: Default::default(),
                container_edits: edits,
            }],
            container_edits: ContainerEdits::default(),
        }
    }

    fn node(host_path: Option<&str>) -> DeviceNode {
        DeviceNode {
            path: "/dev/accel0".into(),
            host_path: host_path.map(PathBuf::from),
            node_type: Some("c".into()),
            major: Some(121),
            minor: Some(0),
            file_mode: None,
            permissions: None,
            uid: None,
            gid: None,
        }
    }

    #[test]
    fn each_field_raises_the_version_it_needs() {
        let nodes = |host_path| ContainerEdits {
            device_nodes: vec![node(host_path)],
            ..Default::default()
        };
        let mount = |mount_type: Option<&str>| ContainerEdits {
            mounts: vec![Mount {
                host_path: "/sys/x".into(),
                container_path: "/sys/x".into(),
                mount_type: mount_type.map(str::to_owned),
                options: vec!["bind".into()],
            }],
            ..Default::default()
        };
        let mut annotated = spec("google.com/tpu", "all", nodes(None));
        annotated.devices[0]
            .annotations
            .insert("k".into(), "v".into());
        let cases = [
            (spec("google.com/tpu", "all", nodes(None)), "0.3.0"),
            (spec("google.com/tpu", "all", mount(None)), "0.3.0"),
            (spec("google.com/tpu", "all", mount(Some("bind"))), "0.4.0"),
            (
                spec("google.com/tpu", "all", nodes(Some("/x/accel0"))),
                "0.5.0",
            ),
            (spec("google.com/tpu", "0", nodes(None)), "0.5.0"),
            (spec("google.com/tpu.v5e", "all", nodes(None)), "0.6.0"),
            (annotated, "0.6.0"),
        ];
        for (spec, expected) in cases {
            assert_eq!(minimum_version(&spec), expected, "{spec:?}");
        }
    }
}
