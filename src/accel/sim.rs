//! A simulated TPU v4 / v4 lite behind the gasket ioctls, for CI and demos: the driver's
//! behaviour that a runtime sees (ownership by the first writer, one page table, the interrupt
//! lists), with every call recorded.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use nix::errno::Errno;
use serde::Serialize;

use super::abi::{BAR2_BASE, BAR2_SIZE};
use super::abi::{
    CLEAR_INTERRUPT_COUNTS, INTERRUPT_BAR, MAP_BUFFER, NUMBER_PAGE_TABLES, PAGE_TABLE_SIZE,
    PAGE_TABLES, REGISTER_INTERRUPT, RESET, SIMPLE_PAGE_TABLE_SIZE, UNMAP_BUFFER,
    UNREGISTER_INTERRUPT, V4_INTERRUPT_OFFSETS, V4_INTERRUPTS, V4LITE_INTERRUPT_OFFSETS,
    V4LITE_INTERRUPTS,
};
use super::policy::{ACCEL, ACCEL_LITE};
use crate::family::{Call, Caller, CarrierLookup, DeviceSim, Opened, SimNode, SimReply, field_u64};

const PAGE: u64 = 4096;
/// Entries the simulated page table reports.
const PAGE_TABLE_ENTRIES: u64 = 8192;

/// A registered interrupt, as the simulated chip received it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Interrupt {
    /// Interrupt number.
    pub interrupt: u64,
    /// BAR.
    pub bar_index: u64,
    /// Register offset.
    pub reg_offset: u64,
    /// The caller's eventfd number.
    pub event_fd: u64,
}

#[derive(Debug, Default)]
struct Chip {
    lite: bool,
    paths: Vec<PathBuf>,
    owner: Option<i32>,
    buffers: BTreeMap<u64, (u64, u64)>,
    interrupts: BTreeMap<u64, Interrupt>,
}

#[derive(Debug, Clone, Copy)]
struct OpenFile {
    chip: usize,
    writer: bool,
    tgid: i32,
}

/// The simulated accel chips and their open files.
#[derive(Debug, Default)]
pub struct AccelSim {
    chips: BTreeMap<usize, Chip>,
    files: HashMap<u64, OpenFile>,
    next: u64,
}

impl AccelSim {
    /// Adds chip `index` (TPU v4, or v4 lite when `lite`), served at `paths`.
    pub fn add_chip(&mut self, index: usize, lite: bool, paths: Vec<PathBuf>) {
        self.chips.insert(
            index,
            Chip {
                lite,
                paths,
                ..Chip::default()
            },
        );
    }

    /// Opens chip `index` for thread group `tgid`; the first writer becomes the owner, as in
    /// `gasket_open`. Returns the file's handle.
    pub fn open(&mut self, index: usize, writer: bool, tgid: i32) -> Result<u64, Errno> {
        let chip = self.chips.get_mut(&index).ok_or(Errno::ENODEV)?;
        if writer && chip.owner.is_none() {
            chip.owner = Some(tgid);
        }
        self.next += 1;
        self.files.insert(
            self.next,
            OpenFile {
                chip: index,
                writer,
                tgid,
            },
        );
        Ok(self.next)
    }

    /// The interrupts chip `index` has received, by interrupt number.
    pub fn interrupts(&self, index: usize) -> Vec<Interrupt> {
        self.chips
            .get(&index)
            .map(|c| c.interrupts.values().copied().collect())
            .unwrap_or_default()
    }

    /// Runs a gasket call on file `handle`.
    pub fn ioctl(&mut self, handle: u64, call: &mut Call<'_>) -> Result<SimReply, Errno> {
        let file = *self.files.get(&handle).ok_or(Errno::EBADF)?;
        let chip = self.chips.get_mut(&file.chip).ok_or(Errno::ENODEV)?;
        let request = call.ioctl.request;
        let queries = [
            NUMBER_PAGE_TABLES.request,
            PAGE_TABLE_SIZE.request,
            SIMPLE_PAGE_TABLE_SIZE.request,
        ];
        // gasket_ioctl.c: size queries need read access; everything else the owning writer.
        let owner = file.writer && chip.owner == Some(file.tgid);
        if !(queries.contains(&request) || owner) {
            return Err(Errno::EPERM);
        }
        let value = |v: i64| Ok(SimReply::Value(v));
        match request {
            r if r == RESET.request || r == CLEAR_INTERRUPT_COUNTS.request => value(0),
            r if r == NUMBER_PAGE_TABLES.request => {
                call.write_arg(0, &PAGE_TABLES.to_ne_bytes())?;
                value(0)
            }
            r if r == PAGE_TABLE_SIZE.request || r == SIMPLE_PAGE_TABLE_SIZE.request => {
                let arg = call.read_arg(32)?;
                if field_u64(&arg, 0) != Some(0) {
                    return Err(Errno::EFAULT);
                }
                call.write_arg(8, &PAGE_TABLE_ENTRIES.to_ne_bytes())?;
                value(0)
            }
            r if r == MAP_BUFFER.request => {
                let arg = call.read_arg(32)?;
                let [index, size, host, device] =
                    [0, 8, 16, 24].map(|o| field_u64(&arg, o).unwrap_or(0));
                if index >= PAGE_TABLES {
                    return Err(Errno::EFAULT);
                }
                if size < PAGE || size % PAGE != 0 || host % PAGE != 0 {
                    return Err(Errno::EINVAL);
                }
                call.memory.read(host, 1).map_err(|_| Errno::EFAULT)?;
                chip.buffers.insert(device - device % PAGE, (size, host));
                value(0)
            }
            r if r == UNMAP_BUFFER.request => {
                let arg = call.read_arg(32)?;
                if field_u64(&arg, 0).unwrap_or(1) >= PAGE_TABLES {
                    return Err(Errno::EFAULT);
                }
                let device = field_u64(&arg, 24).unwrap_or(0);
                chip.buffers
                    .remove(&(device - device % PAGE))
                    .map(|_| SimReply::Value(0))
                    .ok_or(Errno::EINVAL)
            }
            r if r == REGISTER_INTERRUPT.request => {
                let arg = call.read_arg(32)?;
                let [interrupt, event_fd, bar_index, reg_offset] =
                    [0, 8, 16, 24].map(|o| field_u64(&arg, o).unwrap_or(0));
                let received = Interrupt {
                    interrupt,
                    bar_index,
                    reg_offset,
                    event_fd,
                };
                let (count, offsets): (u64, &[u64]) = if chip.lite {
                    (V4LITE_INTERRUPTS, &V4LITE_INTERRUPT_OFFSETS)
                } else {
                    (V4_INTERRUPTS, &V4_INTERRUPT_OFFSETS)
                };
                if interrupt >= count
                    || bar_index != INTERRUPT_BAR
                    || !offsets.contains(&reg_offset)
                {
                    return Err(Errno::EINVAL);
                }
                if !(call.is_eventfd)(i32::try_from(event_fd).map_err(|_| Errno::EBADF)?) {
                    return Err(Errno::EINVAL);
                }
                chip.interrupts.insert(interrupt, received);
                value(0)
            }
            r if r == UNREGISTER_INTERRUPT.request => chip
                .interrupts
                .remove(&call.arg)
                .map(|_| SimReply::Value(0))
                .ok_or(Errno::EINVAL),
            _ => Err(Errno::EINVAL),
        }
    }
}

impl DeviceSim for AccelSim {
    fn nodes(&self) -> Vec<SimNode> {
        self.chips
            .iter()
            .flat_map(|(index, chip)| {
                chip.paths.iter().map(move |path| SimNode {
                    path: path.clone(),
                    kind: if chip.lite { ACCEL_LITE } else { ACCEL },
                    id: *index as u64,
                    exclusive: false,
                })
            })
            .collect()
    }

    fn open(&mut self, node: &SimNode, flags: i32, caller: Caller) -> Result<Opened, Errno> {
        let index = usize::try_from(node.id).map_err(|_| Errno::ENODEV)?;
        let writer = flags & libc::O_ACCMODE != libc::O_RDONLY;
        let handle = AccelSim::open(self, index, writer, caller.tgid)?;
        Ok(Opened {
            handle,
            // BAR 2 is mapped from the carrier at its own offset.
            size: BAR2_BASE + BAR2_SIZE,
        })
    }

    fn ioctl(
        &mut self,
        handle: u64,
        call: &mut Call<'_>,
        _: CarrierLookup<'_>,
    ) -> Result<SimReply, Errno> {
        AccelSim::ioctl(self, handle, call)
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;
    use crate::family::{FakeMemory, IoctlDef, Memory};

    fn memory() -> FakeMemory {
        FakeMemory {
            base: 0x10000,
            bytes: RefCell::new(vec![0; 0x10000]),
        }
    }

    fn run(
        sim: &mut AccelSim,
        handle: u64,
        def: IoctlDef,
        arg: u64,
        copy: Option<Vec<u8>>,
        mem: &FakeMemory,
        tgid: i32,
    ) -> Result<SimReply, Errno> {
        let mut copy = copy;
        let mut call = Call {
            kind: ACCEL,
            ioctl: def,
            arg,
            copy: copy.as_mut(),
            memory: mem,
            caller: Caller {
                tgid,
                euid: 0,
                egid: 0,
            },
            fd_key: &|_| None,
            is_eventfd: &|fd| fd == 7,
            received: Default::default(),
        };
        AccelSim::ioctl(sim, handle, &mut call)
    }

    fn words(values: [u64; 4]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_ne_bytes()).collect()
    }

    #[test]
    fn the_first_writer_owns_the_chip() {
        let mut sim = AccelSim::default();
        sim.add_chip(0, false, Vec::new());
        let mem = memory();
        let owner = sim.open(0, true, 100).unwrap();
        let other = sim.open(0, true, 200).unwrap();
        let reader = sim.open(0, false, 200).unwrap();
        assert!(matches!(
            run(&mut sim, owner, RESET, 1, None, &mem, 100),
            Ok(SimReply::Value(0))
        ));
        assert_eq!(
            run(&mut sim, other, RESET, 1, None, &mem, 200).unwrap_err(),
            Errno::EPERM
        );
        assert!(matches!(
            run(
                &mut sim,
                reader,
                NUMBER_PAGE_TABLES,
                0x10000,
                None,
                &mem,
                200
            ),
            Ok(SimReply::Value(0))
        ));
        assert_eq!(mem.bytes.borrow()[..8], 1u64.to_ne_bytes());
    }

    #[test]
    fn buffers_and_interrupts() {
        let mut sim = AccelSim::default();
        sim.add_chip(0, true, Vec::new());
        let mem = memory();
        let file = sim.open(0, true, 1).unwrap();
        mem.write(0x10000, &words([0, 4096, 0x11000, 0x1000]))
            .unwrap();
        assert!(run(&mut sim, file, MAP_BUFFER, 0x10000, None, &mem, 1).is_ok());
        mem.write(0x10000, &words([1, 4096, 0x11000, 0x1000]))
            .unwrap();
        assert_eq!(
            run(&mut sim, file, MAP_BUFFER, 0x10000, None, &mem, 1).unwrap_err(),
            Errno::EFAULT
        );
        mem.write(0x10000, &words([0, 100, 0x11000, 0x1000]))
            .unwrap();
        assert_eq!(
            run(&mut sim, file, MAP_BUFFER, 0x10000, None, &mem, 1).unwrap_err(),
            Errno::EINVAL
        );
        mem.write(0x10000, &words([0, 4096, 0x11000, 0x1000]))
            .unwrap();
        assert!(run(&mut sim, file, UNMAP_BUFFER, 0x10000, None, &mem, 1).is_ok());

        let good = words([3, 7, 2, 0x4720000]);
        assert!(run(&mut sim, file, REGISTER_INTERRUPT, 0, Some(good), &mem, 1).is_ok());
        // A v4-only register offset and interrupt 37 on a v4 lite chip; fd 8 is no eventfd.
        for refused in [
            [3, 7, 2, 0x15b0008],
            [37, 7, 2, 0x4720000],
            [3, 8, 2, 0x4720000],
        ] {
            let result = run(
                &mut sim,
                file,
                REGISTER_INTERRUPT,
                0,
                Some(words(refused)),
                &mem,
                1,
            );
            assert_eq!(result.unwrap_err(), Errno::EINVAL, "{refused:x?}");
        }
        assert_eq!(
            sim.interrupts(0),
            [Interrupt {
                interrupt: 3,
                bar_index: 2,
                reg_offset: 0x4720000,
                event_fd: 7
            }]
        );
        assert!(run(&mut sim, file, UNREGISTER_INTERRUPT, 3, None, &mem, 1).is_ok());
        assert!(sim.interrupts(0).is_empty());
    }
}
