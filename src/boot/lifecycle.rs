//! The points of a launch at which the runtime acts (OCI hooks, cgroups): `launch` calls them,
//! the `runtime` module implements them, so that `boot` needs nothing above it.

use nix::unistd::Pid;

/// What the runtime does around a launch.
pub trait Lifecycle {
    /// In the launcher: the sandbox's process exists in its namespaces (`pid`, as the host sees
    /// it) and waits; nothing is mounted yet. An error stops the launch.
    fn created(&mut self, pid: Pid) -> Result<(), String>;
    /// In the sandbox, after `pivot_root`, just before the workload is executed; `pid` is the
    /// host's view of it. An error stops the launch.
    fn starting(&self, pid: Pid) -> Result<(), String>;
    /// In the sandbox, once the spec's seccomp filter is installed: the container process state
    /// (runtime-spec "Container Process State") that goes with its listener to the seccomp agent
    /// at `linux.seccomp.listenerPath`; `pid` is the host's view of the process.
    fn agent_state(&self, pid: Pid) -> String;
    /// In the launcher: the workload was executed.
    fn started(&mut self, pid: Pid);
}
