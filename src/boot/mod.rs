//! From an OCI bundle to a sandbox: [`compile`] turns `config.json`, a host snapshot and the
//! operator's config into a [`SandboxPlan`] (what gVisor's `runsc/boot/vfs.go` decides inside
//! its sentry, decided here for real Linux namespaces, before anything is touched).
//!
//! Settings come from flags ([`BootConfig`]) and `dev.accelgate.*` annotations; the rules and
//! the JSON schema are documented in `docs/plan.md`.

mod abi;
mod bundle;
mod cgroup_join;
mod cgroups;
mod compile;
mod config;
mod devices;
mod enter;
mod error;
mod executable;
mod fields;
mod gate;
mod gate_service;
mod gpu;
mod grant;
mod hints;
mod launch;
mod lifecycle;
mod lsm;
mod mounts;
mod options;
mod paths;
mod process;
mod seccomp;
mod sys;
mod terminal;
mod tpu;

pub use bundle::Bundle;
pub use cgroup_join::CgroupJoin;
pub use cgroups::CgroupLayout;
pub use compile::{HostSnapshot, compile};
pub use config::{
    ANNOTATION_PREFIX, BootConfig, OVERLAY_ANNOTATION, ROOTFS_IMAGE_ANNOTATION, Selection,
    TPU_ANNOTATION,
};
pub use enter::{EnterOptions, enter};
pub use error::BootError;
pub use fields::{check_process, check_supported};
pub use gate::{
    GateReport, NvidiaTables, WorkloadGate, families, granted_devices, real_devices_behind,
};
pub use gate_service::{GATE_LOG_FILE, GATE_STATS_FILE, GateService, gate_stats, join_gate};
pub use gpu::{
    DRIVER_CAPABILITIES, VISIBLE_DEVICES, nvidia_toolkit_hook, parse_capabilities,
    parse_visible_devices,
};
pub use grant::{GRANTED_GPUS_ANNOTATION, GRANTED_TPUS_ANNOTATION, gpu_device_id, tpu_device_id};
pub use hints::MOUNT_HINT_PREFIX;
pub use launch::{
    EXIT_SETUP_FAILED, FORWARDED_SIGNALS, GateSetup, LaunchOptions, Launched, Outcome, launch,
};
pub use lifecycle::Lifecycle;
pub use lsm::Lsm;
pub use options::known_options as mount_options;
pub use paths::clean_absolute;
pub use process::{Workload, rlimit_resource};
pub use seccomp::SpecFilter;
pub use sys::BPF_MAXINSNS;

/// The reasons rules fired, kept for the plan and logged at debug level as they happen.
#[derive(Debug, Default)]
pub struct Rules(Vec<String>);

impl Rules {
    /// Records and logs one rule.
    pub fn add(&mut self, reason: impl Into<String>) {
        let reason = reason.into();
        tracing::debug!(rule = %reason, "plan");
        self.0.push(reason);
    }

    /// The recorded reasons.
    pub fn into_inner(self) -> Vec<String> {
        self.0
    }
}
