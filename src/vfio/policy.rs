//! The VFIO policy, keyed on (fd kind, request): the same numbers mean different calls on a
//! container and a device (`VFIO_IOMMU_MAP_DMA` is `VFIO_DEVICE_PCI_HOT_RESET`).

use nix::errno::Errno;

use super::abi::*;
use crate::supervisor::ioctl::{IoctlDef, ioc_type};
use crate::supervisor::policy::{Action, FdKind, Ruling, field_u32, unknown};

/// What VFIO answers for a request it does not know.
pub const UNKNOWN_ERRNO: Errno = Errno::ENOTTY;

/// The errno for a known request the sandbox may not make.
pub const FORBIDDEN_ERRNO: Errno = Errno::EPERM;

/// Whether `request` carries VFIO's magic (`';'`, which iommufd shares; iommufd is not given
/// to sandboxes). On any other file it is answered ENOTTY by the gate rather than continued, so
/// that a second thread cannot swap a VFIO file in under the number between the check and the
/// call.
pub const fn owns(request: u32) -> bool {
    ioc_type(request) == VFIO_MAGIC
}

/// The ruling for `request` with by-value argument `arg` on a VFIO fd of `kind`.
///
/// - Container: GET_API_VERSION, CHECK_EXTENSION and IOMMU_GET_INFO continue; SET_IOMMU
///   continues for type1 and type1v2 only (EINVAL otherwise); MAP_DMA and UNMAP_DMA run in the
///   workload (they pin its pages): checked (READ/WRITE flags only; no dirty bitmap) and
///   continued; the sPAPR enable/disable calls are refused.
/// - Group: GET_STATUS, SET_CONTAINER, UNSET_CONTAINER and GET_DEVICE_FD continue (the last two
///   touch the workload's fd table; the kernel returns only the group's own devices).
/// - Device: GET_INFO, GET_REGION_INFO, GET_IRQ_INFO and RESET continue; SET_IRQS is checked
///   (a PCI IRQ index) and continued; hot reset, graphics, ioeventfd, feature and iommufd calls
///   are refused with EPERM.
/// - Anything else: ENOTTY, as VFIO answers.
pub fn rule(kind: FdKind, request: u32, arg: u64) -> Ruling {
    let known = |def: IoctlDef, action| Ruling { ioctl: def, action };
    let is = |def: &IoctlDef| def.request == request;
    match kind {
        FdKind::VfioContainer => {
            if is(&GET_API_VERSION) {
                known(GET_API_VERSION, Action::Continue)
            } else if is(&CHECK_EXTENSION) {
                known(CHECK_EXTENSION, Action::Continue)
            } else if is(&SET_IOMMU) {
                let model_ok = arg == TYPE1_IOMMU || arg == TYPE1V2_IOMMU;
                known(
                    SET_IOMMU,
                    if model_ok {
                        Action::Continue
                    } else {
                        Action::Deny(Errno::EINVAL)
                    },
                )
            } else if is(&IOMMU_GET_INFO) {
                known(IOMMU_GET_INFO, Action::Continue)
            } else if is(&IOMMU_MAP_DMA) {
                known(IOMMU_MAP_DMA, Action::CheckThenContinue(check_dma_map))
            } else if is(&IOMMU_UNMAP_DMA) {
                known(IOMMU_UNMAP_DMA, Action::CheckThenContinue(check_dma_unmap))
            } else if is(&IOMMU_ENABLE) {
                known(IOMMU_ENABLE, Action::Deny(FORBIDDEN_ERRNO))
            } else if is(&IOMMU_DISABLE) {
                known(IOMMU_DISABLE, Action::Deny(FORBIDDEN_ERRNO))
            } else {
                unknown(request, UNKNOWN_ERRNO)
            }
        }
        FdKind::VfioGroup => {
            match [
                GROUP_GET_STATUS,
                GROUP_SET_CONTAINER,
                GROUP_UNSET_CONTAINER,
                GROUP_GET_DEVICE_FD,
            ]
            .into_iter()
            .find(is)
            {
                Some(def) => known(def, Action::Continue),
                None => unknown(request, UNKNOWN_ERRNO),
            }
        }
        FdKind::VfioDevice => {
            if let Some(def) = [
                DEVICE_GET_INFO,
                DEVICE_GET_REGION_INFO,
                DEVICE_GET_IRQ_INFO,
                DEVICE_RESET,
            ]
            .into_iter()
            .find(is)
            {
                known(def, Action::Continue)
            } else if is(&DEVICE_SET_IRQS) {
                known(DEVICE_SET_IRQS, Action::CheckThenContinue(check_set_irqs))
            } else if let Some(def) = [
                DEVICE_GET_PCI_HOT_RESET_INFO,
                DEVICE_PCI_HOT_RESET,
                DEVICE_QUERY_GFX_PLANE,
                DEVICE_GET_GFX_DMABUF,
                DEVICE_IOEVENTFD,
                DEVICE_FEATURE,
                DEVICE_BIND_IOMMUFD,
                DEVICE_ATTACH_IOMMUFD_PT,
                DEVICE_DETACH_IOMMUFD_PT,
            ]
            .into_iter()
            .find(is)
            {
                known(def, Action::Deny(FORBIDDEN_ERRNO))
            } else {
                unknown(request, UNKNOWN_ERRNO)
            }
        }
        FdKind::Accel { .. } => unknown(request, UNKNOWN_ERRNO),
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

    fn action(kind: FdKind, def: IoctlDef, arg: u64) -> Action {
        rule(kind, def.request, arg).action
    }

    #[test]
    fn the_same_number_means_different_calls_per_fd_kind() {
        assert!(matches!(
            action(FdKind::VfioContainer, IOMMU_MAP_DMA, 0),
            Action::CheckThenContinue(_)
        ));
        assert!(matches!(
            action(FdKind::VfioDevice, DEVICE_PCI_HOT_RESET, 0),
            Action::Deny(Errno::EPERM)
        ));
        assert!(matches!(
            action(FdKind::VfioContainer, IOMMU_DISABLE, 0),
            Action::Deny(Errno::EPERM)
        ));
        assert!(matches!(
            action(FdKind::VfioDevice, DEVICE_IOEVENTFD, 0),
            Action::Deny(Errno::EPERM)
        ));
        assert_eq!(
            rule(FdKind::VfioDevice, IOMMU_MAP_DMA.request, 0)
                .ioctl
                .name,
            "VFIO_DEVICE_PCI_HOT_RESET"
        );
        assert!(matches!(
            action(FdKind::VfioGroup, DEVICE_GET_INFO, 0),
            Action::Deny(Errno::ENOTTY)
        ));
    }

    #[test]
    fn vfio_owns_its_magic() {
        assert!(owns(GET_API_VERSION.request));
        assert!(owns(DEVICE_DETACH_IOMMUFD_PT.request));
        assert!(owns(0x3b80), "iommufd's numbers too");
        assert!(!owns(0x5401));
    }

    #[test]
    fn set_iommu_takes_type1_models_only() {
        assert!(matches!(
            action(FdKind::VfioContainer, SET_IOMMU, TYPE1V2_IOMMU),
            Action::Continue
        ));
        assert!(matches!(
            action(FdKind::VfioContainer, SET_IOMMU, TYPE1_IOMMU),
            Action::Continue
        ));
        assert!(matches!(
            action(FdKind::VfioContainer, SET_IOMMU, SPAPR_TCE_IOMMU),
            Action::Deny(Errno::EINVAL)
        ));
    }

    #[test]
    fn content_checks() {
        let map = |argsz: u32, flags: u32| [argsz.to_ne_bytes(), flags.to_ne_bytes()].concat();
        assert_eq!(
            check_dma_map(FdKind::VfioContainer, &[map(32, 3), vec![0; 24]].concat()),
            Ok(())
        );
        assert_eq!(
            check_dma_map(FdKind::VfioContainer, &[map(32, 4), vec![0; 24]].concat()),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            check_dma_map(FdKind::VfioContainer, &map(16, 3)),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            check_dma_unmap(FdKind::VfioContainer, &[map(24, 1), vec![0; 16]].concat()),
            Err(Errno::EINVAL)
        );
        let irqs = |index: u32| {
            [20u32, 0x24, index, 0, 1]
                .iter()
                .flat_map(|v| v.to_ne_bytes())
                .collect::<Vec<_>>()
        };
        assert_eq!(check_set_irqs(FdKind::VfioDevice, &irqs(2)), Ok(()));
        assert_eq!(
            check_set_irqs(FdKind::VfioDevice, &irqs(5)),
            Err(Errno::EINVAL)
        );
    }
}
