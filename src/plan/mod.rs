//! The sandbox plan: what `boot::compile` makes of an OCI bundle and a host, and what
//! `vfs::apply` carries out. A leaf contract: it depends on nothing above it, so that the
//! compiler and the applier never need each other.

mod overlay;
mod sandbox;

pub use overlay::OverlayMode;
pub use sandbox::{
    Accelerators, Access, BindSource, MountOrigin, PLAN_SCHEMA, PlannedDevice, PlannedMount,
    PlannedRlimit, PlannedSymlink, ProcessPlan, RootfsPlan, SandboxPlan, SharedVolume, SourceKind,
};
