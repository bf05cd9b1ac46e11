//! The devices one resource has ever advertised in this run, with their health, and the host
//! as last read.
//!
//! A device stays in the list once seen: when it vanishes from the host it is reported
//! `Unhealthy` under the same ID, so that the kubelet takes it out of the allocatable count
//! and the pods holding it can be told apart, rather than the device silently disappearing.

use std::sync::Arc;

use super::api;
use super::health::observe;
use super::topology::HostBounds;
use crate::cdi::Kind;
use crate::discovery::Discovery;
use crate::pci::{Bdf, HostRoot};
use crate::tpuproxy::Generation;

/// `Healthy`, as the kubelet spells it.
pub const HEALTHY: &str = "Healthy";

/// `Unhealthy`, as the kubelet spells it.
pub const UNHEALTHY: &str = "Unhealthy";

/// Whether a device can be given to a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Present and usable.
    Healthy,
    /// Not usable, and why.
    Unhealthy(String),
}

/// One device as the kubelet knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracked {
    /// Its stable ID (`boot::tpu_device_id`, `boot::gpu_device_id`).
    pub id: String,
    /// PCI address (of a chip's first function).
    pub bdf: Bdf,
    /// NUMA node, when it has one.
    pub numa_node: Option<i32>,
    /// TPU generation; `None` for GPUs.
    pub generation: Option<Generation>,
    /// Health at the last look.
    pub health: Health,
}

/// The host as read at one poll.
#[derive(Debug)]
pub struct HostView {
    /// Where it was read.
    pub host: HostRoot,
    /// What discovery found.
    pub discovery: Discovery,
}

/// One resource's devices.
#[derive(Debug)]
pub struct Inventory {
    kind: Kind,
    /// Every device seen in this run, in bus order.
    devices: Vec<Tracked>,
    view: Option<Arc<HostView>>,
}

impl Inventory {
    /// An empty inventory for `kind`.
    pub fn new(kind: Kind) -> Self {
        Self {
            kind,
            devices: Vec::new(),
            view: None,
        }
    }

    /// The resource.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Takes in a fresh look at the host. Returns whether any device appeared or changed health
    /// or NUMA node; each appearance and change of health is logged.
    pub fn update(&mut self, view: HostView) -> bool {
        let seen = observe(self.kind, &view.discovery);
        let mut changed = false;
        for device in &mut self.devices {
            let health = match seen.iter().find(|s| s.id == device.id) {
                Some(now) => {
                    changed |= device.numa_node != now.numa_node;
                    device.numa_node = now.numa_node;
                    now.health.clone()
                }
                None => Health::Unhealthy(format!(
                    "{} {} is no longer on the host (removed, or its driver unbound)",
                    self.kind.devices(),
                    device.bdf
                )),
            };
            changed |= set_health(self.kind, device, health);
        }
        for device in seen {
            if !self.devices.iter().any(|d| d.id == device.id) {
                log_health(self.kind, &device, None);
                self.devices.push(device);
                changed = true;
            }
        }
        self.devices.sort_by_key(|d| d.bdf);
        self.view = Some(Arc::new(view));
        changed
    }

    /// The host could not be read at all: every device is unhealthy. Returns whether any
    /// device's health changed.
    pub fn unreadable(&mut self, reason: &str) -> bool {
        let mut changed = false;
        for device in &mut self.devices {
            let health = Health::Unhealthy(format!("the host cannot be read: {reason}"));
            changed |= set_health(self.kind, device, health);
        }
        changed
    }

    /// Every device, in bus order.
    pub fn devices(&self) -> &[Tracked] {
        &self.devices
    }

    /// The device with this ID.
    pub fn get(&self, id: &str) -> Option<&Tracked> {
        self.devices.iter().find(|d| d.id == id)
    }

    /// A device's place among all of them in bus order.
    pub fn position(&self, id: &str) -> Option<usize> {
        self.devices.iter().position(|d| d.id == id)
    }

    /// The host as last read.
    pub fn view(&self) -> Option<&Arc<HostView>> {
        self.view.as_ref()
    }

    /// The layout of the host's TPU chips, when its generation and chip count are a known
    /// host shape (the chips seen in this run, vanished ones included, keep their places).
    pub fn tpu_bounds(&self) -> Option<HostBounds> {
        let first = self.devices.first()?.generation?;
        if self.devices.iter().any(|d| d.generation != Some(first)) {
            return None;
        }
        HostBounds::of(first, self.devices.len())
    }

    /// The list `ListAndWatch` sends: IDs, health and NUMA node.
    pub fn api_devices(&self) -> Vec<api::Device> {
        self.devices
            .iter()
            .map(|device| api::Device {
                id: device.id.clone(),
                health: match device.health {
                    Health::Healthy => HEALTHY,
                    Health::Unhealthy(_) => UNHEALTHY,
                }
                .to_owned(),
                topology: device.numa_node.map(|node| api::TopologyInfo {
                    nodes: vec![api::NumaNode {
                        id: i64::from(node),
                    }],
                }),
            })
            .collect()
    }
}

fn set_health(kind: Kind, device: &mut Tracked, health: Health) -> bool {
    if device.health == health {
        return false;
    }
    let before = std::mem::replace(&mut device.health, health);
    log_health(kind, device, Some(&before));
    true
}

fn log_health(kind: Kind, device: &Tracked, before: Option<&Health>) {
    let resource = kind.name();
    match (&device.health, before) {
        (Health::Healthy, None) => {
            tracing::info!(resource, id = %device.id, numa = ?device.numa_node, "device found")
        }
        (Health::Healthy, Some(_)) => {
            tracing::info!(resource, id = %device.id, "device healthy again")
        }
        (Health::Unhealthy(reason), _) => {
            tracing::warn!(resource, id = %device.id, %reason, "device unhealthy")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::discover;

    fn view(dir: &std::path::Path) -> HostView {
        let host = HostRoot::at(dir).unwrap();
        let discovery = discover(&host).unwrap();
        HostView { host, discovery }
    }

    fn copy_fixture(name: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let from = format!("{}/fixtures/sysfs/{name}/.", env!("CARGO_MANIFEST_DIR"));
        let status = std::process::Command::new("cp")
            .args(["-a", &from])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success());
        dir
    }

    #[test]
    fn vanished_devices_stay_listed_as_unhealthy() {
        let host = copy_fixture("tpu-v5e-8");
        let mut inventory = Inventory::new(Kind::Tpu);
        assert!(inventory.update(view(host.path())));
        assert_eq!(inventory.devices().len(), 8);
        assert_eq!(inventory.tpu_bounds().map(|b| b.sides()), Some([2, 4, 1]));
        assert!(!inventory.update(view(host.path())), "nothing changed");

        std::fs::remove_file(host.path().join("sys/bus/pci/devices/0000:00:0b.0")).unwrap();
        assert!(inventory.update(view(host.path())));
        let gone = inventory.get("0000:00:0b.0").unwrap();
        assert!(
            matches!(&gone.health, Health::Unhealthy(r) if r.contains("no longer on the host")),
            "{gone:?}"
        );
        assert_eq!(inventory.position("0000:00:0b.0"), Some(7));
        assert_eq!(inventory.tpu_bounds().map(|b| b.chips()), Some(8));
        let listed = inventory.api_devices();
        assert_eq!(listed[7].health, UNHEALTHY);
        assert_eq!(listed[0].health, HEALTHY);
        assert_eq!(listed[7].topology.as_ref().unwrap().nodes[0].id, 1);
    }

    #[test]
    fn a_missing_node_is_unhealthy() {
        let host = copy_fixture("nvidia-h100x8");
        let list = std::fs::read_to_string(host.path().join("dev.list")).unwrap();
        let without: String = list
            .lines()
            .filter(|l| !l.starts_with("/dev/nvidia3 "))
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(host.path().join("dev.list"), without).unwrap();
        let mut inventory = Inventory::new(Kind::Gpu);
        inventory.update(view(host.path()));
        let unhealthy: Vec<&Tracked> = inventory
            .devices()
            .iter()
            .filter(|d| d.health != Health::Healthy)
            .collect();
        assert_eq!(unhealthy.len(), 1, "{unhealthy:?}");
        assert_eq!(unhealthy[0].bdf.to_string(), "0000:43:00.0");
        assert!(unhealthy[0].id.starts_with("GPU-"));
        assert_eq!(inventory.tpu_bounds(), None);
    }
}
