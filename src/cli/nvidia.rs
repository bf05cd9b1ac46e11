use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde::Serialize;

use crate::nvproxy::tree::{TREE, abi};

const NVIDIA_EXAMPLES: &str = "\
Examples:
  accelgate nvidia versions
  accelgate nvidia versions --json

The ioctl gate allowlists NVIDIA's driver per driver version (docs/nvidia.md). A host whose
driver is not a supported version is refused unless --nvidia-driver-abi VERSION names the
version whose tables to use on it.";

/// NVIDIA driver versions and their tables.
#[derive(Debug, Args)]
#[command(after_help = NVIDIA_EXAMPLES)]
pub struct NvidiaArgs {
    #[command(subcommand)]
    command: NvidiaCommand,
}

#[derive(Debug, Subcommand)]
enum NvidiaCommand {
    /// List the driver versions of the ABI tree: supported ones, and the intermediate ones that
    /// carry changes (usable only with --nvidia-driver-abi)
    Versions {
        /// Print an accelgate.nvidia-versions/v1 JSON document
        #[arg(long)]
        json: bool,
    },
}

/// One version as `nvidia versions --json` prints it.
#[derive(Debug, Serialize)]
struct VersionLine {
    version: String,
    parent: Option<String>,
    supported: bool,
    changes: usize,
    escapes: usize,
    uvm_commands: usize,
    controls: usize,
    classes: usize,
}

#[derive(Debug, Serialize)]
struct Versions {
    schema: &'static str,
    versions: Vec<VersionLine>,
}

pub fn run(args: &NvidiaArgs) -> ExitCode {
    match &args.command {
        NvidiaCommand::Versions { json } => versions(*json),
    }
}

fn versions(json: bool) -> ExitCode {
    let mut nodes: Vec<_> = TREE.iter().collect();
    nodes.sort_by_key(|node| node.version);
    let mut lines = Vec::new();
    for node in nodes {
        let tables = match abi(node.version) {
            Ok(tables) => tables,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(super::EXIT_FAILURE);
            }
        };
        lines.push(VersionLine {
            version: node.version.to_string(),
            parent: node.parent.map(|p| p.to_string()),
            supported: node.supported,
            changes: node.deltas.len(),
            escapes: tables.escapes.len(),
            uvm_commands: tables.uvm.len(),
            controls: tables.controls.len(),
            classes: tables.classes.len(),
        });
    }
    if json {
        let document = Versions {
            schema: "accelgate.nvidia-versions/v1",
            versions: lines,
        };
        println!(
            "{}",
            serde_json::to_string_pretty(&document).unwrap_or_default()
        );
        return ExitCode::SUCCESS;
    }
    println!(
        "{:<12} {:<10} {:<12} {:>7} {:>4} {:>8} {:>7}",
        "VERSION", "STATUS", "PARENT", "ESCAPES", "UVM", "CONTROLS", "CLASSES"
    );
    for line in &lines {
        println!(
            "{:<12} {:<10} {:<12} {:>7} {:>4} {:>8} {:>7}",
            line.version,
            if line.supported {
                "supported"
            } else {
                "internal"
            },
            line.parent.as_deref().unwrap_or("-"),
            line.escapes,
            line.uvm_commands,
            line.controls,
            line.classes
        );
    }
    ExitCode::SUCCESS
}
