//! `accelgate device-plugin` against a fake kubelet: the test serves the kubelet's gRPC
//! `Registration` service on a `kubelet.sock` in a temporary directory, runs the built binary
//! as a process against fixture hosts (copied to a temporary directory where a test changes
//! the host), and dials the plugin's socket as the kubelet would. No root needed.
//!
//! Fixture hosts used: `tpu-v5e-8` (8 chips, 2 NUMA nodes), `tpu-v5p-nested` (4 chips behind
//! bridges), `tpu-v6e-8` (8 chips), `nvidia-h100x8` (8 GPUs, 2 NUMA nodes), `mixed` (TPUs and
//! an unbound one), `cpu-only`.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use accelgate::deviceplugin::api::device_plugin_client::DevicePluginClient;
use accelgate::deviceplugin::api::registration_server::{Registration, RegistrationServer};
use accelgate::deviceplugin::api::{
    AllocateRequest, ContainerAllocateRequest, ContainerAllocateResponse,
    ContainerPreferredAllocationRequest, Device, DevicePluginOptions, Empty, ListAndWatchResponse,
    PreferredAllocationRequest, RegisterRequest,
};
use accelgate::deviceplugin::connect_unix;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use tonic::{Code, Request, Response, Status, Streaming};

/// How long anything the plugin should do "within seconds" may take.
const PATIENCE: Duration = Duration::from_secs(10);

/// What the fake kubelet saw of one `Register` call.
#[derive(Debug)]
struct Registered {
    request: RegisterRequest,
    /// The plugin's answer to `GetDevicePluginOptions` on its endpoint, dialled while the
    /// `Register` call was still open: the plugin must serve before it registers.
    served_options: Result<DevicePluginOptions, String>,
}

struct Recorder {
    dir: PathBuf,
    seen: mpsc::UnboundedSender<Registered>,
}

#[tonic::async_trait]
impl Registration for Recorder {
    async fn register(&self, request: Request<RegisterRequest>) -> Result<Response<Empty>, Status> {
        let request = request.into_inner();
        let served_options = async {
            let channel = connect_unix(&self.dir.join(&request.endpoint))
                .await
                .map_err(|e| format!("dial: {e}"))?;
            DevicePluginClient::new(channel)
                .get_device_plugin_options(Empty {})
                .await
                .map(Response::into_inner)
                .map_err(|e| format!("call: {e}"))
        }
        .await;
        let _ = self.seen.send(Registered {
            request,
            served_options,
        });
        Ok(Response::new(Empty {}))
    }
}

/// The kubelet's registration service on `DIR/kubelet.sock`.
struct FakeKubelet {
    dir: PathBuf,
    registrations: mpsc::UnboundedReceiver<Registered>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl FakeKubelet {
    fn start(dir: &Path) -> Self {
        let socket = dir.join("kubelet.sock");
        let listener = tokio::net::UnixListener::bind(&socket).unwrap();
        let (seen, registrations) = mpsc::unbounded_channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let recorder = Recorder {
            dir: dir.to_path_buf(),
            seen,
        };
        let task = tokio::spawn(async move {
            tonic::transport::Server::builder()
                .serve_with_incoming_shutdown(
                    RegistrationServer::new(recorder),
                    tokio_stream::wrappers::UnixListenerStream::new(listener),
                    async {
                        let _ = stopped.await;
                    },
                )
                .await
                .unwrap();
        });
        Self {
            dir: dir.to_path_buf(),
            registrations,
            stop: Some(stop),
            task,
        }
    }

    /// The next registration, within [`PATIENCE`].
    async fn registration(&mut self) -> Registered {
        tokio::time::timeout(PATIENCE, self.registrations.recv())
            .await
            .expect("no registration in time")
            .expect("the fake kubelet stopped")
    }

    /// Stops serving and removes `kubelet.sock`, as a kubelet going down leaves it.
    async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
        let _ = std::fs::remove_file(self.dir.join("kubelet.sock"));
    }
}

/// `accelgate device-plugin` as a process, killed when dropped.
struct Plugin {
    child: Child,
    log: PathBuf,
}

impl Plugin {
    fn start(kubelet_dir: &Path, root: &Path, args: &[&str]) -> Self {
        let log = kubelet_dir.with_extension("log");
        let child = Command::new(env!("CARGO_BIN_EXE_accelgate"))
            .args([
                "--log-level",
                "info",
                "device-plugin",
                "--poll-interval",
                "100",
            ])
            .arg("--kubelet-dir")
            .arg(kubelet_dir)
            .arg("--root")
            .arg(root)
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Self { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM and waits for the exit.
    async fn terminate(&mut self) -> ExitStatus {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "no exit after SIGTERM:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Plugin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fake kubelet and a plugin for a host, the plugin registered.
struct Node {
    _dir: tempfile::TempDir,
    kubelet_dir: PathBuf,
    kubelet: FakeKubelet,
    plugin: Plugin,
    client: DevicePluginClient<Channel>,
    registered: Registered,
}

impl Node {
    async fn start(root: &Path, resource: &str, args: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let kubelet_dir = dir.path().join("device-plugins");
        std::fs::create_dir(&kubelet_dir).unwrap();
        let mut kubelet = FakeKubelet::start(&kubelet_dir);
        let mut all_args = vec!["--resource", resource];
        all_args.extend_from_slice(args);
        let plugin = Plugin::start(&kubelet_dir, root, &all_args);
        let registered = tokio::select! {
            registered = kubelet.registration() => registered,
            () = exited(&plugin) => panic!("the plugin exited:\n{}", plugin.log()),
        };
        let socket = kubelet_dir.join(&registered.request.endpoint);
        let client = DevicePluginClient::new(connect_unix(&socket).await.unwrap());
        Self {
            _dir: dir,
            kubelet_dir,
            kubelet,
            plugin,
            client,
            registered,
        }
    }

    async fn fixture(name: &str, resource: &str) -> Self {
        Self::start(&common::fixture(name), resource, &[]).await
    }

    /// The first `ListAndWatch` message, and the stream for later ones.
    async fn watch(&mut self) -> (Vec<Device>, Streaming<ListAndWatchResponse>) {
        let mut stream = self
            .client
            .list_and_watch(Empty {})
            .await
            .unwrap()
            .into_inner();
        let first = next_list(&mut stream).await;
        (first, stream)
    }

    async fn allocate(
        &mut self,
        containers: &[&[&str]],
    ) -> Result<Vec<ContainerAllocateResponse>, Status> {
        let request = AllocateRequest {
            container_requests: containers
                .iter()
                .map(|ids| ContainerAllocateRequest {
                    devices_ids: ids.iter().map(|s| (*s).to_owned()).collect(),
                })
                .collect(),
        };
        self.client
            .allocate(request)
            .await
            .map(|r| r.into_inner().container_responses)
    }

    async fn preferred(&mut self, available: &[String], must: &[String], size: i32) -> Vec<String> {
        let request = PreferredAllocationRequest {
            container_requests: vec![ContainerPreferredAllocationRequest {
                available_device_i_ds: available.to_vec(),
                must_include_device_i_ds: must.to_vec(),
                allocation_size: size,
            }],
        };
        let response = self
            .client
            .get_preferred_allocation(request)
            .await
            .unwrap()
            .into_inner();
        assert_eq!(response.container_responses.len(), 1);
        response.container_responses[0].device_i_ds.clone()
    }
}

/// Resolves when the plugin process has exited (it is a zombie until the test reaps it).
async fn exited(plugin: &Plugin) {
    let stat = format!("/proc/{}/stat", plugin.child.id());
    loop {
        let text = std::fs::read_to_string(&stat).unwrap_or_default();
        if text.is_empty() || text.contains(") Z ") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn next_list(stream: &mut Streaming<ListAndWatchResponse>) -> Vec<Device> {
    tokio::time::timeout(PATIENCE, stream.message())
        .await
        .expect("no device list in time")
        .expect("the stream failed")
        .expect("the stream ended")
        .devices
}

fn numa(device: &Device) -> Option<i64> {
    device
        .topology
        .as_ref()
        .and_then(|t| t.nodes.first())
        .map(|n| n.id)
}

/// `(ID, health, NUMA node)` of each device.
fn summary(devices: &[Device]) -> Vec<(String, String, Option<i64>)> {
    devices
        .iter()
        .map(|d| (d.id.clone(), d.health.clone(), numa(d)))
        .collect()
}

fn ids(devices: &[Device]) -> Vec<String> {
    devices.iter().map(|d| d.id.clone()).collect()
}

/// `(container path, host path relative to the fixture root, permissions)` of each device spec.
fn device_specs(
    response: &ContainerAllocateResponse,
    root: &Path,
) -> Vec<(String, String, String)> {
    response
        .devices
        .iter()
        .map(|spec| {
            let host = Path::new(&spec.host_path)
                .strip_prefix(root)
                .unwrap_or_else(|_| panic!("{} is not under {}", spec.host_path, root.display()));
            (
                spec.container_path.clone(),
                format!("/{}", host.display()),
                spec.permissions.clone(),
            )
        })
        .collect()
}

/// A copy of a fixture host that a test may change.
fn copy_fixture(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new("cp")
        .arg("-a")
        .arg(common::fixture(name).join("."))
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    dir
}

fn v5e_ids() -> Vec<String> {
    ["04", "05", "06", "07", "08", "09", "0a", "0b"]
        .iter()
        .map(|slot| format!("0000:00:{slot}.0"))
        .collect()
}

#[tokio::test]
async fn registers_after_serving_and_lists_tpus_with_health_and_numa() {
    let mut node = Node::fixture("tpu-v5e-8", "tpu").await;
    let request = &node.registered.request;
    assert_eq!(request.version, "v1beta1");
    assert_eq!(request.resource_name, "google.com/tpu");
    assert_eq!(request.endpoint, "accelgate-tpu.sock");
    let options = request.options.expect("registration options");
    assert!(!options.pre_start_required);
    assert!(options.get_preferred_allocation_available);
    assert_eq!(
        node.registered.served_options.as_ref().map(|o| *o),
        Ok(options),
        "the plugin must answer on its endpoint while it registers"
    );

    let (devices, _) = node.watch().await;
    let expected: Vec<(String, String, Option<i64>)> = v5e_ids()
        .into_iter()
        .enumerate()
        .map(|(i, id)| (id, "Healthy".to_owned(), Some(if i < 4 { 0 } else { 1 })))
        .collect();
    assert_eq!(summary(&devices), expected);

    let socket = node.kubelet_dir.join("accelgate-tpu.sock");
    assert!(socket.exists());
    let status = node.plugin.terminate().await;
    assert!(status.success(), "{status:?}:\n{}", node.plugin.log());
    assert!(!socket.exists(), "the plugin left its socket behind");
    node.kubelet.stop().await;
}

#[tokio::test]
async fn every_fixture_host_lists_its_devices() {
    let mut v5p = Node::fixture("tpu-v5p-nested", "tpu").await;
    let (devices, _) = v5p.watch().await;
    assert_eq!(
        summary(&devices),
        ["02", "03", "04", "05"]
            .iter()
            .map(|bus| (format!("0000:{bus}:00.1"), "Healthy".to_owned(), Some(0)))
            .collect::<Vec<_>>()
    );

    let mut v6e = Node::fixture("tpu-v6e-8", "tpu").await;
    let (devices, _) = v6e.watch().await;
    assert_eq!(ids(&devices), v5e_ids());
    assert_eq!(
        devices.iter().map(numa).collect::<Vec<_>>(),
        [0, 0, 0, 0, 1, 1, 1, 1].map(Some)
    );

    let mut gpus = Node::fixture("nvidia-h100x8", "gpu").await;
    assert_eq!(gpus.registered.request.resource_name, "nvidia.com/gpu");
    assert_eq!(gpus.registered.request.endpoint, "accelgate-gpu.sock");
    let (devices, _) = gpus.watch().await;
    assert_eq!(devices.len(), 8);
    assert!(
        devices
            .iter()
            .all(|d| d.id.starts_with("GPU-") && d.health == "Healthy")
    );
    assert_eq!(
        devices.iter().map(numa).collect::<Vec<_>>(),
        [0, 0, 0, 0, 1, 1, 1, 1].map(Some)
    );
    let discovery = common::accelgate(
        &[
            "discover",
            "--json",
            "--root",
            common::fixture("nvidia-h100x8").to_str().unwrap(),
        ],
        PATIENCE,
    );
    let discovery: serde_json::Value = serde_json::from_slice(&discovery.stdout).unwrap();
    let uuids: Vec<String> = discovery["gpus"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["uuid"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids(&devices), uuids, "GPUs by UUID, in bus order");

    // `all` on a host with TPUs only serves google.com/tpu.
    let mixed = Node::fixture("mixed", "all").await;
    assert_eq!(mixed.registered.request.resource_name, "google.com/tpu");
}

#[tokio::test]
async fn preferred_allocations_keep_numa_neighbours_and_tpu_blocks() {
    let mut tpus = Node::fixture("tpu-v5e-8", "tpu").await;
    let all = v5e_ids();
    // Four chips of eight: a 2×2 block, not the first four available (chips 1–4).
    assert_eq!(tpus.preferred(&all[1..], &[], 4).await, all[4..]);
    assert_eq!(tpus.preferred(&all, &[], 4).await, all[..4]);
    // A must-include chip keeps its block.
    assert_eq!(tpus.preferred(&all, &[all[6].clone()], 2).await, all[6..]);

    let mut gpus = Node::fixture("nvidia-h100x8", "gpu").await;
    let (devices, _) = gpus.watch().await;
    let gpu_ids = ids(&devices);
    // GPU 5 is on NUMA node 1: its partner is too.
    let chosen = gpus.preferred(&gpu_ids, &[gpu_ids[5].clone()], 2).await;
    assert_eq!(chosen, [gpu_ids[4].clone(), gpu_ids[5].clone()]);
    let chosen = gpus.preferred(&gpu_ids[2..], &[], 4).await;
    assert_eq!(chosen, gpu_ids[4..], "the NUMA node that holds all four");

    let bad = PreferredAllocationRequest {
        container_requests: vec![ContainerPreferredAllocationRequest {
            available_device_i_ds: gpu_ids[..2].to_vec(),
            must_include_device_i_ds: vec![gpu_ids[3].clone()],
            allocation_size: 1,
        }],
    };
    let err = gpus.client.get_preferred_allocation(bad).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
}

#[tokio::test]
async fn allocate_gives_exactly_the_devices_nodes() {
    let root = common::fixture("tpu-v5e-8");
    let mut tpus = Node::fixture("tpu-v5e-8", "tpu").await;
    let all = v5e_ids();
    let one: &[&str] = &[&all[1]];
    let block: Vec<&str> = all[4..].iter().map(String::as_str).collect();
    let responses = tpus.allocate(&[one, &block]).await.unwrap();
    assert_eq!(responses.len(), 2);

    let rw = |path: &str| (path.to_owned(), path.to_owned(), "rw".to_owned());
    assert_eq!(
        device_specs(&responses[0], &root),
        [rw("/dev/vfio/1"), rw("/dev/vfio/vfio")]
    );
    assert_eq!(responses[0].envs["TPU_VISIBLE_CHIPS"], "1");
    assert_eq!(responses[0].envs["TPU_CHIPS_PER_PROCESS_BOUNDS"], "1,1,1");
    assert_eq!(
        responses[0].annotations,
        HashMap::from([("dev.accelgate.granted-tpus".to_owned(), all[1].clone())])
    );
    assert!(responses[0].cdi_devices.is_empty());

    assert_eq!(
        device_specs(&responses[1], &root),
        [
            rw("/dev/vfio/4"),
            rw("/dev/vfio/5"),
            rw("/dev/vfio/6"),
            rw("/dev/vfio/7"),
            rw("/dev/vfio/vfio")
        ]
    );
    let envs: Vec<(&str, &str)> = {
        let mut envs: Vec<(&str, &str)> = responses[1]
            .envs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        envs.sort_unstable();
        envs
    };
    assert_eq!(
        envs,
        [
            ("TPU_CHIPS_PER_PROCESS_BOUNDS", "2,2,1"),
            ("TPU_PROCESS_BOUNDS", "1,1,1"),
            ("TPU_VISIBLE_CHIPS", "4,5,6,7")
        ]
    );
    assert_eq!(
        responses[1].annotations["dev.accelgate.granted-tpus"],
        block.join(",")
    );

    let gpu_root = common::fixture("nvidia-h100x8");
    let mut gpus = Node::fixture("nvidia-h100x8", "gpu").await;
    let (devices, _) = gpus.watch().await;
    let gpu_ids = ids(&devices);
    // GPUs 1 and 6 in bus order have minors 3 and 4.
    let responses = gpus.allocate(&[&[&gpu_ids[6], &gpu_ids[1]]]).await.unwrap();
    assert_eq!(
        device_specs(&responses[0], &gpu_root),
        [
            rw("/dev/nvidia3"),
            rw("/dev/nvidia4"),
            rw("/dev/nvidiactl"),
            rw("/dev/nvidia-uvm"),
            rw("/dev/nvidia-uvm-tools")
        ]
    );
    let granted = format!("{},{}", gpu_ids[1], gpu_ids[6]);
    assert_eq!(responses[0].envs["NVIDIA_VISIBLE_DEVICES"], granted);
    assert_eq!(
        responses[0].annotations["dev.accelgate.granted-gpus"],
        granted
    );
}

#[tokio::test]
async fn unknown_devices_are_refused_and_nothing_is_half_allocated() {
    let mut tpus = Node::fixture("tpu-v5e-8", "tpu").await;
    let err = tpus.allocate(&[&["0000:00:1f.0"]]).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    assert!(err.message().contains("0000:00:1f.0"), "{err}");
    // One good container, one bad: no answer for either.
    let err = tpus
        .allocate(&[&["0000:00:04.0"], &["0000:00:04.0", "GPU-0"]])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    let err = tpus
        .allocate(&[&["0000:00:04.0", "0000:00:04.0"]])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    assert!(err.message().contains("twice"), "{err}");
}

#[tokio::test]
async fn a_device_removed_from_the_host_turns_unhealthy_within_seconds() {
    let host = copy_fixture("tpu-v5e-8");
    let mut node = Node::start(host.path(), "tpu", &[]).await;
    let (devices, mut stream) = node.watch().await;
    assert!(devices.iter().all(|d| d.health == "Healthy"));

    // The PCI function of chip 7 vanishes (hot-unplug, or a reset that lost it).
    let link = host.path().join("sys/bus/pci/devices/0000:00:0b.0");
    let target = std::fs::read_link(&link).unwrap();
    std::fs::remove_file(&link).unwrap();
    let started = Instant::now();
    let devices = next_list(&mut stream).await;
    let elapsed = started.elapsed();
    let health: Vec<&str> = devices.iter().map(|d| d.health.as_str()).collect();
    assert_eq!(
        health,
        [
            "Healthy",
            "Healthy",
            "Healthy",
            "Healthy",
            "Healthy",
            "Healthy",
            "Healthy",
            "Unhealthy"
        ]
    );
    assert_eq!(devices[7].id, "0000:00:0b.0", "the same ID, now unhealthy");
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
    let err = node.allocate(&[&["0000:00:0b.0"]]).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err}");

    // Its device node goes too on chip 3; the function coming back heals chip 7.
    let list = std::fs::read_to_string(host.path().join("dev.list")).unwrap();
    let without: String = list
        .lines()
        .filter(|l| !l.starts_with("/dev/vfio/3 "))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(host.path().join("dev.list"), without).unwrap();
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let devices = next_list(&mut stream).await;
        if devices[3].health == "Unhealthy" && devices[7].health == "Healthy" {
            break;
        }
        assert!(Instant::now() < deadline, "{:?}", summary(&devices));
    }
    let err = node.allocate(&[&["0000:00:07.0"]]).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err}");
    assert!(err.message().contains("device node"), "{err}");
    node.allocate(&[&["0000:00:0b.0"]]).await.unwrap();
}

#[tokio::test]
async fn a_restarted_kubelet_gets_a_new_registration() {
    let mut node = Node::fixture("tpu-v6e-8", "tpu").await;
    let socket = node.kubelet_dir.join("accelgate-tpu.sock");
    // A kubelet restart: its socket goes, and every plugin socket in the directory with it.
    node.kubelet.stop().await;
    std::fs::remove_file(&socket).unwrap();
    node.kubelet = FakeKubelet::start(&node.kubelet_dir);
    let registered = tokio::select! {
        registered = node.kubelet.registration() => registered,
        () = exited(&node.plugin) => panic!("the plugin exited:\n{}", node.plugin.log()),
    };
    assert_eq!(registered.request.resource_name, "google.com/tpu");
    assert!(
        registered.served_options.is_ok(),
        "{:?}",
        registered.served_options
    );
    let mut client = DevicePluginClient::new(connect_unix(&socket).await.unwrap());
    let list = client
        .list_and_watch(Empty {})
        .await
        .unwrap()
        .into_inner()
        .message()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(list.devices.len(), 8);
    let log = node.plugin.log();
    assert!(log.contains("serving anew"), "{log}");

    // A kubelet.sock made anew while the plugin's socket stayed: registered again too.
    node.kubelet.stop().await;
    node.kubelet = FakeKubelet::start(&node.kubelet_dir);
    let registered = node.kubelet.registration().await;
    assert_eq!(registered.request.endpoint, "accelgate-tpu.sock");
    assert!(registered.served_options.is_ok(), "{registered:?}");
    node.kubelet.stop().await;
}

#[tokio::test]
async fn cdi_allocations_name_devices_of_a_fresh_spec() {
    let cdi = tempfile::tempdir().unwrap();
    let cdi_dir = cdi.path().join("cdi");
    let mut node = Node::start(
        &common::fixture("tpu-v5e-8"),
        "tpu",
        &["--cdi", "--cdi-dir", cdi_dir.to_str().unwrap()],
    )
    .await;
    let responses = node
        .allocate(&[&["0000:00:05.0", "0000:00:04.0"]])
        .await
        .unwrap();
    let names: Vec<&str> = responses[0]
        .cdi_devices
        .iter()
        .map(|d| d.name.as_str())
        .collect();
    assert_eq!(names, ["google.com/tpu=0", "google.com/tpu=1"]);
    assert!(responses[0].devices.is_empty(), "CDI brings the nodes");
    assert_eq!(responses[0].envs["TPU_VISIBLE_CHIPS"], "0,1");
    let spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(cdi_dir.join("google.com-tpu.json")).unwrap())
            .unwrap();
    assert_eq!(spec["kind"], "google.com/tpu");
    let named: Vec<&str> = spec["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert!(named.contains(&"0") && named.contains(&"1"), "{named:?}");
}

#[tokio::test]
async fn the_grant_annotation_bounds_the_sandbox() {
    let mut node = Node::fixture("tpu-v5e-8", "tpu").await;
    let block = [
        "0000:00:08.0",
        "0000:00:09.0",
        "0000:00:0a.0",
        "0000:00:0b.0",
    ];
    let response = node.allocate(&[&block]).await.unwrap().remove(0);
    // What the kubelet passes on to the runtime: the nodes as linux.devices, the environment
    // and the annotations.
    let kubelet_spec = |extra: Option<&str>| {
        let response = response.clone();
        let extra = extra.map(str::to_owned);
        common::TempBundle::new(move |spec| {
            let mut devices: Vec<serde_json::Value> = response
                .devices
                .iter()
                .map(|d| serde_json::json!({"path": d.container_path, "type": "c", "major": 245, "minor": 0}))
                .collect();
            if let Some(path) = extra {
                devices
                    .push(serde_json::json!({"path": path, "type": "c", "major": 245, "minor": 6}));
            }
            spec["linux"]["devices"] = serde_json::Value::Array(devices);
            spec["annotations"] = serde_json::to_value(&response.annotations).unwrap();
            for (name, value) in &response.envs {
                spec["process"]["env"]
                    .as_array_mut()
                    .unwrap()
                    .push(format!("{name}={value}").into());
            }
        })
    };
    let plan = kubelet_spec(None).plan("tpu-v5e-8").unwrap();
    assert_eq!(plan.accelerators.tpus, [4, 5, 6, 7]);
    // A node the device plugin did not grant (a pod adding /dev/vfio/0) is refused.
    let err = kubelet_spec(Some("/dev/vfio/0"))
        .plan("tpu-v5e-8")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("/dev/vfio/0") && err.contains("dev.accelgate.granted-tpus"),
        "{err}"
    );
}

#[tokio::test]
async fn a_host_without_accelerators_has_nothing_to_serve() {
    let dir = tempfile::tempdir().unwrap();
    let output = common::accelgate(
        &[
            "device-plugin",
            "--kubelet-dir",
            dir.path().to_str().unwrap(),
            "--root",
            common::fixture("cpu-only").to_str().unwrap(),
        ],
        PATIENCE,
    );
    assert_eq!(output.status.code(), Some(1));
    let stderr = common::stderr(&output);
    assert!(stderr.contains("nothing to serve"), "{stderr}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn help_says_how_to_run_it_on_a_node() {
    let help = common::stdout(&common::accelgate(&["device-plugin", "--help"], PATIENCE));
    for needle in [
        "/var/lib/kubelet/device-plugins",
        "DaemonSet",
        "google.com/tpu",
        "nvidia.com/gpu",
        "--poll-interval",
        "docs/kubernetes.md",
    ] {
        assert!(help.contains(needle), "{needle} missing from:\n{help}");
    }
}
