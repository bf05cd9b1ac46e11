use std::fmt;

use serde::Serialize;

/// PCI vendor ID of Google.
pub const GOOGLE_VENDOR_ID: u16 = 0x1ae0;

/// A TPU generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Generation {
    /// TPU v2 and v3 share one device ID (`0x0027`); known, not supported.
    #[serde(rename = "v2v3")]
    V2V3,
    /// TPU v4.
    #[serde(rename = "v4")]
    V4,
    /// TPU v4 lite (JAX calls it "plc").
    #[serde(rename = "v4lite")]
    V4Lite,
    /// TPU v5e (v5litepod).
    #[serde(rename = "v5e")]
    V5e,
    /// TPU v5p.
    #[serde(rename = "v5p")]
    V5p,
    /// TPU v6e (Trillium).
    #[serde(rename = "v6e")]
    V6e,
    /// TPU7x (Ironwood): two PCI functions, one per core, per chip.
    #[serde(rename = "7x")]
    Tpu7x,
}

impl Generation {
    /// The name used in JSON, tables and annotations.
    pub const fn name(self) -> &'static str {
        match self {
            Self::V2V3 => "v2v3",
            Self::V4 => "v4",
            Self::V4Lite => "v4lite",
            Self::V5e => "v5e",
            Self::V5p => "v5p",
            Self::V6e => "v6e",
            Self::Tpu7x => "7x",
        }
    }
}

impl fmt::Display for Generation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How the host driver exposes a chip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DriverModel {
    /// The gasket/accel driver: `/dev/accelN`, char 121:N.
    Accel,
    /// `vfio-pci`: `/dev/vfio/vfio` plus `/dev/vfio/<iommu group>`.
    Vfio,
}

impl fmt::Display for DriverModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Accel => "accel",
            Self::Vfio => "vfio",
        })
    }
}

/// One row of the TPU table: what a Google PCI device ID means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TpuModel {
    /// PCI device ID under [`GOOGLE_VENDOR_ID`].
    pub device_id: u16,
    /// The generation.
    pub generation: Generation,
    /// How the host exposes it.
    pub driver: DriverModel,
    /// Whether accelgate hands it to sandboxes.
    pub supported: bool,
    /// PCI functions per chip; the functions of one chip share a slot (`DDDD:BB:DD`).
    pub functions_per_chip: u8,
}

const fn model(
    device_id: u16,
    generation: Generation,
    driver: DriverModel,
    functions_per_chip: u8,
) -> TpuModel {
    TpuModel {
        device_id,
        generation,
        driver,
        supported: true,
        functions_per_chip,
    }
}

/// Every Google TPU device ID accelgate knows, the one table all of accelgate consults.
///
/// IDs from gVisor `pkg/abi/tpu/tpu.go`, JAX `_TPU_PCI_DEVICE_IDS` and tpu-info. `0x006e` is
/// the v6e physical function: it is a chip when passed through itself, and not one when it
/// serves v6e virtual functions (discovery checks its `virtfn` links). gVisor calls `0x0076`
/// the 7x "PF"; JAX and tpu-info call it the 7x chip, and hosts bind both functions of a chip
/// to `vfio-pci`, so both IDs are 7x functions here.
pub const TPU_MODELS: &[TpuModel] = &[
    TpuModel {
        device_id: 0x0027,
        generation: Generation::V2V3,
        driver: DriverModel::Accel,
        supported: false,
        functions_per_chip: 1,
    },
    model(0x005e, Generation::V4, DriverModel::Accel, 1),
    model(0x0056, Generation::V4Lite, DriverModel::Accel, 1),
    model(0x0062, Generation::V5p, DriverModel::Vfio, 1),
    model(0x0063, Generation::V5e, DriverModel::Vfio, 1),
    model(0x006e, Generation::V6e, DriverModel::Vfio, 1),
    model(0x006f, Generation::V6e, DriverModel::Vfio, 1),
    model(0x0075, Generation::Tpu7x, DriverModel::Vfio, 2),
    model(0x0076, Generation::Tpu7x, DriverModel::Vfio, 2),
];

/// The table row for a Google device ID; `None` for an ID accelgate does not know, which is
/// never guessed at.
pub fn model_for(device_id: u16) -> Option<&'static TpuModel> {
    TPU_MODELS.iter().find(|m| m.device_id == device_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_matches_the_published_ids() {
        let expected = [
            (0x0027, "v2v3", false),
            (0x005e, "v4", true),
            (0x0056, "v4lite", true),
            (0x0062, "v5p", true),
            (0x0063, "v5e", true),
            (0x006e, "v6e", true),
            (0x006f, "v6e", true),
            (0x0075, "7x", true),
            (0x0076, "7x", true),
        ];
        for (id, name, supported) in expected {
            let m = model_for(id).unwrap();
            assert_eq!(
                (m.generation.name(), m.supported),
                (name, supported),
                "{id:#06x}"
            );
        }
        assert_eq!(TPU_MODELS.len(), expected.len());
        assert!(model_for(0x0064).is_none());
    }

    #[test]
    fn accel_generations_are_v4_and_v4lite_only() {
        for m in TPU_MODELS.iter().filter(|m| m.supported) {
            let accel = matches!(m.generation, Generation::V4 | Generation::V4Lite);
            assert_eq!(
                m.driver == DriverModel::Accel,
                accel,
                "{:#06x}",
                m.device_id
            );
        }
    }

    #[test]
    fn ids_are_unique() {
        for (i, a) in TPU_MODELS.iter().enumerate() {
            assert!(
                TPU_MODELS[i + 1..]
                    .iter()
                    .all(|b| b.device_id != a.device_id)
            );
        }
    }
}
