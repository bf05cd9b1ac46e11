//! What a sandbox's granted TPU chips are when simulated: the gasket simulator for chips on
//! the accel driver, the VFIO simulator for the rest.

use crate::accel::sim::AccelSim;
use crate::family::DeviceSim;
use crate::vfio::sim::{GroupSpec, VfioSim};

use super::{DriverModel, GOOGLE_VENDOR_ID, Generation, TpuChip};

/// Simulators for the `granted` ones of the host's `chips` (by discovery index): none for a
/// family with no granted chip.
pub fn simulated_devices(chips: &[TpuChip], granted: &[usize]) -> Vec<Box<dyn DeviceSim>> {
    let mut accel = AccelSim::default();
    let mut vfio = VfioSim::default();
    let (mut any_accel, mut any_vfio) = (false, false);
    for chip in chips.iter().filter(|c| granted.contains(&c.index)) {
        match chip.driver {
            DriverModel::Accel => {
                any_accel = true;
                let paths = chip.nodes.iter().map(|n| n.path.clone()).collect();
                accel.add_chip(chip.index, chip.generation == Generation::V4Lite, paths);
            }
            DriverModel::Vfio => {
                any_vfio = true;
                for (i, group) in chip.iommu_groups.iter().enumerate() {
                    vfio.add_group(GroupSpec {
                        number: *group,
                        bdfs: chip.bdfs.get(i).copied().into_iter().collect(),
                        ids: (GOOGLE_VENDOR_ID, chip.device_id),
                    });
                }
            }
        }
    }
    let mut sims: Vec<Box<dyn DeviceSim>> = Vec::new();
    if any_accel {
        sims.push(Box::new(accel));
    }
    if any_vfio {
        sims.push(Box::new(vfio));
    }
    sims
}
