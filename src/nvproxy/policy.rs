//! The NVIDIA families as the gate sees them, for one driver version and capability set:
//!
//! - `nvidia`: the frontend's files (`/dev/nvidiactl`, `/dev/nvidiaN`). Its driver reads only
//!   a number's nr and size, so the family is routed on canonical `_IOWR('F', nr, size)` forms
//!   and owns every number whose nr lies in the escapes' spans. Allowed escapes are listed at
//!   each size the driver accepts, on the files it accepts them on; every other form (an
//!   escape the version lacks, a wrong size, a file of the wrong kind, a capability not
//!   enabled) is answered EINVAL, as the driver answers it.
//!   - Continued: the escapes whose checks rest on registers, or that need the workload's fd
//!     table or address space (`REGISTER_FD`, OS events, `RM_ALLOC_MEMORY`, the mappings,
//!     `RM_FREE`, `RM_DUP_OBJECT`, `RM_SHARE`, the version check).
//!   - Translated ([`super::translate`]): `RM_CONTROL`, `RM_ALLOC`, `CARD_INFO` and
//!     `ATTACH_GPUS_TO_FD`, whose decision rests on memory.
//!   - Emulated: `RM_VID_HEAP_CONTROL`, only its `ALLOC_SIZE` function.
//! - `nvidia-uvm`: `/dev/nvidia-uvm`'s plain command numbers, all continued (UVM binds to the
//!   caller's address space), unknown ones EINVAL; `/dev/nvidia-uvm-tools` gets nothing.

use nix::errno::Errno;

use super::DriverCaps;
use super::abi::{
    FRONTEND_NRS, NV_IOCTL_MAGIC, NVOS32_FUNCTION, NVOS32_FUNCTION_ALLOC_SIZE, NVOS32_SIZE,
    UVM_DEINITIALIZE, UVM_INITIALIZE, UVM_IS_8_SUPPORTED,
};
use super::table::{Abi, Handling, Nodes};
use super::translate::translator;
use crate::family::{
    Action, Decode, DeviceClass, Family, FdKind, IoctlDef, Owned, Request, field_u32, iowr,
};

/// `/dev/nvidiactl`.
pub const CTL: FdKind = FdKind::new("nvidia", "nvidia-ctl");
/// `/dev/nvidiaN`.
pub const GPU: FdKind = FdKind::new("nvidia", "nvidia-gpu");
/// `/dev/nvidia-uvm`.
pub const UVM: FdKind = FdKind::new("nvidia-uvm", "nvidia-uvm");
/// `/dev/nvidia-uvm-tools`: never given to a sandbox; nothing of it is allowed.
pub const UVM_TOOLS: FdKind = FdKind::new("nvidia-uvm", "nvidia-uvm-tools");

/// What both drivers answer for what they do not know, and the gate for what it refuses.
pub const UNKNOWN_ERRNO: Errno = Errno::EINVAL;

/// The frontend family and the UVM family for `abi` with `caps` enabled.
pub fn families(abi: &'static Abi, caps: DriverCaps) -> [Family; 2] {
    [frontend(abi, caps), uvm(abi, caps)]
}

fn frontend(abi: &'static Abi, caps: DriverCaps) -> Family {
    let translate = Action::Translate(translator(abi, caps));
    let mut requests = Vec::new();
    for escape in abi.escapes.values().filter(|e| e.caps.intersects(caps)) {
        let action = match escape.handling {
            Handling::Continue => Action::Continue,
            Handling::VidHeap => Action::Emulate {
                check: alloc_size_only,
                eventfd_fields: &[],
            },
            Handling::Control | Handling::Alloc | Handling::CardInfo | Handling::AttachGpus => {
                translate
            }
        };
        let kinds: &[FdKind] = match escape.nodes {
            Nodes::Ctl => &[CTL],
            Nodes::Gpu => &[GPU],
            Nodes::Any => &[CTL, GPU],
        };
        for size in escape.size.sizes() {
            let ioctl = IoctlDef {
                name: escape.name,
                request: iowr(NV_IOCTL_MAGIC, escape.nr, size),
                arg_size: size,
            };
            for kind in kinds {
                requests.push(Request {
                    kind: *kind,
                    ioctl,
                    action,
                });
            }
        }
    }
    Family {
        name: "nvidia",
        kinds: &[CTL, GPU],
        devices: &[(DeviceClass::NvidiaCtl, CTL), (DeviceClass::NvidiaGpu, GPU)],
        anon_inodes: &[],
        owned: &[Owned::Nrs(&FRONTEND_NRS)],
        decode: Decode::NrAndSize {
            canonical_type: NV_IOCTL_MAGIC,
        },
        unknown_errno: UNKNOWN_ERRNO,
        requests,
    }
}

fn uvm(abi: &'static Abi, caps: DriverCaps) -> Family {
    let requests = abi
        .uvm
        .values()
        .filter(|c| c.caps.intersects(caps))
        .map(|command| Request {
            kind: UVM,
            ioctl: IoctlDef {
                name: command.name,
                request: command.number,
                arg_size: 0,
            },
            action: Action::Continue,
        })
        .collect();
    Family {
        name: "nvidia-uvm",
        kinds: &[UVM, UVM_TOOLS],
        devices: &[
            (DeviceClass::NvidiaUvm, UVM),
            (DeviceClass::NvidiaUvmTools, UVM_TOOLS),
        ],
        anon_inodes: &[],
        owned: &[
            Owned::Range(0, UVM_IS_8_SUPPORTED),
            Owned::Range(UVM_INITIALIZE, UVM_DEINITIALIZE),
        ],
        decode: Decode::Full,
        unknown_errno: UNKNOWN_ERRNO,
        requests,
    }
}

/// `RM_VID_HEAP_CONTROL`: only `NVOS32_FUNCTION_ALLOC_SIZE`, as gVisor allows.
fn alloc_size_only(_: FdKind, arg: &[u8]) -> Result<(), Errno> {
    if arg.len() < NVOS32_SIZE {
        return Err(Errno::EFAULT);
    }
    match field_u32(arg, NVOS32_FUNCTION) {
        Some(NVOS32_FUNCTION_ALLOC_SIZE) => Ok(()),
        _ => Err(UNKNOWN_ERRNO),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::family::validate;
    use crate::nvproxy::tree::{TREE, abi};

    #[test]
    fn every_version_builds_valid_families_with_c_numbers() {
        for node in TREE {
            let abi = abi(node.version).unwrap();
            let families = families(abi, DriverCaps::ANY);
            validate(&families).unwrap();
            let mut with_tpus = vec![
                crate::accel::policy::family(),
                crate::vfio::policy::family(),
            ];
            with_tpus.extend(families);
            validate(&with_tpus).unwrap();
        }
        // Pinned to the C values (`_IOWR('F', nr, sizeof(...))`).
        let abi = abi("550.90.12".parse().unwrap()).unwrap();
        let [frontend, uvm] = families(abi, DriverCaps::DEFAULT);
        let number = |name: &str| {
            frontend
                .requests
                .iter()
                .filter(|r| r.ioctl.name == name)
                .map(|r| r.ioctl.request)
                .collect::<Vec<_>>()
        };
        assert_eq!(number("NV_ESC_RM_CONTROL"), [0xc020_462a]);
        assert_eq!(
            number("NV_ESC_RM_ALLOC"),
            [0xc020_462b, 0xc020_462b, 0xc030_462b, 0xc030_462b]
        );
        assert_eq!(number("NV_ESC_CHECK_VERSION_STR"), [0xc048_46d2]);
        assert_eq!(number("NV_ESC_REGISTER_FD"), [0xc004_46c9, 0xc004_46c9]);
        assert!(number("NV_ESC_CARD_INFO").contains(&0xc900_46c8));
        // Capabilities: graphics escapes only with graphics.
        assert!(number("NV_ESC_RM_IDLE_CHANNELS").is_empty());
        assert!(
            uvm.requests
                .iter()
                .any(|r| r.ioctl.request == UVM_INITIALIZE)
        );
        assert!(
            !uvm.requests
                .iter()
                .any(|r| r.ioctl.name == "UVM_PAGEABLE_MEM_ACCESS_ON_GPU")
        );
    }

    #[test]
    fn wrong_files_and_sizes_are_the_drivers_unknown() {
        let abi = abi("580.65.06".parse().unwrap()).unwrap();
        let [frontend, _] = families(abi, DriverCaps::DEFAULT);
        // RM_CONTROL on a GPU file, at another size, with another type byte.
        assert!(frontend.request(GPU, 0xc020_462a).is_none());
        assert!(frontend.request(CTL, 0xc018_462a).is_none());
        assert!(frontend.request(CTL, 0x0020_002a).is_some());
        assert_eq!(frontend.rule(CTL, 0xc018_462a, 0).action.label(), "deny");
    }
}
