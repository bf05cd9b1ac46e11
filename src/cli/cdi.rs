use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};

use super::discover::render_warnings;
use crate::cdi::{
    self, CdiError, DYNAMIC_SPEC_DIR, Kind, SPEC_DIRS, Spec, TPU_MEMLOCK_NOTE, write_atomically,
};
use crate::discovery::{Discovery, discover};
use crate::pci::HostRoot;

const CDI_EXAMPLES: &str = "\
Examples:
  accelgate cdi generate                                       # /var/run/cdi, this host
  accelgate cdi generate --root fixtures/sysfs/tpu-v5e-8 --output -
  accelgate cdi check                                          # exit 1 when a spec is stale
  podman run --device nvidia.com/gpu=0 --device google.com/tpu=all ...

CDI specs name a host's devices for container engines: podman 4.1 and later, containerd 1.7
and later (enable_cdi), CRI-O, Docker 25 and later. See docs/cdi.md.";

const GENERATE_EXAMPLES: &str = "\
Examples:
  accelgate cdi generate                         # both kinds the host has, into /var/run/cdi
  accelgate cdi generate --kind tpu --output /etc/cdi
  accelgate cdi generate --root fixtures/sysfs/nvidia-h100x8 --kind gpu --output -

One spec per kind: nvidia.com/gpu (nvidia.com-gpu.json) and google.com/tpu
(google.com-tpu.json). Devices are named by index in PCI bus order (0, 1, ...: nvidia-smi's
numbering), GPUs also by UUID (GPU-...), and `all`. Device numbers are the host's now,
dynamic majors (nvidia-uvm, vfio) from /proc/devices. cdiVersion is the lowest that has every
field used (0.5.0 here), so podman 4.3 reads them. Files are replaced atomically.
With --kind all, a kind the host lacks is skipped with a note; asked for by name, it is an
error. Exit status: 0 written, 1 nothing to write or the host cannot be read, 2 usage.";

const CHECK_EXAMPLES: &str = "\
Examples:
  accelgate cdi check
  accelgate cdi check --dir /var/run/cdi
  accelgate cdi check --root fixtures/sysfs/tpu-v5e-8 --dir ./cdi

Compares the nvidia.com/gpu and google.com/tpu specs (*.json) in the directories with the host
and prints one `stale:` line per entry that does not match: FILE: JSON-FIELD: PROBLEM. Stale
are a changed type, major or minor (a reloaded driver's nvidia-uvm or vfio major), a device or
node the host no longer has, one the host has that no spec lists, a kind with no spec, a
cdiVersion too low for the fields used, and a file that does not parse. Specs of other kinds,
env, mounts and hooks are not compared; YAML files are not read.
Exit status: 0 current, 1 stale (or the host cannot be read), 2 usage.";

/// Write or check CDI specs for the host's GPUs and TPUs.
#[derive(Debug, Args)]
#[command(after_help = CDI_EXAMPLES)]
pub struct CdiArgs {
    #[command(subcommand)]
    command: CdiCommand,
}

#[derive(Debug, Subcommand)]
enum CdiCommand {
    Generate(GenerateArgs),
    Check(CheckArgs),
}

/// Which specs to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum KindArg {
    /// nvidia.com/gpu
    Gpu,
    /// google.com/tpu
    Tpu,
    /// every kind the host has
    All,
}

/// Write a CDI spec per device kind of the host (nvidia.com/gpu, google.com/tpu).
#[derive(Debug, Args)]
#[command(after_help = GENERATE_EXAMPLES)]
struct GenerateArgs {
    /// Read the host from HOSTROOT/sys, HOSTROOT/proc and HOSTROOT/dev (or dev.list) instead of /
    #[arg(long, value_name = "HOSTROOT")]
    root: Option<PathBuf>,

    /// Which specs to write
    #[arg(long, value_enum, default_value_t = KindArg::All)]
    kind: KindArg,

    /// Directory to write the specs into, or `-` to print them (one JSON document each)
    #[arg(long, value_name = "DIR", default_value = DYNAMIC_SPEC_DIR)]
    output: PathBuf,
}

/// Compare the CDI specs on disk with the host and name every stale entry.
#[derive(Debug, Args)]
#[command(after_help = CHECK_EXAMPLES)]
struct CheckArgs {
    /// Read the host from HOSTROOT/sys, HOSTROOT/proc and HOSTROOT/dev (or dev.list) instead of /
    #[arg(long, value_name = "HOSTROOT")]
    root: Option<PathBuf>,

    /// A spec directory to check; repeatable [default: /etc/cdi and /var/run/cdi]
    #[arg(long = "dir", value_name = "DIR")]
    dirs: Vec<PathBuf>,
}

pub fn run(args: &CdiArgs) -> ExitCode {
    match &args.command {
        CdiCommand::Generate(args) => generate(args),
        CdiCommand::Check(args) => check(args),
    }
}

/// The host and what discovery found on it, warnings printed; `Err` is the exit status.
///
/// The root is made absolute: specs name host paths under it, and engines resolve them from
/// their own working directory.
fn read_host(root: Option<&PathBuf>) -> Result<(HostRoot, Discovery), ExitCode> {
    let root = root
        .map(std::path::absolute)
        .transpose()
        .map_err(|e| super::fail("cannot use host root", &e))?;
    let host =
        super::host_root(root.as_ref()).map_err(|e| super::fail("cannot use host root", &e))?;
    let found = discover(&host)
        .map_err(|e| super::fail(&format!("cannot read host {}", host.origin().display()), &e))?;
    eprint!("{}", render_warnings(&found.warnings));
    Ok((host, found))
}

fn generate(args: &GenerateArgs) -> ExitCode {
    let (host, found) = match read_host(args.root.as_ref()) {
        Ok(read) => read,
        Err(status) => return status,
    };
    let kinds: &[Kind] = match args.kind {
        KindArg::Gpu => &[Kind::Gpu],
        KindArg::Tpu => &[Kind::Tpu],
        KindArg::All => &Kind::ALL,
    };
    let mut specs = Vec::new();
    for kind in kinds {
        match cdi::generate(&found, &host, *kind) {
            Ok(spec) => specs.push(spec),
            Err(e @ CdiError::NoDevices { .. }) if args.kind == KindArg::All => {
                eprintln!("note: {e}");
            }
            Err(e) => return super::fail("no spec written", &e),
        }
    }
    if specs.is_empty() {
        eprintln!(
            "error: host {} has no NVIDIA GPUs or TPU chips: no spec written",
            host.origin().display()
        );
        return ExitCode::from(super::EXIT_FAILURE);
    }
    for spec in &specs {
        if spec.kind == Kind::Tpu.name() {
            eprintln!("note: {TPU_MEMLOCK_NOTE}");
        }
        if args.output == Path::new("-") {
            match serde_json::to_string_pretty(spec) {
                Ok(text) => println!("{text}"),
                Err(e) => return super::fail("cannot encode JSON", &e),
            }
            continue;
        }
        match write_atomically(&args.output, spec) {
            Ok(path) => println!("wrote {}: {}", path.display(), summary(spec)),
            Err(e) => return super::fail("spec not written", &e),
        }
    }
    ExitCode::SUCCESS
}

/// `nvidia.com/gpu, cdiVersion 0.5.0, devices 0 1 GPU-... all`.
fn summary(spec: &Spec) -> String {
    let names: Vec<&str> = spec.devices.iter().map(|d| d.name.as_str()).collect();
    format!(
        "{}, cdiVersion {}, devices {}",
        spec.kind,
        spec.cdi_version,
        names.join(" ")
    )
}

fn check(args: &CheckArgs) -> ExitCode {
    let (host, found) = match read_host(args.root.as_ref()) {
        Ok(read) => read,
        Err(status) => return status,
    };
    let dirs: Vec<PathBuf> = if args.dirs.is_empty() {
        SPEC_DIRS.iter().map(PathBuf::from).collect()
    } else {
        args.dirs.clone()
    };
    let report = cdi::check(&dirs, &found, &host);
    for path in &report.not_read {
        eprintln!("note: {}: YAML spec not read", path.display());
    }
    for stale in &report.stale {
        println!("stale: {stale}");
    }
    let listed: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    let checked = format!(
        "{} spec file(s) checked in {}",
        report.checked.len(),
        listed.join(", ")
    );
    if report.stale.is_empty() {
        println!("{checked}: current");
        ExitCode::SUCCESS
    } else {
        println!(
            "{checked}: {} stale entr{}; `accelgate cdi generate` rewrites them",
            report.stale.len(),
            if report.stale.len() == 1 { "y" } else { "ies" }
        );
        ExitCode::from(super::EXIT_FAILURE)
    }
}
