//! The OCI lifecycle around a sandbox: its cgroups (devices, limits), the spec's hooks and the
//! state they are given. `boot` compiles the plan and launches it; this module acts at the points
//! of the launch that the runtime spec names (`boot::Lifecycle`), and keeps created containers in
//! a state directory for the runc command line (`create`, `start`, `state`, `kill`, `delete`,
//! `exec`, `ps`, `pause`, `resume`, `update`).

mod abi;
mod cgroup;
mod commands;
mod container;
mod device_program;
mod devices;
mod error;
mod exec;
mod freezer;
mod hierarchy;
mod hooks;
mod limits;
mod placement;
mod run;
mod seccomp;
mod state;
mod sys;
mod terminal;
mod update;

pub use cgroup::Cgroup;
pub use commands::{
    CreateOptions, container_processes, create, delete, kill_container, pause, resume, start,
};
pub use container::{Container, DEFAULT_STATE_ROOT, GATE_SOCKET, GateRecord, StateRoot};
pub use device_program::DeviceProgram;
pub use devices::{DeviceRule, rules as device_rules};
pub use error::RuntimeError;
pub use exec::{ExecOptions, ExecRequest, exec};
pub use freezer::{frozen, set_frozen};
pub use hierarchy::{CgroupMode, Hierarchies, Hierarchy};
pub use hooks::{HookPhase, Hooks};
pub use placement::CgroupPlan;
pub use run::{RunOptions, run};
pub use seccomp::{compile as compile_seccomp, features as seccomp_features};
pub use state::{State, Status};
pub use terminal::{PROXY_COMMAND as TERMINAL_PROXY_COMMAND, serve_proxy as serve_terminal_proxy};
pub use update::update;
