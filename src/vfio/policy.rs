//! The VFIO policy, keyed on (fd kind, request): the same numbers mean different calls on a
//! container and a device (`VFIO_IOMMU_MAP_DMA` is `VFIO_DEVICE_PCI_HOT_RESET`).

use nix::errno::Errno;

use super::abi::*;
use crate::family::{
    Action, Decode, DeviceClass, Family, FdKind, IoctlDef, Owned, field_u32, rows,
};

/// The VFIO container, `/dev/vfio/vfio`.
pub const CONTAINER: FdKind = FdKind::new("vfio", "vfio-container");
/// A VFIO group, `/dev/vfio/<group>`.
pub const GROUP: FdKind = FdKind::new("vfio", "vfio-group");
/// A VFIO device fd (anon inode `[vfio-device]`), from `VFIO_GROUP_GET_DEVICE_FD`.
pub const DEVICE: FdKind = FdKind::new("vfio", "vfio-device");

/// What VFIO answers for a request it does not know.
pub const UNKNOWN_ERRNO: Errno = Errno::ENOTTY;

/// The errno for a known request the sandbox may not make.
pub const FORBIDDEN_ERRNO: Errno = Errno::EPERM;

/// The container: GET_API_VERSION, CHECK_EXTENSION and IOMMU_GET_INFO continue; SET_IOMMU
/// continues for type1 and type1v2 only (EINVAL otherwise); MAP_DMA and UNMAP_DMA run in the
/// workload (they pin its pages): checked (READ/WRITE flags only; no dirty bitmap) and
/// continued; the sPAPR enable/disable calls are refused.
const CONTAINER_TABLE: [(IoctlDef, Action); 8] = [
    (GET_API_VERSION, Action::Continue),
    (CHECK_EXTENSION, Action::Continue),
    (SET_IOMMU, Action::ContinueIf(check_iommu_model)),
    (IOMMU_GET_INFO, Action::Continue),
    (IOMMU_MAP_DMA, Action::CheckThenContinue(check_dma_map)),
    (IOMMU_UNMAP_DMA, Action::CheckThenContinue(check_dma_unmap)),
    (IOMMU_ENABLE, Action::Deny(FORBIDDEN_ERRNO)),
    (IOMMU_DISABLE, Action::Deny(FORBIDDEN_ERRNO)),
];

/// A group: GET_STATUS, SET_CONTAINER, UNSET_CONTAINER and GET_DEVICE_FD continue (the last
/// two touch the workload's fd table; the kernel returns only the group's own devices).
const GROUP_TABLE: [(IoctlDef, Action); 4] = [
    (GROUP_GET_STATUS, Action::Continue),
    (GROUP_SET_CONTAINER, Action::Continue),
    (GROUP_UNSET_CONTAINER, Action::Continue),
    (GROUP_GET_DEVICE_FD, Action::Continue),
];

/// A device: GET_INFO, GET_REGION_INFO, GET_IRQ_INFO and RESET continue; SET_IRQS is checked
/// (a PCI IRQ index) and continued; hot reset, graphics, ioeventfd, feature and iommufd calls
/// are refused with EPERM.
const DEVICE_TABLE: [(IoctlDef, Action); 14] = [
    (DEVICE_GET_INFO, Action::Continue),
    (DEVICE_GET_REGION_INFO, Action::Continue),
    (DEVICE_GET_IRQ_INFO, Action::Continue),
    (DEVICE_RESET, Action::Continue),
    (DEVICE_SET_IRQS, Action::CheckThenContinue(check_set_irqs)),
    (DEVICE_GET_PCI_HOT_RESET_INFO, Action::Deny(FORBIDDEN_ERRNO)),
    (DEVICE_PCI_HOT_RESET, Action::Deny(FORBIDDEN_ERRNO)),
    (DEVICE_QUERY_GFX_PLANE, Action::Deny(FORBIDDEN_ERRNO)),
    (DEVICE_GET_GFX_DMABUF, Action::Deny(FORBIDDEN_ERRNO)),
    (DEVICE_IOEVENTFD, Action::Deny(FORBIDDEN_ERRNO)),
    (DEVICE_FEATURE, Action::Deny(FORBIDDEN_ERRNO)),
    (DEVICE_BIND_IOMMUFD, Action::Deny(FORBIDDEN_ERRNO)),
    (DEVICE_ATTACH_IOMMUFD_PT, Action::Deny(FORBIDDEN_ERRNO)),
    (DEVICE_DETACH_IOMMUFD_PT, Action::Deny(FORBIDDEN_ERRNO)),
];

/// The VFIO family, keyed on (fd kind, request): the same numbers mean different calls on a
/// container and a device (`VFIO_IOMMU_MAP_DMA` is `VFIO_DEVICE_PCI_HOT_RESET`). It owns magic
/// `';'`, which iommufd shares; iommufd is not given to sandboxes, so its numbers are unknown
/// here (ENOTTY).
pub fn family() -> Family {
    Family {
        name: "vfio",
        kinds: &[CONTAINER, GROUP, DEVICE],
        devices: &[
            (DeviceClass::VfioContainer, CONTAINER),
            (DeviceClass::VfioGroup, GROUP),
        ],
        anon_inodes: &[("[vfio-device]", DEVICE)],
        owned: &[Owned::Magic(VFIO_MAGIC)],
        decode: Decode::Full,
        unknown_errno: UNKNOWN_ERRNO,
        requests: rows(CONTAINER, &CONTAINER_TABLE)
            .chain(rows(GROUP, &GROUP_TABLE))
            .chain(rows(DEVICE, &DEVICE_TABLE))
            .collect(),
    }
}

/// SET_IOMMU: type1 and type1v2 only.
fn check_iommu_model(model: u64) -> Result<(), Errno> {
    if model == TYPE1_IOMMU || model == TYPE1V2_IOMMU {
        Ok(())
    } else {
        Err(Errno::EINVAL)
    }
}

/// MAP_DMA: a whole struct, and no flags beyond READ and WRITE.
fn check_dma_map(_: FdKind, arg: &[u8]) -> Result<(), Errno> {
    let argsz = field_u32(arg, 0).ok_or(Errno::EFAULT)?;
    let flags = field_u32(arg, 4).ok_or(Errno::EFAULT)?;
    if (argsz as usize) < size_of::<VfioDmaMap>()
        || flags & !(DMA_MAP_FLAG_READ | DMA_MAP_FLAG_WRITE) != 0
    {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

/// UNMAP_DMA: a whole struct, and no dirty bitmap (whose buffer is another user pointer).
fn check_dma_unmap(_: FdKind, arg: &[u8]) -> Result<(), Errno> {
    let argsz = field_u32(arg, 0).ok_or(Errno::EFAULT)?;
    let flags = field_u32(arg, 4).ok_or(Errno::EFAULT)?;
    if (argsz as usize) < size_of::<VfioDmaUnmap>() || flags & DMA_UNMAP_FLAG_GET_DIRTY_BITMAP != 0
    {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

/// SET_IRQS: a header, and one of the PCI IRQ indices.
fn check_set_irqs(_: FdKind, arg: &[u8]) -> Result<(), Errno> {
    let argsz = field_u32(arg, 0).ok_or(Errno::EFAULT)?;
    let index = field_u32(arg, 8).ok_or(Errno::EFAULT)?;
    if (argsz as usize) < size_of::<VfioIrqSet>() || index >= PCI_NUM_IRQS {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(kind: FdKind, request: u32, arg: u64) -> crate::family::Ruling {
        family().rule(kind, request, arg)
    }

    fn action(kind: FdKind, def: IoctlDef, arg: u64) -> Action {
        rule(kind, def.request, arg).action
    }

    #[test]
    fn the_same_number_means_different_calls_per_fd_kind() {
        assert!(matches!(
            action(CONTAINER, IOMMU_MAP_DMA, 0),
            Action::CheckThenContinue(_)
        ));
        assert!(matches!(
            action(DEVICE, DEVICE_PCI_HOT_RESET, 0),
            Action::Deny(Errno::EPERM)
        ));
        assert!(matches!(
            action(CONTAINER, IOMMU_DISABLE, 0),
            Action::Deny(Errno::EPERM)
        ));
        assert!(matches!(
            action(DEVICE, DEVICE_IOEVENTFD, 0),
            Action::Deny(Errno::EPERM)
        ));
        assert_eq!(
            rule(DEVICE, IOMMU_MAP_DMA.request, 0).ioctl.name,
            "VFIO_DEVICE_PCI_HOT_RESET"
        );
        assert!(matches!(
            action(GROUP, DEVICE_GET_INFO, 0),
            Action::Deny(Errno::ENOTTY)
        ));
    }

    #[test]
    fn vfio_owns_its_magic_and_lists_every_request() {
        let vfio = family();
        assert!(vfio.owns(GET_API_VERSION.request));
        assert!(vfio.owns(DEVICE_DETACH_IOMMUFD_PT.request));
        assert!(vfio.owns(0x3b80), "iommufd's numbers too");
        assert!(!vfio.owns(0x5401));
        for def in IOCTLS {
            assert!(
                vfio.kinds.iter().any(|kind| vfio
                    .request(*kind, def.request)
                    .is_some_and(|r| r.ioctl == def)),
                "{}",
                def.name
            );
        }
    }

    #[test]
    fn set_iommu_takes_type1_models_only() {
        assert!(matches!(
            action(CONTAINER, SET_IOMMU, TYPE1V2_IOMMU),
            Action::Continue
        ));
        assert!(matches!(
            action(CONTAINER, SET_IOMMU, TYPE1_IOMMU),
            Action::Continue
        ));
        assert!(matches!(
            action(CONTAINER, SET_IOMMU, SPAPR_TCE_IOMMU),
            Action::Deny(Errno::EINVAL)
        ));
    }

    #[test]
    fn content_checks() {
        let map = |argsz: u32, flags: u32| [argsz.to_ne_bytes(), flags.to_ne_bytes()].concat();
        assert_eq!(
            check_dma_map(CONTAINER, &[map(32, 3), vec![0; 24]].concat()),
            Ok(())
        );
        assert_eq!(
            check_dma_map(CONTAINER, &[map(32, 4), vec![0; 24]].concat()),
            Err(Errno::EINVAL)
        );
        assert_eq!(check_dma_map(CONTAINER, &map(16, 3)), Err(Errno::EINVAL));
        assert_eq!(
            check_dma_unmap(CONTAINER, &[map(24, 1), vec![0; 16]].concat()),
            Err(Errno::EINVAL)
        );
        let irqs = |index: u32| {
            [20u32, 0x24, index, 0, 1]
                .iter()
                .flat_map(|v| v.to_ne_bytes())
                .collect::<Vec<_>>()
        };
        assert_eq!(check_set_irqs(DEVICE, &irqs(2)), Ok(()));
        assert_eq!(check_set_irqs(DEVICE, &irqs(5)), Err(Errno::EINVAL));
    }
}
