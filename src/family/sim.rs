//! What a family's simulator offers the gate: device nodes to serve by brokered open, and the
//! driver's answers on the carriers the gate installs in their place.

use std::path::PathBuf;

use nix::errno::Errno;

use super::call::{Call, Caller, CarrierLookup, SimReply};
use super::kind::FdKind;

/// A device node a simulator serves inside the sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimNode {
    /// Path inside the sandbox.
    pub path: PathBuf,
    /// The kind of file an open of it yields.
    pub kind: FdKind,
    /// The simulator's own name for what it stands for (a chip index, a group number).
    pub id: u64,
    /// Whether one process may hold it open only once (a VFIO group: EBUSY).
    pub exclusive: bool,
}

/// A file a simulator opened: its handle, and how large its carrier must be (so that mmaps of
/// its regions work).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    /// The simulator's handle.
    pub handle: u64,
    /// Carrier size in bytes (sparse).
    pub size: u64,
}

/// A simulated device family: in-process models of a driver, faithful to its ABI.
pub trait DeviceSim: Send {
    /// The nodes it serves.
    fn nodes(&self) -> Vec<SimNode>;

    /// Opens `node` for `caller` with open flags `flags`.
    fn open(&mut self, node: &SimNode, flags: i32, caller: Caller) -> Result<Opened, Errno>;

    /// Runs `call` on the file with handle `handle`; `carriers` resolves other carriers the
    /// call names (a container passed to a group).
    fn ioctl(
        &mut self,
        handle: u64,
        call: &mut Call<'_>,
        carriers: CarrierLookup<'_>,
    ) -> Result<SimReply, Errno>;
}
