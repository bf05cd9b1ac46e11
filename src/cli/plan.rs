use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::table::Table;
use crate::boot::{BootConfig, Bundle, HostSnapshot, Selection, compile};
use crate::plan::{OverlayMode, SandboxPlan};

const PLAN_EXAMPLES: &str = "\
Examples:
  accelgate plan --bundle examples/tpu-v5e --root fixtures/sysfs/tpu-v5e-8
  accelgate plan --bundle examples/gpu-legacy-hook --root fixtures/sysfs/nvidia-h100x8 --json
  accelgate --log-level debug plan --bundle examples/mounts    # why each rule fired

Annotations in config.json: dev.accelgate.tpu=all|0,1,...  dev.accelgate.overlay=MODE
dev.accelgate.rootfs-image=/abs/image.erofs; flags win over annotations.
The JSON schema is accelgate.plan/v1 (docs/plan.md).";

/// Compute what a sandbox's filesystem and process must be, without touching anything.
///
/// Reads BUNDLE/config.json and the host (or a fixture host), applies the mount, device and
/// accelerator rules of docs/plan.md, and prints the plan.
#[derive(Debug, Args)]
#[command(after_help = PLAN_EXAMPLES)]
pub struct PlanArgs {
    #[command(flatten)]
    sandbox: SandboxArgs,

    /// Print the accelgate.plan/v1 JSON document instead of a readable plan
    #[arg(long)]
    json: bool,
}

/// What `plan` and `run` both take: the bundle, the host, and the operator's settings.
#[derive(Debug, Args)]
pub struct SandboxArgs {
    /// The OCI bundle directory holding config.json
    #[arg(long, value_name = "DIR", default_value = ".")]
    bundle: PathBuf,

    /// Read the host from DIR/sys, DIR/proc and DIR/dev (or DIR/dev.list) instead of /
    #[arg(long, value_name = "HOSTROOT")]
    pub root: Option<PathBuf>,

    /// The container's name [default: the bundle directory's name]
    #[arg(long, value_name = "NAME")]
    id: Option<String>,

    /// Rootfs protection: none, memory (tmpfs upper), self (upper hidden inside the rootfs) or
    /// dir:PATH (upper in a host directory)
    #[arg(long, value_name = "MODE", value_parser = OverlayMode::parse)]
    overlay: Option<OverlayMode>,

    /// Mount this EROFS image as the rootfs
    #[arg(long, value_name = "FILE")]
    rootfs_image: Option<PathBuf>,

    /// TPU chips to give the sandbox: all, or indices as `discover` numbers them (0,1,...)
    #[arg(long, value_name = "SEL", value_parser = Selection::parse)]
    tpu: Option<Selection>,
}

impl SandboxArgs {
    /// The running host, `bundle`, the container `id` and no other settings: what a container
    /// engine gives (`create --bundle DIR ID`).
    pub fn engine(bundle: PathBuf, id: String) -> Self {
        Self {
            bundle,
            root: None,
            id: Some(id),
            overlay: None,
            rootfs_image: None,
            tpu: None,
        }
    }
}

/// Loads the bundle (with `args` replacing `process.args` when given) and the host, and
/// compiles the plan; errors are reported and become the exit status.
pub fn build(
    sandbox: &SandboxArgs,
    args: &[String],
) -> Result<(Bundle, SandboxPlan, HostSnapshot), ExitCode> {
    let host = super::host_root(sandbox.root.as_ref())
        .map_err(|e| super::fail("cannot use host root", &e))?;
    let mut bundle =
        Bundle::load(&sandbox.bundle).map_err(|e| super::fail("cannot load bundle", &e))?;
    if !args.is_empty() {
        if let Some(process) = bundle.spec.process_mut() {
            process.set_args(Some(args.to_vec()));
        }
    }
    let snapshot = HostSnapshot::read(&host).map_err(|e| super::fail("cannot read host", &e))?;
    eprint!(
        "{}",
        super::discover::render_warnings(&snapshot.discovery.warnings)
    );
    let container_id = sandbox.id.clone().unwrap_or_else(|| {
        bundle.dir.file_name().map_or_else(
            || "sandbox".to_owned(),
            |n| n.to_string_lossy().into_owned(),
        )
    });
    let config = BootConfig {
        container_id,
        overlay: sandbox.overlay.clone(),
        rootfs_image: sandbox.rootfs_image.clone(),
        tpus: sandbox.tpu.clone(),
        applied_elsewhere: false,
    };
    let plan = compile(&bundle, &snapshot, &config)
        .map_err(|e| super::fail(&format!("cannot plan {}", bundle.dir.display()), &e))?;
    Ok((bundle, plan, snapshot))
}

pub fn run(args: &PlanArgs) -> ExitCode {
    let plan = match build(&args.sandbox, &[]) {
        Ok((_, plan, _)) => plan,
        Err(code) => return code,
    };
    if args.json {
        match serde_json::to_string_pretty(&plan) {
            Ok(text) => println!("{text}"),
            Err(e) => return super::fail("cannot encode JSON", &e),
        }
    } else {
        print!("{}", render_plan(&plan));
    }
    ExitCode::SUCCESS
}

/// The readable plan: rootfs, process, mounts in order, devices, links, and the rest.
pub fn render_plan(plan: &SandboxPlan) -> String {
    let mut out = String::new();
    let rootfs = &plan.rootfs;
    let _ = writeln!(
        out,
        "rootfs   {} ({}, overlay {}{})",
        rootfs.image.as_ref().unwrap_or(&rootfs.path).display(),
        if rootfs.readonly {
            "read-only, remounted read-only after setup"
        } else {
            "read-write"
        },
        rootfs.overlay,
        rootfs.image.as_ref().map_or(String::new(), |_| format!(
            ", EROFS image at {}",
            rootfs.path.display()
        )),
    );
    let executable = plan
        .process
        .executable
        .as_ref()
        .map_or("(resolved after mount)".to_owned(), |p| {
            p.display().to_string()
        });
    let _ = writeln!(
        out,
        "process  {:?} -> {executable}, cwd {}",
        plan.process.args,
        plan.process.cwd.display()
    );

    let mut mounts = Table::new(&["DESTINATION", "TYPE", "SOURCE", "OPTIONS", "ORIGIN"]);
    for m in &plan.mounts {
        let mut options = m.options.clone();
        options.extend(m.data.iter().cloned());
        options.extend(m.propagation.iter().cloned());
        if m.bind.is_some_and(|b| b.recursive) {
            options.push("rbind".into());
        }
        let origin = serde_json::to_value(m.origin)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let source = match &m.volume {
            Some(volume) => format!("volume {volume}"),
            None => m.source.clone(),
        };
        mounts.row(vec![
            m.destination.display().to_string(),
            m.fs_type.clone(),
            source,
            options.join(","),
            origin,
        ]);
    }
    let _ = write!(out, "\nmounts (in order):\n{}", indent(&mounts.render()));

    let mut devices = Table::new(&["PATH", "TYPE", "DEVICE", "MODE", "OWNER"]);
    for d in &plan.devices {
        devices.row(vec![
            d.path.display().to_string(),
            d.kind.to_string(),
            format!("{}:{}", d.major, d.minor),
            format!("{:04o}", d.mode),
            format!("{}:{}", d.uid, d.gid),
        ]);
    }
    let _ = write!(out, "\ndevices:\n{}", indent(&devices.render()));
    let links: Vec<String> = plan
        .symlinks
        .iter()
        .map(|l| format!("{} -> {}", l.path.display(), l.target.display()))
        .collect();
    let _ = writeln!(out, "\nsymlinks: {}", links.join(", "));
    let list = |paths: &[PathBuf]| {
        if paths.is_empty() {
            "-".to_owned()
        } else {
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(" ")
        }
    };
    let _ = writeln!(out, "masked:   {}", list(&plan.masked_paths));
    let _ = writeln!(out, "readonly: {}", list(&plan.readonly_paths));
    if !plan.env.is_empty() {
        let _ = writeln!(out, "env:      {}", plan.env.join(" "));
    }
    for limit in &plan.rlimits {
        let show = |v: u64| {
            if v == u64::MAX {
                "unlimited".to_owned()
            } else {
                v.to_string()
            }
        };
        let _ = writeln!(
            out,
            "rlimit:   {} soft {} hard {}",
            limit.kind,
            show(limit.soft),
            show(limit.hard)
        );
    }
    for volume in &plan.volumes {
        let _ = writeln!(
            out,
            "volume:   {} ({}, share={}) from {}",
            volume.name, volume.fs_type, volume.share, volume.source
        );
    }
    let acc = &plan.accelerators;
    let _ = writeln!(
        out,
        "\naccelerators: gpus {:?}, tpus {:?}{}",
        acc.gpus,
        acc.tpus,
        if acc.driver_capabilities.is_empty() {
            String::new()
        } else {
            format!(", capabilities {}", acc.driver_capabilities.join(","))
        }
    );
    out
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}
