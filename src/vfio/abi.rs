//! Numbers of the VFIO uapi (`include/uapi/linux/vfio.h`, `include/linux/miscdevice.h`).

/// Host path of the VFIO container node.
pub const CONTAINER_PATH: &str = "/dev/vfio/vfio";

/// The container node is a misc device: char 10:196 (`VFIO_MINOR`).
pub const MISC_MAJOR: u32 = 10;

/// Minor of `/dev/vfio/vfio` under the misc major.
pub const VFIO_MINOR: u32 = 196;

/// `/proc/devices` name of the dynamic major that VFIO group nodes use.
pub const GROUP_MAJOR_NAME: &str = "vfio";

/// The PCI driver a function must be bound to for VFIO passthrough.
pub const PCI_DRIVER: &str = "vfio-pci";

use crate::family::{IoctlDef, io};

/// The VFIO ioctl magic, `';'`.
pub const VFIO_MAGIC: u8 = b';';
/// VFIO numbers start at 100 (`VFIO_BASE`).
const BASE: u8 = 100;

const fn vfio(name: &'static str, offset: u8, arg_size: usize) -> IoctlDef {
    IoctlDef {
        name,
        request: io(VFIO_MAGIC, BASE + offset),
        arg_size,
    }
}

/// `VFIO_GET_API_VERSION` (container; returns 0).
pub const GET_API_VERSION: IoctlDef = vfio("VFIO_GET_API_VERSION", 0, 0);
/// `VFIO_CHECK_EXTENSION` (container; extension by value).
pub const CHECK_EXTENSION: IoctlDef = vfio("VFIO_CHECK_EXTENSION", 1, 0);
/// `VFIO_SET_IOMMU` (container; IOMMU model by value).
pub const SET_IOMMU: IoctlDef = vfio("VFIO_SET_IOMMU", 2, 0);
/// `VFIO_GROUP_GET_STATUS` (group).
pub const GROUP_GET_STATUS: IoctlDef =
    vfio("VFIO_GROUP_GET_STATUS", 3, size_of::<VfioGroupStatus>());
/// `VFIO_GROUP_SET_CONTAINER` (group; pointer to the container's fd).
pub const GROUP_SET_CONTAINER: IoctlDef = vfio("VFIO_GROUP_SET_CONTAINER", 4, 4);
/// `VFIO_GROUP_UNSET_CONTAINER` (group).
pub const GROUP_UNSET_CONTAINER: IoctlDef = vfio("VFIO_GROUP_UNSET_CONTAINER", 5, 0);
/// `VFIO_GROUP_GET_DEVICE_FD` (group; pointer to the device's name; installs an fd).
pub const GROUP_GET_DEVICE_FD: IoctlDef = vfio("VFIO_GROUP_GET_DEVICE_FD", 6, 0);
/// `VFIO_DEVICE_GET_INFO` (device).
pub const DEVICE_GET_INFO: IoctlDef = vfio("VFIO_DEVICE_GET_INFO", 7, size_of::<VfioDeviceInfo>());
/// `VFIO_DEVICE_GET_REGION_INFO` (device).
pub const DEVICE_GET_REGION_INFO: IoctlDef = vfio(
    "VFIO_DEVICE_GET_REGION_INFO",
    8,
    size_of::<VfioRegionInfo>(),
);
/// `VFIO_DEVICE_GET_IRQ_INFO` (device).
pub const DEVICE_GET_IRQ_INFO: IoctlDef =
    vfio("VFIO_DEVICE_GET_IRQ_INFO", 9, size_of::<VfioIrqInfo>());
/// `VFIO_DEVICE_SET_IRQS` (device; header plus data).
pub const DEVICE_SET_IRQS: IoctlDef = vfio("VFIO_DEVICE_SET_IRQS", 10, size_of::<VfioIrqSet>());
/// `VFIO_DEVICE_RESET` (device).
pub const DEVICE_RESET: IoctlDef = vfio("VFIO_DEVICE_RESET", 11, 0);
/// `VFIO_IOMMU_GET_INFO` (container), the same number as `VFIO_DEVICE_GET_PCI_HOT_RESET_INFO`.
pub const IOMMU_GET_INFO: IoctlDef = vfio("VFIO_IOMMU_GET_INFO", 12, 0);
/// `VFIO_DEVICE_GET_PCI_HOT_RESET_INFO` (device).
pub const DEVICE_GET_PCI_HOT_RESET_INFO: IoctlDef =
    vfio("VFIO_DEVICE_GET_PCI_HOT_RESET_INFO", 12, 0);
/// `VFIO_IOMMU_MAP_DMA` (container; pins the caller's pages), the same number as
/// `VFIO_DEVICE_PCI_HOT_RESET`.
pub const IOMMU_MAP_DMA: IoctlDef = vfio("VFIO_IOMMU_MAP_DMA", 13, size_of::<VfioDmaMap>());
/// `VFIO_DEVICE_PCI_HOT_RESET` (device).
pub const DEVICE_PCI_HOT_RESET: IoctlDef = vfio("VFIO_DEVICE_PCI_HOT_RESET", 13, 0);
/// `VFIO_IOMMU_UNMAP_DMA` (container), the same number as `VFIO_DEVICE_QUERY_GFX_PLANE`.
pub const IOMMU_UNMAP_DMA: IoctlDef = vfio("VFIO_IOMMU_UNMAP_DMA", 14, size_of::<VfioDmaUnmap>());
/// `VFIO_DEVICE_QUERY_GFX_PLANE` (device).
pub const DEVICE_QUERY_GFX_PLANE: IoctlDef = vfio("VFIO_DEVICE_QUERY_GFX_PLANE", 14, 0);
/// `VFIO_IOMMU_ENABLE` (container, sPAPR), the same number as `VFIO_DEVICE_GET_GFX_DMABUF`.
pub const IOMMU_ENABLE: IoctlDef = vfio("VFIO_IOMMU_ENABLE", 15, 0);
/// `VFIO_DEVICE_GET_GFX_DMABUF` (device).
pub const DEVICE_GET_GFX_DMABUF: IoctlDef = vfio("VFIO_DEVICE_GET_GFX_DMABUF", 15, 0);
/// `VFIO_IOMMU_DISABLE` (container, sPAPR), the same number as `VFIO_DEVICE_IOEVENTFD`.
pub const IOMMU_DISABLE: IoctlDef = vfio("VFIO_IOMMU_DISABLE", 16, 0);
/// `VFIO_DEVICE_IOEVENTFD` (device).
pub const DEVICE_IOEVENTFD: IoctlDef = vfio("VFIO_DEVICE_IOEVENTFD", 16, 0);
/// `VFIO_DEVICE_FEATURE` (device).
pub const DEVICE_FEATURE: IoctlDef = vfio("VFIO_DEVICE_FEATURE", 17, 0);
/// `VFIO_DEVICE_BIND_IOMMUFD` (device cdev).
pub const DEVICE_BIND_IOMMUFD: IoctlDef = vfio("VFIO_DEVICE_BIND_IOMMUFD", 18, 0);
/// `VFIO_DEVICE_ATTACH_IOMMUFD_PT`.
pub const DEVICE_ATTACH_IOMMUFD_PT: IoctlDef = vfio("VFIO_DEVICE_ATTACH_IOMMUFD_PT", 19, 0);
/// `VFIO_DEVICE_DETACH_IOMMUFD_PT`.
pub const DEVICE_DETACH_IOMMUFD_PT: IoctlDef = vfio("VFIO_DEVICE_DETACH_IOMMUFD_PT", 20, 0);

/// `struct vfio_group_status`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VfioGroupStatus {
    /// Size the caller passes.
    pub argsz: u32,
    /// `VFIO_GROUP_FLAGS_*`.
    pub flags: u32,
}

/// `struct vfio_device_info`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VfioDeviceInfo {
    /// Size the caller passes.
    pub argsz: u32,
    /// `VFIO_DEVICE_FLAGS_*`.
    pub flags: u32,
    /// Regions (9 for PCI).
    pub num_regions: u32,
    /// IRQ indices (5 for PCI).
    pub num_irqs: u32,
    /// Offset of the first capability.
    pub cap_offset: u32,
    /// Padding.
    pub pad: u32,
}

/// `struct vfio_region_info`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VfioRegionInfo {
    /// Size the caller passes.
    pub argsz: u32,
    /// `VFIO_REGION_INFO_FLAG_*`.
    pub flags: u32,
    /// Region index.
    pub index: u32,
    /// Offset of the first capability.
    pub cap_offset: u32,
    /// Region size.
    pub size: u64,
    /// mmap/pread offset of the region in the device fd.
    pub offset: u64,
}

/// `struct vfio_irq_info`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VfioIrqInfo {
    /// Size the caller passes.
    pub argsz: u32,
    /// `VFIO_IRQ_INFO_*`.
    pub flags: u32,
    /// IRQ index.
    pub index: u32,
    /// Vectors.
    pub count: u32,
}

/// `struct vfio_irq_set` (followed by `data`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VfioIrqSet {
    /// Size of the header and data.
    pub argsz: u32,
    /// `VFIO_IRQ_SET_*`.
    pub flags: u32,
    /// IRQ index.
    pub index: u32,
    /// First vector.
    pub start: u32,
    /// Vectors.
    pub count: u32,
}

/// `struct vfio_iommu_type1_dma_map`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VfioDmaMap {
    /// Size the caller passes.
    pub argsz: u32,
    /// `VFIO_DMA_MAP_FLAG_*`.
    pub flags: u32,
    /// Caller's virtual address.
    pub vaddr: u64,
    /// Device address.
    pub iova: u64,
    /// Bytes.
    pub size: u64,
}

/// `struct vfio_iommu_type1_dma_unmap`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VfioDmaUnmap {
    /// Size the caller passes.
    pub argsz: u32,
    /// `VFIO_DMA_UNMAP_FLAG_*`.
    pub flags: u32,
    /// Device address.
    pub iova: u64,
    /// Bytes (written back: what was unmapped).
    pub size: u64,
}

const _: () = assert!(size_of::<VfioGroupStatus>() == 8);
const _: () = assert!(size_of::<VfioDeviceInfo>() == 24);
const _: () = assert!(size_of::<VfioRegionInfo>() == 32);
const _: () = assert!(size_of::<VfioIrqInfo>() == 16);
const _: () = assert!(size_of::<VfioIrqSet>() == 20);
const _: () = assert!(size_of::<VfioDmaMap>() == 32);
const _: () = assert!(size_of::<VfioDmaUnmap>() == 24);

/// IOMMU models (`VFIO_TYPE1_IOMMU`, `VFIO_SPAPR_TCE_IOMMU`, `VFIO_TYPE1v2_IOMMU`).
pub const TYPE1_IOMMU: u64 = 1;
/// sPAPR TCE.
pub const SPAPR_TCE_IOMMU: u64 = 2;
/// Type 1 v2, what libtpu asks for.
pub const TYPE1V2_IOMMU: u64 = 3;

/// `VFIO_GROUP_FLAGS_VIABLE`.
pub const GROUP_FLAGS_VIABLE: u32 = 1;
/// `VFIO_GROUP_FLAGS_CONTAINER_SET`.
pub const GROUP_FLAGS_CONTAINER_SET: u32 = 2;
/// `VFIO_DEVICE_FLAGS_RESET`.
pub const DEVICE_FLAGS_RESET: u32 = 1;
/// `VFIO_DEVICE_FLAGS_PCI`.
pub const DEVICE_FLAGS_PCI: u32 = 2;
/// `VFIO_REGION_INFO_FLAG_READ`.
pub const REGION_FLAG_READ: u32 = 1;
/// `VFIO_REGION_INFO_FLAG_WRITE`.
pub const REGION_FLAG_WRITE: u32 = 2;
/// `VFIO_REGION_INFO_FLAG_MMAP`.
pub const REGION_FLAG_MMAP: u32 = 4;
/// `VFIO_IRQ_INFO_EVENTFD`.
pub const IRQ_INFO_EVENTFD: u32 = 1;
/// `VFIO_IRQ_INFO_MASKABLE`.
pub const IRQ_INFO_MASKABLE: u32 = 2;
/// `VFIO_IRQ_INFO_AUTOMASKED`.
pub const IRQ_INFO_AUTOMASKED: u32 = 4;
/// `VFIO_IRQ_INFO_NORESIZE`.
pub const IRQ_INFO_NORESIZE: u32 = 8;
/// `VFIO_IRQ_SET_DATA_NONE`.
pub const IRQ_SET_DATA_NONE: u32 = 1;
/// `VFIO_IRQ_SET_DATA_BOOL`.
pub const IRQ_SET_DATA_BOOL: u32 = 2;
/// `VFIO_IRQ_SET_DATA_EVENTFD`.
pub const IRQ_SET_DATA_EVENTFD: u32 = 4;
/// The data-type bits of `vfio_irq_set.flags`.
pub const IRQ_SET_DATA_TYPE_MASK: u32 = 7;
/// The action bits (`MASK`, `UNMASK`, `TRIGGER`).
pub const IRQ_SET_ACTION_TYPE_MASK: u32 = 0x38;
/// `VFIO_DMA_MAP_FLAG_READ`.
pub const DMA_MAP_FLAG_READ: u32 = 1;
/// `VFIO_DMA_MAP_FLAG_WRITE`.
pub const DMA_MAP_FLAG_WRITE: u32 = 2;
/// `VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP`.
pub const DMA_UNMAP_FLAG_GET_DIRTY_BITMAP: u32 = 1;
/// PCI regions: BARs 0..=5, ROM 6, config space 7, VGA 8.
pub const PCI_NUM_REGIONS: u32 = 9;
/// The config-space region.
pub const PCI_CONFIG_REGION: u32 = 7;
/// PCI IRQ indices: INTx 0, MSI 1, MSI-X 2, ERR 3, REQ 4.
pub const PCI_NUM_IRQS: u32 = 5;
/// The MSI-X index.
pub const PCI_MSIX_IRQ: u32 = 2;
/// vfio-pci puts region `index` at `index << 40` in the device fd.
pub const REGION_OFFSET_SHIFT: u32 = 40;

/// Every VFIO request accelgate knows, for names in logs and counters (container meanings first
/// where numbers are shared).
pub const IOCTLS: [IoctlDef; 21] = [
    GET_API_VERSION,
    CHECK_EXTENSION,
    SET_IOMMU,
    GROUP_GET_STATUS,
    GROUP_SET_CONTAINER,
    GROUP_UNSET_CONTAINER,
    GROUP_GET_DEVICE_FD,
    DEVICE_GET_INFO,
    DEVICE_GET_REGION_INFO,
    DEVICE_GET_IRQ_INFO,
    DEVICE_SET_IRQS,
    DEVICE_RESET,
    IOMMU_GET_INFO,
    IOMMU_MAP_DMA,
    IOMMU_UNMAP_DMA,
    IOMMU_ENABLE,
    IOMMU_DISABLE,
    DEVICE_FEATURE,
    DEVICE_BIND_IOMMUFD,
    DEVICE_ATTACH_IOMMUFD_PT,
    DEVICE_DETACH_IOMMUFD_PT,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_match_the_uapi_header() {
        let pinned = [
            (GET_API_VERSION, 0x3b64),
            (CHECK_EXTENSION, 0x3b65),
            (SET_IOMMU, 0x3b66),
            (GROUP_GET_STATUS, 0x3b67),
            (GROUP_SET_CONTAINER, 0x3b68),
            (GROUP_UNSET_CONTAINER, 0x3b69),
            (GROUP_GET_DEVICE_FD, 0x3b6a),
            (DEVICE_GET_INFO, 0x3b6b),
            (DEVICE_GET_REGION_INFO, 0x3b6c),
            (DEVICE_GET_IRQ_INFO, 0x3b6d),
            (DEVICE_SET_IRQS, 0x3b6e),
            (DEVICE_RESET, 0x3b6f),
            (IOMMU_GET_INFO, 0x3b70),
            (IOMMU_MAP_DMA, 0x3b71),
            (IOMMU_UNMAP_DMA, 0x3b72),
            (DEVICE_IOEVENTFD, 0x3b74),
            (DEVICE_FEATURE, 0x3b75),
            (DEVICE_BIND_IOMMUFD, 0x3b76),
        ];
        for (def, value) in pinned {
            assert_eq!(def.request, value, "{}", def.name);
        }
        // Numbers shared between fd kinds: the (fd kind, request) key is what tells them apart.
        assert_eq!(DEVICE_IOEVENTFD.request, IOMMU_DISABLE.request);
        assert_eq!(DEVICE_PCI_HOT_RESET.request, IOMMU_MAP_DMA.request);
    }
}
