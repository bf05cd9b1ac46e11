use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::table::Table;
use crate::discovery::{Discovery, discover};
use crate::pci::{DevNode, Warning};

const DISCOVER_EXAMPLES: &str = "\
Examples:
  accelgate discover
  accelgate discover --root fixtures/sysfs/tpu-v5e-8
  accelgate discover --root fixtures/sysfs/nvidia-h100x8 --json

A host root DIR holds sys/ and proc/ trees and either dev/ with real device nodes or a
dev.list manifest (`<path> <c|b> <major>:<minor> <octal mode>` per line).
The JSON schema is accelgate.discovery/v1 (docs/discovery.md).";

/// List the host's TPUs and NVIDIA GPUs with their device nodes.
///
/// Warnings (a bad attribute, a missing node, a major that disagrees with /proc/devices) go to
/// stderr and do not change the exit status.
#[derive(Debug, Args)]
#[command(after_help = DISCOVER_EXAMPLES)]
pub struct DiscoverArgs {
    /// Read the host from DIR/sys, DIR/proc and DIR/dev (or DIR/dev.list) instead of /
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,

    /// Print the accelgate.discovery/v1 JSON document instead of a table
    #[arg(long)]
    json: bool,
}

pub fn run(args: &DiscoverArgs) -> ExitCode {
    let host = match super::host_root(args.root.as_ref()) {
        Ok(host) => host,
        Err(e) => return super::fail("cannot use host root", &e),
    };
    let found = match discover(&host) {
        Ok(found) => found,
        Err(e) => return super::fail(&format!("cannot read host {}", host.origin().display()), &e),
    };
    eprint!("{}", render_warnings(&found.warnings));
    if args.json {
        match serde_json::to_string_pretty(&found) {
            Ok(text) => println!("{text}"),
            Err(e) => return super::fail("cannot encode JSON", &e),
        }
    } else {
        print!("{}", render_discovery(&found));
    }
    ExitCode::SUCCESS
}

/// One `warning: ...` line per warning.
pub fn render_warnings(warnings: &[Warning]) -> String {
    warnings
        .iter()
        .map(|w| format!("warning: {}\n", w.message))
        .collect()
}

fn node_cell(node: Option<&DevNode>) -> (String, String) {
    match node {
        Some(node) => (
            node.path.display().to_string(),
            format!("{} {}", node.kind.letter(), node.numbers()),
        ),
        None => ("(missing)".to_owned(), "-".to_owned()),
    }
}

fn optional<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

/// The human-readable discovery report: one row per PCI function, then shared nodes,
/// unsupported devices and a summary.
pub fn render_discovery(found: &Discovery) -> String {
    let mut table = Table::new(&[
        "KIND", "INDEX", "MODEL", "BDF", "NODE", "DEVICE", "NUMA", "IOMMU", "DRIVER",
    ]);
    for chip in &found.tpus {
        for (i, bdf) in chip.bdfs.iter().enumerate() {
            // Accel chips have one node; VFIO chips one per function.
            let node = chip
                .nodes
                .get(i)
                .or(chip.nodes.first().filter(|_| chip.bdfs.len() == 1));
            let (path, numbers) = node_cell(node);
            table.row(vec![
                "tpu".into(),
                chip.index.to_string(),
                chip.generation.to_string(),
                bdf.to_string(),
                path,
                numbers,
                optional(chip.numa_node),
                optional(chip.iommu_groups.get(i)),
                chip.driver.to_string(),
            ]);
        }
    }
    for gpu in &found.gpus {
        let (path, numbers) = node_cell(gpu.nodes.first());
        table.row(vec![
            "gpu".into(),
            gpu.index.to_string(),
            optional(gpu.model.as_deref()),
            gpu.bdf.to_string(),
            path,
            numbers,
            optional(gpu.numa_node),
            optional(found.pci.get(gpu.bdf).and_then(|d| d.iommu_group)),
            "nvidia".into(),
        ]);
    }
    let mut out = if found.tpus.is_empty() && found.gpus.is_empty() {
        String::from("no TPUs or NVIDIA GPUs found\n")
    } else {
        table.render()
    };
    let shared = |nodes: &[DevNode]| {
        nodes
            .iter()
            .map(|n| format!("{} {} {}", n.path.display(), n.kind.letter(), n.numbers()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some(vfio) = &found.vfio {
        let _ = writeln!(out, "\nvfio: {}", shared(&vfio.nodes));
    }
    if let Some(nvidia) = &found.nvidia {
        let version = optional(nvidia.driver_version.as_ref());
        let _ = writeln!(out, "\nnvidia driver {version}: {}", shared(&nvidia.nodes));
    }
    if !found.unsupported.is_empty() {
        out.push_str("\nunsupported:\n");
        for u in &found.unsupported {
            let _ = writeln!(
                out,
                "  {} {} {:#06x}:{:#06x}  {}",
                u.bdf, u.kind, u.vendor, u.device_id, u.reason
            );
        }
    }
    let _ = writeln!(
        out,
        "\n{} TPU chip(s), {} GPU(s), {} unsupported, {} warning(s)",
        found.tpus.len(),
        found.gpus.len(),
        found.unsupported.len(),
        found.warnings.len()
    );
    out
}
