//! Numbers of the Google accel class (TPU v4 and v4lite), from tensorflow/tpu
//! `include/linux/accel.h`.

/// Character major of the Google accel class: `/dev/accelN` is 121:N.
pub const ACCEL_MAJOR: u32 = 121;

/// Character major of the upstream DRM accel subsystem (`/dev/accel/accelN`, NPUs and the
/// like). It shares the `accel` sysfs class name with TPUs, so the major tells them apart.
pub const DRM_ACCEL_MAJOR: u32 = 261;

/// The sysfs class both of them register.
pub const ACCEL_CLASS: &str = "accel";

use crate::family::{IoctlDef, io, ior, iow, iowr};

/// The gasket ioctl magic (tensorflow/tpu `gasket.h`).
pub const GASKET_MAGIC: u8 = 0xdc;

/// `struct gasket_interrupt_eventfd`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GasketInterruptEventfd {
    /// Interrupt number.
    pub interrupt: u64,
    /// eventfd to signal.
    pub event_fd: u64,
}

/// `struct gasket_page_table_ioctl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GasketPageTableIoctl {
    /// Which page table.
    pub page_table_index: u64,
    /// Bytes.
    pub size: u64,
    /// Caller's virtual address.
    pub host_address: u64,
    /// Device address.
    pub device_address: u64,
}

/// `struct gasket_interrupt_mapping`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GasketInterruptMapping {
    /// Interrupt number (index into the chip's interrupt list).
    pub interrupt: u64,
    /// eventfd to signal.
    pub event_fd: u64,
    /// BAR of the interrupt's register.
    pub bar_index: u64,
    /// Register offset in that BAR.
    pub reg_offset: u64,
}

/// `struct gasket_page_table_ioctl_dmabuf` (an `int` at the end, padded to 24 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GasketPageTableIoctlDmabuf {
    /// Which page table.
    pub page_table_index: u64,
    /// Device address.
    pub device_address: u64,
    /// The dma-buf fd.
    pub dmabuf_fd: i32,
}

const _: () = assert!(size_of::<GasketInterruptEventfd>() == 16);
const _: () = assert!(size_of::<GasketPageTableIoctl>() == 32);
const _: () = assert!(size_of::<GasketInterruptMapping>() == 32);
const _: () = assert!(size_of::<GasketPageTableIoctlDmabuf>() == 24);

const fn def(name: &'static str, request: u32, arg_size: usize) -> IoctlDef {
    IoctlDef {
        name,
        request,
        arg_size,
    }
}

/// `GASKET_IOCTL_RESET`: reset the chip (argument by value).
pub const RESET: IoctlDef = def("GASKET_IOCTL_RESET", iow(GASKET_MAGIC, 0, 8), 0);
/// `GASKET_IOCTL_SET_EVENTFD`.
pub const SET_EVENTFD: IoctlDef = def(
    "GASKET_IOCTL_SET_EVENTFD",
    iow(GASKET_MAGIC, 1, size_of::<GasketInterruptEventfd>()),
    16,
);
/// `GASKET_IOCTL_CLEAR_EVENTFD`.
pub const CLEAR_EVENTFD: IoctlDef = def("GASKET_IOCTL_CLEAR_EVENTFD", iow(GASKET_MAGIC, 2, 8), 0);
/// Upstream staging gasket's `GASKET_IOCTL_LOOPBACK_INTERRUPT`: another ABI; refused.
pub const LOOPBACK_INTERRUPT: IoctlDef = def(
    "GASKET_IOCTL_LOOPBACK_INTERRUPT",
    iow(GASKET_MAGIC, 3, 8),
    0,
);
/// `GASKET_IOCTL_NUMBER_PAGE_TABLES`: writes a u64.
pub const NUMBER_PAGE_TABLES: IoctlDef = def(
    "GASKET_IOCTL_NUMBER_PAGE_TABLES",
    ior(GASKET_MAGIC, 4, 8),
    8,
);
/// `GASKET_IOCTL_PAGE_TABLE_SIZE`.
pub const PAGE_TABLE_SIZE: IoctlDef = def(
    "GASKET_IOCTL_PAGE_TABLE_SIZE",
    iowr(GASKET_MAGIC, 5, size_of::<GasketPageTableIoctl>()),
    32,
);
/// `GASKET_IOCTL_SIMPLE_PAGE_TABLE_SIZE`.
pub const SIMPLE_PAGE_TABLE_SIZE: IoctlDef = def(
    "GASKET_IOCTL_SIMPLE_PAGE_TABLE_SIZE",
    iowr(GASKET_MAGIC, 6, size_of::<GasketPageTableIoctl>()),
    32,
);
/// `GASKET_IOCTL_PARTITION_PAGE_TABLE`.
pub const PARTITION_PAGE_TABLE: IoctlDef = def(
    "GASKET_IOCTL_PARTITION_PAGE_TABLE",
    iow(GASKET_MAGIC, 7, size_of::<GasketPageTableIoctl>()),
    32,
);
/// `GASKET_IOCTL_MAP_BUFFER`: pins the caller's pages.
pub const MAP_BUFFER: IoctlDef = def(
    "GASKET_IOCTL_MAP_BUFFER",
    iow(GASKET_MAGIC, 8, size_of::<GasketPageTableIoctl>()),
    32,
);
/// `GASKET_IOCTL_UNMAP_BUFFER`.
pub const UNMAP_BUFFER: IoctlDef = def(
    "GASKET_IOCTL_UNMAP_BUFFER",
    iow(GASKET_MAGIC, 9, size_of::<GasketPageTableIoctl>()),
    32,
);
/// `GASKET_IOCTL_CLEAR_INTERRUPT_COUNTS`.
pub const CLEAR_INTERRUPT_COUNTS: IoctlDef = def(
    "GASKET_IOCTL_CLEAR_INTERRUPT_COUNTS",
    io(GASKET_MAGIC, 10),
    0,
);
/// `GASKET_IOCTL_REGISTER_INTERRUPT`: an eventfd for an interrupt register.
pub const REGISTER_INTERRUPT: IoctlDef = def(
    "GASKET_IOCTL_REGISTER_INTERRUPT",
    iow(GASKET_MAGIC, 11, size_of::<GasketInterruptMapping>()),
    32,
);
/// Upstream staging gasket's `GASKET_IOCTL_CONFIG_COHERENT_ALLOCATOR` (same nr, `_IOWR`).
pub const CONFIG_COHERENT_ALLOCATOR: IoctlDef = def(
    "GASKET_IOCTL_CONFIG_COHERENT_ALLOCATOR",
    iowr(GASKET_MAGIC, 11, 32),
    32,
);
/// `GASKET_IOCTL_UNREGISTER_INTERRUPT` (argument by value).
pub const UNREGISTER_INTERRUPT: IoctlDef = def(
    "GASKET_IOCTL_UNREGISTER_INTERRUPT",
    iow(GASKET_MAGIC, 12, 8),
    0,
);
/// `GASKET_IOCTL_MAP_DMA_BUF`.
pub const MAP_DMA_BUF: IoctlDef = def(
    "GASKET_IOCTL_MAP_DMA_BUF",
    iow(GASKET_MAGIC, 13, size_of::<GasketPageTableIoctlDmabuf>()),
    24,
);

/// Every gasket request accelgate knows, for names in logs and counters.
pub const IOCTLS: [IoctlDef; 15] = [
    RESET,
    SET_EVENTFD,
    CLEAR_EVENTFD,
    LOOPBACK_INTERRUPT,
    NUMBER_PAGE_TABLES,
    PAGE_TABLE_SIZE,
    SIMPLE_PAGE_TABLE_SIZE,
    PARTITION_PAGE_TABLE,
    MAP_BUFFER,
    UNMAP_BUFFER,
    CLEAR_INTERRUPT_COUNTS,
    REGISTER_INTERRUPT,
    CONFIG_COHERENT_ALLOCATOR,
    UNREGISTER_INTERRUPT,
    MAP_DMA_BUF,
];

/// Page tables of a TPU v4 or v4 lite (`NumberOfTPUV4PageTables`).
pub const PAGE_TABLES: u64 = 1;

/// The BAR that holds interrupt registers.
pub const INTERRUPT_BAR: u64 = 2;

/// Interrupts of a TPU v4 (`SizeOfTPUV4InterruptList`).
pub const V4_INTERRUPTS: u64 = 45;
/// Interrupts of a TPU v4 lite.
pub const V4LITE_INTERRUPTS: u64 = 37;

/// BAR 2 register offsets a TPU v4 interrupt may be registered on (tensorflow/tpu
/// `tpu_common`, as gVisor's `TPUV4InterruptsMap`).
pub const V4_INTERRUPT_OFFSETS: [u64; 45] = [
    0x15b0008, 0x15b0000, 0x16b0008, 0x16b0000, 0x17b0008, 0x17b0000, 0x18b0008, 0x18b0000,
    0x19b0020, 0x19b0000, 0x19b0008, 0x19b0010, 0x19b0018, 0x1ab0020, 0x1ab0000, 0x1ab0008,
    0x1ab0010, 0x1ab0018, 0x4720000, 0x1bb0000, 0x1bb0008, 0x1bb0010, 0x1bb0018, 0x90000, 0xb0000,
    0xd0000, 0xf0000, 0x110000, 0x130000, 0x150000, 0x170000, 0x190000, 0x1b0000, 0x1d0000,
    0x1f0000, 0x210000, 0x230000, 0x250000, 0x270000, 0x290000, 0x2b0000, 0x2d0000, 0x2f0000,
    0x310000, 0x4720018,
];

/// BAR 2 register offsets a TPU v4 lite interrupt may be registered on.
pub const V4LITE_INTERRUPT_OFFSETS: [u64; 37] = [
    0x19b0020, 0x19b0000, 0x19b0008, 0x19b0010, 0x19b0018, 0x1ab0020, 0x1ab0000, 0x1ab0008,
    0x1ab0010, 0x1ab0018, 0x4720000, 0x1bb0000, 0x1bb0008, 0x1bb0010, 0x1bb0018, 0x90000, 0xb0000,
    0xd0000, 0xf0000, 0x110000, 0x130000, 0x150000, 0x170000, 0x190000, 0x1b0000, 0x1d0000,
    0x1f0000, 0x210000, 0x230000, 0x250000, 0x270000, 0x290000, 0x2b0000, 0x2d0000, 0x2f0000,
    0x310000, 0x4720018,
];

/// BAR bases of the gasket mmap space: the offset of a BAR's first byte in an `mmap` of the
/// device (tensorflow/tpu `tpuv4.h`): BAR 0 (read-only) and BAR 2.
pub const BAR0_BASE: u64 = 0x0;
/// BAR 0 size.
pub const BAR0_SIZE: u64 = 0x400_0000;
/// BAR 2 base.
pub const BAR2_BASE: u64 = 0x1000_0000;
/// BAR 2 size.
pub const BAR2_SIZE: u64 = 0x8000_0000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_match_the_driver() {
        let pinned = [
            (RESET, 0x4008_dc00),
            (SET_EVENTFD, 0x4010_dc01),
            (CLEAR_EVENTFD, 0x4008_dc02),
            (NUMBER_PAGE_TABLES, 0x8008_dc04),
            (PAGE_TABLE_SIZE, 0xc020_dc05),
            (SIMPLE_PAGE_TABLE_SIZE, 0xc020_dc06),
            (PARTITION_PAGE_TABLE, 0x4020_dc07),
            (MAP_BUFFER, 0x4020_dc08),
            (UNMAP_BUFFER, 0x4020_dc09),
            (CLEAR_INTERRUPT_COUNTS, 0x0000_dc0a),
            (REGISTER_INTERRUPT, 0x4020_dc0b),
            (CONFIG_COHERENT_ALLOCATOR, 0xc020_dc0b),
            (UNREGISTER_INTERRUPT, 0x4008_dc0c),
            (MAP_DMA_BUF, 0x4018_dc0d),
        ];
        for (def, value) in pinned {
            assert_eq!(def.request, value, "{}", def.name);
        }
    }

    #[test]
    fn interrupt_lists_have_their_sizes_and_no_duplicates() {
        assert_eq!(V4_INTERRUPT_OFFSETS.len() as u64, V4_INTERRUPTS);
        assert_eq!(V4LITE_INTERRUPT_OFFSETS.len() as u64, V4LITE_INTERRUPTS);
        for list in [&V4_INTERRUPT_OFFSETS[..], &V4LITE_INTERRUPT_OFFSETS[..]] {
            let mut sorted = list.to_vec();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), list.len());
        }
        assert!(
            V4LITE_INTERRUPT_OFFSETS
                .iter()
                .all(|o| V4_INTERRUPT_OFFSETS.contains(o))
        );
    }
}
