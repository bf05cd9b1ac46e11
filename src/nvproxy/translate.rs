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
        if let Some(GpuIds::ListsAt(offset)) = control.map(|c| c.gpu_ids) {
            let ids: Vec<u32> = gpu_ids(&after, offset, MAX_GPUS)
                .into_iter()
                .filter(|id| call.grant.allows_id(*id))
                .collect();
            write_id_list(&mut after, offset, &ids)?;
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
        let params = if params_at != 0 && params_size > 0 {
            Some(call.memory.read(params_at, params_size)?)
        } else {
            None
        };
        // The fd of an OS event is the caller's: the driver gets the gate's dup of it.
        let mut held = None;
        if let Some(params) = &params {
            let mut staged = params.clone();
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
