//! The simulated RM's object server: clients and the objects under them, as the driver keeps
//! them. A client belongs to the file that allocated it (a GPU file registered to a control
//! file counts as that control file) and is usable only through it; handles are unique within
//! a client; parents are checked; a free takes the subtree.

use std::collections::{BTreeMap, HashMap};

use super::super::abi::{
    CLIENT_HANDLE_BASE, NV_ERR_INSERT_DUPLICATE_NAME, NV_ERR_INVALID_CLIENT,
    NV_ERR_INVALID_OBJECT_HANDLE, NV_ERR_INVALID_OBJECT_PARENT, NV_OK,
};

/// Root classes: a client.
pub const ROOT_CLASSES: [u32; 3] = [0x0, 0x1, 0x41];
/// `NV01_ROOT_CLIENT`, what RM turns every root class into.
pub const ROOT_CLIENT: u32 = 0x41;
/// `NV01_DEVICE_0`.
pub const DEVICE: u32 = 0x80;
/// `NV20_SUBDEVICE_0`.
pub const SUBDEVICE: u32 = 0x2080;

/// An object under a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Object {
    /// Its class.
    pub class: u32,
    /// Its parent (the client's handle for top-level objects).
    pub parent: u32,
    /// The GPU (index into the simulator's) it stands for, for devices and subdevices.
    pub gpu: Option<usize>,
}

#[derive(Debug, Default)]
struct Client {
    file: u64,
    objects: BTreeMap<u32, Object>,
}

/// Every client of the simulated driver.
#[derive(Debug, Default)]
pub struct Objects {
    clients: HashMap<u32, Client>,
    next_client: u32,
}

impl Objects {
    /// Allocates a client for `file`: `handle`, or one RM picks when it is 0.
    pub fn alloc_client(&mut self, file: u64, handle: u32) -> Result<u32, u32> {
        let handle = if handle == 0 {
            loop {
                let candidate = CLIENT_HANDLE_BASE + self.next_client;
                self.next_client += 1;
                if !self.clients.contains_key(&candidate) {
                    break candidate;
                }
            }
        } else {
            handle
        };
        if self.clients.contains_key(&handle) {
            return Err(NV_ERR_INSERT_DUPLICATE_NAME);
        }
        self.clients.insert(
            handle,
            Client {
                file,
                objects: BTreeMap::new(),
            },
        );
        Ok(handle)
    }

    /// Client `client`, checked to be `file`'s.
    fn client(&self, file: u64, client: u32) -> Result<&Client, u32> {
        match self.clients.get(&client) {
            Some(c) if c.file == file => Ok(c),
            _ => Err(NV_ERR_INVALID_CLIENT),
        }
    }

    /// The object `handle` of `client` (its class and GPU), through `file`. The client itself
    /// is the root class.
    pub fn object(&self, file: u64, client: u32, handle: u32) -> Result<Object, u32> {
        let c = self.client(file, client)?;
        if handle == client {
            return Ok(Object {
                class: ROOT_CLIENT,
                parent: 0,
                gpu: None,
            });
        }
        c.objects
            .get(&handle)
            .copied()
            .ok_or(NV_ERR_INVALID_OBJECT_HANDLE)
    }

    /// Adds `object` as `handle` under `client`, through `file`: the parent must exist, the
    /// handle must be new.
    pub fn alloc(
        &mut self,
        file: u64,
        client: u32,
        handle: u32,
        object: Object,
    ) -> Result<(), u32> {
        self.object(file, client, object.parent)
            .map_err(|_| NV_ERR_INVALID_OBJECT_PARENT)?;
        let c = self.clients.get_mut(&client).ok_or(NV_ERR_INVALID_CLIENT)?;
        if handle == 0 || handle == client || c.objects.contains_key(&handle) {
            return Err(NV_ERR_INSERT_DUPLICATE_NAME);
        }
        c.objects.insert(handle, object);
        Ok(())
    }

    /// Frees `handle` of `client` and everything under it (the whole client when it is the
    /// client), through `file`.
    pub fn free(&mut self, file: u64, client: u32, handle: u32) -> u32 {
        if let Err(status) = self.client(file, client) {
            return status;
        }
        if handle == client {
            self.clients.remove(&client);
            return NV_OK;
        }
        let Some(c) = self.clients.get_mut(&client) else {
            return NV_ERR_INVALID_CLIENT;
        };
        if !c.objects.contains_key(&handle) {
            return NV_ERR_INVALID_OBJECT_HANDLE;
        }
        let mut doomed = vec![handle];
        let mut at = 0;
        while at < doomed.len() {
            let parent = doomed[at];
            doomed.extend(
                c.objects
                    .iter()
                    .filter(|(_, o)| o.parent == parent)
                    .map(|(h, _)| *h),
            );
            at += 1;
        }
        for handle in doomed {
            c.objects.remove(&handle);
        }
        NV_OK
    }

    /// How many objects `client` holds.
    #[cfg(test)]
    pub fn count(&self, client: u32) -> Option<usize> {
        self.clients.get(&client).map(|c| c.objects.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_belong_to_their_file_and_free_their_subtree() {
        let mut objects = Objects::default();
        let client = objects.alloc_client(1, 0).unwrap();
        assert_eq!(client, CLIENT_HANDLE_BASE);
        assert_eq!(
            objects.alloc_client(2, client),
            Err(NV_ERR_INSERT_DUPLICATE_NAME)
        );
        let device = Object {
            class: DEVICE,
            parent: client,
            gpu: Some(0),
        };
        objects.alloc(1, client, 0x10, device).unwrap();
        let sub = Object {
            class: SUBDEVICE,
            parent: 0x10,
            gpu: Some(0),
        };
        objects.alloc(1, client, 0x11, sub).unwrap();
        assert_eq!(
            objects.alloc(1, client, 0x11, sub),
            Err(NV_ERR_INSERT_DUPLICATE_NAME)
        );
        let orphan = Object {
            parent: 0x99,
            ..sub
        };
        assert_eq!(
            objects.alloc(1, client, 0x12, orphan),
            Err(NV_ERR_INVALID_OBJECT_PARENT)
        );
        // Through another file the client does not exist.
        assert_eq!(objects.object(2, client, 0x10), Err(NV_ERR_INVALID_CLIENT));
        assert_eq!(objects.free(2, client, 0x10), NV_ERR_INVALID_CLIENT);
        assert_eq!(objects.free(1, client, 0x10), NV_OK);
        assert_eq!(objects.count(client), Some(0));
        assert_eq!(objects.free(1, client, client), NV_OK);
        assert_eq!(objects.count(client), None);
    }
}
