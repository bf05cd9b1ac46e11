//! `linux.resources` as cgroup files: the v1 controllers' (memory, pids, cpu, cpuset, blkio,
//! hugetlb) and cgroup v2's (the same limits in v2's terms, and `unified` verbatim). What has
//! no meaning in a version is refused by field.

use oci_spec::runtime::{LinuxResources, LinuxThrottleDevice};

use super::RuntimeError;

/// One value to write in a controller's cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    /// The controller: the v1 hierarchy it is written in, or the v2 controller to enable for
    /// it (empty for `cgroup.*` files, which need none).
    pub controller: String,
    /// `(file, value)`: the first whose file the cgroup has is written (BFQ's weight files
    /// stand in for CFQ's).
    pub choices: Vec<(String, String)>,
    /// The spec field it comes from, for errors.
    pub field: String,
}

fn refuse(field: impl Into<String>, reason: impl Into<String>) -> RuntimeError {
    RuntimeError::Unsupported {
        field: field.into(),
        reason: reason.into(),
    }
}

/// The limits being gathered, in the order they must be written.
#[derive(Default)]
struct Writes(Vec<Limit>);

impl Writes {
    fn one(&mut self, controller: &str, file: &str, value: Option<String>, field: &str) {
        if let Some(value) = value {
            self.0.push(Limit {
                controller: controller.to_owned(),
                choices: vec![(file.to_owned(), value)],
                field: field.to_owned(),
            });
        }
    }
}

fn text<T: ToString>(value: Option<T>) -> Option<String> {
    value.map(|v| v.to_string())
}

/// `pids.limit`: 0 or less is no limit.
fn pids_max(limit: i64) -> String {
    if limit > 0 {
        limit.to_string()
    } else {
        "max".into()
    }
}

/// A page size (`2MB`, `1GB`) as part of a file name.
fn page_size(size: &str, field: &str) -> Result<(), RuntimeError> {
    if size.is_empty() || !size.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(refuse(field, format!("{size:?} is not a page size")));
    }
    Ok(())
}

/// The throttle lists of `blockIO`, with their field names and their v1 file and v2 key.
fn throttles(
    resources: &LinuxResources,
) -> Vec<(
    &'static str,
    &'static str,
    &'static str,
    Vec<LinuxThrottleDevice>,
)> {
    let Some(io) = resources.block_io() else {
        return Vec::new();
    };
    [
        (
            "throttleReadBpsDevice",
            "blkio.throttle.read_bps_device",
            "rbps",
            io.throttle_read_bps_device(),
        ),
        (
            "throttleWriteBpsDevice",
            "blkio.throttle.write_bps_device",
            "wbps",
            io.throttle_write_bps_device(),
        ),
        (
            "throttleReadIOPSDevice",
            "blkio.throttle.read_iops_device",
            "riops",
            io.throttle_read_iops_device(),
        ),
        (
            "throttleWriteIOPSDevice",
            "blkio.throttle.write_iops_device",
            "wiops",
            io.throttle_write_iops_device(),
        ),
    ]
    .into_iter()
    .map(|(field, file, key, list)| (field, file, key, list.clone().unwrap_or_default()))
    .collect()
}

/// Fields that neither version takes here.
fn refuse_unsupported(resources: &LinuxResources) -> Result<(), RuntimeError> {
    if let Some(io) = resources.block_io() {
        if io.leaf_weight().is_some() {
            return Err(refuse(
                "linux.resources.blockIO.leafWeight",
                "not supported (kernels since 5.0 have no leaf weights)",
            ));
        }
        for (index, device) in io.weight_device().iter().flatten().enumerate() {
            if device.leaf_weight().is_some() {
                return Err(refuse(
                    format!("linux.resources.blockIO.weightDevice[{index}].leafWeight"),
                    "not supported (kernels since 5.0 have no leaf weights)",
                ));
            }
        }
    }
    Ok(())
}

/// The cgroup v1 writes for `resources`, in write order (a period before its quota, the
/// memory limit before memory+swap).
pub fn v1(resources: &LinuxResources) -> Result<Vec<Limit>, RuntimeError> {
    refuse_unsupported(resources)?;
    if let Some(unified) = resources.unified() {
        if let Some(key) = unified.keys().min() {
            return Err(refuse(
                format!("linux.resources.unified[{key:?}]"),
                "cgroup v2 files, and this host's controllers are cgroup v1",
            ));
        }
    }
    let mut out = Writes::default();
    if let Some(memory) = resources.memory() {
        let m = "memory";
        out.one(
            m,
            "memory.limit_in_bytes",
            text(memory.limit()),
            "linux.resources.memory.limit",
        );
        out.one(
            m,
            "memory.soft_limit_in_bytes",
            text(memory.reservation()),
            "linux.resources.memory.reservation",
        );
        out.one(
            m,
            "memory.memsw.limit_in_bytes",
            text(memory.swap()),
            "linux.resources.memory.swap",
        );
        out.one(
            m,
            "memory.swappiness",
            text(memory.swappiness()),
            "linux.resources.memory.swappiness",
        );
        out.one(
            m,
            "memory.oom_control",
            memory.disable_oom_killer().map(|d| u8::from(d).to_string()),
            "linux.resources.memory.disableOOMKiller",
        );
    }
    if let Some(pids) = resources.pids() {
        out.one(
            "pids",
            "pids.max",
            Some(pids_max(pids.limit())),
            "linux.resources.pids.limit",
        );
    }
    if let Some(cpu) = resources.cpu() {
        out.one(
            "cpu",
            "cpu.shares",
            text(cpu.shares()),
            "linux.resources.cpu.shares",
        );
        out.one(
            "cpu",
            "cpu.cfs_period_us",
            text(cpu.period()),
            "linux.resources.cpu.period",
        );
        out.one(
            "cpu",
            "cpu.cfs_quota_us",
            text(cpu.quota()),
            "linux.resources.cpu.quota",
        );
        out.one(
            "cpuset",
            "cpuset.cpus",
            cpu.cpus().clone(),
            "linux.resources.cpu.cpus",
        );
        out.one(
            "cpuset",
            "cpuset.mems",
            cpu.mems().clone(),
            "linux.resources.cpu.mems",
        );
    }
    if let Some(io) = resources.block_io() {
        if let Some(weight) = io.weight() {
            out.0.push(Limit {
                controller: "blkio".into(),
                choices: vec![
                    ("blkio.weight".into(), weight.to_string()),
                    ("blkio.bfq.weight".into(), weight.to_string()),
                ],
                field: "linux.resources.blockIO.weight".into(),
            });
        }
        for (index, device) in io.weight_device().iter().flatten().enumerate() {
            if let Some(weight) = device.weight() {
                let line = format!("{}:{} {weight}", device.major(), device.minor());
                out.0.push(Limit {
                    controller: "blkio".into(),
                    choices: vec![
                        ("blkio.weight_device".into(), line.clone()),
                        ("blkio.bfq.weight_device".into(), line),
                    ],
                    field: format!("linux.resources.blockIO.weightDevice[{index}]"),
                });
            }
        }
    }
    for (field, file, _, devices) in throttles(resources) {
        for (index, device) in devices.iter().enumerate() {
            out.one(
                "blkio",
                file,
                Some(format!(
                    "{}:{} {}",
                    device.major(),
                    device.minor(),
                    device.rate()
                )),
                &format!("linux.resources.blockIO.{field}[{index}]"),
            );
        }
    }
    for (index, limit) in resources.hugepage_limits().iter().flatten().enumerate() {
        let field = format!("linux.resources.hugepageLimits[{index}]");
        page_size(limit.page_size(), &format!("{field}.pageSize"))?;
        out.one(
            "hugetlb",
            &format!("hugetlb.{}.limit_in_bytes", limit.page_size()),
            Some(limit.limit().to_string()),
            &format!("{field}.limit"),
        );
    }
    Ok(out.0)
}

/// cgroup v2's `memory.swap.max` from the spec's memory+swap `swap` and `limit` (v2 limits swap
/// alone), as runc converts it: -1 is no limit, 0 is unset.
fn swap_v2(swap: i64, limit: Option<i64>) -> Result<Option<String>, RuntimeError> {
    let field = "linux.resources.memory.swap";
    match (swap, limit) {
        (0, _) => Ok(None),
        (-1, _) => Ok(Some("max".into())),
        (_, None | Some(-1)) => Err(refuse(
            field,
            "a memory+swap limit needs linux.resources.memory.limit on cgroup v2",
        )),
        (swap, Some(limit)) if swap < limit => Err(refuse(
            field,
            format!("{swap} is below the memory limit {limit} (it counts memory and swap)"),
        )),
        (swap, Some(limit)) => Ok(Some((swap - limit).to_string())),
    }
}

/// cgroup v1 `cpu.shares` (2 to 262144) as v2's `cpu.weight` (1 to 10000), the linear map
/// runc and crun (before 1.17) use.
fn cpu_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    1 + (shares.clamp(2, 262_144) - 2) * 9999 / 262_142
}

/// The v1 blkio weight (10 to 1000) as v2's `io.weight` (1 to 10000), as runc maps it.
fn io_weight(weight: u16) -> u64 {
    1 + (u64::from(weight.clamp(10, 1000)) - 10) * 9999 / 990
}

/// A `unified` key: a file name in the cgroup (`memory.high`), never a path.
fn unified_key(key: &str) -> Result<String, RuntimeError> {
    let field = format!("linux.resources.unified[{key:?}]");
    let parts: Vec<&str> = key.split('.').collect();
    if parts.len() < 2
        || parts.iter().any(|p| p.is_empty())
        || !key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        return Err(refuse(field, "not a cgroup v2 file name"));
    }
    // cgroup.* files belong to the core, not to a controller.
    Ok(if parts[0] == "cgroup" {
        String::new()
    } else {
        parts[0].to_owned()
    })
}

/// The cgroup v2 writes for `resources`, in write order; `unified` last, so that it has the
/// last word, as runc gives it.
pub fn v2(resources: &LinuxResources) -> Result<Vec<Limit>, RuntimeError> {
    refuse_unsupported(resources)?;
    let mut out = Writes::default();
    if let Some(memory) = resources.memory() {
        let limit = memory.limit();
        let max = |v: i64| if v < 0 { "max".into() } else { v.to_string() };
        out.one(
            "memory",
            "memory.max",
            limit.map(max),
            "linux.resources.memory.limit",
        );
        out.one(
            "memory",
            "memory.low",
            memory.reservation().map(max),
            "linux.resources.memory.reservation",
        );
        if let Some(swap) = memory.swap() {
            out.one(
                "memory",
                "memory.swap.max",
                swap_v2(swap, limit)?,
                "linux.resources.memory.swap",
            );
        }
        if memory.swappiness().is_some() {
            return Err(refuse(
                "linux.resources.memory.swappiness",
                "cgroup v2 has no per-cgroup swappiness",
            ));
        }
        if memory.disable_oom_killer() == Some(true) {
            return Err(refuse(
                "linux.resources.memory.disableOOMKiller",
                "cgroup v2 cannot disable the OOM killer",
            ));
        }
    }
    if let Some(pids) = resources.pids() {
        out.one(
            "pids",
            "pids.max",
            Some(pids_max(pids.limit())),
            "linux.resources.pids.limit",
        );
    }
    if let Some(cpu) = resources.cpu() {
        out.one(
            "cpu",
            "cpu.weight",
            cpu.shares()
                .filter(|s| *s > 0)
                .map(|s| cpu_weight(s).to_string()),
            "linux.resources.cpu.shares",
        );
        let quota = cpu.quota().unwrap_or(0);
        let period = cpu.period().unwrap_or(0);
        if quota != 0 || period != 0 {
            let period = if period == 0 { 100_000 } else { period };
            let quota = if quota > 0 {
                quota.to_string()
            } else {
                "max".into()
            };
            out.one(
                "cpu",
                "cpu.max",
                Some(format!("{quota} {period}")),
                "linux.resources.cpu.quota",
            );
        }
        out.one(
            "cpuset",
            "cpuset.cpus",
            cpu.cpus().clone(),
            "linux.resources.cpu.cpus",
        );
        out.one(
            "cpuset",
            "cpuset.mems",
            cpu.mems().clone(),
            "linux.resources.cpu.mems",
        );
    }
    if let Some(io) = resources.block_io() {
        if let Some(weight) = io.weight() {
            out.0.push(Limit {
                controller: "io".into(),
                choices: vec![
                    ("io.bfq.weight".into(), weight.to_string()),
                    ("io.weight".into(), format!("default {}", io_weight(weight))),
                ],
                field: "linux.resources.blockIO.weight".into(),
            });
        }
        for (index, device) in io.weight_device().iter().flatten().enumerate() {
            if let Some(weight) = device.weight() {
                let number = format!("{}:{}", device.major(), device.minor());
                out.0.push(Limit {
                    controller: "io".into(),
                    choices: vec![
                        ("io.bfq.weight".into(), format!("{number} {weight}")),
                        (
                            "io.weight".into(),
                            format!("{number} {}", io_weight(weight)),
                        ),
                    ],
                    field: format!("linux.resources.blockIO.weightDevice[{index}]"),
                });
            }
        }
    }
    for (field, _, key, devices) in throttles(resources) {
        for (index, device) in devices.iter().enumerate() {
            out.one(
                "io",
                "io.max",
                Some(format!(
                    "{}:{} {key}={}",
                    device.major(),
                    device.minor(),
                    device.rate()
                )),
                &format!("linux.resources.blockIO.{field}[{index}]"),
            );
        }
    }
    for (index, limit) in resources.hugepage_limits().iter().flatten().enumerate() {
        let field = format!("linux.resources.hugepageLimits[{index}]");
        page_size(limit.page_size(), &format!("{field}.pageSize"))?;
        out.one(
            "hugetlb",
            &format!("hugetlb.{}.max", limit.page_size()),
            Some(limit.limit().to_string()),
            &format!("{field}.limit"),
        );
    }
    let mut unified: Vec<(&String, &String)> = resources.unified().iter().flatten().collect();
    unified.sort();
    for (key, value) in unified {
        let controller = unified_key(key)?;
        out.one(
            &controller,
            key,
            Some(value.clone()),
            &format!("linux.resources.unified[{key:?}]"),
        );
    }
    Ok(out.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resources(json: serde_json::Value) -> LinuxResources {
        serde_json::from_value(json).unwrap()
    }

    fn writes(limits: Vec<Limit>) -> Vec<(String, String, String)> {
        limits
            .into_iter()
            .map(|l| {
                let (file, value) = l.choices[0].clone();
                (l.controller, file, value)
            })
            .collect()
    }

    fn owned(list: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
        list.iter()
            .map(|(a, b, c)| ((*a).to_owned(), (*b).to_owned(), (*c).to_owned()))
            .collect()
    }

    const ALL: &str = r#"{
        "memory": {"limit": 67108864, "swap": 134217728},
        "pids": {"limit": 0},
        "cpu": {"quota": 50000, "period": 100000, "shares": 512, "cpus": "0", "mems": "0"},
        "blockIO": {"weight": 500, "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}]},
        "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}]
    }"#;

    #[test]
    fn v1_limits_come_in_write_order() {
        let limits = v1(&resources(serde_json::from_str(ALL).unwrap())).unwrap();
        assert_eq!(limits[8].choices[1].0, "blkio.bfq.weight");
        assert_eq!(
            writes(limits),
            owned(&[
                ("memory", "memory.limit_in_bytes", "67108864"),
                ("memory", "memory.memsw.limit_in_bytes", "134217728"),
                ("pids", "pids.max", "max"),
                ("cpu", "cpu.shares", "512"),
                ("cpu", "cpu.cfs_period_us", "100000"),
                ("cpu", "cpu.cfs_quota_us", "50000"),
                ("cpuset", "cpuset.cpus", "0"),
                ("cpuset", "cpuset.mems", "0"),
                ("blkio", "blkio.weight", "500"),
                ("blkio", "blkio.throttle.read_bps_device", "8:0 1048576"),
                ("hugetlb", "hugetlb.2MB.limit_in_bytes", "4194304"),
            ])
        );
        let err = v1(&resources(
            serde_json::json!({"unified": {"memory.high": "1"}}),
        ))
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("linux.resources.unified[\"memory.high\"]"),
            "{err}"
        );
    }

    #[test]
    fn v2_limits_are_converted_as_runc_does() {
        let mut all: serde_json::Value = serde_json::from_str(ALL).unwrap();
        all["unified"] = serde_json::json!({"memory.high": "50000000", "cgroup.max.depth": "3"});
        let limits = v2(&resources(all)).unwrap();
        assert_eq!(
            limits[7].choices[1],
            ("io.weight".to_owned(), "default 4950".to_owned())
        );
        assert_eq!(
            writes(limits),
            owned(&[
                ("memory", "memory.max", "67108864"),
                // memory+swap 128 MiB over a 64 MiB limit: 64 MiB of swap.
                ("memory", "memory.swap.max", "67108864"),
                ("pids", "pids.max", "max"),
                ("cpu", "cpu.weight", "20"),
                ("cpu", "cpu.max", "50000 100000"),
                ("cpuset", "cpuset.cpus", "0"),
                ("cpuset", "cpuset.mems", "0"),
                ("io", "io.bfq.weight", "500"),
                ("io", "io.max", "8:0 rbps=1048576"),
                ("hugetlb", "hugetlb.2MB.max", "4194304"),
                ("", "cgroup.max.depth", "3"),
                ("memory", "memory.high", "50000000"),
            ])
        );
        assert_eq!(cpu_weight(2), 1);
        assert_eq!(cpu_weight(1024), 39);
        assert_eq!(cpu_weight(262_144), 10000);
        assert_eq!(swap_v2(-1, Some(5)).unwrap().as_deref(), Some("max"));
        let quota_only = v2(&resources(serde_json::json!({"cpu": {"quota": 20000}}))).unwrap();
        assert_eq!(quota_only[0].choices[0].1, "20000 100000");
        for (json, field) in [
            (
                serde_json::json!({"memory": {"swap": 10}}),
                "linux.resources.memory.swap",
            ),
            (
                serde_json::json!({"memory": {"limit": 100, "swap": 10}}),
                "linux.resources.memory.swap",
            ),
            (
                serde_json::json!({"memory": {"swappiness": 10}}),
                "linux.resources.memory.swappiness",
            ),
            (
                serde_json::json!({"unified": {"../x": "1"}}),
                "linux.resources.unified[\"../x\"]",
            ),
            (
                serde_json::json!({"hugepageLimits": [{"pageSize": "2MB/../x", "limit": 1}]}),
                "linux.resources.hugepageLimits[0].pageSize",
            ),
            (
                serde_json::json!({"blockIO": {"leafWeight": 10}}),
                "linux.resources.blockIO.leafWeight",
            ),
        ] {
            let err = v2(&resources(json)).unwrap_err().to_string();
            assert!(err.starts_with(field), "{field}: {err}");
        }
    }
}
