//! The vocabulary device policies answer in: for a (file kind, request) pair, continue,
//! check-then-continue, emulate, or deny. The supervisor applies it; it knows no layouts.

use std::fmt;

use nix::errno::Errno;
use serde::Serialize;

use super::ioctl::IoctlDef;

/// What kind of accelerator file an ioctl targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FdKind {
    /// A gasket accel node, `/dev/accelN` (TPU v4 or v4 lite).
    Accel {
        /// TPU v4 lite, whose interrupt list is shorter.
        lite: bool,
    },
    /// The VFIO container, `/dev/vfio/vfio`.
    VfioContainer,
    /// A VFIO group, `/dev/vfio/<group>`.
    VfioGroup,
    /// A VFIO device fd (anon inode `[vfio-device]`).
    VfioDevice,
}

impl FdKind {
    /// The name in logs and counters.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Accel { lite: false } => "tpu-accel",
            Self::Accel { lite: true } => "tpu-accel-lite",
            Self::VfioContainer => "vfio-container",
            Self::VfioGroup => "vfio-group",
            Self::VfioDevice => "vfio-device",
        }
    }
}

impl fmt::Display for FdKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Checks an argument struct; the errno is what the workload gets when it fails.
pub type Check = fn(FdKind, &[u8]) -> Result<(), Errno>;

/// What to do with one ioctl.
#[derive(Debug, Clone, Copy)]
pub enum Action {
    /// Let the call proceed: the decision rests on the request number or a by-value argument
    /// (race-free), or the call must run in the workload's address space or fd table.
    Continue,
    /// Read `arg_size` bytes and check them, then continue. Advisory: the kernel reads the
    /// memory again, so the driver's own checks are the real bound.
    CheckThenContinue(Check),
    /// Copy the argument in, check the copy, run the call on the copy, copy out: the check is
    /// race-free. `eventfd_fields` are byte offsets of u64 fields holding eventfds, which are
    /// checked to be eventfds and translated.
    Emulate {
        /// The check of the copy.
        check: Check,
        /// Offsets of eventfd fields.
        eventfd_fields: &'static [usize],
    },
    /// Refuse with this errno, as the real driver refuses what it does not support.
    Deny(Errno),
}

/// A policy's ruling on one call: which request it is (for logs and counters) and what to do.
#[derive(Debug, Clone, Copy)]
pub struct Ruling {
    /// The request, by name; an unknown request is named `unknown`.
    pub ioctl: IoctlDef,
    /// The action.
    pub action: Action,
}

/// How strictly rulings are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Apply rulings as they are: content checks emulated or checked, denials denied.
    Enforce,
    /// Content checks only audited (logged when they would fail); everything allowed continues;
    /// denials denied. runc-level security with a record of what enforce would refuse.
    Passthrough,
    /// Allow everything; log what enforce would deny (a sniffer).
    Audit,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Enforce => "enforce",
            Self::Passthrough => "passthrough",
            Self::Audit => "audit",
        })
    }
}

/// A ruling for a request a table does not know.
pub const fn unknown(request: u32, errno: Errno) -> Ruling {
    Ruling {
        ioctl: IoctlDef {
            name: "unknown",
            request,
            arg_size: 0,
        },
        action: Action::Deny(errno),
    }
}

/// Reads a native-endian u64 field at `offset` of an argument copy.
pub fn field_u64(bytes: &[u8], offset: usize) -> Option<u64> {
    bytes
        .get(offset..offset + 8)
        .map(|b| u64::from_ne_bytes(b.try_into().unwrap_or([0; 8])))
}

/// Reads a native-endian u32 field at `offset` of an argument copy.
pub fn field_u32(bytes: &[u8], offset: usize) -> Option<u32> {
    bytes
        .get(offset..offset + 4)
        .map(|b| u32::from_ne_bytes(b.try_into().unwrap_or([0; 4])))
}
