use serde::Serialize;

use super::Bdf;
use super::attr::serialize_hex_id;

/// An accelerator that is on the PCI bus but that accelgate cannot hand to a sandbox, and
/// why: an unknown or unsupported device ID, the wrong driver bound, no IOMMU group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnsupportedDevice {
    /// The function's address.
    pub bdf: Bdf,
    /// `tpu` or `gpu`.
    pub kind: &'static str,
    /// PCI vendor ID.
    #[serde(serialize_with = "serialize_hex_id")]
    pub vendor: u16,
    /// PCI device ID.
    #[serde(serialize_with = "serialize_hex_id")]
    pub device_id: u16,
    /// Why it is not offered.
    pub reason: String,
}
