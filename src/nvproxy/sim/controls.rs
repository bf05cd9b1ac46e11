//! The RM controls the simulated driver answers: the ones a CUDA start-up makes first (GPU
//! ids and their information, the build version, the device's class list, the subdevice's
//! name, GID and information), plus `GPU_GET_PIDS`, which the gate never lets through in
//! enforce mode (the race tests use it to see what reached the driver).

use nix::errno::Errno;

use super::super::abi::{NV_ERR_INVALID_ARGUMENT, NV_ERR_NOT_SUPPORTED, NV_OK};
use super::SimGpu;
use crate::family::{Memory, field_u32, field_u64};

/// `NV2080_CTRL_CMD_GPU_GET_PIDS`.
pub const GPU_GET_PIDS: u32 = 0x2080_018d;

/// The end of a GPU id list.
const INVALID_ID: u32 = 0xffff_ffff;
/// `NV0000_CTRL_GPU_ATTACH_ALL_PROBED_IDS`.
const ATTACH_ALL: u32 = 0x0000_ffff;

/// What a control runs against.
pub struct Context<'a> {
    /// Every GPU of the host.
    pub gpus: &'a [SimGpu],
    /// GPU ids attached to the calling file.
    pub attached: &'a mut Vec<u32>,
    /// The GPU of the device or subdevice the control is for.
    pub gpu: Option<&'a SimGpu>,
    /// The driver's version string.
    pub version: &'a str,
    /// The caller's memory (or the gate's staged copies), for embedded pointers.
    pub memory: &'a dyn Memory,
}

fn put(params: &mut [u8], at: usize, bytes: &[u8]) -> Result<(), u32> {
    params
        .get_mut(at..at + bytes.len())
        .ok_or(NV_ERR_INVALID_ARGUMENT)?
        .copy_from_slice(bytes);
    Ok(())
}

fn put_u32(params: &mut [u8], at: usize, value: u32) -> Result<(), u32> {
    put(params, at, &value.to_ne_bytes())
}

fn ids(params: &[u8], at: usize) -> Vec<u32> {
    (0..32)
        .map_while(|i| field_u32(params, at + 4 * i))
        .take_while(|id| *id != INVALID_ID)
        .collect()
}

fn id_list(params: &mut [u8], at: usize, ids: &[u32]) -> Result<(), u32> {
    for i in 0..32 {
        put_u32(
            params,
            at + 4 * i,
            ids.get(i).copied().unwrap_or(INVALID_ID),
        )?;
    }
    Ok(())
}

/// A NUL-padded string field of `len` bytes.
fn string(params: &mut [u8], at: usize, len: usize, text: &str) -> Result<(), u32> {
    let mut bytes = vec![0u8; len];
    let n = text.len().min(len.saturating_sub(1));
    bytes[..n].copy_from_slice(&text.as_bytes()[..n]);
    put(params, at, &bytes)
}

/// Runs control `cmd` on `params`; the RM status.
pub fn run(cmd: u32, params: &mut [u8], cx: &mut Context<'_>) -> Result<u32, Errno> {
    let status = match cmd {
        // NV0000_CTRL_CMD_SYSTEM_GET_BUILD_VERSION: three strings behind pointers.
        0x101 => build_version(params, cx)?,
        // NV0000_CTRL_CMD_SYSTEM_GET_BUILD_VERSION_V2: three inline 256-byte strings.
        0x13e => string(params, 0, 256, cx.version)
            .and_then(|()| string(params, 256, 256, cx.version))
            .and_then(|()| string(params, 512, 256, "NVIDIA UNIX Open Kernel Module"))
            .err()
            .unwrap_or(NV_OK),
        // GET_ATTACHED_IDS.
        0x201 => id_list(params, 0, cx.attached).err().unwrap_or(NV_OK),
        // GET_ID_INFO_V2: gpuId in, the rest out.
        0x205 => {
            let id = field_u32(params, 0).unwrap_or(INVALID_ID);
            match cx.gpus.iter().find(|g| g.gpu_id == id) {
                Some(gpu) => {
                    let fields = [
                        0,                                     // gpuFlags
                        u32::try_from(gpu.index).unwrap_or(0), // deviceInstance
                        0,                                     // subDeviceInstance
                        0,                                     // sliStatus
                        u32::try_from(gpu.index).unwrap_or(0), // boardId
                        0,                                     // gpuInstance
                        gpu.numa
                            .and_then(|n| u32::try_from(n).ok())
                            .unwrap_or(INVALID_ID),
                    ];
                    let mut status = NV_OK;
                    for (i, value) in fields.iter().enumerate() {
                        if let Err(s) = put_u32(params, 4 + 4 * i, *value) {
                            status = s;
                        }
                    }
                    status
                }
                None => NV_ERR_INVALID_ARGUMENT,
            }
        }
        // GET_PROBED_IDS: every GPU's id; the excluded list (and 580's third) empty.
        0x214 => {
            let all: Vec<u32> = cx.gpus.iter().map(|g| g.gpu_id).collect();
            let mut status = id_list(params, 0, &all).err().unwrap_or(NV_OK);
            let mut at = 128;
            while at + 128 <= params.len() {
                status = id_list(params, at, &[]).err().unwrap_or(status);
                at += 128;
            }
            status
        }
        // ATTACH_IDS.
        0x215 => {
            let wanted = ids(params, 0);
            let wanted: Vec<u32> = if wanted.first() == Some(&ATTACH_ALL) {
                cx.gpus.iter().map(|g| g.gpu_id).collect()
            } else {
                wanted
            };
            match wanted
                .iter()
                .find(|id| !cx.gpus.iter().any(|g| g.gpu_id == **id))
            {
                Some(bad) => put_u32(params, 128, *bad)
                    .err()
                    .unwrap_or(NV_ERR_INVALID_ARGUMENT),
                None => {
                    for id in wanted {
                        if !cx.attached.contains(&id) {
                            cx.attached.push(id);
                        }
                    }
                    NV_OK
                }
            }
        }
        // NV0080_CTRL_CMD_GPU_GET_NUM_SUBDEVICES.
        0x80_0280 => put_u32(params, 0, 1).err().unwrap_or(NV_OK),
        // NV0080_CTRL_CMD_GPU_GET_CLASSLIST_V2: numClasses, classList[].
        0x80_0292 => {
            let mut status = put_u32(params, 0, CLASSES.len() as u32)
                .err()
                .unwrap_or(NV_OK);
            for (i, class) in CLASSES.iter().enumerate() {
                if let Err(s) = put_u32(params, 4 + 4 * i, *class) {
                    status = s;
                }
            }
            status
        }
        // NV2080_CTRL_CMD_GPU_GET_INFO_V2: each listed index answered with 0.
        0x2080_0102 => {
            let count = field_u32(params, 0).unwrap_or(0) as usize;
            if 4 + count * 8 > params.len() {
                NV_ERR_INVALID_ARGUMENT
            } else {
                for i in 0..count {
                    let _ = put_u32(params, 4 + 8 * i + 4, 0);
                }
                NV_OK
            }
        }
        // NV2080_CTRL_CMD_GPU_GET_NAME_STRING: flags, then the name (ASCII).
        0x2080_0110 => {
            let name = cx
                .gpu
                .and_then(|g| g.name.as_deref())
                .unwrap_or("NVIDIA GPU");
            let len = params.len().saturating_sub(4);
            string(params, 4, len, name).err().unwrap_or(NV_OK)
        }
        // NV2080_CTRL_CMD_GPU_GET_GID_INFO: index, flags, length, data[256].
        0x2080_014a => {
            let uuid = cx
                .gpu
                .and_then(|g| g.uuid.as_deref())
                .unwrap_or("GPU-unknown");
            let length = u32::try_from(uuid.len() + 1).unwrap_or(0);
            put_u32(params, 8, length)
                .and_then(|()| string(params, 12, 256, uuid))
                .err()
                .unwrap_or(NV_OK)
        }
        // NV2080_CTRL_CMD_GPU_GET_PIDS: none running.
        GPU_GET_PIDS => put_u32(params, 4, 0).err().unwrap_or(NV_OK),
        _ => NV_ERR_NOT_SUPPORTED,
    };
    Ok(status)
}

/// The classes the simulated device lists: its root, device, subdevice, memory and Hopper's.
const CLASSES: [u32; 8] = [0x41, 0x80, 0x2080, 0x3e, 0x40, 0xc86f, 0xc8b5, 0xcbc0];

/// `SYSTEM_GET_BUILD_VERSION`: `sizeOfStrings` at 0, three string pointers; with any pointer
/// NULL only the size needed is answered.
fn build_version(params: &mut [u8], cx: &mut Context<'_>) -> Result<u32, Errno> {
    let needed = u32::try_from(cx.version.len() + 1).unwrap_or(u32::MAX);
    let size = field_u32(params, 0).unwrap_or(0);
    let pointers: Vec<u64> = [8, 16, 24]
        .iter()
        .map(|at| field_u64(params, *at).unwrap_or(0))
        .collect();
    if pointers.contains(&0) {
        return Ok(put_u32(params, 0, needed).err().unwrap_or(NV_OK));
    }
    if size < needed {
        return Ok(NV_ERR_INVALID_ARGUMENT);
    }
    let mut text = cx.version.as_bytes().to_vec();
    text.push(0);
    for pointer in pointers {
        cx.memory.write(pointer, &text)?;
    }
    Ok(NV_OK)
}
