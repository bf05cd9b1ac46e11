//! A device family as the gate sees it: its file kinds, how its files are recognised, the
//! request numbers it owns, and its request table keyed on (fd kind, request), deny by default.

use nix::errno::Errno;

use super::action::{Action, Ruling, unknown};
use super::device::DeviceClass;
use super::ioctl::IoctlDef;
use super::kind::FdKind;

/// Request numbers (the low 32 bits of the argument) a family owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owned {
    /// Every number with this `_IOC_TYPE` (bits 8..16), whatever its direction, size and nr.
    Magic(u8),
    /// The numbers of this inclusive range (plain numbers, such as NVIDIA UVM's).
    Range(u32, u32),
}

impl Owned {
    /// Whether `request` is one of these numbers.
    pub const fn contains(self, request: u32) -> bool {
        match self {
            Self::Magic(magic) => super::ioctl::ioc_type(request) == magic,
            Self::Range(low, high) => low <= request && request <= high,
        }
    }
}

/// One row of a request table: on files of `kind`, `ioctl` gets `action`.
#[derive(Debug, Clone, Copy)]
pub struct Request {
    /// The file kind the row is for.
    pub kind: FdKind,
    /// The request.
    pub ioctl: IoctlDef,
    /// What the gate does with it.
    pub action: Action,
}

/// A device family: everything the gate needs to route, classify and rule on its ioctls.
///
/// The table lists every request the driver defines within `owned`, including those it
/// denies: a number the table does not list for a kind is answered with `unknown_errno`, which
/// is what the driver itself answers for a number it does not know. That is what lets the
/// filter leave a number to the driver in the kernel when every listed meaning is a plain
/// continue (see the gate's routing).
#[derive(Debug, Clone)]
pub struct Family {
    /// Name in logs and docs (`gasket`, `vfio`).
    pub name: &'static str,
    /// Its file kinds.
    pub kinds: &'static [FdKind],
    /// Device classes whose nodes are its files.
    pub devices: &'static [(DeviceClass, FdKind)],
    /// Anon-inode names (as `/proc/self/fd` shows them) of files its calls create.
    pub anon_inodes: &'static [(&'static str, FdKind)],
    /// Request numbers it owns: the filter routes these, and no two families share one.
    pub owned: &'static [Owned],
    /// What the driver answers for a number it does not define.
    pub unknown_errno: Errno,
    /// The request table.
    pub requests: Vec<Request>,
}

impl Family {
    /// Whether `request` is one of this family's numbers.
    pub fn owns(&self, request: u32) -> bool {
        self.owned.iter().any(|owned| owned.contains(request))
    }

    /// The kind of a file on a device of `class`, if it is one of this family's.
    pub fn kind_of_device(&self, class: DeviceClass) -> Option<FdKind> {
        self.devices
            .iter()
            .find(|(c, _)| *c == class)
            .map(|(_, kind)| *kind)
    }

    /// The kind of an anon-inode file named `name` (`[vfio-device]`), if it is one of this
    /// family's.
    pub fn kind_of_anon_inode(&self, name: &str) -> Option<FdKind> {
        self.anon_inodes
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, kind)| *kind)
    }

    /// The table's row for `request` on `kind`.
    pub fn request(&self, kind: FdKind, request: u32) -> Option<&Request> {
        self.requests
            .iter()
            .find(|r| r.kind == kind && r.ioctl.request == request)
    }

    /// The ruling for `request` with register argument `arg` on a file of `kind`: the table's
    /// row with a by-value check applied, or the driver's answer to an unknown number.
    pub fn rule(&self, kind: FdKind, request: u32, arg: u64) -> Ruling {
        match self.request(kind, request) {
            Some(row) => resolve(row, arg),
            None => unknown(request, self.unknown_errno),
        }
    }
}

/// A row's ruling for a call whose argument register is `arg`.
pub fn resolve(row: &Request, arg: u64) -> Ruling {
    let action = match row.action {
        Action::ContinueIf(check) => match check(arg) {
            Ok(()) => Action::Continue,
            Err(errno) => Action::Deny(errno),
        },
        other => other,
    };
    Ruling {
        ioctl: row.ioctl,
        action,
    }
}

/// Rows for `kind`: each request with its action.
pub fn rows(kind: FdKind, rows: &[(IoctlDef, Action)]) -> impl Iterator<Item = Request> + '_ {
    rows.iter().map(move |(ioctl, action)| Request {
        kind,
        ioctl: *ioctl,
        action: *action,
    })
}
