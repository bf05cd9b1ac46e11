//! The credentials of the threads that serve notifications, which run emulated driver calls
//! themselves (one hop: no hand-off to another thread).
//!
//! The NVIDIA driver takes privilege from the caller's `CAP_SYS_ADMIN` on every call and caches
//! it in what the call creates; `CAP_PERFMON` and `CAP_SYS_NICE` also open doors. A call run by
//! the root supervisor on the workload's behalf must therefore not carry them. Each serving
//! thread drops all three from its effective, permitted and inheritable sets when it starts
//! (capabilities are per thread, so the supervisor's other threads keep theirs), takes on the
//! caller's effective uid and gid before each backend call, and keeps nothing in effect but
//! CAP_SYS_PTRACE (to reach the caller's memory and fds) from then on.

use super::sys;
use crate::family::Caller;

/// Capabilities a serving thread never has.
pub const DROPPED: [caps::Capability; 3] = [
    caps::Capability::CAP_SYS_ADMIN,
    caps::Capability::CAP_PERFMON,
    caps::Capability::CAP_SYS_NICE,
];

/// Drops [`DROPPED`] from every set of this thread; false when it could not (the thread must
/// then not serve). The rest stays permitted, for [`take_ids`] to switch ids with.
pub fn drop_privileges() -> bool {
    for set in [
        caps::CapSet::Effective,
        caps::CapSet::Inheritable,
        caps::CapSet::Permitted,
    ] {
        for cap in DROPPED {
            if let Err(e) = caps::drop(None, set, cap) {
                tracing::error!(?cap, ?set, %e, "cannot drop a capability in a serving thread");
                return false;
            }
        }
    }
    true
}

thread_local! {
    /// The (euid, egid) this serving thread runs with now, when it acts for a caller.
    static IDS: std::cell::Cell<Option<(u32, u32)>> = const { std::cell::Cell::new(None) };
}

/// Gives this thread the supervisor's own ids and capabilities back (root, everything but
/// [`DROPPED`] in effect), for work the gate does for itself rather than on a caller's
/// behalf: reading any process's `/proc` entries (a caller that made itself non-dumpable
/// included) and resolving paths inside a sandbox's root.
pub fn as_supervisor() -> std::io::Result<()> {
    if IDS.get().is_none() {
        return Ok(());
    }
    sys::set_thread_effective_ids(0, 0)?;
    let permitted = caps::read(None, caps::CapSet::Permitted).map_err(std::io::Error::other)?;
    caps::set(None, caps::CapSet::Effective, &permitted).map_err(std::io::Error::other)?;
    IDS.set(None);
    Ok(())
}

/// Gives this thread `caller`'s effective ids, unless it has them already.
pub fn take_ids(caller: Caller) -> std::io::Result<()> {
    let wanted = (caller.euid, caller.egid);
    if IDS.get() == Some(wanted) {
        return Ok(());
    }
    IDS.set(None);
    // Back to root first (always allowed: the real uid is 0), which lets the thread take any
    // effective id; CAP_SYS_ADMIN and friends stay dropped from the permitted set.
    sys::set_thread_effective_ids(0, 0)?;
    sys::set_thread_effective_ids(caller.euid, caller.egid)?;
    // The driver sees no capability at all in effect, whatever the caller's euid: only
    // CAP_SYS_PTRACE, which reaching the caller's memory and fds takes and no driver consults.
    // (An euid change to or from 0 rewrites the effective set, so this follows every switch.)
    let effective = std::collections::HashSet::from([caps::Capability::CAP_SYS_PTRACE]);
    caps::set(None, caps::CapSet::Effective, &effective).map_err(std::io::Error::other)?;
    IDS.set(Some(wanted));
    Ok(())
}
