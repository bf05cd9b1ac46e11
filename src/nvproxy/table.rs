//! One driver version's ABI, as the gate allowlists it: escapes (by nr), UVM commands, RM
//! controls (by command) and RM classes, each with the sizes that version's driver insists on
//! and the driver capability it needs. Built by folding the version tree ([`super::tree`]).

use std::collections::BTreeMap;

use super::DriverCaps;
use super::version::DriverVersion;

/// Which of the frontend's files an escape works on: the driver refuses it on the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nodes {
    /// `/dev/nvidiactl` only.
    Ctl,
    /// `/dev/nvidiaN` only.
    Gpu,
    /// Both.
    Any,
}

/// The argument sizes the driver accepts for an escape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// Exactly this many bytes.
    Exact(u16),
    /// Either of two sizes (`RM_ALLOC`: NVOS21 or NVOS64).
    Either(u16, u16),
    /// A whole, non-zero number of elements of this size, at most `max` of them.
    ArrayOf {
        /// Bytes per element.
        element: u16,
        /// The most elements the gate lets through.
        max: u16,
    },
}

impl Size {
    /// Every size this rule accepts.
    pub fn sizes(self) -> Vec<usize> {
        match self {
            Self::Exact(size) => vec![usize::from(size)],
            Self::Either(one, other) => vec![usize::from(one), usize::from(other)],
            Self::ArrayOf { element, max } => (1..=max)
                .map(|n| usize::from(n) * usize::from(element))
                .collect(),
        }
    }
}

/// What the gate does with an allowed escape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handling {
    /// Let it run in the workload: its checks rest on registers, or it needs the workload's
    /// fd table or address space.
    Continue,
    /// `RM_CONTROL`: the command allowlisted, its parameters deep-copied.
    Control,
    /// `RM_ALLOC`: the class allowlisted, its parameters copied.
    Alloc,
    /// `CARD_INFO`: run on a copy, the GPUs the sandbox was not given blanked out.
    CardInfo,
    /// `ATTACH_GPUS_TO_FD`: only the sandbox's GPUs.
    AttachGpus,
    /// `RM_VID_HEAP_CONTROL`: only `NVOS32_FUNCTION_ALLOC_SIZE`.
    VidHeap,
}

/// An escape the gate lets through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Escape {
    /// The driver's name.
    pub name: &'static str,
    /// `_IOC_NR`.
    pub nr: u8,
    /// Accepted sizes.
    pub size: Size,
    /// Files it works on.
    pub nodes: Nodes,
    /// Capabilities any of which enables it.
    pub caps: DriverCaps,
    /// What the gate does with it.
    pub handling: Handling,
}

/// An embedded pointer of a control's parameters: the buffer the driver reads or writes there,
/// sized by a count field of the parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pointer {
    /// Offset of the `NvP64`.
    pub offset: usize,
    /// Offset of the u32 count that sizes the buffer.
    pub count: usize,
    /// Bytes per counted unit.
    pub unit: u32,
}

/// How a control's parameters are laid out, for the deep copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Plain bytes.
    Plain,
    /// Plain bytes, with buffers behind these pointers.
    Pointers(&'static [Pointer]),
}

/// What the gate does beyond the copy, for controls that name GPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GpuIds {
    /// Nothing.
    None,
    /// The answer lists GPU ids at these offsets (up to 32 each, ended by `0xffffffff`; an
    /// offset past the parameters is skipped): ids of GPUs the sandbox was not given are
    /// removed.
    ListsAt(&'static [usize]),
    /// The parameters name GPU ids to act on at this offset (a list as above, or one id when
    /// `single`): refused unless every one is the sandbox's.
    Names {
        /// Offset of the first id.
        offset: usize,
        /// Whether it is one id rather than a list.
        single: bool,
    },
}

/// An RM control the gate lets through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Control {
    /// The SDK's name.
    pub name: &'static str,
    /// The command.
    pub cmd: u32,
    /// `paramsSize` the driver insists on.
    pub params_size: u32,
    /// The parameters' layout.
    pub layout: Layout,
    /// GPU ids in it.
    pub gpu_ids: GpuIds,
    /// Capabilities any of which enables it.
    pub caps: DriverCaps,
}

/// An RM class the gate lets workloads allocate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Class {
    /// The SDK's name.
    pub name: &'static str,
    /// The class id.
    pub id: u32,
    /// Bytes of allocation parameters the driver reads (0: none).
    pub params_size: u32,
    /// Offset of an fd of the caller's in the parameters (an OS event's), which the gate
    /// translates.
    pub fd_at: Option<usize>,
    /// Capabilities any of which enables it.
    pub caps: DriverCaps,
}

/// A UVM command the gate lets through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UvmCommand {
    /// The driver's name.
    pub name: &'static str,
    /// The request number (plain, no size encoded).
    pub number: u32,
    /// Capabilities any of which enables it.
    pub caps: DriverCaps,
}

/// One driver version's ABI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Abi {
    /// The version it is.
    pub version: DriverVersion,
    /// Escapes by nr.
    pub escapes: BTreeMap<u8, Escape>,
    /// UVM commands by number.
    pub uvm: BTreeMap<u32, UvmCommand>,
    /// RM controls by command.
    pub controls: BTreeMap<u32, Control>,
    /// RM classes by id.
    pub classes: BTreeMap<u32, Class>,
    /// What RM answers for a control whose `paramsSize` is wrong.
    pub bad_params_status: u32,
}

/// A change a version makes to its parent's ABI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delta {
    /// Adds or replaces an escape.
    Escape(Escape),
    /// Adds or replaces a UVM command.
    Uvm(UvmCommand),
    /// Removes a UVM command.
    RemoveUvm(u32),
    /// Adds or replaces a control.
    Control(Control),
    /// Changes a control's `paramsSize`.
    ControlSize(u32, u32),
    /// Removes a control.
    RemoveControl(u32),
    /// Adds or replaces a class.
    Class(Class),
    /// Changes a class's parameter size.
    ClassSize(u32, u32),
    /// Changes what RM answers for a wrong `paramsSize`.
    BadParamsStatus(u32),
}

impl Abi {
    /// An empty ABI for `version`.
    pub fn empty(version: DriverVersion) -> Self {
        Self {
            version,
            escapes: BTreeMap::new(),
            uvm: BTreeMap::new(),
            controls: BTreeMap::new(),
            classes: BTreeMap::new(),
            bad_params_status: 0,
        }
    }

    /// Applies `delta`; a size change for an entry the ABI lacks is an error naming it.
    pub fn apply(&mut self, delta: &Delta) -> Result<(), String> {
        match *delta {
            Delta::Escape(escape) => {
                self.escapes.insert(escape.nr, escape);
            }
            Delta::Uvm(command) => {
                self.uvm.insert(command.number, command);
            }
            Delta::RemoveUvm(number) => {
                self.uvm
                    .remove(&number)
                    .ok_or_else(|| format!("no UVM command {number} to remove"))?;
            }
            Delta::Control(control) => {
                self.controls.insert(control.cmd, control);
            }
            Delta::ControlSize(cmd, size) => {
                self.controls
                    .get_mut(&cmd)
                    .ok_or_else(|| format!("no control {cmd:#x} to resize"))?
                    .params_size = size;
            }
            Delta::RemoveControl(cmd) => {
                self.controls
                    .remove(&cmd)
                    .ok_or_else(|| format!("no control {cmd:#x} to remove"))?;
            }
            Delta::Class(class) => {
                self.classes.insert(class.id, class);
            }
            Delta::ClassSize(id, size) => {
                self.classes
                    .get_mut(&id)
                    .ok_or_else(|| format!("no class {id:#x} to resize"))?
                    .params_size = size;
            }
            Delta::BadParamsStatus(status) => self.bad_params_status = status,
        }
        Ok(())
    }

    /// The escape `nr` if `caps` enable it.
    pub fn escape(&self, nr: u8, caps: DriverCaps) -> Option<&Escape> {
        self.escapes.get(&nr).filter(|e| e.caps.intersects(caps))
    }

    /// The control `cmd` if `caps` enable it.
    pub fn control(&self, cmd: u32, caps: DriverCaps) -> Option<&Control> {
        self.controls.get(&cmd).filter(|c| c.caps.intersects(caps))
    }

    /// The class `id` if `caps` enable it.
    pub fn class(&self, id: u32, caps: DriverCaps) -> Option<&Class> {
        self.classes.get(&id).filter(|c| c.caps.intersects(caps))
    }
}
