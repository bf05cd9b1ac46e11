//! Device numbers and names of the NVIDIA kernel driver
//! (open-gpu-kernel-modules `kernel-open/common/inc/nv.h`, `nv-ioctl-numbers.h`).

/// PCI vendor ID of NVIDIA.
pub const NVIDIA_VENDOR_ID: u16 = 0x10de;

/// The frontend's fixed character major: `/dev/nvidiactl` and `/dev/nvidiaN`.
pub const FRONTEND_MAJOR: u32 = 195;

/// Minor of `/dev/nvidiactl`.
pub const CTL_MINOR: u32 = 255;

/// Minor of `/dev/nvidia-modeset`.
pub const MODESET_MINOR: u32 = 254;

/// The highest minor of a per-GPU node `/dev/nvidiaN`; the minors above are control nodes.
pub const MAX_GPU_MINOR: u32 = 247;

/// `/proc/devices` names of the frontend major; some setups register the short one.
pub const FRONTEND_MAJOR_NAMES: [&str; 2] = ["nvidia-frontend", "nvidia"];

/// `/proc/devices` name of the (dynamic) UVM major.
pub const UVM_MAJOR_NAME: &str = "nvidia-uvm";

/// `/proc/devices` name of the (dynamic) capabilities major.
pub const CAPS_MAJOR_NAME: &str = "nvidia-caps";

/// Host path of the control node.
pub const CTL_PATH: &str = "/dev/nvidiactl";

/// Host path of the UVM node.
pub const UVM_PATH: &str = "/dev/nvidia-uvm";

/// Host path of the UVM tools node.
pub const UVM_TOOLS_PATH: &str = "/dev/nvidia-uvm-tools";

/// Host path of the modeset node.
pub const MODESET_PATH: &str = "/dev/nvidia-modeset";

/// Host directory of the capability nodes (MIG, IMEX).
pub const CAPS_DIR: &str = "/dev/nvidia-caps";

/// N when `path` is a per-GPU node `/dev/nvidiaN`.
pub fn gpu_node_minor(path: &std::path::Path) -> Option<u32> {
    crate::pci::node_number(path, "/dev/nvidia")
}

// ---------------------------------------------------------------------------------------------
// The frontend's ioctls (`nv-ioctl-numbers.h`, `nv_escape.h`). Request numbers are
// `_IOWR('F', nr, size)`, but the driver reads only `_IOC_NR` and `_IOC_SIZE`.

/// `NV_IOCTL_MAGIC`: the type byte of the canonical request numbers.
pub const NV_IOCTL_MAGIC: u8 = b'F';

/// `NV_ESC_CARD_INFO`: the GPUs the driver knows, an array of [`CardInfo`].
pub const NV_ESC_CARD_INFO: u8 = 200;
/// `NV_ESC_REGISTER_FD`: links a per-GPU file to a control file.
pub const NV_ESC_REGISTER_FD: u8 = 201;
/// `NV_ESC_ALLOC_OS_EVENT`.
pub const NV_ESC_ALLOC_OS_EVENT: u8 = 206;
/// `NV_ESC_FREE_OS_EVENT`.
pub const NV_ESC_FREE_OS_EVENT: u8 = 207;
/// `NV_ESC_STATUS_CODE`.
pub const NV_ESC_STATUS_CODE: u8 = 209;
/// `NV_ESC_CHECK_VERSION_STR`.
pub const NV_ESC_CHECK_VERSION_STR: u8 = 210;
/// `NV_ESC_IOCTL_XFER_CMD`: another escape with a larger argument, behind a pointer.
pub const NV_ESC_IOCTL_XFER_CMD: u8 = 211;
/// `NV_ESC_ATTACH_GPUS_TO_FD`: an array of GPU ids.
pub const NV_ESC_ATTACH_GPUS_TO_FD: u8 = 212;
/// `NV_ESC_QUERY_DEVICE_INTR`.
pub const NV_ESC_QUERY_DEVICE_INTR: u8 = 213;
/// `NV_ESC_SYS_PARAMS`.
pub const NV_ESC_SYS_PARAMS: u8 = 214;
/// `NV_ESC_NUMA_INFO`.
pub const NV_ESC_NUMA_INFO: u8 = 215;
/// `NV_ESC_SET_NUMA_STATUS`.
pub const NV_ESC_SET_NUMA_STATUS: u8 = 216;
/// `NV_ESC_EXPORT_TO_DMABUF_FD`.
pub const NV_ESC_EXPORT_TO_DMABUF_FD: u8 = 217;
/// `NV_ESC_WAIT_OPEN_COMPLETE` (550 and later).
pub const NV_ESC_WAIT_OPEN_COMPLETE: u8 = 218;

/// `NV_ESC_RM_ALLOC_MEMORY`.
pub const NV_ESC_RM_ALLOC_MEMORY: u8 = 0x27;
/// `NV_ESC_RM_ALLOC_OBJECT`.
pub const NV_ESC_RM_ALLOC_OBJECT: u8 = 0x28;
/// `NV_ESC_RM_FREE`.
pub const NV_ESC_RM_FREE: u8 = 0x29;
/// `NV_ESC_RM_CONTROL`.
pub const NV_ESC_RM_CONTROL: u8 = 0x2a;
/// `NV_ESC_RM_ALLOC`.
pub const NV_ESC_RM_ALLOC: u8 = 0x2b;
/// `NV_ESC_RM_DUP_OBJECT`.
pub const NV_ESC_RM_DUP_OBJECT: u8 = 0x34;
/// `NV_ESC_RM_SHARE`.
pub const NV_ESC_RM_SHARE: u8 = 0x35;
/// `NV_ESC_RM_I2C_ACCESS`.
pub const NV_ESC_RM_I2C_ACCESS: u8 = 0x39;
/// `NV_ESC_RM_IDLE_CHANNELS`.
pub const NV_ESC_RM_IDLE_CHANNELS: u8 = 0x41;
/// `NV_ESC_RM_VID_HEAP_CONTROL`.
pub const NV_ESC_RM_VID_HEAP_CONTROL: u8 = 0x4a;
/// `NV_ESC_RM_ACCESS_REGISTRY`.
pub const NV_ESC_RM_ACCESS_REGISTRY: u8 = 0x4d;
/// `NV_ESC_RM_MAP_MEMORY`.
pub const NV_ESC_RM_MAP_MEMORY: u8 = 0x4e;
/// `NV_ESC_RM_UNMAP_MEMORY`.
pub const NV_ESC_RM_UNMAP_MEMORY: u8 = 0x4f;
/// `NV_ESC_RM_GET_EVENT_DATA`.
pub const NV_ESC_RM_GET_EVENT_DATA: u8 = 0x52;
/// `NV_ESC_RM_ALLOC_CONTEXT_DMA2`.
pub const NV_ESC_RM_ALLOC_CONTEXT_DMA2: u8 = 0x54;
/// `NV_ESC_RM_MAP_MEMORY_DMA`.
pub const NV_ESC_RM_MAP_MEMORY_DMA: u8 = 0x57;
/// `NV_ESC_RM_UNMAP_MEMORY_DMA`.
pub const NV_ESC_RM_UNMAP_MEMORY_DMA: u8 = 0x58;
/// `NV_ESC_RM_BIND_CONTEXT_DMA`.
pub const NV_ESC_RM_BIND_CONTEXT_DMA: u8 = 0x59;
/// `NV_ESC_RM_UPDATE_DEVICE_MAPPING_INFO`.
pub const NV_ESC_RM_UPDATE_DEVICE_MAPPING_INFO: u8 = 0x5e;
/// `NV_ESC_RM_NVLOG_CTRL` (535) / `NV_ESC_RM_LOCKLESS_DIAGNOSTIC` (545 and later): admin only.
pub const NV_ESC_RM_LOCKLESS_DIAGNOSTIC: u8 = 0x5f;

/// The nrs the gate claims on NVIDIA's files: the spans the driver's escapes live in
/// (0x27–0x5f and 200–218), with room for escapes a later branch adds (up to 0x63, below
/// VFIO's first nr, and up to 0xdf). The driver answers every nr it does not know with EINVAL,
/// so routing them all to the supervisor loses nothing on its files; a new escape in the room
/// is then denied until a table lists it, never let through unseen.
pub const FRONTEND_NRS: [u8; 92] = nr_spans();

const fn nr_spans() -> [u8; 92] {
    let mut out = [0u8; 92];
    let mut i = 0;
    while i < 68 {
        out[i] = 0x20 + i as u8;
        i += 1;
    }
    while i < 92 {
        out[i] = 0xc8 + (i - 68) as u8;
        i += 1;
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Argument structs the gate reads and writes (`nvos.h`, `nv-ioctl.h`; x86_64, identical at
// every branch from 535 to 595).

/// `nv_pci_info_t`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PciInfo {
    /// PCI domain.
    pub domain: u32,
    /// Bus.
    pub bus: u8,
    /// Slot (device).
    pub slot: u8,
    /// Function.
    pub function: u8,
    /// Padding.
    pub pad0: u8,
    /// Vendor.
    pub vendor_id: u16,
    /// Device.
    pub device_id: u16,
}

/// `nv_ioctl_card_info_t`: one GPU in `CARD_INFO`'s answer.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CardInfo {
    /// Whether the entry names a GPU (`NvBool`).
    pub valid: u8,
    /// Padding.
    pub pad0: [u8; 3],
    /// Where it is.
    pub pci_info: PciInfo,
    /// RM's id of the GPU.
    pub gpu_id: u32,
    /// Interrupt line.
    pub interrupt_line: u16,
    /// Padding.
    pub pad1: [u8; 2],
    /// BAR0.
    pub reg_address: u64,
    /// BAR0 size.
    pub reg_size: u64,
    /// Framebuffer BAR.
    pub fb_address: u64,
    /// Framebuffer size.
    pub fb_size: u64,
    /// Minor of its `/dev/nvidiaN`.
    pub minor_number: u32,
    /// `nvidiaN`.
    pub dev_name: [u8; 10],
    /// Padding.
    pub pad2: [u8; 2],
}

/// `nv_ioctl_rm_api_version_t`: `CHECK_VERSION_STR`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RmApiVersion {
    /// [`NV_RM_API_VERSION_CMD_STRICT`], `_RELAXED` or `_QUERY`.
    pub cmd: u32,
    /// [`NV_RM_API_VERSION_REPLY_RECOGNIZED`] or not.
    pub reply: u32,
    /// The version, NUL-terminated.
    pub version_string: [u8; 64],
}

/// `NV_RM_API_VERSION_CMD_STRICT`: the versions must match exactly.
pub const NV_RM_API_VERSION_CMD_STRICT: u32 = 0;
/// `NV_RM_API_VERSION_CMD_RELAXED`.
pub const NV_RM_API_VERSION_CMD_RELAXED: u32 = b'1' as u32;
/// `NV_RM_API_VERSION_CMD_QUERY`: the driver answers with its version.
pub const NV_RM_API_VERSION_CMD_QUERY: u32 = b'2' as u32;
/// `NV_RM_API_VERSION_REPLY_UNRECOGNIZED`.
pub const NV_RM_API_VERSION_REPLY_UNRECOGNIZED: u32 = 0;
/// `NV_RM_API_VERSION_REPLY_RECOGNIZED`.
pub const NV_RM_API_VERSION_REPLY_RECOGNIZED: u32 = 1;

/// `nv_ioctl_register_fd_t`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegisterFd {
    /// A control file of the caller's.
    pub ctl_fd: i32,
}

/// `NVOS54_PARAMETERS`: `RM_CONTROL`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Nvos54 {
    /// Client.
    pub h_client: u32,
    /// Object the control is for.
    pub h_object: u32,
    /// Command.
    pub cmd: u32,
    /// Flags.
    pub flags: u32,
    /// Parameters (`NvP64`).
    pub params: u64,
    /// Their size.
    pub params_size: u32,
    /// RM's answer.
    pub status: u32,
}

/// `NVOS21_PARAMETERS`: `RM_ALLOC`, short form.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Nvos21 {
    /// Client (the root).
    pub h_root: u32,
    /// Parent object.
    pub h_object_parent: u32,
    /// The new object's handle (0 for a client: RM picks one).
    pub h_object_new: u32,
    /// Class.
    pub h_class: u32,
    /// Allocation parameters (`NvP64`).
    pub p_alloc_parms: u64,
    /// Their size.
    pub params_size: u32,
    /// RM's answer.
    pub status: u32,
}

/// `NVOS64_PARAMETERS`: `RM_ALLOC`, long form.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Nvos64 {
    /// Client (the root).
    pub h_root: u32,
    /// Parent object.
    pub h_object_parent: u32,
    /// The new object's handle.
    pub h_object_new: u32,
    /// Class.
    pub h_class: u32,
    /// Allocation parameters (`NvP64`).
    pub p_alloc_parms: u64,
    /// Access rights requested (`NvP64`; NULL for the defaults).
    pub p_rights_requested: u64,
    /// Size of the allocation parameters.
    pub params_size: u32,
    /// Flags.
    pub flags: u32,
    /// RM's answer.
    pub status: u32,
    /// Padding.
    pub pad0: u32,
}

/// `NVOS00_PARAMETERS`: `RM_FREE`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Nvos00 {
    /// Client.
    pub h_root: u32,
    /// Parent of the object.
    pub h_object_parent: u32,
    /// The object.
    pub h_object_old: u32,
    /// RM's answer.
    pub status: u32,
}

/// Offset of `function` in `NVOS32_PARAMETERS` (`RM_VID_HEAP_CONTROL`, 184 bytes).
pub const NVOS32_FUNCTION: usize = 8;
/// Offset of `status` in `NVOS32_PARAMETERS`.
pub const NVOS32_STATUS: usize = 20;
/// Size of `NVOS32_PARAMETERS`.
pub const NVOS32_SIZE: usize = 184;
/// `NVOS32_FUNCTION_ALLOC_SIZE`: the one video-heap function CUDA uses.
pub const NVOS32_FUNCTION_ALLOC_SIZE: u32 = 2;

const _: () = assert!(size_of::<PciInfo>() == 12);
const _: () = assert!(size_of::<CardInfo>() == 72);
const _: () = assert!(std::mem::offset_of!(CardInfo, gpu_id) == 16);
const _: () = assert!(std::mem::offset_of!(CardInfo, minor_number) == 56);
const _: () = assert!(size_of::<RmApiVersion>() == 72);
const _: () = assert!(size_of::<RegisterFd>() == 4);
const _: () = assert!(size_of::<Nvos54>() == 32);
const _: () = assert!(std::mem::offset_of!(Nvos54, params) == 16);
const _: () = assert!(std::mem::offset_of!(Nvos54, status) == 28);
const _: () = assert!(size_of::<Nvos21>() == 32);
const _: () = assert!(std::mem::offset_of!(Nvos21, status) == 28);
const _: () = assert!(size_of::<Nvos64>() == 48);
const _: () = assert!(std::mem::offset_of!(Nvos64, params_size) == 32);
const _: () = assert!(std::mem::offset_of!(Nvos64, status) == 40);
const _: () = assert!(size_of::<Nvos00>() == 16);

// ---------------------------------------------------------------------------------------------
// RM status codes (`nvstatuscodes.h`, the same at every branch).

/// `NV_OK`.
pub const NV_OK: u32 = 0;
/// `NV_ERR_IN_USE`.
pub const NV_ERR_IN_USE: u32 = 0x17;
/// `NV_ERR_INSERT_DUPLICATE_NAME`: a handle already in use.
pub const NV_ERR_INSERT_DUPLICATE_NAME: u32 = 0x19;
/// `NV_ERR_INSUFFICIENT_PERMISSIONS`.
pub const NV_ERR_INSUFFICIENT_PERMISSIONS: u32 = 0x1b;
/// `NV_ERR_INVALID_ARGUMENT`: a control's wrong `paramsSize` from 550 on.
pub const NV_ERR_INVALID_ARGUMENT: u32 = 0x1f;
/// `NV_ERR_INVALID_CLASS`: what RM answers for a class it does not know.
pub const NV_ERR_INVALID_CLASS: u32 = 0x22;
/// `NV_ERR_INVALID_CLIENT`: a client used through a file that did not create it.
pub const NV_ERR_INVALID_CLIENT: u32 = 0x23;
/// `NV_ERR_INVALID_DEVICE`.
pub const NV_ERR_INVALID_DEVICE: u32 = 0x26;
/// `NV_ERR_INVALID_OBJECT_HANDLE`.
pub const NV_ERR_INVALID_OBJECT_HANDLE: u32 = 0x33;
/// `NV_ERR_INVALID_OBJECT_PARENT`.
pub const NV_ERR_INVALID_OBJECT_PARENT: u32 = 0x36;
/// `NV_ERR_INVALID_PARAM_STRUCT`: a control's wrong `paramsSize` before 550.
pub const NV_ERR_INVALID_PARAM_STRUCT: u32 = 0x3a;
/// `NV_ERR_NOT_SUPPORTED`: what RM answers for a control it does not know.
pub const NV_ERR_NOT_SUPPORTED: u32 = 0x56;
/// `NV_ERR_OBJECT_NOT_FOUND`.
pub const NV_ERR_OBJECT_NOT_FOUND: u32 = 0x57;

/// Where the driver starts the handles of clients it names (`hObjectNew == 0`).
pub const CLIENT_HANDLE_BASE: u32 = 0xc1d0_0000;

/// UVM's `UVM_INITIALIZE` (`uvm_linux_ioctl.h`); its other commands are plain numbers.
pub const UVM_INITIALIZE: u32 = 0x3000_0001;
/// UVM's `UVM_DEINITIALIZE`.
pub const UVM_DEINITIALIZE: u32 = 0x3000_0002;
/// `UVM_IS_8_SUPPORTED`, the highest plain UVM number.
pub const UVM_IS_8_SUPPORTED: u32 = 2047;
