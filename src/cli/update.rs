//! `update`, with runc's resource flags.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use oci_spec::runtime::{LinuxCpu, LinuxPids, LinuxResources};

use super::oci::Globals;

/// Change a running container's limits (memory, pids, cpu, and any linux.resources from a file)
#[derive(Debug, Args)]
#[command(
    after_help = "Flags win over the file. Sizes are bytes, or a number with k, m or g (1024-based); -1 is no limit.\nThe file's resources are written as create writes them (cpuset, blockIO, hugepageLimits, unified on cgroup v2 too); devices, and what create refuses, are refused by name."
)]
pub struct UpdateArgs {
    /// linux.resources as JSON, from FILE or - (stdin)
    #[arg(long, short = 'r', value_name = "FILE")]
    resources: Option<PathBuf>,
    /// Memory limit
    #[arg(long, short = 'm', value_name = "BYTES", value_parser = parse_size)]
    memory: Option<i64>,
    /// Memory plus swap limit
    #[arg(long, value_name = "BYTES", value_parser = parse_size)]
    memory_swap: Option<i64>,
    /// Memory soft limit
    #[arg(long, value_name = "BYTES", value_parser = parse_size)]
    memory_reservation: Option<i64>,
    /// The most processes (0 or less: no limit)
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pids_limit: Option<i64>,
    /// CPU CFS quota in microseconds per period (-1: none)
    #[arg(long, value_name = "US", allow_negative_numbers = true)]
    cpu_quota: Option<i64>,
    /// CPU CFS period in microseconds
    #[arg(long, value_name = "US")]
    cpu_period: Option<u64>,
    /// CPU shares (relative weight)
    #[arg(long, value_name = "N")]
    cpu_shares: Option<u64>,
    /// The container's id
    id: String,
}

/// A size: bytes, or with a k, m or g suffix (1024-based); -1 for none.
fn parse_size(text: &str) -> Result<i64, String> {
    let lower = text.trim().to_ascii_lowercase();
    let lower = lower.strip_suffix('b').unwrap_or(&lower);
    let (number, unit) = match lower.chars().last() {
        Some('k') => (&lower[..lower.len() - 1], 1i64 << 10),
        Some('m') => (&lower[..lower.len() - 1], 1 << 20),
        Some('g') => (&lower[..lower.len() - 1], 1 << 30),
        _ => (lower, 1),
    };
    number
        .parse::<i64>()
        .ok()
        .and_then(|n| if n < 0 { Some(n) } else { n.checked_mul(unit) })
        .ok_or_else(|| format!("{text:?} is not a size (bytes, or a number with k, m or g)"))
}

impl UpdateArgs {
    /// The resources to apply: the file's, then the flags over them.
    fn resources(&self) -> Result<LinuxResources, String> {
        let mut resources = match &self.resources {
            Some(path) => {
                let mut text = String::new();
                let read = if path.as_os_str() == "-" {
                    std::io::stdin().read_to_string(&mut text).map(drop)
                } else {
                    std::fs::read_to_string(path).map(|t| text = t)
                };
                read.map_err(|e| format!("--resources {}: {e}", path.display()))?;
                let mut reader = serde_json::Deserializer::from_str(&text);
                serde_path_to_error::deserialize(&mut reader).map_err(|e| {
                    format!(
                        "--resources {}: {}: {}",
                        path.display(),
                        e.path(),
                        e.inner()
                    )
                })?
            }
            None => LinuxResources::default(),
        };
        if self.memory.is_some() || self.memory_swap.is_some() || self.memory_reservation.is_some()
        {
            let mut memory = (*resources.memory()).unwrap_or_default();
            if self.memory.is_some() {
                memory.set_limit(self.memory);
            }
            if self.memory_swap.is_some() {
                memory.set_swap(self.memory_swap);
            }
            if self.memory_reservation.is_some() {
                memory.set_reservation(self.memory_reservation);
            }
            resources.set_memory(Some(memory));
        }
        if let Some(limit) = self.pids_limit {
            let mut pids = LinuxPids::default();
            pids.set_limit(limit);
            resources.set_pids(Some(pids));
        }
        if self.cpu_quota.is_some() || self.cpu_period.is_some() || self.cpu_shares.is_some() {
            let mut cpu = resources.cpu().clone().unwrap_or_else(LinuxCpu::default);
            if self.cpu_quota.is_some() {
                cpu.set_quota(self.cpu_quota);
            }
            if self.cpu_period.is_some() {
                cpu.set_period(self.cpu_period);
            }
            if self.cpu_shares.is_some() {
                cpu.set_shares(self.cpu_shares);
            }
            resources.set_cpu(Some(cpu));
        }
        Ok(resources)
    }
}

/// `update`.
pub fn update(globals: &Globals, args: &UpdateArgs) -> ExitCode {
    let resources = match args.resources() {
        Ok(resources) => resources,
        Err(message) => return globals.fail(&message),
    };
    match crate::runtime::update(&globals.state_root(), &args.id, &resources) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => globals.runtime_error(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_runcs_suffixes() {
        assert_eq!(parse_size("64m"), Ok(64 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("512kb"), Ok(512 << 10));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("-1"), Ok(-1));
        assert!(parse_size("lots").is_err());
    }
}
