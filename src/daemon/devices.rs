//! A container's accelerators, worked out from its bundle as `accelgate plan` would: the
//! `linux.devices` nodes that are the host's TPUs and the `dev.accelgate.tpu` annotation.

use std::path::Path;

use super::DaemonError;
use super::state::ContainerState;
use crate::boot::{BootConfig, Bundle, HostSnapshot, compile, real_devices_behind};
use crate::supervisor::simulator::Simulator;
use crate::vfs::DeviceRegistry;

/// What a container was given.
#[derive(Debug, Clone, Default)]
pub struct Granted {
    /// TPU chips by discovery index.
    pub tpus: Vec<usize>,
    /// Their device nodes, as `path (major:minor)`.
    pub nodes: Vec<String>,
}

/// The TPUs the container's bundle asks for on `host`. With `simulate`, a container whose
/// nodes' numbers name real devices on this machine is refused: it would reach them.
pub fn granted(
    container: &ContainerState,
    host: &HostSnapshot,
    registry: &DeviceRegistry,
    simulate: bool,
) -> Result<Granted, DaemonError> {
    let failed = |source| DaemonError::Bundle {
        id: container.id.clone(),
        bundle: container.bundle.clone(),
        source: Box::new(source),
    };
    let bundle = Bundle::load(&container.bundle).map_err(failed)?;
    // runc or crun applies the spec; the gate only needs to know what the container was given.
    let config = BootConfig {
        container_id: container.id.clone(),
        applied_elsewhere: true,
        ..Default::default()
    };
    let plan = compile(&bundle, host, &config).map_err(failed)?;
    if simulate {
        let real = real_devices_behind(&plan, registry, Path::new("/sys"));
        if !real.is_empty() {
            return Err(DaemonError::Refused {
                id: container.id.clone(),
                reason: format!(
                    "this machine has real devices at the numbers of {}; simulating over real hardware is refused",
                    real.join(", ")
                ),
            });
        }
    }
    let tpus = plan.accelerators.tpus;
    let nodes = host
        .discovery
        .tpus
        .iter()
        .filter(|chip| tpus.contains(&chip.index))
        .flat_map(|chip| chip.nodes.iter())
        .map(|node| format!("{} ({}:{})", node.path.display(), node.major, node.minor))
        .collect();
    Ok(Granted { tpus, nodes })
}

/// The simulators for `granted` on `host`.
pub fn simulator(granted: &Granted, host: &HostSnapshot) -> Simulator {
    Simulator::new(
        crate::tpuproxy::simulated_devices(&host.discovery.tpus, &granted.tpus),
        None,
    )
}
