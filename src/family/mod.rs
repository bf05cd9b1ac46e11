//! The family interface: what the ioctl gate asks of a device family, and all it knows of one.
//!
//! A leaf contract: the gate (`supervisor`) and every family (`accel`, `vfio`, later `nvproxy`)
//! depend on it, and it depends on neither. A family is data: its file kinds, the device
//! classes and anon inodes that are its files, the request numbers it owns, and a request table
//! keyed on (fd kind, request) whose rows say continue, check, emulate or deny
//! ([`Family`]); plus, for simulation, a [`DeviceSim`]. The gate routes, classifies and rules
//! from these and names no family.

mod action;
mod call;
mod device;
mod ioctl;
mod kind;
mod memory;
mod sim;
mod table;
mod translate;

pub use action::{Action, Check, Ruling, ValueCheck, field_u32, field_u64, unknown};
pub use call::{Call, Caller, CarrierLookup, EventfdCheck, FdResolver, FileKey, SimReply};
pub use device::DeviceClass;
pub use ioctl::{
    IOC_NONE, IOC_READ, IOC_WRITE, IoctlDef, io, ioc, ioc_nr, ioc_size, ioc_type, ior, iow, iowr,
};
pub use kind::FdKind;
pub use memory::{FakeMemory, Memory};
pub use sim::{DeviceSim, Opened, SimNode};
pub use table::{Decode, Family, FamilyError, Owned, Request, resolve, rows, validate};
pub use translate::{Driver, Grant, Inspection, Staging, Translated, Translation, Translator};
