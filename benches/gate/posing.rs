//! Host devices posed by ordinary ones, so that the gate's real paths run and end in real
//! drivers on a machine without accelerators: shared by the gate benchmark and the gate's
//! load tests.

use accelgate::family::DeviceClass;
use accelgate::pci::NodeKind;
use accelgate::vfs::{DeviceRegistry, RegisteredDevice};

/// A registry in which /dev/null (1:3) is the VFIO container and /dev/zero (1:5) a TPU v4
/// chip.
pub fn posing_registry() -> DeviceRegistry {
    let mut registry = DeviceRegistry::default();
    for (minor, class, path) in [
        (3, DeviceClass::VfioContainer, "/dev/null"),
        (5, DeviceClass::TpuAccel, "/dev/zero"),
    ] {
        let device = RegisteredDevice {
            class,
            path: path.into(),
            mode: 0o666,
        };
        registry
            .register(NodeKind::Char, 1, minor, device)
            .expect("distinct numbers");
    }
    registry
}
