//! A simulated NVIDIA driver (the RM behind `/dev/nvidiactl` and `/dev/nvidiaN`, and UVM),
//! faithful to one driver version's ABI, for CI and demos: the gate's brokered opens hand the
//! sandbox carriers for its nodes, and every call the gate lets through lands here.
//!
//! What it models: per-file state (the `REGISTER_FD` link, the GPUs attached to a control
//! file), `CHECK_VERSION_STR` (query, strict and relaxed), `CARD_INFO` of the host's GPUs,
//! `ATTACH_GPUS_TO_FD`, an object server ([`objects`]) with the root client, `NV01_DEVICE_0`
//! and `NV20_SUBDEVICE_0` (and any other class the version knows, with its parent checked),
//! `RM_FREE`, the controls of a CUDA start-up ([`controls`]), and `UVM_INITIALIZE` and
//! `UVM_PAGEABLE_MEM_ACCESS`. Argument sizes and control `paramsSize` are checked against the
//! version's ABI as the driver checks them; RM errors come back as a status with return value
//! 0, transport errors as errnos.

mod controls;
mod objects;

use std::collections::HashMap;
use std::path::PathBuf;

use nix::errno::Errno;

use super::NvidiaGpu;
use super::abi::{
    CardInfo, NV_ERR_INVALID_ARGUMENT, NV_ERR_INVALID_CLASS, NV_ERR_INVALID_OBJECT_PARENT,
    NV_ERR_NOT_SUPPORTED, NV_ESC_ATTACH_GPUS_TO_FD, NV_ESC_CARD_INFO, NV_ESC_CHECK_VERSION_STR,
    NV_ESC_REGISTER_FD, NV_ESC_RM_ALLOC, NV_ESC_RM_CONTROL, NV_ESC_RM_FREE, NV_ESC_SYS_PARAMS,
    NV_OK, NV_RM_API_VERSION_CMD_QUERY, NV_RM_API_VERSION_REPLY_RECOGNIZED,
    NV_RM_API_VERSION_REPLY_UNRECOGNIZED, NVIDIA_VENDOR_ID, UVM_DEINITIALIZE, UVM_INITIALIZE,
};
use super::policy::{CTL, GPU, UVM};
use super::table::Abi;
use crate::family::{
    Call, Caller, CarrierLookup, DeviceSim, Opened, SimNode, SimReply, field_u32, field_u64,
    ioc_nr, ioc_size,
};
pub use controls::GPU_GET_PIDS;
use objects::{DEVICE, Object, Objects, ROOT_CLASSES, SUBDEVICE};

/// `UVM_PAGEABLE_MEM_ACCESS`.
const UVM_PAGEABLE_MEM_ACCESS: u32 = 39;

/// One GPU as the simulated driver knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimGpu {
    /// Index in PCI bus order.
    pub index: usize,
    /// RM's id for it, from its PCI address: `domain << 16 | bus << 8 | device`.
    pub gpu_id: u32,
    /// Minor of its `/dev/nvidiaN`.
    pub minor: u32,
    /// PCI address parts.
    pub pci: (u32, u8, u8, u8),
    /// PCI device id.
    pub device_id: u16,
    /// Marketing name.
    pub name: Option<String>,
    /// `GPU-...` UUID.
    pub uuid: Option<String>,
    /// NUMA node.
    pub numa: Option<i32>,
    /// Its node in the sandbox, when it was granted.
    pub path: Option<PathBuf>,
}

impl SimGpu {
    /// The simulated view of a discovered GPU.
    pub fn of(gpu: &NvidiaGpu, granted: bool) -> Self {
        let bdf = gpu.bdf;
        Self {
            index: gpu.index,
            gpu_id: (bdf.domain() << 16) | (u32::from(bdf.bus()) << 8) | u32::from(bdf.device()),
            minor: gpu.minor,
            pci: (bdf.domain(), bdf.bus(), bdf.device(), bdf.function()),
            device_id: gpu.device_id,
            name: gpu.model.clone(),
            uuid: gpu.uuid.clone(),
            numa: gpu.numa_node,
            path: granted.then(|| PathBuf::from(format!("/dev/nvidia{}", gpu.minor))),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    Ctl,
    Gpu(usize),
    Uvm,
}

#[derive(Debug)]
struct File {
    node: Node,
    /// For a GPU file: the control file it was registered to.
    registered: Option<u64>,
    /// For a control file: the GPU ids attached to it.
    attached: Vec<u32>,
}

/// The simulated driver.
#[derive(Debug)]
pub struct NvidiaSim {
    abi: &'static Abi,
    gpus: Vec<SimGpu>,
    files: HashMap<u64, File>,
    objects: Objects,
    next: u64,
}

/// Node ids of the non-GPU nodes (GPUs are their minors).
const CTL_ID: u64 = 255;
const UVM_ID: u64 = 0x1_0000;

impl NvidiaSim {
    /// A driver of `abi`'s version with `gpus` (the granted ones served as nodes).
    pub fn new(abi: &'static Abi, gpus: Vec<SimGpu>) -> Self {
        Self {
            abi,
            gpus,
            files: HashMap::new(),
            objects: Objects::default(),
            next: 0,
        }
    }

    fn version(&self) -> String {
        self.abi.version.to_string()
    }

    /// The file RM binds clients to: a GPU file's control file once registered.
    fn owner(&self, handle: u64) -> u64 {
        self.files
            .get(&handle)
            .and_then(|f| f.registered)
            .unwrap_or(handle)
    }

    fn check_version(&self, call: &mut Call<'_>) -> Result<i64, Errno> {
        let arg = call.read_arg(72)?;
        let cmd = field_u32(&arg, 0).ok_or(Errno::EFAULT)?;
        let ours = self.version();
        let mut string = [0u8; 64];
        string[..ours.len()].copy_from_slice(ours.as_bytes());
        if cmd == NV_RM_API_VERSION_CMD_QUERY {
            call.write_arg(4, &NV_RM_API_VERSION_REPLY_RECOGNIZED.to_ne_bytes())?;
            call.write_arg(8, &string)?;
            return Ok(0);
        }
        let theirs = &arg[8..72];
        let end = theirs.iter().position(|b| *b == 0).unwrap_or(64);
        if &theirs[..end] == ours.as_bytes() {
            call.write_arg(4, &NV_RM_API_VERSION_REPLY_RECOGNIZED.to_ne_bytes())?;
            Ok(0)
        } else {
            call.write_arg(4, &NV_RM_API_VERSION_REPLY_UNRECOGNIZED.to_ne_bytes())?;
            call.write_arg(8, &string)?;
            Err(Errno::EINVAL)
        }
    }

    fn card_info(&self, call: &mut Call<'_>) -> Result<i64, Errno> {
        let size = ioc_size(call.ioctl.request);
        let entry = size_of::<CardInfo>();
        if size % entry != 0 || size / entry < self.gpus.len() {
            return Err(Errno::EINVAL);
        }
        call.read_arg(size)?;
        let mut out = vec![0u8; size];
        for (i, gpu) in self.gpus.iter().enumerate() {
            let card = &mut out[i * entry..(i + 1) * entry];
            card[0] = 1;
            card[4..8].copy_from_slice(&gpu.pci.0.to_ne_bytes());
            card[8] = gpu.pci.1;
            card[9] = gpu.pci.2;
            card[10] = gpu.pci.3;
            card[12..14].copy_from_slice(&NVIDIA_VENDOR_ID.to_ne_bytes());
            card[14..16].copy_from_slice(&gpu.device_id.to_ne_bytes());
            card[16..20].copy_from_slice(&gpu.gpu_id.to_ne_bytes());
            let bar = 0xf000_0000u64 + (i as u64) * 0x0100_0000;
            card[24..32].copy_from_slice(&bar.to_ne_bytes());
            card[32..40].copy_from_slice(&0x0100_0000u64.to_ne_bytes());
            card[56..60].copy_from_slice(&gpu.minor.to_ne_bytes());
            let name = format!("nvidia{}", gpu.minor);
            let n = name.len().min(9);
            card[60..60 + n].copy_from_slice(&name.as_bytes()[..n]);
        }
        call.write_arg(0, &out)?;
        Ok(0)
    }

    fn register_fd(
        &mut self,
        handle: u64,
        call: &mut Call<'_>,
        carriers: CarrierLookup<'_>,
    ) -> Result<i64, Errno> {
        let arg = call.read_arg(4)?;
        let fd = i32::from_ne_bytes(arg[..4].try_into().map_err(|_| Errno::EFAULT)?);
        let ctl = (call.fd_key)(fd)
            .and_then(carriers)
            .filter(|(kind, _)| *kind == CTL)
            .map(|(_, h)| h)
            .ok_or(Errno::EINVAL)?;
        // Self links, links of control files and second links are refused, as RM does.
        let file = self.files.get_mut(&handle).ok_or(Errno::EBADF)?;
        if ctl == handle || file.node == Node::Ctl || file.registered.is_some() {
            return Err(Errno::EINVAL);
        }
        file.registered = Some(ctl);
        Ok(0)
    }

    fn attach_gpus(&mut self, handle: u64, call: &mut Call<'_>) -> Result<i64, Errno> {
        let size = ioc_size(call.ioctl.request);
        let arg = call.read_arg(size)?;
        let ids: Vec<u32> = arg
            .chunks_exact(4)
            .filter_map(|b| b.try_into().ok().map(u32::from_ne_bytes))
            .collect();
        if ids
            .iter()
            .any(|id| !self.gpus.iter().any(|g| g.gpu_id == *id))
        {
            return Err(Errno::EINVAL);
        }
        let file = self.files.get_mut(&handle).ok_or(Errno::EBADF)?;
        for id in ids {
            if !file.attached.contains(&id) {
                file.attached.push(id);
            }
        }
        Ok(0)
    }

    fn alloc(&mut self, handle: u64, call: &mut Call<'_>) -> Result<i64, Errno> {
        let size = ioc_size(call.ioctl.request);
        let arg = call.read_arg(size)?;
        let word = |at: usize| field_u32(&arg, at).ok_or(Errno::EFAULT);
        let (client, parent, new, class) = (word(0)?, word(4)?, word(8)?, word(12)?);
        let params_at = field_u64(&arg, 16).ok_or(Errno::EFAULT)?;
        let status_at = if size == 48 { 40 } else { 28 };
        let owner = self.owner(handle);
        let status = if ROOT_CLASSES.contains(&class) {
            match self.objects.alloc_client(owner, new) {
                Ok(client) => {
                    call.write_arg(8, &client.to_ne_bytes())?;
                    if params_at != 0 {
                        call.memory.write(params_at, &client.to_ne_bytes())?;
                    }
                    NV_OK
                }
                Err(status) => status,
            }
        } else if !self.abi.classes.contains_key(&class) {
            NV_ERR_INVALID_CLASS
        } else {
            let first_param = |call: &Call<'_>| -> Result<u32, Errno> {
                if params_at == 0 {
                    return Ok(0);
                }
                let bytes = call.memory.read(params_at, 4)?;
                Ok(u32::from_ne_bytes(
                    bytes[..4].try_into().map_err(|_| Errno::EFAULT)?,
                ))
            };
            let gpu = match class {
                DEVICE => {
                    let id = first_param(call)? as usize;
                    let attached = &self.files.get(&owner).ok_or(Errno::EBADF)?.attached;
                    match (parent == client, attached.get(id)) {
                        (false, _) => Err(NV_ERR_INVALID_OBJECT_PARENT),
                        (true, Some(gpu_id)) => {
                            Ok(self.gpus.iter().position(|g| g.gpu_id == *gpu_id))
                        }
                        (true, None) => Err(NV_ERR_INVALID_ARGUMENT),
                    }
                }
                SUBDEVICE => match self.objects.object(owner, client, parent) {
                    Ok(Object {
                        class: DEVICE, gpu, ..
                    }) if first_param(call)? == 0 => Ok(gpu),
                    Ok(Object { class: DEVICE, .. }) => Err(NV_ERR_INVALID_ARGUMENT),
                    _ => Err(NV_ERR_INVALID_OBJECT_PARENT),
                },
                _ => Ok(None),
            };
            match gpu {
                Ok(gpu) => self
                    .objects
                    .alloc(owner, client, new, Object { class, parent, gpu })
                    .err()
                    .unwrap_or(NV_OK),
                Err(status) => status,
            }
        };
        call.write_arg(status_at, &status.to_ne_bytes())?;
        Ok(0)
    }

    fn free(&mut self, handle: u64, call: &mut Call<'_>) -> Result<i64, Errno> {
        let arg = call.read_arg(16)?;
        let word = |at: usize| field_u32(&arg, at).ok_or(Errno::EFAULT);
        let owner = self.owner(handle);
        let status = self.objects.free(owner, word(0)?, word(8)?);
        call.write_arg(12, &status.to_ne_bytes())?;
        Ok(0)
    }

    fn control(&mut self, handle: u64, call: &mut Call<'_>) -> Result<i64, Errno> {
        let arg = call.read_arg(32)?;
        let word = |at: usize| field_u32(&arg, at).ok_or(Errno::EFAULT);
        let (client, object, cmd, size) = (word(0)?, word(4)?, word(8)?, word(24)?);
        let params_at = field_u64(&arg, 16).ok_or(Errno::EFAULT)?;
        let owner = self.owner(handle);
        let status = match self.objects.object(owner, client, object) {
            Err(status) => status,
            Ok(target) if !serves(target.class, cmd) => NV_ERR_NOT_SUPPORTED,
            Ok(target) => match self.abi.controls.get(&cmd) {
                Some(known) if known.params_size != size => self.abi.bad_params_status,
                _ if cmd != controls::GPU_GET_PIDS && !self.abi.controls.contains_key(&cmd) => {
                    NV_ERR_NOT_SUPPORTED
                }
                _ => {
                    let length = size as usize;
                    let mut params = if length == 0 {
                        Vec::new()
                    } else {
                        call.memory.read(params_at, length)?
                    };
                    let gpu = target.gpu.and_then(|i| self.gpus.get(i));
                    let version = self.abi.version.to_string();
                    let mut attached = self
                        .files
                        .get(&owner)
                        .map(|f| f.attached.clone())
                        .unwrap_or_default();
                    let mut cx = controls::Context {
                        gpus: &self.gpus,
                        attached: &mut attached,
                        gpu,
                        version: &version,
                        memory: call.memory,
                    };
                    let status = controls::run(cmd, &mut params, &mut cx)?;
                    if let Some(file) = self.files.get_mut(&owner) {
                        file.attached = attached;
                    }
                    if length > 0 {
                        call.memory.write(params_at, &params)?;
                    }
                    status
                }
            },
        };
        call.write_arg(28, &status.to_ne_bytes())?;
        Ok(0)
    }

    fn uvm(&mut self, call: &mut Call<'_>) -> Result<i64, Errno> {
        match call.ioctl.request {
            UVM_INITIALIZE => {
                call.read_arg(16)?;
                call.write_arg(8, &NV_OK.to_ne_bytes())?;
                Ok(0)
            }
            UVM_DEINITIALIZE => Ok(0),
            UVM_PAGEABLE_MEM_ACCESS => {
                call.read_arg(8)?;
                call.write_arg(0, &[0])?;
                call.write_arg(4, &NV_OK.to_ne_bytes())?;
                Ok(0)
            }
            // Not simulated.
            _ => Err(Errno::ENOSYS),
        }
    }
}

impl DeviceSim for NvidiaSim {
    fn nodes(&self) -> Vec<SimNode> {
        let mut nodes = vec![
            SimNode {
                path: PathBuf::from(super::abi::CTL_PATH),
                kind: CTL,
                id: CTL_ID,
                exclusive: false,
            },
            SimNode {
                path: PathBuf::from(super::abi::UVM_PATH),
                kind: UVM,
                id: UVM_ID,
                exclusive: false,
            },
        ];
        nodes.extend(self.gpus.iter().filter_map(|gpu| {
            Some(SimNode {
                path: gpu.path.clone()?,
                kind: GPU,
                id: u64::from(gpu.minor),
                exclusive: false,
            })
        }));
        nodes
    }

    fn open(&mut self, node: &SimNode, _flags: i32, _caller: Caller) -> Result<Opened, Errno> {
        let kind = match node.id {
            CTL_ID => Node::Ctl,
            UVM_ID => Node::Uvm,
            minor => Node::Gpu(
                self.gpus
                    .iter()
                    .position(|g| u64::from(g.minor) == minor)
                    .ok_or(Errno::ENODEV)?,
            ),
        };
        self.next += 1;
        self.files.insert(
            self.next,
            File {
                node: kind,
                registered: None,
                attached: Vec::new(),
            },
        );
        Ok(Opened {
            handle: self.next,
            size: 0,
        })
    }

    fn ioctl(
        &mut self,
        handle: u64,
        call: &mut Call<'_>,
        carriers: CarrierLookup<'_>,
    ) -> Result<SimReply, Errno> {
        let node = self.files.get(&handle).ok_or(Errno::EBADF)?.node;
        let value = match (node, call.kind) {
            (Node::Uvm, kind) if kind == UVM => self.uvm(call)?,
            (Node::Ctl | Node::Gpu(_), kind) if kind == CTL || kind == GPU => {
                match ioc_nr(call.ioctl.request) {
                    NV_ESC_CHECK_VERSION_STR => self.check_version(call)?,
                    NV_ESC_CARD_INFO => self.card_info(call)?,
                    NV_ESC_REGISTER_FD => self.register_fd(handle, call, carriers)?,
                    NV_ESC_ATTACH_GPUS_TO_FD => self.attach_gpus(handle, call)?,
                    NV_ESC_SYS_PARAMS => {
                        call.read_arg(8)?;
                        call.write_arg(0, &0x0800_0000u64.to_ne_bytes())?;
                        0
                    }
                    NV_ESC_RM_ALLOC => self.alloc(handle, call)?,
                    NV_ESC_RM_FREE => self.free(handle, call)?,
                    NV_ESC_RM_CONTROL => self.control(handle, call)?,
                    _ => return Err(Errno::EINVAL),
                }
            }
            _ => return Err(Errno::EINVAL),
        };
        Ok(SimReply::Value(value))
    }
}

/// The simulator for a sandbox given `granted` (discovery indices) of the host's `gpus`, or
/// None when it was given none.
pub fn simulated_gpus(
    abi: &'static Abi,
    gpus: &[NvidiaGpu],
    granted: &[usize],
) -> Option<Box<dyn DeviceSim>> {
    if granted.is_empty() {
        return None;
    }
    let gpus = gpus
        .iter()
        .map(|gpu| SimGpu::of(gpu, granted.contains(&gpu.index)))
        .collect();
    Some(Box::new(NvidiaSim::new(abi, gpus)))
}

/// Whether an object of `class` serves control `cmd`: the class in the command's top half
/// (`NV0000` commands are the client's).
fn serves(class: u32, cmd: u32) -> bool {
    match cmd >> 16 {
        0 => class == objects::ROOT_CLIENT,
        other => class == other,
    }
}
