use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::table::Table;
use crate::daemon::{DEFAULT_CONTROL, Request, Response, request};

/// The containers the daemon serves (their TPUs, device nodes and policy); with ID, runc's ps:
/// the processes of that container in the state directory
#[derive(Debug, Args)]
#[command(
    after_help = "Without ID, asks the daemon on its control socket. With ID, lists the processes in the container's cgroups (UID PID PPID STAT CMD, or with --format json an array of host pids), as runc ps does.\nExit status: 0, or 1 when the daemon or the container cannot be reached."
)]
pub struct PsArgs {
    /// A container in runc's state directory (the global --root)
    pub id: Option<String>,

    /// table or json (runc's; json is --json without ID)
    #[arg(long, short = 'f', value_name = "FORMAT", value_parser = ["table", "json"])]
    pub format: Option<String>,

    /// The daemon's control socket
    #[arg(long, value_name = "PATH", default_value = DEFAULT_CONTROL)]
    control: PathBuf,

    /// Print the accelgate.ps/v1 JSON document
    #[arg(long)]
    json: bool,
}

/// The gate's counts of allowed, emulated, denied and brokered calls per container.
#[derive(Debug, Args)]
#[command(
    after_help = "Without ID, every container the daemon knows (running, or among the latest 256 gone).\nWith runc's --root STATEDIR before the command, the counts of container ID created there (its gate service's, or the last it left).\nExit status: 0, or 1 when the daemon cannot be reached or has no such container."
)]
pub struct StatsArgs {
    /// Container ID
    pub id: Option<String>,

    /// The daemon's control socket
    #[arg(long, value_name = "PATH", default_value = DEFAULT_CONTROL)]
    control: PathBuf,

    /// Print accelgate.stats/v1 JSON documents (one for ID, else an array)
    #[arg(long)]
    pub json: bool,
}

fn ask(control: &std::path::Path, what: Request) -> Result<Response, ExitCode> {
    request(control, &what).map_err(|e| super::fail("daemon", &e))
}

fn print_json(value: &impl serde::Serialize) {
    if let Ok(text) = serde_json::to_string_pretty(value) {
        println!("{text}");
    }
}

pub fn ps(args: &PsArgs) -> ExitCode {
    let ps = match ask(&args.control, Request::Ps) {
        Ok(Response::Ps(ps)) => ps,
        Ok(_) => return unexpected(),
        Err(code) => return code,
    };
    if args.json || args.format.as_deref() == Some("json") {
        print_json(&ps);
        return ExitCode::SUCCESS;
    }
    let mut table = Table::new(&["ID", "STATUS", "POLICY", "TPUS", "DEVICES"]);
    for c in &ps.containers {
        let status = if c.listeners > 0 { "served" } else { "gone" };
        let policy = if c.simulated {
            format!("{} (simulated)", c.policy)
        } else {
            c.policy.to_string()
        };
        let tpus = c.tpus.as_ref().map_or("unknown".to_owned(), |t| {
            t.iter().map(usize::to_string).collect::<Vec<_>>().join(",")
        });
        table.row(vec![
            c.id.clone(),
            status.to_owned(),
            policy,
            tpus,
            c.devices.join(" "),
        ]);
    }
    print!("{}", table.render());
    ExitCode::SUCCESS
}

pub fn stats(args: &StatsArgs) -> ExitCode {
    let all = match ask(
        &args.control,
        Request::Stats {
            id: args.id.clone(),
        },
    ) {
        Ok(Response::Stats(all)) => all,
        Ok(_) => return unexpected(),
        Err(code) => return code,
    };
    match (&args.id, args.json) {
        (Some(_), true) => all.iter().for_each(print_json),
        (None, true) => print_json(&all),
        (_, false) => all.iter().for_each(|s| print!("{}", s.render())),
    }
    ExitCode::SUCCESS
}

fn unexpected() -> ExitCode {
    eprintln!("error: the daemon answered another request");
    ExitCode::from(super::EXIT_FAILURE)
}
