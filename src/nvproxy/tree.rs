//! The tree of driver versions: each node is its parent's ABI plus deltas, following NVIDIA's
//! release branches (the 535 branch leaves the main line at 535.113.01, 570 at 570.133.20, 580
//! at 580.105.08). Folding the deltas from the root to a node gives that version's ABI. The
//! nodes are gVisor's (its `version.go`), plus 595.45.04, the newest release whose headers the
//! sizes here were checked against; sizes come from compiling NVIDIA's headers at each
//! branch's release tag (docs/nvidia.md says how to add a version).
//!
//! A change goes on the first version that has it. A node that no release build of accelgate
//! was checked against is `supported: false`: it exists to carry deltas, and a host running it
//! is refused unless the operator names an ABI to use.

use super::DriverCaps;
use super::abi::*;
use super::table::{
    Abi, Class, Control, Delta, Escape, GpuIds, Handling, Layout, Nodes, Pointer, Size, UvmCommand,
};
use super::version::DriverVersion;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

/// One version of the tree.
#[derive(Debug, Clone, Copy)]
pub struct Node {
    /// The version.
    pub version: DriverVersion,
    /// The version it changes (None for the root).
    pub parent: Option<DriverVersion>,
    /// Whether hosts may run it without an override.
    pub supported: bool,
    /// What it changes.
    pub deltas: &'static [Delta],
}

const fn v(major: u32, minor: u32, patch: u32) -> DriverVersion {
    DriverVersion::new(major, minor, patch)
}

const CU: DriverCaps = DriverCaps::COMPUTE.or(DriverCaps::UTILITY);
const COMPUTE: DriverCaps = DriverCaps::COMPUTE;
const ANY: DriverCaps = DriverCaps::ANY;
const GRAPHICS: DriverCaps = DriverCaps::GRAPHICS;
const GRAPHICS_VIDEO: DriverCaps = DriverCaps::GRAPHICS.or(DriverCaps::VIDEO);

const fn escape(
    name: &'static str,
    nr: u8,
    size: Size,
    nodes: Nodes,
    caps: DriverCaps,
    handling: Handling,
) -> Delta {
    Delta::Escape(Escape {
        name,
        nr,
        size,
        nodes,
        caps,
        handling,
    })
}

const fn plain(name: &'static str, cmd: u32, params_size: u32) -> Delta {
    Delta::Control(Control {
        name,
        cmd,
        params_size,
        layout: Layout::Plain,
        gpu_ids: GpuIds::None,
        caps: CU,
    })
}

const fn with_ids(name: &'static str, cmd: u32, params_size: u32, gpu_ids: GpuIds) -> Delta {
    Delta::Control(Control {
        name,
        cmd,
        params_size,
        layout: Layout::Plain,
        gpu_ids,
        caps: CU,
    })
}

const fn pointers(
    name: &'static str,
    cmd: u32,
    params_size: u32,
    pointers: &'static [Pointer],
) -> Delta {
    Delta::Control(Control {
        name,
        cmd,
        params_size,
        layout: Layout::Pointers(pointers),
        gpu_ids: GpuIds::None,
        caps: CU,
    })
}

/// A list at 8 counted by the u32 at 0, `unit` bytes per entry: most `_GET_*` info lists.
const LIST_AT_8: [Pointer; 1] = [Pointer {
    offset: 8,
    count: 0,
    unit: 8,
}];
/// The same, 4 bytes per entry (class and engine lists).
const WORDS_AT_8: [Pointer; 1] = [Pointer {
    offset: 8,
    count: 0,
    unit: 4,
}];
/// A table at 8 of as many bytes as the u32 at 0 says (the `_GET_CAPS` tables).
const BYTES_AT_8: [Pointer; 1] = [Pointer {
    offset: 8,
    count: 0,
    unit: 1,
}];
/// `NV2080_CTRL_CE_GET_CAPS_PARAMS`: the table's size is at 4.
const CE_CAPS: [Pointer; 1] = [Pointer {
    offset: 8,
    count: 4,
    unit: 1,
}];
/// `NV0000_CTRL_SYSTEM_GET_BUILD_VERSION_PARAMS`: three strings of `sizeOfStrings` bytes.
const BUILD_VERSION: [Pointer; 3] = [
    Pointer {
        offset: 8,
        count: 0,
        unit: 1,
    },
    Pointer {
        offset: 16,
        count: 0,
        unit: 1,
    },
    Pointer {
        offset: 24,
        count: 0,
        unit: 1,
    },
];

const fn class(name: &'static str, id: u32, params_size: u32, caps: DriverCaps) -> Delta {
    Delta::Class(Class {
        name,
        id,
        params_size,
        fd_at: None,
        caps,
    })
}

const fn uvm(name: &'static str, number: u32) -> Delta {
    Delta::Uvm(UvmCommand {
        name,
        number,
        caps: CU,
    })
}

/// `GPU_GET_ATTACHED_IDS`: one list.
const IDS_AT_0: GpuIds = GpuIds::ListsAt(&[0]);
/// `GPU_GET_PROBED_IDS`: the probed and the excluded GPUs (and from 580 a third list), each of
/// which would name the host's other GPUs.
const PROBED_LISTS: GpuIds = GpuIds::ListsAt(&[0, 128, 256]);

/// 535.104.05: the root, the whole table.
const ROOT: &[Delta] = &[
    Delta::BadParamsStatus(NV_ERR_INVALID_PARAM_STRUCT),
    // Escapes.
    escape(
        "NV_ESC_CARD_INFO",
        NV_ESC_CARD_INFO,
        Size::ArrayOf {
            element: 72,
            max: 32,
        },
        Nodes::Ctl,
        ANY,
        Handling::CardInfo,
    ),
    escape(
        "NV_ESC_REGISTER_FD",
        NV_ESC_REGISTER_FD,
        Size::Exact(4),
        Nodes::Any,
        ANY,
        Handling::Continue,
    ),
    escape(
        "NV_ESC_ALLOC_OS_EVENT",
        NV_ESC_ALLOC_OS_EVENT,
        Size::Exact(16),
        Nodes::Any,
        ANY,
        Handling::Continue,
    ),
    escape(
        "NV_ESC_FREE_OS_EVENT",
        NV_ESC_FREE_OS_EVENT,
        Size::Exact(16),
        Nodes::Any,
        ANY,
        Handling::Continue,
    ),
    escape(
        "NV_ESC_CHECK_VERSION_STR",
        NV_ESC_CHECK_VERSION_STR,
        Size::Exact(72),
        Nodes::Ctl,
        ANY,
        Handling::Continue,
    ),
    escape(
        "NV_ESC_ATTACH_GPUS_TO_FD",
        NV_ESC_ATTACH_GPUS_TO_FD,
        Size::ArrayOf {
            element: 4,
            max: 32,
        },
        Nodes::Ctl,
        ANY,
        Handling::AttachGpus,
    ),
    escape(
        "NV_ESC_SYS_PARAMS",
        NV_ESC_SYS_PARAMS,
        Size::Exact(8),
        Nodes::Ctl,
        ANY,
        Handling::Continue,
    ),
    escape(
        "NV_ESC_EXPORT_TO_DMABUF_FD",
        NV_ESC_EXPORT_TO_DMABUF_FD,
        Size::Exact(2600),
        Nodes::Gpu,
        DriverCaps::RDMA,
        Handling::Continue,
    ),
    escape(
        "NV_ESC_RM_ALLOC_MEMORY",
        NV_ESC_RM_ALLOC_MEMORY,
        Size::Exact(56),
        Nodes::Gpu,
        ANY,
        Handling::Continue,
    ),
    escape(
        "NV_ESC_RM_FREE",
        NV_ESC_RM_FREE,
        Size::Exact(16),
        Nodes::Ctl,
        ANY,
        Handling::Continue,
    ),
    escape(
        "NV_ESC_RM_CONTROL",
        NV_ESC_RM_CONTROL,
        Size::Exact(32),
        Nodes::Ctl,
        ANY,
        Handling::Control,
    ),
    escape(
        "NV_ESC_RM_ALLOC",
        NV_ESC_RM_ALLOC,
        Size::Either(32, 48),
        Nodes::Any,
        ANY,
        Handling::Alloc,
    ),
    escape(
        "NV_ESC_RM_DUP_OBJECT",
        NV_ESC_RM_DUP_OBJECT,
        Size::Exact(28),
        Nodes::Ctl,
        ANY,
        Handling::Continue,
    ),
    escape(
        "NV_ESC_RM_SHARE",
        NV_ESC_RM_SHARE,
        Size::Exact(24),
        Nodes::Ctl,
        ANY,
        Handling::Continue,
    ),
    escape(
        "NV_ESC_RM_IDLE_CHANNELS",
        NV_ESC_RM_IDLE_CHANNELS,
        Size::Exact(56),
        Nodes::Ctl,
        GRAPHICS,
        Handling::Continue,
    ),
    escape(
        "NV_ESC_RM_VID_HEAP_CONTROL",
        NV_ESC_RM_VID_HEAP_CONTROL,
        Size::Exact(184),
        Nodes::Ctl,
        ANY,
        Handling::VidHeap,
    ),
    escape(
        "NV_ESC_RM_MAP_MEMORY",
        NV_ESC_RM_MAP_MEMORY,
        Size::Exact(56),
        Nodes::Ctl,
        ANY,
        Handling::Continue,
    ),
    escape(
        "NV_ESC_RM_UNMAP_MEMORY",
        NV_ESC_RM_UNMAP_MEMORY,
        Size::Exact(32),
        Nodes::Ctl,
        ANY,
        Handling::Continue,
    ),
    escape(
        "NV_ESC_RM_ALLOC_CONTEXT_DMA2",
        NV_ESC_RM_ALLOC_CONTEXT_DMA2,
        Size::Exact(56),
        Nodes::Ctl,
        GRAPHICS,
        Handling::Continue,
    ),
    escape(
        "NV_ESC_RM_MAP_MEMORY_DMA",
        NV_ESC_RM_MAP_MEMORY_DMA,
        Size::Exact(56),
        Nodes::Ctl,
        GRAPHICS_VIDEO,
        Handling::Continue,
    ),
    escape(
        "NV_ESC_RM_UNMAP_MEMORY_DMA",
        NV_ESC_RM_UNMAP_MEMORY_DMA,
        Size::Exact(40),
        Nodes::Ctl,
        GRAPHICS_VIDEO,
        Handling::Continue,
    ),
    escape(
        "NV_ESC_RM_UPDATE_DEVICE_MAPPING_INFO",
        NV_ESC_RM_UPDATE_DEVICE_MAPPING_INFO,
        Size::Exact(40),
        Nodes::Ctl,
        ANY,
        Handling::Continue,
    ),
    // NV0000: the client (system, GPU inventory).
    pointers(
        "NV0000_CTRL_CMD_SYSTEM_GET_BUILD_VERSION",
        0x101,
        40,
        &BUILD_VERSION,
    ),
    plain("NV0000_CTRL_CMD_SYSTEM_GET_BUILD_VERSION_V2", 0x13e, 776),
    plain("NV0000_CTRL_CMD_SYSTEM_GET_FABRIC_STATUS", 0x136, 4),
    plain("NV0000_CTRL_CMD_SYSTEM_GET_P2P_CAPS_V2", 0x12b, 4252),
    with_ids("NV0000_CTRL_CMD_GPU_GET_ATTACHED_IDS", 0x201, 128, IDS_AT_0),
    with_ids(
        "NV0000_CTRL_CMD_GPU_GET_ID_INFO_V2",
        0x205,
        32,
        GpuIds::Names {
            offset: 0,
            single: true,
        },
    ),
    with_ids(
        "NV0000_CTRL_CMD_GPU_GET_PROBED_IDS",
        0x214,
        256,
        PROBED_LISTS,
    ),
    with_ids(
        "NV0000_CTRL_CMD_GPU_ATTACH_IDS",
        0x215,
        132,
        GpuIds::Names {
            offset: 0,
            single: false,
        },
    ),
    with_ids(
        "NV0000_CTRL_CMD_GPU_DETACH_IDS",
        0x216,
        128,
        GpuIds::Names {
            offset: 0,
            single: false,
        },
    ),
    with_ids(
        "NV0000_CTRL_CMD_GPU_GET_PCI_INFO",
        0x21b,
        12,
        GpuIds::Names {
            offset: 0,
            single: true,
        },
    ),
    plain("NV0000_CTRL_CMD_GPU_GET_UUID_INFO", 0x274, 272),
    with_ids(
        "NV0000_CTRL_CMD_GPU_GET_UUID_FROM_GPU_ID",
        0x275,
        268,
        GpuIds::Names {
            offset: 0,
            single: true,
        },
    ),
    plain("NV0000_CTRL_CMD_GPU_GET_MEMOP_ENABLE", 0x27b, 4),
    plain("NV0000_CTRL_CMD_SYNC_GPU_BOOST_GROUP_INFO", 0xa04, 2244),
    plain("NV0000_CTRL_CMD_CLIENT_GET_ADDR_SPACE_TYPE", 0xd01, 12),
    plain(
        "NV0000_CTRL_CMD_CLIENT_SET_INHERITED_SHARE_POLICY",
        0xd04,
        12,
    ),
    // NV0080: a device.
    pointers(
        "NV0080_CTRL_CMD_GPU_GET_CLASSLIST",
        0x80_0201,
        16,
        &WORDS_AT_8,
    ),
    plain("NV0080_CTRL_CMD_GPU_GET_NUM_SUBDEVICES", 0x80_0280, 4),
    plain("NV0080_CTRL_CMD_GPU_GET_VIRTUALIZATION_MODE", 0x80_0289, 4),
    plain("NV0080_CTRL_CMD_GPU_GET_CLASSLIST_V2", 0x80_0292, 644),
    pointers("NV0080_CTRL_CMD_GR_GET_CAPS", 0x80_1102, 16, &BYTES_AT_8),
    plain("NV0080_CTRL_CMD_GR_GET_CAPS_V2", 0x80_1109, 48),
    pointers("NV0080_CTRL_CMD_FB_GET_CAPS", 0x80_1301, 16, &BYTES_AT_8),
    plain("NV0080_CTRL_CMD_FB_GET_CAPS_V2", 0x80_1307, 3),
    plain("NV0080_CTRL_CMD_HOST_GET_CAPS_V2", 0x80_1402, 3),
    pointers("NV0080_CTRL_CMD_FIFO_GET_CAPS", 0x80_1701, 16, &BYTES_AT_8),
    plain("NV0080_CTRL_CMD_FIFO_GET_CAPS_V2", 0x80_1713, 2),
    Delta::Control(Control {
        name: "NV0080_CTRL_CMD_BSP_GET_CAPS_V2",
        cmd: 0x80_1c02,
        params_size: 12,
        layout: Layout::Plain,
        gpu_ids: GpuIds::None,
        caps: DriverCaps::VIDEO,
    }),
    // NV2080: a subdevice.
    plain("NV2080_CTRL_CMD_GPU_GET_INFO_V2", 0x2080_0102, 516),
    plain("NV2080_CTRL_CMD_GPU_GET_NAME_STRING", 0x2080_0110, 132),
    plain("NV2080_CTRL_CMD_GPU_GET_SHORT_NAME_STRING", 0x2080_0111, 64),
    plain("NV2080_CTRL_CMD_GPU_GET_SIMULATION_INFO", 0x2080_0119, 4),
    pointers(
        "NV2080_CTRL_CMD_GPU_GET_ENGINES",
        0x2080_0123,
        16,
        &WORDS_AT_8,
    ),
    plain("NV2080_CTRL_CMD_GPU_QUERY_ECC_STATUS", 0x2080_012f, 984),
    plain("NV2080_CTRL_CMD_GPU_GET_GID_INFO", 0x2080_014a, 268),
    plain("NV2080_CTRL_CMD_GPU_GET_ENGINES_V2", 0x2080_0170, 252),
    plain("NV2080_CTRL_CMD_GPU_GET_PARTITIONS", 0x2080_0175, 1800),
    plain(
        "NV2080_CTRL_CMD_GPU_GET_PARTITION_CAPACITY",
        0x2080_0181,
        280,
    ),
    plain(
        "NV2080_CTRL_CMD_GPU_GET_ACTIVE_PARTITION_IDS",
        0x2080_018b,
        40,
    ),
    plain(
        "NV2080_CTRL_CMD_GPU_GET_COMPUTE_POLICY_CONFIG",
        0x2080_0195,
        260,
    ),
    plain("NV2080_CTRL_CMD_GPU_GET_COMPUTE_PROFILES", 0x2080_01a2, 124),
    plain(
        "NV2080_CTRL_CMD_TIMER_GET_GPU_CPU_TIME_CORRELATION_INFO",
        0x2080_0406,
        264,
    ),
    pointers("NV2080_CTRL_CMD_GR_GET_INFO", 0x2080_1201, 32, &LIST_AT_8),
    plain("NV2080_CTRL_CMD_GR_GET_GPC_MASK", 0x2080_122a, 24),
    plain("NV2080_CTRL_CMD_GR_GET_TPC_MASK", 0x2080_122b, 24),
    pointers("NV2080_CTRL_CMD_FB_GET_INFO", 0x2080_1301, 16, &LIST_AT_8),
    plain("NV2080_CTRL_CMD_FB_GET_INFO_V2", 0x2080_1303, 436),
    plain("NV2080_CTRL_CMD_MC_GET_ARCH_INFO", 0x2080_1701, 16),
    plain("NV2080_CTRL_CMD_BUS_GET_PCI_INFO", 0x2080_1801, 16),
    pointers("NV2080_CTRL_CMD_BUS_GET_INFO", 0x2080_1802, 16, &LIST_AT_8),
    plain("NV2080_CTRL_CMD_BUS_GET_PCI_BAR_INFO", 0x2080_1803, 200),
    plain("NV2080_CTRL_CMD_BUS_GET_INFO_V2", 0x2080_1823, 420),
    plain("NV2080_CTRL_CMD_PERF_BOOST", 0x2080_200a, 8),
    pointers("NV2080_CTRL_CMD_CE_GET_CAPS", 0x2080_2a01, 16, &CE_CAPS),
    plain("NV2080_CTRL_CMD_CE_GET_CAPS_V2", 0x2080_2a03, 8),
    plain("NV2080_CTRL_CMD_CE_GET_ALL_CAPS", 0x2080_2a0a, 68),
    plain(
        "NV2080_CTRL_CMD_NVLINK_GET_NVLINK_STATUS",
        0x2080_3002,
        5896,
    ),
    plain("NV2080_CTRL_CMD_GSP_GET_FEATURES", 0x2080_3601, 72),
    // Classes.
    class("NV01_ROOT", 0x0, 108, ANY),
    class("NV01_ROOT_NON_PRIV", 0x1, 108, ANY),
    class("NV01_ROOT_CLIENT", 0x41, 108, ANY),
    class("NV01_MEMORY_SYSTEM", 0x3e, 120, ANY),
    class("NV01_MEMORY_LOCAL_USER", 0x40, 120, ANY),
    class("NV01_MEMORY_VIRTUAL", 0x70, 24, ANY),
    Delta::Class(Class {
        name: "NV01_EVENT_OS_EVENT",
        id: 0x79,
        params_size: 24,
        fd_at: Some(16),
        caps: ANY,
    }),
    class("NV01_DEVICE_0", 0x80, 56, ANY),
    class("NV20_SUBDEVICE_0", 0x2080, 4, ANY),
    class("NV50_THIRD_PARTY_P2P", 0x503c, 4, COMPUTE),
    class("NV50_P2P", 0x503b, 72, COMPUTE),
    class("GT200_DEBUGGER", 0x83de, 12, COMPUTE),
    class("FERMI_CONTEXT_SHARE_A", 0x9067, 12, ANY),
    class("FERMI_VASPACE_A", 0x90f1, 48, ANY),
    class("KEPLER_CHANNEL_GROUP_A", 0xa06c, 20, ANY),
    class("VOLTA_COMPUTE_A", 0xc3c0, 16, COMPUTE),
    class("TURING_USERMODE_A", 0xc461, 0, ANY),
    class("TURING_CHANNEL_GPFIFO_A", 0xc46f, 360, ANY),
    class("TURING_COMPUTE_A", 0xc5c0, 16, COMPUTE),
    class("AMPERE_USERMODE_A", 0xc561, 0, ANY),
    class("AMPERE_CHANNEL_GPFIFO_A", 0xc56f, 360, ANY),
    class("AMPERE_DMA_COPY_A", 0xc6b5, 8, ANY),
    class("AMPERE_COMPUTE_A", 0xc6c0, 16, COMPUTE),
    class("HOPPER_USERMODE_A", 0xc661, 2, ANY),
    class("AMPERE_DMA_COPY_B", 0xc7b5, 8, ANY),
    class("AMPERE_COMPUTE_B", 0xc7c0, 16, COMPUTE),
    class("HOPPER_CHANNEL_GPFIFO_A", 0xc86f, 360, ANY),
    class("HOPPER_DMA_COPY_A", 0xc8b5, 8, ANY),
    class("ADA_COMPUTE_A", 0xc9c0, 16, COMPUTE),
    class("HOPPER_COMPUTE_A", 0xcbc0, 16, COMPUTE),
    class("NV_MEMORY_FABRIC", 0xf8, 48, COMPUTE),
    // UVM.
    uvm("UVM_INITIALIZE", UVM_INITIALIZE),
    uvm("UVM_DEINITIALIZE", UVM_DEINITIALIZE),
    uvm("UVM_CREATE_RANGE_GROUP", 23),
    uvm("UVM_DESTROY_RANGE_GROUP", 24),
    uvm("UVM_REGISTER_GPU_VASPACE", 25),
    uvm("UVM_UNREGISTER_GPU_VASPACE", 26),
    uvm("UVM_REGISTER_CHANNEL", 27),
    uvm("UVM_UNREGISTER_CHANNEL", 28),
    uvm("UVM_ENABLE_PEER_ACCESS", 29),
    uvm("UVM_DISABLE_PEER_ACCESS", 30),
    uvm("UVM_SET_RANGE_GROUP", 31),
    uvm("UVM_MAP_EXTERNAL_ALLOCATION", 33),
    uvm("UVM_FREE", 34),
    uvm("UVM_REGISTER_GPU", 37),
    uvm("UVM_UNREGISTER_GPU", 38),
    uvm("UVM_PAGEABLE_MEM_ACCESS", 39),
    uvm("UVM_SET_PREFERRED_LOCATION", 42),
    uvm("UVM_UNSET_PREFERRED_LOCATION", 43),
    uvm("UVM_ENABLE_READ_DUPLICATION", 44),
    uvm("UVM_DISABLE_READ_DUPLICATION", 45),
    uvm("UVM_SET_ACCESSED_BY", 46),
    uvm("UVM_UNSET_ACCESSED_BY", 47),
    uvm("UVM_MIGRATE", 51),
    uvm("UVM_MIGRATE_RANGE_GROUP", 53),
    uvm("UVM_MAP_DYNAMIC_PARALLELISM_REGION", 65),
    uvm("UVM_UNMAP_EXTERNAL", 66),
    uvm("UVM_ALLOC_SEMAPHORE_POOL", 68),
    Delta::Uvm(UvmCommand {
        name: "UVM_PAGEABLE_MEM_ACCESS_ON_GPU",
        number: 70,
        caps: DriverCaps::VIDEO,
    }),
    uvm("UVM_VALIDATE_VA_RANGE", 72),
    uvm("UVM_CREATE_EXTERNAL_RANGE", 73),
    uvm("UVM_MM_INITIALIZE", 75),
];

/// 545.23.06: memory allocation parameters grow; the 545 controls' sizes.
const V545_23_06: &[Delta] = &[
    Delta::ClassSize(0x3e, 128),
    Delta::ClassSize(0x40, 128),
    Delta::ControlSize(0x2080_0102, 524),
    Delta::ControlSize(0x2080_0170, 256),
    Delta::ControlSize(0x2080_0175, 1864),
    Delta::ControlSize(0x2080_012f, 1024),
    Delta::ControlSize(0x2080_1303, 444),
    Delta::ControlSize(0x2080_2a0a, 136),
];

/// 550.40.07: a wrong `paramsSize` is `NV_ERR_INVALID_ARGUMENT`; `WAIT_OPEN_COMPLETE`;
/// NVOS47 gains `size`; the 550 controls.
const V550_40_07: &[Delta] = &[
    Delta::BadParamsStatus(NV_ERR_INVALID_ARGUMENT),
    escape(
        "NV_ESC_WAIT_OPEN_COMPLETE",
        NV_ESC_WAIT_OPEN_COMPLETE,
        Size::Exact(8),
        Nodes::Any,
        ANY,
        Handling::Continue,
    ),
    escape(
        "NV_ESC_RM_UNMAP_MEMORY_DMA",
        NV_ESC_RM_UNMAP_MEMORY_DMA,
        Size::Exact(48),
        Nodes::Ctl,
        GRAPHICS_VIDEO,
        Handling::Continue,
    ),
    plain("NV0000_CTRL_CMD_GPU_ASYNC_ATTACH_ID", 0x289, 4),
    plain("NV0000_CTRL_CMD_GPU_WAIT_ATTACH_ID", 0x290, 4),
    plain(
        "NV2080_CTRL_CMD_GPU_GET_CONSTRUCTED_FALCON_INFO",
        0x2080_01b0,
        1284,
    ),
    Delta::ControlSize(0x12b, 8348),
    Delta::ControlSize(0x80_0292, 700),
    Delta::ControlSize(0x2080_0170, 260),
];

/// 555.42.02: the 555 controls' sizes.
const V555_42_02: &[Delta] = &[
    Delta::ControlSize(0x80_0292, 404),
    Delta::ControlSize(0x80_0289, 8),
    Delta::ControlSize(0x2080_012f, 1224),
    Delta::ControlSize(0x2080_3002, 6152),
];

/// 560.28.03: Blackwell A; the 560 controls' sizes.
const V560_28_03: &[Delta] = &[
    class("BLACKWELL_CHANNEL_GPFIFO_A", 0xc96f, 360, ANY),
    class("BLACKWELL_DMA_COPY_A", 0xc9b5, 8, ANY),
    class("BLACKWELL_COMPUTE_A", 0xcdc0, 16, COMPUTE),
    Delta::ControlSize(0x13e, 1032),
    Delta::ControlSize(0x2080_0170, 340),
    Delta::ControlSize(0x2080_012f, 1264),
    Delta::ControlSize(0x2080_1303, 460),
];

/// 565.57.01: the 565 controls' sizes.
const V565_57_01: &[Delta] = &[
    Delta::ControlSize(0x2080_012f, 1464),
    Delta::ControlSize(0x2080_01a2, 164),
];

/// 570.86.15: channel and root-client parameters grow; Blackwell B; dma-buf export grows.
const V570_86_15: &[Delta] = &[
    Delta::ClassSize(0x0, 120),
    Delta::ClassSize(0x1, 120),
    Delta::ClassSize(0x41, 120),
    Delta::ClassSize(0xc46f, 368),
    Delta::ClassSize(0xc56f, 368),
    Delta::ClassSize(0xc86f, 368),
    Delta::ClassSize(0xc96f, 368),
    class("BLACKWELL_CHANNEL_GPFIFO_B", 0xca6f, 368, ANY),
    class("BLACKWELL_DMA_COPY_B", 0xcab5, 8, ANY),
    class("BLACKWELL_USERMODE_A", 0xc761, 2, ANY),
    class("BLACKWELL_COMPUTE_B", 0xcec0, 16, COMPUTE),
    escape(
        "NV_ESC_EXPORT_TO_DMABUF_FD",
        NV_ESC_EXPORT_TO_DMABUF_FD,
        Size::Exact(2608),
        Nodes::Gpu,
        DriverCaps::RDMA,
        Handling::Continue,
    ),
    Delta::ControlSize(0x2080_01a2, 168),
    Delta::ControlSize(0x2080_3002, 13320),
];

/// 575.51.02: the 575 controls' sizes.
const V575_51_02: &[Delta] = &[Delta::ControlSize(0x2080_0102, 532)];

/// 580.65.06: NVOS46 gains `flags2`; the VA space parameters grow; the 580 controls' sizes.
const V580_65_06: &[Delta] = &[
    escape(
        "NV_ESC_RM_MAP_MEMORY_DMA",
        NV_ESC_RM_MAP_MEMORY_DMA,
        Size::Exact(64),
        Nodes::Ctl,
        GRAPHICS_VIDEO,
        Handling::Continue,
    ),
    Delta::ClassSize(0x90f1, 56),
    Delta::ControlSize(0x214, 384),
    Delta::ControlSize(0x80_0292, 804),
    Delta::ControlSize(0x2080_0102, 564),
    Delta::ControlSize(0x2080_1303, 1028),
    Delta::ControlSize(0x2080_3002, 13344),
];

/// 590.44.01: P2P parameters grow; the 590 controls' sizes.
const V590_44_01: &[Delta] = &[
    Delta::ClassSize(0x503b, 88),
    Delta::ControlSize(0x2080_012f, 1664),
    Delta::ControlSize(0x2080_3002, 13864),
];

/// 595.44.02: the GPU name string shrinks to 64 bytes.
const V595_44_02: &[Delta] = &[Delta::ControlSize(0x2080_0110, 68)];

/// 610.43.02: the UVM range-group commands are gone (gVisor's table; no header at 610 was
/// available to check).
const V610_43_02: &[Delta] = &[
    Delta::RemoveUvm(23),
    Delta::RemoveUvm(24),
    Delta::RemoveUvm(31),
    Delta::RemoveUvm(53),
];

const fn node(
    version: DriverVersion,
    parent: Option<DriverVersion>,
    supported: bool,
    deltas: &'static [Delta],
) -> Node {
    Node {
        version,
        parent,
        supported,
        deltas,
    }
}

/// Every node, parents before children.
pub const TREE: &[Node] = &[
    node(v(535, 104, 5), None, false, ROOT),
    node(v(535, 113, 1), Some(v(535, 104, 5)), false, &[]),
    // The 535 branch.
    node(v(535, 129, 3), Some(v(535, 113, 1)), true, &[]),
    node(v(535, 183, 6), Some(v(535, 129, 3)), true, &[]),
    node(v(535, 247, 1), Some(v(535, 183, 6)), true, &[]),
    node(v(535, 261, 3), Some(v(535, 247, 1)), true, &[]),
    node(v(535, 274, 2), Some(v(535, 261, 3)), true, &[]),
    node(v(535, 288, 1), Some(v(535, 274, 2)), true, &[]),
    node(v(535, 309, 1), Some(v(535, 288, 1)), true, &[]),
    // The main line.
    node(v(545, 23, 6), Some(v(535, 113, 1)), false, V545_23_06),
    node(v(550, 40, 7), Some(v(545, 23, 6)), false, V550_40_07),
    node(v(550, 54, 14), Some(v(550, 40, 7)), false, &[]),
    node(v(550, 54, 15), Some(v(550, 54, 14)), true, &[]),
    node(v(550, 90, 7), Some(v(550, 54, 14)), false, &[]),
    node(v(550, 90, 12), Some(v(550, 90, 7)), true, &[]),
    node(v(555, 42, 2), Some(v(550, 90, 7)), false, V555_42_02),
    node(v(560, 28, 3), Some(v(555, 42, 2)), false, V560_28_03),
    node(v(565, 57, 1), Some(v(560, 28, 3)), false, V565_57_01),
    node(v(570, 86, 15), Some(v(565, 57, 1)), false, V570_86_15),
    node(v(570, 124, 6), Some(v(570, 86, 15)), true, &[]),
    node(v(570, 133, 20), Some(v(570, 124, 6)), true, &[]),
    // The 570 branch.
    node(v(570, 172, 8), Some(v(570, 133, 20)), true, &[]),
    node(v(570, 195, 3), Some(v(570, 172, 8)), true, &[]),
    node(v(575, 51, 2), Some(v(570, 133, 20)), false, V575_51_02),
    node(v(580, 65, 6), Some(v(575, 51, 2)), true, V580_65_06),
    node(v(580, 95, 5), Some(v(580, 65, 6)), false, &[]),
    node(v(580, 105, 8), Some(v(580, 95, 5)), true, &[]),
    // The 580 branch.
    node(v(580, 126, 9), Some(v(580, 105, 8)), true, &[]),
    node(v(580, 126, 20), Some(v(580, 126, 9)), true, &[]),
    node(v(580, 159, 3), Some(v(580, 126, 20)), true, &[]),
    node(v(580, 159, 4), Some(v(580, 159, 3)), true, &[]),
    node(v(580, 173, 2), Some(v(580, 159, 4)), true, &[]),
    node(v(590, 44, 1), Some(v(580, 105, 8)), false, V590_44_01),
    node(v(590, 48, 1), Some(v(590, 44, 1)), true, &[]),
    node(v(595, 44, 2), Some(v(590, 48, 1)), false, V595_44_02),
    node(v(595, 45, 4), Some(v(595, 44, 2)), true, &[]),
    node(v(595, 71, 5), Some(v(595, 45, 4)), false, &[]),
    node(v(610, 43, 2), Some(v(595, 71, 5)), false, V610_43_02),
    node(v(610, 57, 4), Some(v(610, 43, 2)), true, &[]),
    node(v(615, 15, 0), Some(v(610, 43, 2)), true, &[]),
    node(v(615, 62, 0), Some(v(615, 15, 0)), true, &[]),
    node(v(620, 6, 0), Some(v(615, 15, 0)), true, &[]),
];

/// Fold errors: a tree that contradicts itself (the tests fold every node).
fn fold(node: &Node) -> Result<Abi, String> {
    let mut chain = vec![node];
    let mut at = node;
    while let Some(parent) = at.parent {
        at = find(parent).ok_or_else(|| format!("{}: no parent {parent}", at.version))?;
        chain.push(at);
    }
    let mut abi = Abi::empty(node.version);
    for step in chain.iter().rev() {
        for delta in step.deltas {
            abi.apply(delta)
                .map_err(|e| format!("{}: {e}", step.version))?;
        }
    }
    Ok(abi)
}

/// The node for `version`, if the tree has one.
pub fn find(version: DriverVersion) -> Option<&'static Node> {
    TREE.iter().find(|n| n.version == version)
}

/// The supported versions, in order.
pub fn supported() -> Vec<DriverVersion> {
    let mut out: Vec<DriverVersion> = TREE
        .iter()
        .filter(|n| n.supported)
        .map(|n| n.version)
        .collect();
    out.sort();
    out
}

/// The supported versions nearest `version`: the closest below and above it.
pub fn nearest(version: DriverVersion) -> Vec<DriverVersion> {
    let all = supported();
    let below = all.iter().rev().find(|v| **v < version).copied();
    let above = all.iter().find(|v| **v > version).copied();
    below.into_iter().chain(above).collect()
}

/// The ABI of `version`, which must be a node of the tree (folded once, then kept).
pub fn abi(version: DriverVersion) -> Result<&'static Abi, String> {
    static CACHE: OnceLock<Mutex<HashMap<DriverVersion, &'static Abi>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut cache = cache
        .lock()
        .map_err(|_| "the ABI cache is poisoned".to_owned())?;
    if let Some(abi) = cache.get(&version) {
        return Ok(abi);
    }
    let node = find(version).ok_or_else(|| format!("no ABI for driver {version}"))?;
    // One per version a process uses, kept for its life: the gate's tables point into it.
    let abi: &'static Abi = Box::leak(Box::new(fold(node)?));
    cache.insert(version, abi);
    Ok(abi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_node_folds_and_parents_come_first() {
        for (index, node) in TREE.iter().enumerate() {
            if let Some(parent) = node.parent {
                let at = TREE.iter().position(|n| n.version == parent);
                assert!(at.is_some_and(|at| at < index), "{}", node.version);
                assert!(parent < node.version, "{}", node.version);
            }
            fold(node).unwrap();
        }
        assert_eq!(TREE.iter().filter(|n| n.parent.is_none()).count(), 1);
    }

    #[test]
    fn branch_sizes_differ_where_the_headers_do() {
        let size = |v: DriverVersion, cmd: u32| abi(v).unwrap().controls[&cmd].params_size;
        let name_string = 0x2080_0110;
        let info = 0x2080_0102;
        assert_eq!(size(v(535, 129, 3), name_string), 132);
        assert_eq!(size(v(590, 48, 1), name_string), 132);
        assert_eq!(size(v(595, 45, 4), name_string), 68);
        assert_eq!(size(v(535, 129, 3), info), 516);
        assert_eq!(size(v(550, 54, 15), info), 524);
        assert_eq!(size(v(570, 195, 3), info), 524);
        // The 580 branch leaves the main line after 575.
        assert_eq!(size(v(580, 173, 2), info), 564);
        assert_eq!(
            size(v(535, 309, 1), info),
            516,
            "the 535 branch keeps 535's"
        );
        let escape = |v: DriverVersion, nr: u8| abi(v).unwrap().escapes[&nr].size;
        assert_eq!(
            escape(v(535, 129, 3), NV_ESC_RM_UNMAP_MEMORY_DMA),
            Size::Exact(40)
        );
        assert_eq!(
            escape(v(550, 90, 12), NV_ESC_RM_UNMAP_MEMORY_DMA),
            Size::Exact(48)
        );
        assert_eq!(
            escape(v(580, 65, 6), NV_ESC_RM_MAP_MEMORY_DMA),
            Size::Exact(64)
        );
        assert!(
            !abi(v(535, 129, 3))
                .unwrap()
                .escapes
                .contains_key(&NV_ESC_WAIT_OPEN_COMPLETE)
        );
        assert_eq!(
            abi(v(535, 129, 3)).unwrap().bad_params_status,
            NV_ERR_INVALID_PARAM_STRUCT
        );
        assert_eq!(
            abi(v(550, 90, 12)).unwrap().bad_params_status,
            NV_ERR_INVALID_ARGUMENT
        );
        assert!(!abi(v(620, 6, 0)).unwrap().uvm.contains_key(&23));
        assert!(abi(v(595, 45, 4)).unwrap().uvm.contains_key(&23));
    }

    #[test]
    fn every_version_gvisor_supports_is_supported_here() {
        let gvisor = [
            "535.129.03",
            "535.183.06",
            "535.247.01",
            "535.261.03",
            "535.274.02",
            "535.288.01",
            "535.309.01",
            "550.90.12",
            "570.124.06",
            "570.133.20",
            "570.172.08",
            "570.195.03",
            "580.65.06",
            "580.105.08",
            "580.126.09",
            "580.126.20",
            "580.159.03",
            "580.159.04",
            "580.173.02",
            "590.48.01",
            "610.57.04",
            "615.15.00",
            "615.62.00",
            "620.06.00",
        ];
        let ours = supported();
        for version in gvisor {
            assert!(ours.contains(&version.parse().unwrap()), "{version}");
        }
        assert_eq!(nearest(v(550, 100, 0)), [v(550, 90, 12), v(570, 124, 6)]);
    }
}
