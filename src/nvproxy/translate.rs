//! The NVIDIA calls whose decision rests on memory, run on the gate's own copies
//! ([`crate::family::Translator`]):
//!
//! - `RM_CONTROL`: the command must be in the version's table (enabled by the capabilities) and
//!   `paramsSize` what that version's driver insists on; the parameters, and the buffers behind
//!   their embedded pointers, are copied in, the call is made on the copies, and what the driver
//!   wrote is copied back. GPU ids the parameters name must be the sandbox's; lists of GPU ids
//!   in an answer lose the others. An unknown command is answered as RM answers one: the call
//!   returns 0 with `NV_ERR_NOT_SUPPORTED` in `status`.
//! - `RM_ALLOC`: the class must be in the table; its parameters are copied at the class's
//!   size (RM ignores `paramsSize` too), an OS event's fd is translated. An unknown class gets
//!   `NV_ERR_INVALID_CLASS`. On a GPU file only event classes are allowed, as in the driver.
//! - `CARD_INFO`: run on a copy; the GPUs the sandbox was not given are blanked out. The ids
//!   the driver gives its GPUs are learned here, for the controls above.
//! - `ATTACH_GPUS_TO_FD`: only the sandbox's GPUs.
//!
//! Copy-out writes only what the driver changed (`Memory::write_changes`), so read-only
//! arguments stay untouched.

use std::collections::HashMap;
use std::os::fd::AsRawFd;
use std::sync::{Mutex, OnceLock};

use nix::errno::Errno;

use super::DriverCaps;
use super::abi::{
    CardInfo, FRONTEND_MAJOR, NV_ERR_INVALID_ARGUMENT, NV_ERR_INVALID_CLASS, NV_ERR_NOT_SUPPORTED,
    NV_ESC_ATTACH_GPUS_TO_FD, NV_ESC_CARD_INFO, NV_ESC_RM_ALLOC, NV_ESC_RM_CONTROL,
};
use super::policy::GPU;
use super::table::{Abi, Control, GpuIds, Layout};
use crate::family::{
    Driver, Inspection, Staging, Translated, Translation, Translator, field_u32, field_u64, ioc_nr,
    ioc_size,
};

/// The most bytes of parameters (and of each embedded buffer) the gate copies: RM's own cap
/// (`RMAPI_PARAM_COPY_MAX_PARAMS_SIZE`).
const MAX_PARAMS: usize = 1 << 20;

/// Commands with this bit are served by GSP firmware from plain bytes ("legacy GSS"); like
/// gVisor, the gate lets them through as plain parameters of the size given.
const GSS_LEGACY: u32 = 0x8000;

/// The end of a GPU id list.
const INVALID_GPU_ID: u32 = 0xffff_ffff;
/// `NV0000_CTRL_GPU_ATTACH_ALL_PROBED_IDS`: "attach every GPU".
const ATTACH_ALL_PROBED: u32 = 0x0000_ffff;
/// GPU id lists hold at most this many (`NV0000_CTRL_GPU_MAX_ATTACHED_GPUS`).
const MAX_GPUS: usize = 32;

/// Offsets in NVOS54.
const CONTROL_CMD: usize = 8;
const CONTROL_PARAMS: usize = 16;
const CONTROL_PARAMS_SIZE: usize = 24;
const CONTROL_STATUS: usize = 28;
/// Offsets in NVOS21 and NVOS64.
const ALLOC_CLASS: usize = 12;
const ALLOC_PARAMS: usize = 16;
const ALLOC_RIGHTS: usize = 24;
const ALLOC_STATUS_21: usize = 28;
const ALLOC_STATUS_64: usize = 40;
/// `RS_ACCESS_MASK`, behind NVOS64's `pRightsRequested`.
const ACCESS_MASK_SIZE: usize = 4;
/// Root classes (a client): the workload's parameters are read and written back as the client
/// handle alone (what CUDA passes and gVisor copies), the driver gets the whole
/// `NV0000_ALLOC_PARAMETERS`, zero-padded.
const ROOT_CLASSES: [u32; 3] = [0x0, 0x1, 0x41];
/// The client handle.
const ROOT_HANDLE_SIZE: usize = 4;
/// Classes a GPU file may allocate: the events (`NV01_EVENT`, `_OS_EVENT`, `_KERNEL_CALLBACK`,
/// `_KERNEL_CALLBACK_EX`).
const EVENT_CLASSES: [u32; 4] = [0x5, 0x79, 0x78, 0x7e];

/// The translator for `abi` with `caps`: one per (version, capabilities) a process uses, kept
/// for its life (the gate's tables point to it).
pub fn translator(abi: &'static Abi, caps: DriverCaps) -> &'static NvTranslator {
    type Cache = Mutex<HashMap<(usize, DriverCaps), &'static NvTranslator>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let mut cache = CACHE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let key = (std::ptr::from_ref(abi) as usize, caps);
    cache
        .entry(key)
        .or_insert_with(|| Box::leak(Box::new(NvTranslator { abi, caps })))
}

/// Deep copies for one driver version and capability set.
#[derive(Debug)]
pub struct NvTranslator {
    abi: &'static Abi,
    caps: DriverCaps,
}

/// A refusal the call answers in memory, as RM does: `status` at `offset`, return value 0.
struct RmRefusal {
    status: u32,
    offset: usize,
    why: &'static str,
}

impl NvTranslator {
    fn control(&self, cmd: u32) -> Option<&'static Control> {
        self.abi.control(cmd, self.caps)
    }

    fn inspect_control(&self, call: &Translation<'_>) -> Result<Inspection, Errno> {
        let nvos = call.memory.read(call.arg, 32)?;
        let cmd = field_u32(&nvos, CONTROL_CMD).ok_or(Errno::EFAULT)?;
        Ok(self.describe_control(cmd))
    }

    /// What command `cmd` is to the table.
    fn describe_control(&self, cmd: u32) -> Inspection {
        match self.control(cmd) {
            Some(control) => Inspection {
                name: control.name,
                number: None,
                refusal: None,
            },
            None if cmd & GSS_LEGACY != 0 => Inspection {
                name: "RM_CONTROL (GSP legacy command)",
                number: Some(cmd),
                refusal: None,
            },
            None => Inspection {
                name: "RM_CONTROL (command not in the table)",
                number: Some(cmd),
                refusal: Some("the command is not in the driver version's table"),
            },
        }
    }

    fn inspect_alloc(&self, call: &Translation<'_>) -> Result<Inspection, Errno> {
        let nvos = call.memory.read(call.arg, 32)?;
        let class = field_u32(&nvos, ALLOC_CLASS).ok_or(Errno::EFAULT)?;
        Ok(self.describe_alloc(call, class))
    }

    /// What class `class` is to the table, allocated on a file of `call`'s kind.
    fn describe_alloc(&self, call: &Translation<'_>, class: u32) -> Inspection {
        match self.abi.class(class, self.caps) {
            Some(known) => Inspection {
                name: known.name,
                number: None,
                refusal: (call.kind == GPU && !EVENT_CLASSES.contains(&class))
                    .then_some("RM_ALLOC of a non-event class on a GPU file"),
            },
            None => Inspection {
                name: "RM_ALLOC (class not in the table)",
                number: Some(class),
                refusal: Some("the class is not in the driver version's table"),
            },
        }
    }

    fn run_control(
        &self,
        call: &Translation<'_>,
        driver: &mut dyn Driver,
    ) -> Result<Translated, Errno> {
        let nvos = call.memory.read(call.arg, 32)?;
        let field = |at: usize| field_u32(&nvos, at).ok_or(Errno::EFAULT);
        let cmd = field(CONTROL_CMD)?;
        let params_at = field_u64(&nvos, CONTROL_PARAMS).ok_or(Errno::EFAULT)?;
        let params_size =
            usize::try_from(field(CONTROL_PARAMS_SIZE)?).map_err(|_| Errno::EINVAL)?;
        let mut inspection = self.describe_control(cmd);
        let control = self.control(cmd);
        let refuse = |refusal: RmRefusal, mut inspection: Inspection| {
            call.memory.write(
                call.arg + refusal.offset as u64,
                &refusal.status.to_ne_bytes(),
            )?;
            inspection.refusal = Some(refusal.why);
            Ok(Translated {
                inspection,
                value: 0,
            })
        };
        if control.is_none() && cmd & GSS_LEGACY == 0 {
            return refuse(
                RmRefusal {
                    status: NV_ERR_NOT_SUPPORTED,
                    offset: CONTROL_STATUS,
                    why: "the command is not in the driver version's table",
                },
                inspection,
            );
        }
        if let Some(control) = control {
            if u32::try_from(params_size) != Ok(control.params_size) {
                return refuse(
                    RmRefusal {
                        status: self.abi.bad_params_status,
                        offset: CONTROL_STATUS,
                        why: "paramsSize is not the driver version's",
                    },
                    inspection,
                );
            }
        }
        if params_size > MAX_PARAMS {
            return Err(Errno::EINVAL);
        }
        let params = if params_size == 0 {
            Vec::new()
        } else {
            call.memory.read(params_at, params_size)?
        };
        let control = control.copied();
        if let Some(GpuIds::Names { offset, single }) = control.map(|c| c.gpu_ids) {
            let named = gpu_ids(&params, offset, if single { 1 } else { MAX_GPUS });
            let all = named.first() == Some(&ATTACH_ALL_PROBED) && !single;
            if !all && named.iter().any(|id| !call.grant.allows_id(*id)) {
                return refuse(
                    RmRefusal {
                        status: NV_ERR_INVALID_ARGUMENT,
                        offset: CONTROL_STATUS,
                        why: "a GPU the sandbox was not given",
                    },
                    inspection,
                );
            }
        }
        let staging = Staging::default();
        staging.add(nvos.clone());
        let mut staged_params = params.clone();
        if let Some(Control {
            gpu_ids:
                GpuIds::Names {
                    offset,
                    single: false,
                },
            ..
        }) = control
        {
            // "Every probed GPU" would reach the host's others: name the sandbox's instead.
            if gpu_ids(&params, offset, 1).first() == Some(&ATTACH_ALL_PROBED) {
                let ids = call.grant.granted_ids();
                write_id_list(&mut staged_params, offset, &ids)?;
            }
        }
        let (_, params_address) = staging.add(staged_params);
        staging.set(0, CONTROL_PARAMS, &params_address.to_ne_bytes())?;
        // The buffers behind the parameters' pointers.
        let mut embedded = Vec::new();
        if let Some(Layout::Pointers(pointers)) = control.map(|c| c.layout) {
            for pointer in pointers {
                let at = field_u64(&params, pointer.offset).ok_or(Errno::EFAULT)?;
                if at == 0 {
                    continue;
                }
                let count = field_u32(&params, pointer.count).ok_or(Errno::EFAULT)?;
                let length = usize::try_from(u64::from(count) * u64::from(pointer.unit))
                    .map_err(|_| Errno::EINVAL)?;
                if length > MAX_PARAMS {
                    return Err(Errno::EINVAL);
                }
                let bytes = call.memory.read(at, length)?;
                let (index, address) = staging.add(bytes.clone());
                staging.set(1, pointer.offset, &address.to_ne_bytes())?;
                embedded.push((pointer.offset, at, index, bytes));
            }
        }
        let value = driver.ioctl(call.request, &staging)?;
        // Out: the embedded buffers, the parameters with the workload's pointers, the struct.
        for (_, at, index, before) in &embedded {
            let after = staging.get(*index).ok_or(Errno::EFAULT)?;
            call.memory.write_changes(*at, before, &after)?;
        }
        let mut after = staging.get(1).ok_or(Errno::EFAULT)?;
        for (offset, at, _, _) in &embedded {
            after[*offset..*offset + 8].copy_from_slice(&at.to_ne_bytes());
        }
        if let Some(GpuIds::ListsAt(offsets)) = control.map(|c| c.gpu_ids) {
            let length = after.len();
            for offset in offsets.iter().filter(|at| *at + 4 * MAX_GPUS <= length) {
                let ids: Vec<u32> = gpu_ids(&after, *offset, MAX_GPUS)
                    .into_iter()
                    .filter(|id| call.grant.allows_id(*id))
                    .collect();
                write_id_list(&mut after, *offset, &ids)?;
            }
        }
        if params_size > 0 {
            call.memory.write_changes(params_at, &params, &after)?;
        }
        let mut nvos_after = staging.get(0).ok_or(Errno::EFAULT)?;
        nvos_after[CONTROL_PARAMS..CONTROL_PARAMS + 8].copy_from_slice(&params_at.to_ne_bytes());
        call.memory.write_changes(call.arg, &nvos, &nvos_after)?;
        inspection.refusal = None;
        Ok(Translated { inspection, value })
    }

    fn run_alloc(
        &self,
        call: &Translation<'_>,
        driver: &mut dyn Driver,
    ) -> Result<Translated, Errno> {
        let size = ioc_size(call.request);
        let long = size == 48;
        let nvos = call.memory.read(call.arg, size)?;
        let class = field_u32(&nvos, ALLOC_CLASS).ok_or(Errno::EFAULT)?;
        let inspection = self.describe_alloc(call, class);
        let status_at = if long {
            ALLOC_STATUS_64
        } else {
            ALLOC_STATUS_21
        };
        let Some(known) = self.abi.class(class, self.caps) else {
            call.memory.write(
                call.arg + status_at as u64,
                &NV_ERR_INVALID_CLASS.to_ne_bytes(),
            )?;
            return Ok(Translated {
                inspection,
                value: 0,
            });
        };
        if inspection.refusal.is_some() {
            // What the driver answers for a non-event class on a GPU file.
            return Err(Errno::EINVAL);
        }
        let staging = Staging::default();
        staging.add(nvos.clone());
        let params_at = field_u64(&nvos, ALLOC_PARAMS).ok_or(Errno::EFAULT)?;
        let params_size = usize::try_from(known.params_size).map_err(|_| Errno::EINVAL)?;
        let from_workload = if ROOT_CLASSES.contains(&class) {
            ROOT_HANDLE_SIZE.min(params_size)
        } else {
            params_size
        };
        let params = if params_at != 0 && params_size > 0 {
            Some(call.memory.read(params_at, from_workload)?)
        } else {
            None
        };
        // The fd of an OS event is the caller's: the driver gets the gate's dup of it.
        let mut held = None;
        if let Some(params) = &params {
            let mut staged = params.clone();
            staged.resize(params_size, 0);
            if let Some(offset) = known.fd_at {
                let number = field_u64(params, offset).ok_or(Errno::EFAULT)?;
                let fd = i32::try_from(number).map_err(|_| Errno::EBADF)?;
                let dup = (call.dup_fd)(fd)?;
                let ours = u64::try_from(dup.as_raw_fd()).map_err(|_| Errno::EBADF)?;
                staged[offset..offset + 8].copy_from_slice(&ours.to_ne_bytes());
                held = Some(dup);
            }
            let (_, address) = staging.add(staged);
            staging.set(0, ALLOC_PARAMS, &address.to_ne_bytes())?;
        }
        let rights_at = if long {
            field_u64(&nvos, ALLOC_RIGHTS).unwrap_or(0)
        } else {
            0
        };
        let rights = if rights_at != 0 {
            let bytes = call.memory.read(rights_at, ACCESS_MASK_SIZE)?;
            let (index, address) = staging.add(bytes.clone());
            staging.set(0, ALLOC_RIGHTS, &address.to_ne_bytes())?;
            Some((index, bytes))
        } else {
            None
        };
        let value = driver.ioctl(call.request, &staging)?;
        drop(held);
        if let Some(params) = &params {
            let index = 1;
            let mut after = staging.get(index).ok_or(Errno::EFAULT)?;
            after.truncate(params.len());
            if let Some(offset) = known.fd_at {
                after[offset..offset + 8].copy_from_slice(&params[offset..offset + 8]);
            }
            call.memory.write_changes(params_at, params, &after)?;
        }
        if let Some((index, before)) = rights {
            let after = staging.get(index).ok_or(Errno::EFAULT)?;
            call.memory.write_changes(rights_at, &before, &after)?;
        }
        let mut nvos_after = staging.get(0).ok_or(Errno::EFAULT)?;
        nvos_after[ALLOC_PARAMS..ALLOC_PARAMS + 8].copy_from_slice(&params_at.to_ne_bytes());
        if long {
            nvos_after[ALLOC_RIGHTS..ALLOC_RIGHTS + 8].copy_from_slice(&rights_at.to_ne_bytes());
        }
        call.memory.write_changes(call.arg, &nvos, &nvos_after)?;
        Ok(Translated { inspection, value })
    }

    fn run_card_info(
        &self,
        call: &Translation<'_>,
        driver: &mut dyn Driver,
    ) -> Result<Translated, Errno> {
        let size = ioc_size(call.request);
        let before = call.memory.read(call.arg, size)?;
        let staging = Staging::default();
        staging.add(before.clone());
        let value = driver.ioctl(call.request, &staging)?;
        let mut after = staging.get(0).ok_or(Errno::EFAULT)?;
        let entry = size_of::<CardInfo>();
        for card in after.chunks_exact_mut(entry) {
            let valid = card[0] != 0;
            let gpu_id = field_u32(card, std::mem::offset_of!(CardInfo, gpu_id));
            let minor = field_u32(card, std::mem::offset_of!(CardInfo, minor_number));
            if let (true, Some(id), Some(minor)) = (valid, gpu_id, minor) {
                call.grant.learn(id, (FRONTEND_MAJOR, minor));
                if !call.grant.allows((FRONTEND_MAJOR, minor)) {
                    card.fill(0);
                }
            }
        }
        call.memory.write_changes(call.arg, &before, &after)?;
        Ok(Translated {
            inspection: Inspection {
                name: "NV_ESC_CARD_INFO",
                number: None,
                refusal: None,
            },
            value,
        })
    }

    fn run_attach(
        &self,
        call: &Translation<'_>,
        driver: &mut dyn Driver,
    ) -> Result<Translated, Errno> {
        let size = ioc_size(call.request);
        let ids = call.memory.read(call.arg, size)?;
        let inspection = describe_attach(call, &ids);
        if inspection.refusal.is_some() {
            return Err(Errno::EINVAL);
        }
        let staging = Staging::default();
        staging.add(ids);
        let value = driver.ioctl(call.request, &staging)?;
        Ok(Translated { inspection, value })
    }
}

/// `ATTACH_GPUS_TO_FD` of `ids`: refused when one is not the sandbox's.
fn describe_attach(call: &Translation<'_>, ids: &[u8]) -> Inspection {
    let foreign = ids
        .chunks_exact(4)
        .filter_map(|id| id.try_into().ok().map(u32::from_ne_bytes))
        .any(|id| !call.grant.allows_id(id));
    Inspection {
        name: "NV_ESC_ATTACH_GPUS_TO_FD",
        number: None,
        refusal: foreign.then_some("a GPU the sandbox was not given"),
    }
}

/// Up to `max` GPU ids at `offset`, to the first [`INVALID_GPU_ID`].
fn gpu_ids(params: &[u8], offset: usize, max: usize) -> Vec<u32> {
    (0..max)
        .map_while(|i| field_u32(params, offset + 4 * i))
        .take_while(|id| *id != INVALID_GPU_ID)
        .collect()
}

/// Writes `ids` at `offset` as a list of [`MAX_GPUS`], the rest [`INVALID_GPU_ID`].
fn write_id_list(params: &mut [u8], offset: usize, ids: &[u32]) -> Result<(), Errno> {
    for i in 0..MAX_GPUS {
        let id = ids.get(i).copied().unwrap_or(INVALID_GPU_ID);
        let at = offset + 4 * i;
        params
            .get_mut(at..at + 4)
            .ok_or(Errno::EFAULT)?
            .copy_from_slice(&id.to_ne_bytes());
    }
    Ok(())
}

impl Translator for NvTranslator {
    fn inspect(&self, call: &Translation<'_>) -> Result<Inspection, Errno> {
        match ioc_nr(call.request) {
            NV_ESC_RM_CONTROL => self.inspect_control(call),
            NV_ESC_RM_ALLOC => self.inspect_alloc(call),
            NV_ESC_ATTACH_GPUS_TO_FD => {
                let ids = call.memory.read(call.arg, ioc_size(call.request))?;
                Ok(describe_attach(call, &ids))
            }
            NV_ESC_CARD_INFO => Ok(Inspection {
                name: "NV_ESC_CARD_INFO",
                number: None,
                refusal: None,
            }),
            _ => Err(Errno::EINVAL),
        }
    }

    fn run(&self, call: &Translation<'_>, driver: &mut dyn Driver) -> Result<Translated, Errno> {
        match ioc_nr(call.request) {
            NV_ESC_RM_CONTROL => self.run_control(call, driver),
            NV_ESC_RM_ALLOC => self.run_alloc(call, driver),
            NV_ESC_CARD_INFO => self.run_card_info(call, driver),
            NV_ESC_ATTACH_GPUS_TO_FD => self.run_attach(call, driver),
            _ => Err(Errno::EINVAL),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::HashSet;

    use super::*;
    use crate::family::{FakeMemory, Grant, Memory};
    use crate::nvproxy::policy::CTL;
    use crate::nvproxy::tree::abi;

    const BASE: u64 = 0x1000;

    /// A driver that records what it got and answers with `answer` applied to the staging.
    struct Recording<F: FnMut(&Staging)> {
        seen: Vec<Vec<u8>>,
        answer: F,
    }

    impl<F: FnMut(&Staging)> Driver for Recording<F> {
        fn ioctl(&mut self, _: u32, staging: &Staging) -> Result<i64, Errno> {
            self.seen.push(staging.get(0).unwrap());
            (self.answer)(staging);
            Ok(0)
        }
    }

    struct Setup {
        memory: FakeMemory,
        granted: HashSet<(u32, u32)>,
        ids: Mutex<HashMap<u32, (u32, u32)>>,
    }

    impl Setup {
        fn new(bytes: Vec<u8>) -> Self {
            Self {
                memory: FakeMemory {
                    base: BASE,
                    bytes: RefCell::new(bytes),
                },
                // GPU 0x100 is /dev/nvidia0, granted; 0x200 is /dev/nvidia1, not.
                granted: HashSet::from([(FRONTEND_MAJOR, 0)]),
                ids: Mutex::new(HashMap::from([
                    (0x100, (FRONTEND_MAJOR, 0)),
                    (0x200, (FRONTEND_MAJOR, 1)),
                ])),
            }
        }

        fn run<F: FnMut(&Staging)>(
            &self,
            version: &str,
            request: u32,
            driver: &mut Recording<F>,
        ) -> Result<Translated, Errno> {
            let translator =
                translator(abi(version.parse().unwrap()).unwrap(), DriverCaps::DEFAULT);
            let grant = Grant {
                devices: Some(&self.granted),
                ids: &self.ids,
            };
            let no_dup = |_: i32| Err(Errno::EBADF);
            let call = Translation {
                kind: CTL,
                request,
                arg: BASE,
                memory: &self.memory,
                grant: &grant,
                dup_fd: &no_dup,
            };
            translator.run(&call, driver)
        }

        fn word(&self, at: u64) -> u32 {
            let bytes = self.memory.read(at, 4).unwrap();
            u32::from_ne_bytes(bytes.try_into().unwrap())
        }
    }

    const RM_CONTROL: u32 = 0xc020_462a;
    const RM_ALLOC_64: u32 = 0xc030_462b;

    /// NVOS54 at BASE, parameters at BASE + 0x100.
    fn control(cmd: u32, params: &[u8]) -> Vec<u8> {
        let mut bytes = vec![0u8; 0x100 + params.len().max(0x400)];
        bytes[8..12].copy_from_slice(&cmd.to_ne_bytes());
        bytes[16..24].copy_from_slice(&(BASE + 0x100).to_ne_bytes());
        bytes[24..28].copy_from_slice(&(params.len() as u32).to_ne_bytes());
        bytes[0x100..0x100 + params.len()].copy_from_slice(params);
        bytes
    }

    fn nothing(_: &Staging) {}

    #[test]
    fn commands_not_in_the_table_and_wrong_sizes_are_answered_as_rm_does() {
        for (version, cmd, size, status) in [
            ("580.65.06", 0x2080_0999, 8, NV_ERR_NOT_SUPPORTED),
            ("580.65.06", 0x2080_018d, 3812, NV_ERR_NOT_SUPPORTED),
            ("580.65.06", 0x2080_0110, 68, NV_ERR_INVALID_ARGUMENT),
            ("535.129.03", 0x2080_0110, 68, 0x3a),
        ] {
            let setup = Setup::new(control(cmd, &vec![0; size]));
            let mut driver = Recording {
                seen: Vec::new(),
                answer: nothing,
            };
            let done = setup.run(version, RM_CONTROL, &mut driver).unwrap();
            assert_eq!(
                (done.value, setup.word(BASE + 28)),
                (0, status),
                "{cmd:#x} at {version}"
            );
            assert!(done.inspection.refusal.is_some());
            assert!(driver.seen.is_empty(), "{cmd:#x} reached the driver");
        }
    }

    #[test]
    fn embedded_buffers_are_staged_and_copied_back() {
        // SYSTEM_GET_BUILD_VERSION: sizeOfStrings 16, three string pointers into the memory.
        let mut params = vec![0u8; 40];
        params[..4].copy_from_slice(&16u32.to_ne_bytes());
        for (i, at) in [0x200u64, 0x240, 0x280].iter().enumerate() {
            params[8 + 8 * i..16 + 8 * i].copy_from_slice(&(BASE + at).to_ne_bytes());
        }
        let setup = Setup::new(control(0x101, &params));
        let mut driver = Recording {
            seen: Vec::new(),
            answer: |staging: &Staging| {
                // The driver writes through the staged pointers, never the workload's.
                let params = staging.read(field_u64(&staging.get(0).unwrap(), 16).unwrap(), 40);
                let params = params.unwrap();
                for i in 0..3 {
                    let at = field_u64(&params, 8 + 8 * i).unwrap();
                    assert!(!(BASE..BASE + 0x1000).contains(&at), "a workload pointer");
                    staging.write(at, b"580.65.06\0").unwrap();
                }
            },
        };
        let done = setup.run("580.65.06", RM_CONTROL, &mut driver).unwrap();
        assert_eq!(done.inspection.refusal, None);
        for at in [0x200u64, 0x240, 0x280] {
            assert_eq!(setup.memory.read(BASE + at, 10).unwrap(), b"580.65.06\0");
        }
        // The workload's pointers are left as they were.
        assert_eq!(
            field_u64(&setup.memory.read(BASE + 0x100, 16).unwrap(), 8),
            Some(BASE + 0x200)
        );
    }

    #[test]
    fn gpu_id_lists_lose_the_gpus_not_given() {
        // GET_PROBED_IDS at 580: the driver answers both GPUs probed, 0x200 also excluded.
        let setup = Setup::new(control(0x214, &[0xff; 384]));
        let mut driver = Recording {
            seen: Vec::new(),
            answer: |staging: &Staging| {
                let at = field_u64(&staging.get(0).unwrap(), 16).unwrap();
                let mut lists = vec![0xffu8; 384];
                lists[..8].copy_from_slice(&[0, 1, 0, 0, 0, 2, 0, 0]);
                lists[128..132].copy_from_slice(&0x200u32.to_ne_bytes());
                staging.write(at, &lists).unwrap();
            },
        };
        setup.run("580.65.06", RM_CONTROL, &mut driver).unwrap();
        assert_eq!(setup.word(BASE + 0x100), 0x100);
        assert_eq!(setup.word(BASE + 0x104), INVALID_GPU_ID);
        assert_eq!(
            setup.word(BASE + 0x180),
            INVALID_GPU_ID,
            "the excluded list named 0x200"
        );
    }

    #[test]
    fn attaching_names_only_the_sandboxs_gpus() {
        let mut attach = vec![0xffu8; 132];
        attach[..4].copy_from_slice(&0x200u32.to_ne_bytes());
        let setup = Setup::new(control(0x215, &attach));
        let mut driver = Recording {
            seen: Vec::new(),
            answer: nothing,
        };
        let done = setup.run("580.65.06", RM_CONTROL, &mut driver).unwrap();
        assert_eq!(setup.word(BASE + 28), NV_ERR_INVALID_ARGUMENT);
        assert!(done.inspection.refusal.is_some() && driver.seen.is_empty());

        // "Every probed GPU" reaches the driver as the sandbox's.
        attach[..4].copy_from_slice(&ATTACH_ALL_PROBED.to_ne_bytes());
        let setup = Setup::new(control(0x215, &attach));
        let mut staged = Vec::new();
        let mut driver = Recording {
            seen: Vec::new(),
            answer: |staging: &Staging| {
                let at = field_u64(&staging.get(0).unwrap(), 16).unwrap();
                staged = staging.read(at, 8).unwrap();
            },
        };
        setup.run("580.65.06", RM_CONTROL, &mut driver).unwrap();
        assert_eq!(staged, [0, 1, 0, 0, 0xff, 0xff, 0xff, 0xff]);
    }

    #[test]
    fn a_root_client_takes_a_handle_from_the_workload_and_a_whole_struct_to_the_driver() {
        // NVOS64 at BASE; the client handle is the last four bytes of the memory.
        let mut bytes = vec![0u8; 0x104];
        bytes[12..16].copy_from_slice(&0x41u32.to_ne_bytes());
        bytes[16..24].copy_from_slice(&(BASE + 0x100).to_ne_bytes());
        let setup = Setup::new(bytes);
        let mut driver = Recording {
            seen: Vec::new(),
            answer: |staging: &Staging| {
                let at = field_u64(&staging.get(0).unwrap(), 16).unwrap();
                assert_eq!(staging.read(at, 120).unwrap().len(), 120);
                staging.write(at, &0xc1d0_0000u32.to_ne_bytes()).unwrap();
                staging
                    .write(staging.top().unwrap().0 + 8, &0xc1d0_0000u32.to_ne_bytes())
                    .unwrap();
            },
        };
        let done = setup.run("580.65.06", RM_ALLOC_64, &mut driver).unwrap();
        assert_eq!(done.inspection.name, "NV01_ROOT_CLIENT");
        assert_eq!(setup.word(BASE + 0x100), 0xc1d0_0000);
        assert_eq!(setup.word(BASE + 8), 0xc1d0_0000);
        // An unknown class: RM's status, nothing reaches the driver.
        let mut bytes = vec![0u8; 0x104];
        bytes[12..16].copy_from_slice(&0xdeadu32.to_ne_bytes());
        let setup = Setup::new(bytes);
        let mut driver = Recording {
            seen: Vec::new(),
            answer: nothing,
        };
        setup.run("580.65.06", RM_ALLOC_64, &mut driver).unwrap();
        assert_eq!(setup.word(BASE + 40), NV_ERR_INVALID_CLASS);
        assert!(driver.seen.is_empty());
    }
}
