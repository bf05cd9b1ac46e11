//! Watching the host: one resource's inventory, refreshed by reading the host again, and the
//! device list every `ListAndWatch` stream follows.
//!
//! The host is polled rather than watched through udev: health also changes where udev says
//! nothing (a `dev.list` entry, `/proc/driver/nvidia/gpus`, a node removed by hand), a
//! container may not see the host's udev events at all, and a fixture host has none; discovery
//! costs about 100 µs per PCI function (`docs/performance.md`), a few milliseconds for a host,
//! so a poll every few seconds costs next to nothing. `Allocate` reads the
//! host again too, so it never hands out a device that went away between two polls.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

use super::api;
use super::inventory::{HostView, Inventory};
use crate::cdi::Kind;
use crate::discovery::discover;
use crate::pci::{HostRoot, PciError, error_chain};

/// One resource's devices, kept current.
#[derive(Debug)]
pub struct Monitor {
    root: Option<PathBuf>,
    inventory: Mutex<Inventory>,
    list: watch::Sender<Arc<Vec<api::Device>>>,
}

impl Monitor {
    /// Reads the host under `root` (the running host when `None`) for the devices of `kind`.
    /// Errors when the host cannot be read at all.
    pub fn start(kind: Kind, root: Option<PathBuf>) -> Result<Self, PciError> {
        let mut inventory = Inventory::new(kind);
        inventory.update(read(root.as_ref())?);
        let (list, _) = watch::channel(Arc::new(inventory.api_devices()));
        Ok(Self {
            root,
            inventory: Mutex::new(inventory),
            list,
        })
    }

    /// The resource.
    pub fn kind(&self) -> Kind {
        self.inventory().kind()
    }

    /// Reads the host again; when a device appeared or changed health, every `ListAndWatch`
    /// stream gets the new list. Blocking: it reads sysfs.
    pub fn refresh(&self) {
        let view = read(self.root.as_ref());
        let mut inventory = self.inventory();
        let changed = match view {
            Ok(view) => inventory.update(view),
            Err(e) => {
                let reason = error_chain(&e);
                tracing::error!(resource = inventory.kind().name(), %reason, "cannot read the host");
                inventory.unreadable(&reason)
            }
        };
        if changed {
            self.list.send_replace(Arc::new(inventory.api_devices()));
        }
    }

    /// The device list as it is now and as it changes.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Vec<api::Device>>> {
        self.list.subscribe()
    }

    /// The inventory, locked.
    pub fn inventory(&self) -> MutexGuard<'_, Inventory> {
        // A panic while the lock was held leaves at worst a partly refreshed inventory, which
        // the next refresh puts right: a poisoned lock is still usable.
        self.inventory
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn read(root: Option<&PathBuf>) -> Result<HostView, PciError> {
    // A fixture host's `dev.list` is read when the root is opened: open it anew each time.
    let host = match root {
        Some(dir) => HostRoot::at(dir)?,
        None => HostRoot::system(),
    };
    let discovery = discover(&host)?;
    Ok(HostView { host, discovery })
}
