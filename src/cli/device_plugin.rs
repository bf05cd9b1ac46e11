use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::cdi::{DYNAMIC_SPEC_DIR, Kind};
use crate::deviceplugin::{DEFAULT_KUBELET_DIR, PluginConfig, Resources, run};

const EXAMPLES: &str = "\
Examples:
  accelgate device-plugin                        # on a node: TPUs and GPUs the host has
  accelgate device-plugin --resource tpu --cdi   # google.com/tpu, Allocate answers CDI names
  accelgate device-plugin --kubelet-dir /tmp/dp --root fixtures/sysfs/tpu-v5e-8 \\
      --poll-interval 200                        # a fixture host, a kubelet of your own

On a node it runs as a privileged DaemonSet with the host's /var/lib/kubelet/device-plugins,
/sys, /dev and /var/run/cdi mounted (contrib/kubernetes/daemonset.yaml). It serves the kubelet
device plugin API v1beta1 on accelgate-tpu.sock and accelgate-gpu.sock in --kubelet-dir, then
registers google.com/tpu and nvidia.com/gpu with kubelet.sock there, and registers again
whenever the kubelet restarts. Devices are TPU chips by PCI address and GPUs by UUID, with
their NUMA node; one that vanishes, loses its driver or its device node is reported Unhealthy
within --poll-interval. Pods ask for `google.com/tpu: 4` or `nvidia.com/gpu: 1` in their
resource limits; with runtimeClassName accelgate their accelerator calls go through the gate,
bounded by the dev.accelgate.granted-tpus/-gpus annotation the plugin sets.
SIGTERM or SIGINT stops it and removes its sockets. See docs/kubernetes.md.";

/// Serve the host's TPUs and GPUs to the kubelet (a Kubernetes device plugin)
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct DevicePluginArgs {
    /// The kubelet's device plugin directory, where kubelet.sock is and the plugin's sockets go
    #[arg(long, value_name = "DIR", default_value = DEFAULT_KUBELET_DIR)]
    kubelet_dir: PathBuf,

    /// Read the host from HOSTROOT/sys, HOSTROOT/proc and HOSTROOT/dev (or dev.list) instead of /
    #[arg(long, value_name = "HOSTROOT")]
    root: Option<PathBuf>,

    /// What to serve: tpu (google.com/tpu), gpu (nvidia.com/gpu), or all (each kind the host
    /// has at start). A kind named alone is served even while the host has none of it
    #[arg(long, value_enum, value_name = "KIND", default_value_t = ResourceArg::All)]
    resource: ResourceArg,

    /// Answer Allocate with CDI device names (kubelet 1.28 and later), writing the CDI spec
    /// into --cdi-dir first, instead of device nodes
    #[arg(long)]
    cdi: bool,

    /// Where --cdi writes the specs
    #[arg(long, value_name = "DIR", default_value = DYNAMIC_SPEC_DIR, requires = "cdi")]
    cdi_dir: PathBuf,

    /// How often to read the host and look for a restarted kubelet, in milliseconds
    #[arg(long, value_name = "MS", default_value_t = 5000, value_parser = clap::value_parser!(u64).range(10..))]
    poll_interval: u64,
}

/// Which resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ResourceArg {
    /// google.com/tpu
    Tpu,
    /// nvidia.com/gpu
    Gpu,
    /// each kind the host has at start
    All,
}

pub fn run_plugin(args: &DevicePluginArgs) -> ExitCode {
    let config = PluginConfig {
        kubelet_dir: args.kubelet_dir.clone(),
        root: args.root.clone(),
        resources: match args.resource {
            ResourceArg::Tpu => Resources::Only(Kind::Tpu),
            ResourceArg::Gpu => Resources::Only(Kind::Gpu),
            ResourceArg::All => Resources::All,
        },
        cdi_dir: args.cdi.then(|| args.cdi_dir.clone()),
        poll_interval: Duration::from_millis(args.poll_interval),
    };
    match run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => super::fail("device plugin", &e),
    }
}
