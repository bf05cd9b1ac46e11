//! From an OCI bundle to a sandbox: [`compile`] turns `config.json`, a host snapshot and the
//! operator's config into a [`SandboxPlan`] (what gVisor's `runsc/boot/vfs.go` decides inside
//! its sentry, decided here for real Linux namespaces, before anything is touched).
//!
//! Settings come from flags ([`BootConfig`]) and `dev.accelgate.*` annotations; the rules and
//! the JSON schema are documented in `docs/plan.md`.

mod abi;
mod bundle;
mod cgroups;
mod compile;
mod config;
mod devices;
mod error;
mod executable;
mod fields;
mod gate;
mod gpu;
mod hints;
mod launch;
mod lifecycle;
mod mounts;
mod options;
mod paths;
mod process;
mod seccomp;
mod sys;
mod terminal;
mod tpu;

pub use bundle::Bundle;
pub use cgroups::CgroupLayout;
pub use compile::{HostSnapshot, compile};
pub use config::{
    ANNOTATION_PREFIX, BootConfig, OVERLAY_ANNOTATION, ROOTFS_IMAGE_ANNOTATION, Selection,
    TPU_ANNOTATION,
};
pub use error::BootError;
pub use gate::{GateReport, families, granted_devices, real_devices_behind};
pub use gpu::{
    DRIVER_CAPABILITIES, VISIBLE_DEVICES, nvidia_toolkit_hook, parse_capabilities,
    parse_visible_devices,
};
pub use hints::MOUNT_HINT_PREFIX;
pub use launch::{
    CgroupJoin, EXIT_SETUP_FAILED, FORWARDED_SIGNALS, LaunchOptions, Launched, Outcome, launch,
};
pub use lifecycle::Lifecycle;
pub use options::known_options as mount_options;
pub use paths::clean_absolute;
pub use process::rlimit_resource;
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
