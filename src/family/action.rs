//! The vocabulary a family's table answers in: for a (file kind, request) pair, continue,
//! continue if a by-value argument passes, check-then-continue, emulate, or deny.

use nix::errno::Errno;

use super::ioctl::IoctlDef;
use super::kind::FdKind;
use super::translate::Translator;

/// Checks an argument struct; the errno is what the workload gets when it fails.
pub type Check = fn(FdKind, &[u8]) -> Result<(), Errno>;

/// Checks a by-value argument (the register itself): race-free, no memory read.
pub type ValueCheck = fn(u64) -> Result<(), Errno>;

/// What to do with one ioctl.
#[derive(Debug, Clone, Copy)]
pub enum Action {
    /// Let the call proceed: the decision rests on the request number alone, or the call must
    /// run in the workload's address space or fd table.
    Continue,
    /// Continue when the by-value argument passes the check, else deny with its errno.
    ContinueIf(ValueCheck),
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
    /// The argument points to more memory the decision rests on: the family's translator
    /// copies it all in, decides, and runs the call on the copies (see [`Translator`]).
    Translate(&'static dyn Translator),
    /// Refuse with this errno, as the real driver refuses what it does not support.
    Deny(Errno),
}

impl Action {
    /// Short name for tables and docs.
    pub const fn label(&self) -> &'static str {
        match self {
            Self::Continue => "continue",
            Self::ContinueIf(_) => "continue if the argument passes",
            Self::CheckThenContinue(_) => "check, then continue",
            Self::Emulate { .. } => "emulate",
            Self::Translate(_) => "emulate (deep copy)",
            Self::Deny(_) => "deny",
        }
    }
}

/// A policy's ruling on one call: which request it is (for logs and counters) and what to do.
#[derive(Debug, Clone, Copy)]
pub struct Ruling {
    /// The request, by name; an unknown request is named `unknown`.
    pub ioctl: IoctlDef,
    /// The action, with any by-value check already applied.
    pub action: Action,
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
    let end = offset.checked_add(8)?;
    bytes
        .get(offset..end)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_ne_bytes)
}

/// Reads a native-endian u32 field at `offset` of an argument copy.
pub fn field_u32(bytes: &[u8], offset: usize) -> Option<u32> {
    let end = offset.checked_add(4)?;
    bytes
        .get(offset..end)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_ne_bytes)
}
