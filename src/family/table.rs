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
    /// Every number whose `_IOC_NR` (bits 0..8) is one of these, whatever its type, direction
    /// and size: the numbers of a driver that decodes only nr and size ([`Decode::NrAndSize`]).
    Nrs(&'static [u8]),
}

impl Owned {
    /// Whether `request` is one of these numbers.
    pub const fn contains(self, request: u32) -> bool {
        match self {
            Self::Magic(magic) => super::ioctl::ioc_type(request) == magic,
            Self::Range(low, high) => low <= request && request <= high,
            Self::Nrs(nrs) => {
                let nr = super::ioctl::ioc_nr(request);
                let mut i = 0;
                while i < nrs.len() {
                    if nrs[i] == nr {
                        return true;
                    }
                    i += 1;
                }
                false
            }
        }
    }
}

/// How a driver reads a request number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decode {
    /// All 32 bits count: two numbers that differ anywhere are two requests.
    Full,
    /// Only `_IOC_NR` and `_IOC_SIZE` count (NVIDIA's frontend): the type byte and the
    /// direction bits are whatever the caller put there. The table lists each request once, in
    /// its canonical form `_IOC(READ|WRITE, canonical_type, nr, size)`.
    NrAndSize {
        /// The type byte of the canonical form (NVIDIA's `'F'`).
        canonical_type: u8,
    },
}

impl Decode {
    /// The canonical form of `request`: the number the table lists for it.
    pub const fn canonical(self, request: u32) -> u32 {
        match self {
            Self::Full => request,
            Self::NrAndSize { canonical_type } => super::ioctl::ioc(
                super::ioctl::IOC_READ | super::ioctl::IOC_WRITE,
                canonical_type,
                super::ioctl::ioc_nr(request),
                super::ioctl::ioc_size(request),
            ),
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
    /// Request numbers it owns: the filter routes these. Two families that decode numbers in
    /// full never share one; a family that decodes only nr and size shares its numbers with
    /// every other (the routing makes them agree).
    pub owned: &'static [Owned],
    /// How its drivers read a request number.
    pub decode: Decode,
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

    /// The table's row for `request` (in any form the driver takes for it) on `kind`.
    pub fn request(&self, kind: FdKind, request: u32) -> Option<&Request> {
        let request = self.decode.canonical(request);
        self.requests
            .iter()
            .find(|r| r.kind == kind && r.ioctl.request == request)
    }

    /// Whether no other file takes this family's numbers: they all share a type byte that is
    /// the family's own and its drivers read them in full. Only then may the filter refuse a
    /// number for every file.
    pub fn exclusive(&self) -> bool {
        self.decode == Decode::Full && self.owned.iter().all(|o| matches!(o, Owned::Magic(_)))
    }

    /// Whether a call with `request` on a file that is not this family's must be refused rather
    /// than continued: another thread could swap one of the family's files in under the fd
    /// between the supervisor's look and the driver's. True for every number of an
    /// [exclusive](Self::exclusive) family; for another, for the numbers its table lists (any
    /// other is refused by its driver anyway, and may be another file's request).
    pub fn claims(&self, request: u32) -> bool {
        if self.exclusive() {
            return self.owns(request);
        }
        let canonical = self.decode.canonical(request);
        self.owns(request) && self.requests.iter().any(|r| r.ioctl.request == canonical)
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

/// A family table that contradicts itself or another: the gate would then decide one request
/// two ways (in the filter and in the supervisor), or let the driver run past the gate's copy.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FamilyError {
    /// A row for a number its family does not own: the filter would never route it.
    #[error("{family}: {name} ({request:#x}) is not one of the family's numbers")]
    NotOwned {
        /// The family.
        family: &'static str,
        /// The request's name.
        name: &'static str,
        /// Its number.
        request: u32,
    },
    /// A row, device class or anon inode for a kind the family does not list.
    #[error("{family}: kind {kind} is not one of the family's kinds")]
    UnknownKind {
        /// The family.
        family: &'static str,
        /// The kind.
        kind: FdKind,
    },
    /// Two rows for one (kind, request).
    #[error("{family}: two rows for {name} ({request:#x}) on {kind}")]
    Duplicate {
        /// The family.
        family: &'static str,
        /// The kind.
        kind: FdKind,
        /// The request's name.
        name: &'static str,
        /// Its number.
        request: u32,
    },
    /// Two families own one number.
    #[error("{first} and {second} both own {request:#x}")]
    Overlap {
        /// One family.
        first: &'static str,
        /// The other.
        second: &'static str,
        /// A number both own.
        request: u32,
    },
    /// A row of a family that decodes only nr and size, not in the canonical form.
    #[error("{family}: {name} ({request:#x}) is not in the canonical form {canonical:#x}")]
    NotCanonical {
        /// The family.
        family: &'static str,
        /// The request's name.
        name: &'static str,
        /// Its number.
        request: u32,
        /// The form the table must list.
        canonical: u32,
    },
    /// An emulated request whose copy is smaller than what its number says the driver reads
    /// and writes: the driver would run past the gate's buffer.
    #[error(
        "{family}: {name} ({request:#x}) is emulated on {arg_size} bytes, but its number says {size}"
    )]
    ShortCopy {
        /// The family.
        family: &'static str,
        /// The request's name.
        name: &'static str,
        /// Its number.
        request: u32,
        /// The row's copy size.
        arg_size: usize,
        /// `_IOC_SIZE` of the number.
        size: usize,
    },
}

/// A number `first` and `second` both own, if any.
fn shared_number(first: Owned, second: Owned) -> Option<u32> {
    match (first, second) {
        (Owned::Magic(a), Owned::Magic(b)) => (a == b).then(|| u32::from(a) << 8),
        (Owned::Range(low, high), Owned::Range(other_low, other_high)) => {
            (low <= other_high && other_low <= high).then(|| low.max(other_low))
        }
        (Owned::Nrs(a), Owned::Nrs(b)) => {
            a.iter().find(|nr| b.contains(nr)).map(|nr| u32::from(*nr))
        }
        // A family that decodes only nr and size shares numbers with any other by design.
        (Owned::Nrs(_), _) | (_, Owned::Nrs(_)) => None,
        (Owned::Magic(magic), Owned::Range(low, high))
        | (Owned::Range(low, high), Owned::Magic(magic)) => {
            // The smallest number of the range with that type byte, if the range has one.
            let with_type = |n: u32| (n & !0xff00) | (u32::from(magic) << 8);
            [with_type(low), with_type(low).checked_add(0x1_0000)?]
                .into_iter()
                .find(|n| (low..=high).contains(n))
        }
    }
}

/// Checks that `families` can be routed and ruled on consistently: every row owned by its
/// family, of one of its kinds and in canonical form, one row per (kind, request), no number
/// owned by two families that decode numbers in full (nor one nr by two that decode only nr and
/// size), and no emulated copy smaller than its number's `_IOC_SIZE`.
pub fn validate(families: &[Family]) -> Result<(), FamilyError> {
    for (index, family) in families.iter().enumerate() {
        let known = |kind: FdKind| {
            if family.kinds.contains(&kind) {
                Ok(())
            } else {
                Err(FamilyError::UnknownKind {
                    family: family.name,
                    kind,
                })
            }
        };
        for (_, kind) in family.devices {
            known(*kind)?;
        }
        for (_, kind) in family.anon_inodes {
            known(*kind)?;
        }
        let mut seen = std::collections::HashSet::new();
        for row in &family.requests {
            let (name, request) = (row.ioctl.name, row.ioctl.request);
            known(row.kind)?;
            if !family.owns(request) {
                return Err(FamilyError::NotOwned {
                    family: family.name,
                    name,
                    request,
                });
            }
            let canonical = family.decode.canonical(request);
            if canonical != request {
                return Err(FamilyError::NotCanonical {
                    family: family.name,
                    name,
                    request,
                    canonical,
                });
            }
            if !seen.insert((row.kind, request)) {
                return Err(FamilyError::Duplicate {
                    family: family.name,
                    kind: row.kind,
                    name,
                    request,
                });
            }
            let size = super::ioctl::ioc_size(request);
            if matches!(row.action, Action::Emulate { .. }) && row.ioctl.arg_size < size {
                return Err(FamilyError::ShortCopy {
                    family: family.name,
                    name,
                    request,
                    arg_size: row.ioctl.arg_size,
                    size,
                });
            }
        }
        for other in &families[index + 1..] {
            for first in family.owned {
                for second in other.owned {
                    if let Some(request) = shared_number(*first, *second) {
                        return Err(FamilyError::Overlap {
                            first: family.name,
                            second: other.name,
                            request,
                        });
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::family::{Check, iowr};

    const A: FdKind = FdKind::new("a", "a-file");
    const B: FdKind = FdKind::new("b", "b-file");

    fn pass(_: FdKind, _: &[u8]) -> Result<(), Errno> {
        Ok(())
    }

    fn row(kind: FdKind, request: u32, arg_size: usize, action: Action) -> Request {
        Request {
            kind,
            ioctl: IoctlDef {
                name: "TEST",
                request,
                arg_size,
            },
            action,
        }
    }

    fn family(name: &'static str, owned: &'static [Owned], requests: Vec<Request>) -> Family {
        Family {
            name,
            kinds: &[A],
            devices: &[],
            anon_inodes: &[],
            owned,
            decode: Decode::Full,
            unknown_errno: Errno::EINVAL,
            requests,
        }
    }

    #[test]
    fn contradictory_tables_are_refused() {
        const CHECK: Check = pass;
        let emulate = Action::Emulate {
            check: CHECK,
            eventfd_fields: &[],
        };
        let number = iowr(0xdc, 1, 32);
        let fine = family(
            "a",
            &[Owned::Magic(0xdc)],
            vec![row(A, number, 32, emulate)],
        );
        assert_eq!(validate(std::slice::from_ref(&fine)), Ok(()));
        let cases = [
            (
                vec![family("a", &[Owned::Magic(0x3b)], fine.requests.clone())],
                "is not one of the family's numbers",
            ),
            (
                vec![family(
                    "a",
                    &[Owned::Magic(0xdc)],
                    vec![row(B, number, 32, emulate)],
                )],
                "is not one of the family's kinds",
            ),
            (
                vec![family(
                    "a",
                    &[Owned::Magic(0xdc)],
                    vec![
                        row(A, number, 32, Action::Continue),
                        row(A, number, 32, emulate),
                    ],
                )],
                "two rows",
            ),
            (
                vec![family(
                    "a",
                    &[Owned::Magic(0xdc)],
                    vec![row(A, number, 16, emulate)],
                )],
                "is emulated on 16 bytes, but its number says 32",
            ),
            (
                vec![
                    fine.clone(),
                    family("b", &[Owned::Range(0xdc00, 0xdcff)], vec![]),
                ],
                "both own 0xdc00",
            ),
            (
                vec![
                    fine.clone(),
                    family("b", &[Owned::Range(0x1_0000, 0x2_dc05)], vec![]),
                ],
                "both own 0x1dc00",
            ),
        ];
        for (families, message) in cases {
            let error = validate(&families).unwrap_err().to_string();
            assert!(error.contains(message), "{error}");
        }
        assert_eq!(
            validate(&[
                fine,
                family("b", &[Owned::Range(0x1_0000, 0x1_00ff)], vec![])
            ]),
            Ok(())
        );
    }
}
