//! Simulated VFIO: containers, groups and vfio-pci devices with the behaviour a TPU runtime
//! meets (tpu.md §8): one open per group, an IOMMU only once a group is attached, regions at
//! `index << 40`, DMA mappings that must not overlap, and every call recorded by the caller.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use nix::errno::Errno;

use super::abi::*;
use super::policy::{CONTAINER, DEVICE, GROUP};
use crate::family::{
    Call, Caller, CarrierLookup, DeviceSim, Opened, SimNode, SimReply, field_u32, field_u64,
};
use crate::pci::Bdf;

const PAGE: u64 = 4096;
/// The most DMA mappings a container takes (`vfio_iommu_type1.dma_entry_limit`).
pub const DMA_ENTRY_LIMIT: usize = 65535;
/// MSI-X vectors of a simulated device.
pub const MSIX_VECTORS: u32 = 16;
/// BAR 0 of a simulated device.
pub const BAR0_SIZE: u64 = 0x400_0000;
/// BAR 2 of a simulated device.
pub const BAR2_SIZE: u64 = 0x8000_0000;
/// PCI config space.
pub const CONFIG_SIZE: u64 = 0x1000;

#[derive(Debug, Default)]
struct Container {
    iommu: Option<u64>,
    groups: BTreeSet<u64>,
    mappings: BTreeMap<u64, (u64, u64)>,
}

#[derive(Debug)]
struct Group {
    number: u32,
    container: Option<u64>,
}

#[derive(Debug)]
struct Device {
    bdf: Bdf,
    irqs: BTreeMap<(u32, u32), i32>,
}

/// What the host offers as a VFIO group: its number, its functions, and their device ID.
#[derive(Debug, Clone)]
pub struct GroupSpec {
    /// IOMMU group number.
    pub number: u32,
    /// The group's functions.
    pub bdfs: Vec<Bdf>,
    /// PCI vendor and device ID of the functions.
    pub ids: (u16, u16),
}

/// The simulated VFIO world.
#[derive(Debug, Default)]
pub struct VfioSim {
    specs: BTreeMap<u32, GroupSpec>,
    containers: HashMap<u64, Container>,
    groups: HashMap<u64, Group>,
    devices: HashMap<u64, Device>,
    next: u64,
}

fn u32s(values: &[u32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_ne_bytes()).collect()
}

/// The first bytes of a simulated function's config space: vendor, device, command, status,
/// revision, class (processing accelerator).
pub fn config_header(vendor: u16, device: u16) -> Vec<u8> {
    let mut config = vec![0u8; 64];
    config[0..2].copy_from_slice(&vendor.to_le_bytes());
    config[2..4].copy_from_slice(&device.to_le_bytes());
    config[8] = 1;
    config[9..12].copy_from_slice(&[0x00, 0x00, 0x12]);
    config
}

impl VfioSim {
    /// Makes group `spec` available.
    pub fn add_group(&mut self, spec: GroupSpec) {
        self.specs.insert(spec.number, spec);
    }

    fn handle(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    /// Opens `/dev/vfio/vfio`.
    pub fn open_container(&mut self) -> u64 {
        let handle = self.handle();
        self.containers.insert(handle, Container::default());
        handle
    }

    /// Opens `/dev/vfio/<number>`. The caller checks first that the group is not open already
    /// (EBUSY), which needs the workload's fd table.
    pub fn open_group(&mut self, number: u32) -> Result<u64, Errno> {
        if !self.specs.contains_key(&number) {
            return Err(Errno::ENODEV);
        }
        let handle = self.handle();
        self.groups.insert(
            handle,
            Group {
                number,
                container: None,
            },
        );
        Ok(handle)
    }

    /// The group number of group file `handle`.
    pub fn group_number(&self, handle: u64) -> Option<u32> {
        self.groups.get(&handle).map(|g| g.number)
    }

    /// Runs a VFIO call on file `handle` of the call's kind; `carriers` finds the simulated
    /// files the call names by fd.
    pub fn ioctl(
        &mut self,
        handle: u64,
        call: &mut Call<'_>,
        carriers: CarrierLookup<'_>,
    ) -> Result<SimReply, Errno> {
        match call.kind {
            kind if kind == CONTAINER => self.container_ioctl(handle, call),
            kind if kind == GROUP => self.group_ioctl(handle, call, carriers),
            kind if kind == DEVICE => self.device_ioctl(handle, call),
            _ => Err(Errno::ENOTTY),
        }
    }

    fn container_ioctl(&mut self, handle: u64, call: &mut Call<'_>) -> Result<SimReply, Errno> {
        let request = call.ioctl.request;
        let container = self.containers.get_mut(&handle).ok_or(Errno::EBADF)?;
        let value = |v: i64| Ok(SimReply::Value(v));
        if request == GET_API_VERSION.request {
            value(0)
        } else if request == CHECK_EXTENSION.request {
            value(i64::from(
                call.arg == TYPE1_IOMMU || call.arg == TYPE1V2_IOMMU,
            ))
        } else if request == SET_IOMMU.request {
            if container.groups.is_empty() || container.iommu.is_some() {
                return Err(Errno::EINVAL);
            }
            if call.arg != TYPE1_IOMMU && call.arg != TYPE1V2_IOMMU {
                return Err(Errno::EINVAL);
            }
            container.iommu = Some(call.arg);
            value(0)
        } else if request == IOMMU_GET_INFO.request {
            let argsz = field_u32(&call.read_arg(4)?, 0).unwrap_or(0);
            if argsz < 16 {
                return Err(Errno::EINVAL);
            }
            // flags = VFIO_IOMMU_INFO_PGSIZES; 4 KiB, 2 MiB and 1 GiB pages.
            call.write_arg(4, &1u32.to_ne_bytes())?;
            call.write_arg(8, &(0x1000u64 | 0x20_0000 | 0x4000_0000).to_ne_bytes())?;
            value(0)
        } else if request == IOMMU_MAP_DMA.request {
            let arg = call.read_arg(size_of::<VfioDmaMap>())?;
            let (vaddr, iova, size) = (
                field_u64(&arg, 8).unwrap_or(0),
                field_u64(&arg, 16).unwrap_or(0),
                field_u64(&arg, 24).unwrap_or(0),
            );
            if container.iommu.is_none()
                || size == 0
                || [vaddr, iova, size].iter().any(|v| v % PAGE != 0)
            {
                return Err(Errno::EINVAL);
            }
            let end = iova.checked_add(size).ok_or(Errno::EINVAL)?;
            if container
                .mappings
                .range(..end)
                .any(|(start, (len, _))| start + len > iova)
            {
                return Err(Errno::EEXIST);
            }
            if container.mappings.len() >= DMA_ENTRY_LIMIT {
                return Err(Errno::ENOSPC);
            }
            let locked: u64 = container.mappings.values().map(|(len, _)| len).sum();
            if locked + size > memlock_limit(call.caller.tgid) {
                return Err(Errno::ENOMEM);
            }
            call.memory.read(vaddr, 1).map_err(|_| Errno::EFAULT)?;
            container.mappings.insert(iova, (size, vaddr));
            value(0)
        } else if request == IOMMU_UNMAP_DMA.request {
            let arg = call.read_arg(size_of::<VfioDmaUnmap>())?;
            let (iova, size) = (
                field_u64(&arg, 8).unwrap_or(0),
                field_u64(&arg, 16).unwrap_or(0),
            );
            let end = iova.saturating_add(size);
            let inside: Vec<u64> = container
                .mappings
                .range(iova..end)
                .filter(|(s, (l, _))| *s + l <= end)
                .map(|(s, _)| *s)
                .collect();
            let unmapped: u64 = inside
                .iter()
                .filter_map(|s| container.mappings.remove(s))
                .map(|(l, _)| l)
                .sum();
            call.write_arg(16, &unmapped.to_ne_bytes())?;
            value(0)
        } else {
            Err(Errno::ENOTTY)
        }
    }

    fn group_ioctl(
        &mut self,
        handle: u64,
        call: &mut Call<'_>,
        carriers: CarrierLookup<'_>,
    ) -> Result<SimReply, Errno> {
        let request = call.ioctl.request;
        let group = self.groups.get(&handle).ok_or(Errno::EBADF)?;
        let (number, container) = (group.number, group.container);
        if request == GROUP_GET_STATUS.request {
            let argsz = field_u32(&call.read_arg(4)?, 0).unwrap_or(0);
            if (argsz as usize) < size_of::<VfioGroupStatus>() {
                return Err(Errno::EINVAL);
            }
            let flags = GROUP_FLAGS_VIABLE
                | if container.is_some() {
                    GROUP_FLAGS_CONTAINER_SET
                } else {
                    0
                };
            call.write_arg(4, &flags.to_ne_bytes())?;
            Ok(SimReply::Value(0))
        } else if request == GROUP_SET_CONTAINER.request {
            let fd = i32::from_ne_bytes(call.read_arg(4)?.try_into().map_err(|_| Errno::EFAULT)?);
            let key = (call.fd_key)(fd).ok_or(Errno::EBADF)?;
            let (kind, target) = carriers(key).ok_or(Errno::EINVAL)?;
            if kind != CONTAINER {
                return Err(Errno::EINVAL);
            }
            if container.is_some() {
                return Err(Errno::EINVAL);
            }
            let target_container = self.containers.get_mut(&target).ok_or(Errno::EBADF)?;
            target_container.groups.insert(handle);
            self.groups.get_mut(&handle).ok_or(Errno::EBADF)?.container = Some(target);
            Ok(SimReply::Value(0))
        } else if request == GROUP_UNSET_CONTAINER.request {
            let target = container.ok_or(Errno::EINVAL)?;
            if let Some(c) = self.containers.get_mut(&target) {
                c.groups.remove(&handle);
                if c.groups.is_empty() {
                    c.iommu = None;
                    c.mappings.clear();
                }
            }
            self.groups.get_mut(&handle).ok_or(Errno::EBADF)?.container = None;
            Ok(SimReply::Value(0))
        } else if request == GROUP_GET_DEVICE_FD.request {
            let name = call.memory.read_cstr(call.arg, 4096)?;
            let name = std::str::from_utf8(&name).map_err(|_| Errno::EINVAL)?;
            let ready = container
                .and_then(|c| self.containers.get(&c))
                .is_some_and(|c| c.iommu.is_some());
            if !ready {
                return Err(Errno::EINVAL);
            }
            let spec = self.specs.get(&number).ok_or(Errno::ENODEV)?;
            let bdf = spec
                .bdfs
                .iter()
                .copied()
                .find(|b| b.to_string() == name)
                .ok_or(Errno::ENODEV)?;
            let (vendor, device) = spec.ids;
            let handle = self.handle();
            self.devices.insert(
                handle,
                Device {
                    bdf,
                    irqs: BTreeMap::new(),
                },
            );
            let config_offset = u64::from(PCI_CONFIG_REGION) << REGION_OFFSET_SHIFT;
            Ok(SimReply::NewFile {
                kind: DEVICE,
                handle,
                size: u64::from(PCI_NUM_REGIONS) << REGION_OFFSET_SHIFT,
                contents: vec![(config_offset, config_header(vendor, device))],
            })
        } else {
            Err(Errno::ENOTTY)
        }
    }

    fn device_ioctl(&mut self, handle: u64, call: &mut Call<'_>) -> Result<SimReply, Errno> {
        let request = call.ioctl.request;
        let device = self.devices.get_mut(&handle).ok_or(Errno::EBADF)?;
        let argsz = |call: &Call<'_>| call.read_arg(4).map(|a| field_u32(&a, 0).unwrap_or(0));
        if request == DEVICE_GET_INFO.request {
            if argsz(call)? < 16 {
                return Err(Errno::EINVAL);
            }
            call.write_arg(
                4,
                &u32s(&[
                    DEVICE_FLAGS_PCI | DEVICE_FLAGS_RESET,
                    PCI_NUM_REGIONS,
                    PCI_NUM_IRQS,
                ]),
            )?;
            Ok(SimReply::Value(0))
        } else if request == DEVICE_GET_REGION_INFO.request {
            let arg = call.read_arg(size_of::<VfioRegionInfo>())?;
            let index = field_u32(&arg, 8).unwrap_or(u32::MAX);
            if (field_u32(&arg, 0).unwrap_or(0) as usize) < size_of::<VfioRegionInfo>()
                || index >= PCI_NUM_REGIONS
            {
                return Err(Errno::EINVAL);
            }
            let rw_mmap = REGION_FLAG_READ | REGION_FLAG_WRITE | REGION_FLAG_MMAP;
            let (flags, size) = match index {
                0 => (rw_mmap, BAR0_SIZE),
                2 => (rw_mmap, BAR2_SIZE),
                PCI_CONFIG_REGION => (REGION_FLAG_READ | REGION_FLAG_WRITE, CONFIG_SIZE),
                _ => (0, 0),
            };
            let offset = u64::from(index) << REGION_OFFSET_SHIFT;
            call.write_arg(4, &flags.to_ne_bytes())?;
            call.write_arg(12, &0u32.to_ne_bytes())?;
            call.write_arg(16, &[size.to_ne_bytes(), offset.to_ne_bytes()].concat())?;
            Ok(SimReply::Value(0))
        } else if request == DEVICE_GET_IRQ_INFO.request {
            let arg = call.read_arg(size_of::<VfioIrqInfo>())?;
            let index = field_u32(&arg, 8).unwrap_or(u32::MAX);
            if field_u32(&arg, 0).unwrap_or(0) < 16 || index >= PCI_NUM_IRQS {
                return Err(Errno::EINVAL);
            }
            let (flags, count) = irq_info(index);
            call.write_arg(4, &flags.to_ne_bytes())?;
            call.write_arg(12, &count.to_ne_bytes())?;
            Ok(SimReply::Value(0))
        } else if request == DEVICE_SET_IRQS.request {
            let header = call.read_arg(size_of::<VfioIrqSet>())?;
            let [argsz, flags, index, start, count] =
                [0, 4, 8, 12, 16].map(|o| field_u32(&header, o).unwrap_or(0));
            if index >= PCI_NUM_IRQS {
                return Err(Errno::EINVAL);
            }
            let (_, vectors) = irq_info(index);
            if start.checked_add(count).is_none_or(|end| end > vectors) {
                return Err(Errno::EINVAL);
            }
            match flags & IRQ_SET_DATA_TYPE_MASK {
                IRQ_SET_DATA_NONE => {}
                IRQ_SET_DATA_BOOL if argsz as usize >= size_of::<VfioIrqSet>() + count as usize => {
                }
                IRQ_SET_DATA_EVENTFD
                    if argsz as usize >= size_of::<VfioIrqSet>() + 4 * count as usize =>
                {
                    let data = call.memory.read(
                        call.arg + size_of::<VfioIrqSet>() as u64,
                        4 * count as usize,
                    )?;
                    for (i, chunk) in data.chunks(4).enumerate() {
                        let fd = i32::from_ne_bytes(chunk.try_into().map_err(|_| Errno::EFAULT)?);
                        let vector = start + i as u32;
                        if fd == -1 {
                            device.irqs.remove(&(index, vector));
                        } else if (call.is_eventfd)(fd) {
                            device.irqs.insert((index, vector), fd);
                        } else {
                            return Err(Errno::EINVAL);
                        }
                    }
                }
                _ => return Err(Errno::EINVAL),
            }
            Ok(SimReply::Value(0))
        } else if request == DEVICE_RESET.request {
            device.irqs.clear();
            let _ = device.bdf;
            Ok(SimReply::Value(0))
        } else {
            Err(Errno::ENOTTY)
        }
    }
}

/// vfio-pci's IRQ info per index: INTx (maskable, automasked), MSI, MSI-X, ERR, REQ.
fn irq_info(index: u32) -> (u32, u32) {
    match index {
        0 => (
            IRQ_INFO_EVENTFD | IRQ_INFO_MASKABLE | IRQ_INFO_AUTOMASKED,
            1,
        ),
        PCI_MSIX_IRQ => (IRQ_INFO_EVENTFD | IRQ_INFO_NORESIZE, MSIX_VECTORS),
        _ => (IRQ_INFO_EVENTFD | IRQ_INFO_NORESIZE, 1),
    }
}

/// The caller's `RLIMIT_MEMLOCK` (what VFIO charges DMA mappings against), from
/// `/proc/<tgid>/limits`; unlimited when unreadable.
fn memlock_limit(tgid: i32) -> u64 {
    let limits = std::fs::read_to_string(format!("/proc/{tgid}/limits")).unwrap_or_default();
    limits
        .lines()
        .find(|l| l.starts_with("Max locked memory"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|soft| soft.parse().ok())
        .unwrap_or(u64::MAX)
}

impl DeviceSim for VfioSim {
    /// Each group's node (one open per process: EBUSY), and the container when there is a
    /// group.
    fn nodes(&self) -> Vec<SimNode> {
        let mut nodes: Vec<SimNode> = self
            .specs
            .keys()
            .map(|number| SimNode {
                path: super::group_node_path(*number),
                kind: GROUP,
                id: u64::from(*number),
                exclusive: true,
            })
            .collect();
        if !nodes.is_empty() {
            nodes.push(SimNode {
                path: CONTAINER_PATH.into(),
                kind: CONTAINER,
                id: 0,
                exclusive: false,
            });
        }
        nodes
    }

    fn open(&mut self, node: &SimNode, _: i32, _: Caller) -> Result<Opened, Errno> {
        let handle = if node.kind == GROUP {
            self.open_group(u32::try_from(node.id).map_err(|_| Errno::ENODEV)?)?
        } else {
            self.open_container()
        };
        Ok(Opened { handle, size: 0 })
    }

    fn ioctl(
        &mut self,
        handle: u64,
        call: &mut Call<'_>,
        carriers: CarrierLookup<'_>,
    ) -> Result<SimReply, Errno> {
        VfioSim::ioctl(self, handle, call, carriers)
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;
    use crate::family::{FakeMemory, FdKind, IoctlDef, Memory};

    const BASE: u64 = 0x100_0000;

    struct World {
        sim: VfioSim,
        mem: FakeMemory,
        container: u64,
        group: u64,
    }

    fn world() -> World {
        let mut sim = VfioSim::default();
        let bdf = Bdf::parse("0000:00:04.0").unwrap();
        sim.add_group(GroupSpec {
            number: 0,
            bdfs: vec![bdf],
            ids: (0x1ae0, 0x0063),
        });
        let container = sim.open_container();
        let group = sim.open_group(0).unwrap();
        World {
            sim,
            mem: FakeMemory {
                base: BASE,
                bytes: RefCell::new(vec![0; 0x10_0000]),
            },
            container,
            group,
        }
    }

    fn call(
        w: &mut World,
        kind: FdKind,
        handle: u64,
        def: IoctlDef,
        arg: u64,
    ) -> Result<SimReply, Errno> {
        let container = w.container;
        let mut call = Call {
            kind,
            ioctl: def,
            arg,
            copy: None,
            memory: &w.mem,
            caller: Caller {
                tgid: std::process::id() as i32,
                euid: 0,
                egid: 0,
            },
            fd_key: &|fd| (fd == 3).then_some((0, 3)),
            is_eventfd: &|fd| fd >= 10,
            received: Default::default(),
        };
        VfioSim::ioctl(&mut w.sim, handle, &mut call, &move |key| {
            (key == (0, 3)).then_some((CONTAINER, container))
        })
    }

    impl World {
        /// A call that must answer with a value (not a new file).
        fn value(
            &mut self,
            kind: FdKind,
            handle: u64,
            def: IoctlDef,
            arg: u64,
        ) -> Result<i64, Errno> {
            match call(self, kind, handle, def, arg)? {
                SimReply::Value(v) => Ok(v),
                other => panic!("{other:?}"),
            }
        }
    }

    fn setup(w: &mut World) -> u64 {
        w.mem.write(BASE, &3i32.to_ne_bytes()).unwrap();
        let (c, g) = (w.container, w.group);
        assert_eq!(
            w.value(CONTAINER, c, SET_IOMMU, TYPE1V2_IOMMU),
            Err(Errno::EINVAL),
            "no group yet"
        );
        assert_eq!(w.value(GROUP, g, GROUP_SET_CONTAINER, BASE), Ok(0));
        w.mem.write(BASE, b"0000:00:04.0\0").unwrap();
        assert_eq!(
            w.value(GROUP, g, GROUP_GET_DEVICE_FD, BASE),
            Err(Errno::EINVAL),
            "no IOMMU yet"
        );
        assert_eq!(w.value(CONTAINER, c, SET_IOMMU, TYPE1V2_IOMMU), Ok(0));
        match call(w, GROUP, g, GROUP_GET_DEVICE_FD, BASE).unwrap() {
            SimReply::NewFile {
                kind: DEVICE,
                handle,
                contents,
                ..
            } => {
                assert_eq!(contents[0].0, 7 << 40);
                assert_eq!(contents[0].1[..4], [0xe0, 0x1a, 0x63, 0x00]);
                handle
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_libtpu_sequence() {
        let mut w = world();
        let (c, g) = (w.container, w.group);
        assert_eq!(w.value(CONTAINER, c, GET_API_VERSION, 0), Ok(0));
        assert_eq!(w.value(CONTAINER, c, CHECK_EXTENSION, TYPE1V2_IOMMU), Ok(1));
        assert_eq!(
            w.value(CONTAINER, c, CHECK_EXTENSION, SPAPR_TCE_IOMMU),
            Ok(0)
        );
        let device = setup(&mut w);
        w.mem.write(BASE, b"0000:00:05.0\0").unwrap();
        assert_eq!(
            w.value(GROUP, g, GROUP_GET_DEVICE_FD, BASE),
            Err(Errno::ENODEV),
            "a foreign BDF"
        );

        w.mem.write(BASE, &u32s(&[24, 0, 0, 0, 0, 0])).unwrap();
        assert_eq!(w.value(DEVICE, device, DEVICE_GET_INFO, BASE), Ok(0));
        assert_eq!(w.mem.read(BASE + 4, 12).unwrap(), u32s(&[3, 9, 5]));
        for index in 0..9u32 {
            w.mem
                .write(BASE, &u32s(&[32, 0, index, 0, 0, 0, 0, 0]))
                .unwrap();
            assert_eq!(w.value(DEVICE, device, DEVICE_GET_REGION_INFO, BASE), Ok(0));
            let offset = field_u64(&w.mem.read(BASE, 32).unwrap(), 24).unwrap();
            assert_eq!(offset, u64::from(index) << 40);
        }
        w.mem
            .write(BASE, &u32s(&[32, 0, 9, 0, 0, 0, 0, 0]))
            .unwrap();
        assert_eq!(
            w.value(DEVICE, device, DEVICE_GET_REGION_INFO, BASE),
            Err(Errno::EINVAL)
        );

        w.mem
            .write(BASE, &u32s(&[20 + 8, 0x24, 2, 0, 2, 10, 11]))
            .unwrap();
        assert_eq!(w.value(DEVICE, device, DEVICE_SET_IRQS, BASE), Ok(0));
        w.mem
            .write(BASE, &u32s(&[20 + 4, 0x24, 2, 15, 2, 10]))
            .unwrap();
        assert_eq!(
            w.value(DEVICE, device, DEVICE_SET_IRQS, BASE),
            Err(Errno::EINVAL),
            "past the vectors"
        );

        let dma = |vaddr: u64, iova: u64, size: u64| {
            [
                u32s(&[32, 3]),
                vaddr.to_ne_bytes().to_vec(),
                iova.to_ne_bytes().to_vec(),
                size.to_ne_bytes().to_vec(),
            ]
            .concat()
        };
        w.mem
            .write(BASE, &dma(BASE + 0x1000, 0x1_0000_0000, 0x2000))
            .unwrap();
        assert_eq!(w.value(CONTAINER, c, IOMMU_MAP_DMA, BASE), Ok(0));
        w.mem
            .write(BASE, &dma(BASE + 0x1000, 0x1_0000_1000, 0x2000))
            .unwrap();
        assert_eq!(
            w.value(CONTAINER, c, IOMMU_MAP_DMA, BASE),
            Err(Errno::EEXIST)
        );
        w.mem
            .write(BASE, &dma(BASE + 0x1001, 0x2_0000_0000, 0x2000))
            .unwrap();
        assert_eq!(
            w.value(CONTAINER, c, IOMMU_MAP_DMA, BASE),
            Err(Errno::EINVAL)
        );
        let unmap = [
            u32s(&[24, 0]),
            0x1_0000_0000u64.to_ne_bytes().to_vec(),
            0x2000u64.to_ne_bytes().to_vec(),
        ]
        .concat();
        w.mem.write(BASE, &unmap).unwrap();
        assert_eq!(w.value(CONTAINER, c, IOMMU_UNMAP_DMA, BASE), Ok(0));
        assert_eq!(field_u64(&w.mem.read(BASE, 24).unwrap(), 16), Some(0x2000));
        assert_eq!(w.value(DEVICE, device, DEVICE_RESET, 0), Ok(0));
    }

    #[test]
    fn group_status_and_detach() {
        let mut w = world();
        let g = w.group;
        w.mem.write(BASE, &u32s(&[8, 0])).unwrap();
        assert_eq!(w.value(GROUP, g, GROUP_GET_STATUS, BASE), Ok(0));
        assert_eq!(field_u32(&w.mem.read(BASE, 8).unwrap(), 4), Some(1));
        setup(&mut w);
        w.mem.write(BASE, &u32s(&[8, 0])).unwrap();
        assert_eq!(w.value(GROUP, g, GROUP_GET_STATUS, BASE), Ok(0));
        assert_eq!(field_u32(&w.mem.read(BASE, 8).unwrap(), 4), Some(3));
        assert_eq!(w.value(GROUP, g, GROUP_UNSET_CONTAINER, 0), Ok(0));
        assert_eq!(
            w.value(GROUP, g, GROUP_UNSET_CONTAINER, 0),
            Err(Errno::EINVAL)
        );
        assert_eq!(w.sim.open_group(9).unwrap_err(), Errno::ENODEV);
    }
}
