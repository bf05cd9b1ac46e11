//! The `DevicePlugin` gRPC service of one resource, as the kubelet calls it.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::DevicePluginError;
use super::allocation::{container_response, known_ids};
use super::api::device_plugin_server::DevicePlugin;
use super::api::{
    AllocateRequest, AllocateResponse, ContainerPreferredAllocationRequest,
    ContainerPreferredAllocationResponse, DevicePluginOptions, Empty, ListAndWatchResponse,
    PreStartContainerRequest, PreStartContainerResponse, PreferredAllocationRequest,
    PreferredAllocationResponse,
};
use super::inventory::Inventory;
use super::monitor::Monitor;
use super::preference::{Candidate, preferred};
use super::registration::options;

/// One resource's service.
#[derive(Debug, Clone)]
pub struct PluginService {
    monitor: Arc<Monitor>,
    cdi_dir: Option<PathBuf>,
    /// Changes (its sender dropped) when the server stops: `ListAndWatch` streams end then.
    stop: watch::Receiver<()>,
}

impl PluginService {
    /// The service for `monitor`'s resource; with `cdi_dir`, `Allocate` answers with CDI device
    /// names from the spec it writes there.
    pub fn new(monitor: Arc<Monitor>, cdi_dir: Option<PathBuf>, stop: watch::Receiver<()>) -> Self {
        Self {
            monitor,
            cdi_dir,
            stop,
        }
    }

    /// Reads the host again, off the async threads.
    async fn refresh(&self) -> Result<(), Status> {
        let monitor = Arc::clone(&self.monitor);
        tokio::task::spawn_blocking(move || monitor.refresh())
            .await
            .map_err(|e| DevicePluginError::Task(e).status())
    }
}

#[tonic::async_trait]
impl DevicePlugin for PluginService {
    async fn get_device_plugin_options(
        &self,
        _: Request<Empty>,
    ) -> Result<Response<DevicePluginOptions>, Status> {
        Ok(Response::new(options()))
    }

    type ListAndWatchStream = ReceiverStream<Result<ListAndWatchResponse, Status>>;

    /// The device list now, then again on every change, until the kubelet hangs up or the
    /// server stops.
    async fn list_and_watch(
        &self,
        _: Request<Empty>,
    ) -> Result<Response<Self::ListAndWatchStream>, Status> {
        let mut devices = self.monitor.subscribe();
        let mut stop = self.stop.clone();
        let (sender, receiver) = mpsc::channel(1);
        let resource = self.monitor.kind().name();
        tokio::spawn(async move {
            loop {
                let list = devices.borrow_and_update().as_ref().clone();
                tracing::debug!(resource, devices = list.len(), "sending the device list");
                let message = Ok(ListAndWatchResponse { devices: list });
                if sender.send(message).await.is_err() {
                    break;
                }
                tokio::select! {
                    changed = devices.changed() => if changed.is_err() { break },
                    _ = stop.changed() => break,
                    () = sender.closed() => break,
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(receiver)))
    }

    async fn get_preferred_allocation(
        &self,
        request: Request<PreferredAllocationRequest>,
    ) -> Result<Response<PreferredAllocationResponse>, Status> {
        let inventory = self.monitor.inventory();
        let container_responses = request
            .into_inner()
            .container_requests
            .iter()
            .map(|container| preferred_for(&inventory, container))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.status())?;
        Ok(Response::new(PreferredAllocationResponse {
            container_responses,
        }))
    }

    async fn allocate(
        &self,
        request: Request<AllocateRequest>,
    ) -> Result<Response<AllocateResponse>, Status> {
        self.refresh().await?;
        let request = request.into_inner();
        let inventory = self.monitor.inventory();
        let container_responses = request
            .container_requests
            .iter()
            .map(|container| {
                container_response(&inventory, &container.devices_ids, self.cdi_dir.as_deref())
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                tracing::warn!(resource = inventory.kind().name(), error = %crate::pci::error_chain(&e), "allocation refused");
                e.status()
            })?;
        for container in &request.container_requests {
            tracing::info!(
                resource = inventory.kind().name(),
                devices = %container.devices_ids.join(","),
                "allocated"
            );
        }
        Ok(Response::new(AllocateResponse {
            container_responses,
        }))
    }

    /// Never called: the options say no `PreStartContainer` is needed (the devices need no
    /// reset between containers). Answered all the same, as the API asks.
    async fn pre_start_container(
        &self,
        _: Request<PreStartContainerRequest>,
    ) -> Result<Response<PreStartContainerResponse>, Status> {
        Ok(Response::new(PreStartContainerResponse {}))
    }
}

/// One container's preferred devices, after checking the request: every ID known, the
/// must-include ones available, and a size between the two lists' lengths.
fn preferred_for(
    inventory: &Inventory,
    request: &ContainerPreferredAllocationRequest,
) -> Result<ContainerPreferredAllocationResponse, DevicePluginError> {
    let resource = inventory.kind().name();
    let mut available = Vec::with_capacity(request.available_device_i_ds.len());
    for id in &request.available_device_i_ds {
        let position = inventory
            .position(id)
            .ok_or_else(|| DevicePluginError::UnknownDevice {
                id: id.clone(),
                resource,
                known: known_ids(inventory),
            })?;
        available.push(Candidate {
            id: id.clone(),
            numa_node: inventory.devices()[position].numa_node,
            position,
        });
    }
    let must_include = &request.must_include_device_i_ds;
    if let Some(missing) = must_include
        .iter()
        .find(|id| !request.available_device_i_ds.contains(id))
    {
        return Err(DevicePluginError::BadRequest {
            reason: format!("must_include_deviceIDs lists {missing}, which is not available"),
        });
    }
    let size = usize::try_from(request.allocation_size).unwrap_or(0);
    if size == 0 || size > available.len() || size < must_include.len() {
        return Err(DevicePluginError::BadRequest {
            reason: format!(
                "allocation_size {} must be at least the {} must-include device(s) and at most the {} available",
                request.allocation_size,
                must_include.len(),
                available.len()
            ),
        });
    }
    let device_i_ds = preferred(
        &available,
        must_include,
        size,
        inventory.tpu_bounds().as_ref(),
    );
    Ok(ContainerPreferredAllocationResponse { device_i_ds })
}
