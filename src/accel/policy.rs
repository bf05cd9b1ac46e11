//! The gasket family: what a sandbox may do with a TPU v4 or v4 lite accel node. One table
//! for both kinds; only REGISTER_INTERRUPT's check tells them apart.

use nix::errno::Errno;

use super::abi::{
    CLEAR_EVENTFD, CLEAR_INTERRUPT_COUNTS, CONFIG_COHERENT_ALLOCATOR, GASKET_MAGIC, INTERRUPT_BAR,
    LOOPBACK_INTERRUPT, MAP_BUFFER, MAP_DMA_BUF, NUMBER_PAGE_TABLES, PAGE_TABLE_SIZE, PAGE_TABLES,
    PARTITION_PAGE_TABLE, REGISTER_INTERRUPT, RESET, SET_EVENTFD, SIMPLE_PAGE_TABLE_SIZE,
    UNMAP_BUFFER, UNREGISTER_INTERRUPT, V4_INTERRUPT_OFFSETS, V4_INTERRUPTS,
    V4LITE_INTERRUPT_OFFSETS, V4LITE_INTERRUPTS,
};
use crate::family::{
    Action, Decode, DeviceClass, Family, FdKind, IoctlDef, Owned, field_u64, rows,
};

/// A TPU v4 accel node.
pub const ACCEL: FdKind = FdKind::new("gasket", "tpu-accel");
/// A TPU v4 lite accel node, whose interrupt list is shorter.
pub const ACCEL_LITE: FdKind = FdKind::new("gasket", "tpu-accel-lite");

/// Offset of `event_fd` in `struct gasket_interrupt_mapping`.
const MAPPING_EVENT_FD: usize = 8;

/// What the gasket driver answers for a request it does not know.
pub const UNKNOWN_ERRNO: Errno = Errno::EINVAL;

/// The errno for a known request the sandbox may not make.
pub const FORBIDDEN_ERRNO: Errno = Errno::EPERM;

/// The gasket table, the same for v4 and v4 lite:
///
/// - By request number: RESET, NUMBER_PAGE_TABLES, the page-table size queries,
///   CLEAR_INTERRUPT_COUNTS and UNREGISTER_INTERRUPT continue.
/// - MAP_BUFFER and UNMAP_BUFFER must run in the workload (they pin its pages): checked (page
///   table 0 of 1) and continued.
/// - REGISTER_INTERRUPT is emulated: BAR 2, an interrupt below the chip's count, a register
///   offset in the chip's list, and an eventfd, all checked on the gate's copy.
/// - SET_EVENTFD, CLEAR_EVENTFD, PARTITION_PAGE_TABLE, MAP_DMA_BUF and the upstream staging
///   ABI's requests are refused with EPERM; unknown requests with EINVAL, as the driver does.
const TABLE: [(IoctlDef, Action); 15] = [
    (RESET, Action::Continue),
    (NUMBER_PAGE_TABLES, Action::Continue),
    (PAGE_TABLE_SIZE, Action::Continue),
    (SIMPLE_PAGE_TABLE_SIZE, Action::Continue),
    (CLEAR_INTERRUPT_COUNTS, Action::Continue),
    (UNREGISTER_INTERRUPT, Action::Continue),
    (MAP_BUFFER, Action::CheckThenContinue(check_page_table)),
    (UNMAP_BUFFER, Action::CheckThenContinue(check_page_table)),
    (
        REGISTER_INTERRUPT,
        Action::Emulate {
            check: check_interrupt,
            eventfd_fields: &[MAPPING_EVENT_FD],
        },
    ),
    (SET_EVENTFD, Action::Deny(FORBIDDEN_ERRNO)),
    (CLEAR_EVENTFD, Action::Deny(FORBIDDEN_ERRNO)),
    (PARTITION_PAGE_TABLE, Action::Deny(FORBIDDEN_ERRNO)),
    (MAP_DMA_BUF, Action::Deny(FORBIDDEN_ERRNO)),
    (LOOPBACK_INTERRUPT, Action::Deny(FORBIDDEN_ERRNO)),
    (CONFIG_COHERENT_ALLOCATOR, Action::Deny(FORBIDDEN_ERRNO)),
];

/// The gasket family. It owns magic 0xDC, which no other driver uses.
pub fn family() -> Family {
    Family {
        name: "gasket",
        kinds: &[ACCEL, ACCEL_LITE],
        devices: &[
            (DeviceClass::TpuAccel, ACCEL),
            (DeviceClass::TpuAccelLite, ACCEL_LITE),
        ],
        anon_inodes: &[],
        owned: &[Owned::Magic(GASKET_MAGIC)],
        decode: Decode::Full,
        unknown_errno: UNKNOWN_ERRNO,
        requests: rows(ACCEL, &TABLE)
            .chain(rows(ACCEL_LITE, &TABLE))
            .collect(),
    }
}

/// MAP_BUFFER / UNMAP_BUFFER: the chips have one page table; another index is EFAULT, as the
/// driver answers.
fn check_page_table(_: FdKind, arg: &[u8]) -> Result<(), Errno> {
    let index = field_u64(arg, 0).ok_or(Errno::EFAULT)?;
    if index >= PAGE_TABLES {
        Err(Errno::EFAULT)
    } else {
        Ok(())
    }
}

/// REGISTER_INTERRUPT: the interrupt number, BAR and register offset must be one of the chip's.
fn check_interrupt(kind: FdKind, arg: &[u8]) -> Result<(), Errno> {
    let (count, offsets): (u64, &[u64]) = if kind == ACCEL_LITE {
        (V4LITE_INTERRUPTS, &V4LITE_INTERRUPT_OFFSETS)
    } else {
        (V4_INTERRUPTS, &V4_INTERRUPT_OFFSETS)
    };
    let field = |offset| field_u64(arg, offset).ok_or(Errno::EFAULT);
    let (interrupt, bar, offset) = (field(0)?, field(16)?, field(24)?);
    if interrupt >= count || bar != INTERRUPT_BAR || !offsets.contains(&offset) {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accel::abi::{GasketInterruptMapping, IOCTLS};
    use crate::family::Ruling;

    fn rule(request: u32) -> Ruling {
        family().rule(ACCEL, request, 0)
    }

    fn bytes(mapping: GasketInterruptMapping) -> Vec<u8> {
        [
            mapping.interrupt,
            mapping.event_fd,
            mapping.bar_index,
            mapping.reg_offset,
        ]
        .iter()
        .flat_map(|v| v.to_ne_bytes())
        .collect()
    }

    #[test]
    fn rulings_by_request() {
        for def in [
            RESET,
            NUMBER_PAGE_TABLES,
            PAGE_TABLE_SIZE,
            CLEAR_INTERRUPT_COUNTS,
            UNREGISTER_INTERRUPT,
        ] {
            assert!(
                matches!(rule(def.request).action, Action::Continue),
                "{}",
                def.name
            );
        }
        for def in [
            SET_EVENTFD,
            CLEAR_EVENTFD,
            PARTITION_PAGE_TABLE,
            MAP_DMA_BUF,
            CONFIG_COHERENT_ALLOCATOR,
        ] {
            assert!(
                matches!(rule(def.request).action, Action::Deny(Errno::EPERM)),
                "{}",
                def.name
            );
        }
        assert!(matches!(
            rule(MAP_BUFFER.request).action,
            Action::CheckThenContinue(_)
        ));
        assert!(matches!(
            rule(REGISTER_INTERRUPT.request).action,
            Action::Emulate { .. }
        ));
        let unknown = rule(0xc008_dc30);
        assert_eq!(unknown.ioctl.name, "unknown");
        assert!(matches!(unknown.action, Action::Deny(Errno::EINVAL)));
        // The table covers every request of the header, on both kinds.
        let gasket = family();
        for def in IOCTLS {
            for kind in [ACCEL, ACCEL_LITE] {
                assert!(gasket.request(kind, def.request).is_some(), "{}", def.name);
            }
        }
    }

    #[test]
    fn interrupts_are_checked_against_the_chip() {
        let (v4, lite) = (ACCEL, ACCEL_LITE);
        let ok = GasketInterruptMapping {
            interrupt: 0,
            event_fd: 5,
            bar_index: 2,
            reg_offset: 0x4720000,
        };
        assert_eq!(check_interrupt(v4, &bytes(ok)), Ok(()));
        assert_eq!(check_interrupt(lite, &bytes(ok)), Ok(()));
        let v4_only = GasketInterruptMapping {
            reg_offset: 0x15b0008,
            ..ok
        };
        assert_eq!(check_interrupt(v4, &bytes(v4_only)), Ok(()));
        assert_eq!(check_interrupt(lite, &bytes(v4_only)), Err(Errno::EINVAL));
        for bad in [
            GasketInterruptMapping { bar_index: 0, ..ok },
            GasketInterruptMapping {
                reg_offset: 0x1234,
                ..ok
            },
            GasketInterruptMapping {
                interrupt: 45,
                ..ok
            },
        ] {
            assert_eq!(
                check_interrupt(v4, &bytes(bad)),
                Err(Errno::EINVAL),
                "{bad:?}"
            );
        }
        assert_eq!(
            check_interrupt(
                lite,
                &bytes(GasketInterruptMapping {
                    interrupt: 37,
                    ..ok
                })
            ),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            check_page_table(v4, &1u64.to_ne_bytes()),
            Err(Errno::EFAULT)
        );
        assert_eq!(check_page_table(v4, &0u64.to_ne_bytes()), Ok(()));
    }
}
