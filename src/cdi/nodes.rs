//! Host device nodes and sysfs directories as CDI edits, with the numbers the host answers now.

use std::path::{Path, PathBuf};

use super::spec::{DeviceNode, Mount};
use crate::discovery::Discovery;
use crate::nvproxy::abi as nv;
use crate::pci::{DevNode, HostRoot, node_number};

/// Options of a sysfs bind: read-only, as the sandbox plan binds them.
const SYSFS_BIND_OPTIONS: [&str; 5] = ["ro", "nosuid", "nodev", "noexec", "bind"];

/// The `/proc/devices` names whose major `path` must have. These majors are handed out when
/// the driver loads (nvidia-uvm, nvidia-caps, vfio), so a node left from an earlier load can
/// carry a stale one; the frontend's name varies between driver packages.
fn major_names(path: &Path) -> &'static [&'static str] {
    let text = path.to_str().unwrap_or_default();
    if text == nv::UVM_PATH || text == nv::UVM_TOOLS_PATH {
        &[nv::UVM_MAJOR_NAME]
    } else if path.starts_with(nv::CAPS_DIR) {
        &[nv::CAPS_MAJOR_NAME]
    } else if text == nv::CTL_PATH || text == nv::MODESET_PATH || nv::gpu_node_minor(path).is_some()
    {
        &nv::FRONTEND_MAJOR_NAMES
    } else if node_number(path, "/dev/vfio/").is_some() {
        &[crate::vfio::abi::GROUP_MAJOR_NAME]
    } else {
        &[]
    }
}

/// `node` as a CDI device node: the major from `/proc/devices` where the driver picks it at
/// load time, else the node's own; the node's minor and permission bits; `hostPath` where the
/// host's `/dev` is not `/dev` (a fixture host).
pub(super) fn device_node(node: &DevNode, discovery: &Discovery, host: &HostRoot) -> DeviceNode {
    let major = discovery
        .proc_devices
        .as_ref()
        .and_then(|proc| {
            major_names(&node.path)
                .iter()
                .find_map(|name| proc.char_major(name))
        })
        .unwrap_or(node.major);
    DeviceNode {
        path: node.path.clone(),
        host_path: host_path(host, &node.path),
        node_type: Some(node.kind.letter().to_string()),
        major: Some(i64::from(major)),
        minor: Some(i64::from(node.minor)),
        file_mode: Some(node.mode & 0o777),
        permissions: None,
        uid: None,
        gid: None,
    }
}

/// Every device node discovery knows on the host, as [`device_node`] writes them.
pub(super) fn host_device_nodes(discovery: &Discovery, host: &HostRoot) -> Vec<DeviceNode> {
    discovery
        .gpus
        .iter()
        .flat_map(|g| &g.nodes)
        .chain(discovery.nvidia.iter().flat_map(|n| &n.nodes))
        .chain(discovery.tpus.iter().flat_map(|c| &c.nodes))
        .chain(discovery.vfio.iter().flat_map(|v| &v.nodes))
        .map(|node| device_node(node, discovery, host))
        .collect()
}

/// Where the node at `/dev/...` is on disk, when that is not its own path: under a fixture
/// root, `DIR/dev/...` (where `dev.list` nodes are materialised).
fn host_path(host: &HostRoot, path: &Path) -> Option<PathBuf> {
    Some(host.node_on_disk(path)).filter(|on_disk| on_disk != path)
}

/// A read-only bind of the host's sysfs directory `sysfs` (`/sys/devices/...`) onto the same
/// path in the container, from the host root's `sys/` tree.
pub(super) fn sysfs_bind(host: &HostRoot, sysfs: &Path) -> Mount {
    let rel = sysfs.strip_prefix("/sys").unwrap_or(sysfs);
    Mount {
        host_path: host.sys().root().join(rel),
        container_path: sysfs.to_path_buf(),
        mount_type: None,
        options: SYSFS_BIND_OPTIONS.map(str::to_owned).to_vec(),
    }
}
