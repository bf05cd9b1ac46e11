//! The mode applied to a ruling: what the gate will do with one call, reading and checking the
//! argument copy where the ruling needs it.

use nix::errno::Errno;

use super::mode::Mode;
use super::stats::Verdict;
use crate::family::{Action, Check, FdKind, Memory, Ruling};

/// What the gate will do, after the mode is applied.
#[derive(Debug, PartialEq, Eq)]
pub enum Plan {
    /// Answer with this errno.
    Deny(Errno),
    /// Let the call run in the workload.
    Continue,
    /// Run it on this checked copy.
    Emulate {
        /// The argument, copied in and checked.
        copy: Vec<u8>,
        /// Offsets of eventfd fields in it.
        eventfd_fields: &'static [usize],
    },
    /// Hand it to the family's translator, which applies the mode itself (it alone can read
    /// what the call is).
    Translate,
}

/// Applies `mode` to `ruling` for a call on a `kind` file whose argument pointer is `arg`.
pub fn decide(
    mode: Mode,
    sandbox: &str,
    kind: FdKind,
    ruling: &Ruling,
    arg: u64,
    memory: &dyn Memory,
) -> (Plan, Verdict) {
    let audit = |what: &str, errno: Errno| {
        tracing::info!(sandbox, device = %kind, ioctl = ruling.ioctl.name, errno = %errno, mode = %mode, "{what}: enforce would refuse this");
    };
    let checked = |check: Check| -> Result<Vec<u8>, Errno> {
        let copy = memory.read(arg, ruling.ioctl.arg_size)?;
        check(kind, &copy)?;
        Ok(copy)
    };
    match (mode, ruling.action) {
        (_, Action::Translate(_)) => (Plan::Translate, Verdict::Emulated),
        (Mode::Audit, Action::Deny(errno)) => {
            audit("allowed (audit)", errno);
            (Plan::Continue, Verdict::Audited)
        }
        (_, Action::Deny(errno)) => (Plan::Deny(errno), Verdict::Denied),
        // A ruling's by-value check has been applied already (`family::resolve`).
        (_, Action::Continue | Action::ContinueIf(_)) => (Plan::Continue, Verdict::Allowed),
        (Mode::Enforce, Action::CheckThenContinue(check)) => match checked(check) {
            Ok(_) => (Plan::Continue, Verdict::Allowed),
            Err(errno) => (Plan::Deny(errno), Verdict::Denied),
        },
        (
            Mode::Enforce,
            Action::Emulate {
                check,
                eventfd_fields,
            },
        ) => match checked(check) {
            Ok(copy) => (
                Plan::Emulate {
                    copy,
                    eventfd_fields,
                },
                Verdict::Emulated,
            ),
            Err(errno) => (Plan::Deny(errno), Verdict::Denied),
        },
        (_, Action::CheckThenContinue(check) | Action::Emulate { check, .. }) => {
            match checked(check) {
                Ok(_) => (Plan::Continue, Verdict::Allowed),
                Err(errno) => {
                    audit("continued unchecked", errno);
                    (Plan::Continue, Verdict::Audited)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;
    use crate::family::{FakeMemory, IoctlDef, field_u64};

    const ARG: u64 = 0x1000;
    const KIND: FdKind = FdKind::new("test", "test-device");

    /// Word 0 must be below 8.
    fn small_first_word(_: FdKind, arg: &[u8]) -> Result<(), Errno> {
        match field_u64(arg, 0) {
            Some(word) if word < 8 => Ok(()),
            Some(_) => Err(Errno::EINVAL),
            None => Err(Errno::EFAULT),
        }
    }

    fn ruling(action: Action) -> Ruling {
        Ruling {
            ioctl: IoctlDef {
                name: "TEST",
                request: 0x1234,
                arg_size: 16,
            },
            action,
        }
    }

    const EMULATE: Action = Action::Emulate {
        check: small_first_word,
        eventfd_fields: &[8],
    };
    const CHECKED: Action = Action::CheckThenContinue(small_first_word);
    const DENIED: Action = Action::Deny(Errno::EPERM);

    fn memory(words: [u64; 2]) -> FakeMemory {
        let bytes = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
        FakeMemory {
            base: ARG,
            bytes: RefCell::new(bytes),
        }
    }

    fn verdicts(mode: Mode, action: Action, words: [u64; 2]) -> (Plan, Verdict) {
        decide(mode, "test", KIND, &ruling(action), ARG, &memory(words))
    }

    #[test]
    fn enforce_emulates_good_copies_and_denies_bad_ones() {
        match verdicts(Mode::Enforce, EMULATE, [7, 3]) {
            (
                Plan::Emulate {
                    copy,
                    eventfd_fields,
                },
                Verdict::Emulated,
            ) => {
                assert_eq!(copy, memory([7, 3]).bytes.into_inner());
                assert_eq!(eventfd_fields, [8]);
            }
            other => panic!("{other:?}"),
        }
        let cases = [
            (EMULATE, [9, 3], Plan::Deny(Errno::EINVAL), Verdict::Denied),
            (CHECKED, [9, 0], Plan::Deny(Errno::EINVAL), Verdict::Denied),
            (CHECKED, [1, 0], Plan::Continue, Verdict::Allowed),
            (DENIED, [0, 0], Plan::Deny(Errno::EPERM), Verdict::Denied),
        ];
        for (action, words, plan, verdict) in cases {
            assert_eq!(verdicts(Mode::Enforce, action, words), (plan, verdict));
        }
    }

    #[test]
    fn passthrough_and_audit_loosen_what_they_should() {
        let cases = [
            // Passthrough: content checks only audited, denials kept.
            (
                Mode::Passthrough,
                EMULATE,
                [9, 0],
                Plan::Continue,
                Verdict::Audited,
            ),
            (
                Mode::Passthrough,
                EMULATE,
                [1, 0],
                Plan::Continue,
                Verdict::Allowed,
            ),
            (
                Mode::Passthrough,
                DENIED,
                [0, 0],
                Plan::Deny(Errno::EPERM),
                Verdict::Denied,
            ),
            // Audit: everything allowed, what enforce would refuse marked.
            (
                Mode::Audit,
                DENIED,
                [0, 0],
                Plan::Continue,
                Verdict::Audited,
            ),
            (
                Mode::Audit,
                CHECKED,
                [9, 0],
                Plan::Continue,
                Verdict::Audited,
            ),
            (
                Mode::Audit,
                CHECKED,
                [0, 0],
                Plan::Continue,
                Verdict::Allowed,
            ),
        ];
        for (mode, action, words, plan, verdict) in cases {
            assert_eq!(
                verdicts(mode, action, words),
                (plan, verdict),
                "{mode} {action:?}"
            );
        }
    }

    #[test]
    fn an_unreadable_argument_is_refused_in_enforce_mode() {
        let empty = FakeMemory {
            base: ARG,
            bytes: RefCell::new(Vec::new()),
        };
        assert_eq!(
            decide(Mode::Enforce, "test", KIND, &ruling(EMULATE), ARG, &empty),
            (Plan::Deny(Errno::EFAULT), Verdict::Denied)
        );
    }
}
