//! Registering with the kubelet: dialing `kubelet.sock`, the `Register` call, and telling a
//! restarted kubelet (a new `kubelet.sock`) from the one registered with.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

use super::DevicePluginError;
use super::api::registration_client::RegistrationClient;
use super::api::{DevicePluginOptions, RegisterRequest};
use crate::cdi::Kind;

/// The API version this plugin speaks, and sends in `Register`.
pub const API_VERSION: &str = "v1beta1";

/// The kubelet's registration socket, in the device plugin directory.
pub const KUBELET_SOCKET: &str = "kubelet.sock";

/// How long dialing a socket or one `Register` call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The plugin's socket for `kind`, in the device plugin directory: the `endpoint` it registers.
pub fn endpoint(kind: Kind) -> &'static str {
    match kind {
        Kind::Tpu => "accelgate-tpu.sock",
        Kind::Gpu => "accelgate-gpu.sock",
    }
}

/// What the plugin asks of the kubelet: no `PreStartContainer`, and `GetPreferredAllocation`
/// answered.
pub fn options() -> DevicePluginOptions {
    DevicePluginOptions {
        pre_start_required: false,
        get_preferred_allocation_available: true,
    }
}

/// A gRPC channel over the unix socket `path` (the kubelet's, or a plugin's: tests dial the
/// plugin as the kubelet would).
pub async fn connect_unix(path: &Path) -> Result<Channel, tonic::transport::Error> {
    let path: PathBuf = path.to_path_buf();
    // The URI is required by the HTTP/2 layer and never resolved: the connector below dials
    // the socket whatever it says.
    Endpoint::from_static("http://localhost")
        .connect_timeout(CALL_TIMEOUT)
        .timeout(CALL_TIMEOUT)
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move { UnixStream::connect(path).await.map(TokioIo::new) }
        }))
        .await
}

/// Registers `kind`, served at [`endpoint`], with the kubelet listening on `kubelet`.
pub async fn register(kubelet: &Path, kind: Kind) -> Result<(), DevicePluginError> {
    let channel = connect_unix(kubelet)
        .await
        .map_err(|source| DevicePluginError::Connect {
            path: kubelet.to_path_buf(),
            source,
        })?;
    let request = RegisterRequest {
        version: API_VERSION.to_owned(),
        endpoint: endpoint(kind).to_owned(),
        resource_name: kind.name().to_owned(),
        options: Some(options()),
    };
    RegistrationClient::new(channel)
        .register(request)
        .await
        .map_err(|source| DevicePluginError::Register {
            path: kubelet.to_path_buf(),
            resource: kind.name(),
            source: Box::new(source),
        })?;
    tracing::info!(
        resource = kind.name(),
        endpoint = endpoint(kind),
        "registered with the kubelet"
    );
    Ok(())
}

/// Which file a socket path names: device, inode and the time it was made, so that a socket
/// made anew is told apart even when it gets the inode number of the one it replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketIdentity {
    device: u64,
    inode: u64,
    changed: (i64, i64),
}

/// The file `path` names now, `None` when there is none. The kubelet makes a new
/// `kubelet.sock` whenever it starts, and removes every other socket in the directory as it
/// does.
pub fn socket_identity(path: &Path) -> Option<SocketIdentity> {
    std::fs::symlink_metadata(path)
        .ok()
        .map(|meta| SocketIdentity {
            device: meta.dev(),
            inode: meta.ino(),
            changed: (meta.ctime(), meta.ctime_nsec()),
        })
}
