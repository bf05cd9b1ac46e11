use std::path::PathBuf;

use super::abi::{CONTAINER_PATH, MISC_MAJOR, VFIO_MINOR};
use crate::pci::{DevNode, HostRoot, Warning};

/// Host path of the node for IOMMU group `group`, `/dev/vfio/<group>`.
///
/// The node's *minor* is not the group number (the kernel hands minors out in creation
/// order), so its numbers always come from the node itself.
pub fn group_node_path(group: u32) -> PathBuf {
    PathBuf::from(format!("/dev/vfio/{group}"))
}

/// The container node `/dev/vfio/vfio`, checked to be char 10:196; warns when it is missing
/// or has other numbers.
pub fn container_node(host: &HostRoot, warnings: &mut Vec<Warning>) -> Option<DevNode> {
    let node = host
        .dev()
        .char_node(CONTAINER_PATH.as_ref(), "the VFIO container", warnings)?;
    if (node.major, node.minor) != (MISC_MAJOR, VFIO_MINOR) {
        warnings.push(Warning::new(
            &node.path,
            format!(
                "numbers {} are not the VFIO container's {MISC_MAJOR}:{VFIO_MINOR}",
                node.numbers()
            ),
        ));
    }
    Some(node)
}
