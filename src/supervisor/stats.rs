//! Counts of the gate's decisions, and the JSON document `accelgate run --stats --json` prints.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::mode::Mode;

/// Name and version of the stats JSON schema.
pub const STATS_SCHEMA: &str = "accelgate.stats/v1";

/// What the gate did with a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Allowed to proceed (in the kernel, or in the simulator).
    Allowed,
    /// Run by the daemon on its own checked copy.
    Emulated,
    /// Refused.
    Denied,
    /// Allowed although enforce would have refused it (passthrough or audit mode).
    Audited,
    /// A simulated device node opened through the supervisor.
    Brokered,
}

/// One line of the counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Count {
    /// File kind.
    pub device: String,
    /// Request name.
    pub request: String,
    /// Verdict.
    pub verdict: Verdict,
    /// How many.
    pub count: u64,
}

/// Numbers the tables do not know at a level below the ioctl (an RM control command, an RM
/// class), with how often the workload used them: what an audit reports for enforce to deny.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unlisted {
    /// File kind.
    pub device: String,
    /// What the number is (`RM_CONTROL unknown cmd`).
    pub request: String,
    /// The number.
    pub number: u32,
    /// How many calls used it.
    pub count: u64,
}

/// A sandbox's decisions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    counts: BTreeMap<(&'static str, &'static str, Verdict), u64>,
    unlisted: BTreeMap<(&'static str, &'static str, u32), u64>,
}

impl Counters {
    /// Counts one decision (names are the tables' own, so counting allocates nothing).
    pub fn add(&mut self, device: &'static str, request: &'static str, verdict: Verdict) {
        *self.counts.entry((device, request, verdict)).or_default() += 1;
    }

    /// Counts one use of `number`, which the tables do not know, at level `request`.
    pub fn add_unlisted(&mut self, device: &'static str, request: &'static str, number: u32) {
        *self.unlisted.entry((device, request, number)).or_default() += 1;
    }

    /// The unlisted numbers as lines.
    pub fn unlisted(&self) -> Vec<Unlisted> {
        self.unlisted
            .iter()
            .map(|((device, request, number), count)| Unlisted {
                device: (*device).to_owned(),
                request: (*request).to_owned(),
                number: *number,
                count: *count,
            })
            .collect()
    }

    /// The counts as lines.
    pub fn lines(&self) -> Vec<Count> {
        self.counts
            .iter()
            .map(|((device, request, verdict), count)| Count {
                device: (*device).to_owned(),
                request: (*request).to_owned(),
                verdict: *verdict,
                count: *count,
            })
            .collect()
    }

    /// Total per verdict.
    pub fn total(&self, verdict: Verdict) -> u64 {
        self.counts
            .iter()
            .filter(|((_, _, v), _)| *v == verdict)
            .map(|(_, c)| c)
            .sum()
    }
}

/// The document `--stats --json` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Always [`STATS_SCHEMA`].
    pub schema: String,
    /// The sandbox.
    pub sandbox: String,
    /// The policy mode.
    pub mode: Mode,
    /// Totals: allowed (continued), emulated, denied, audited, brokered.
    pub totals: BTreeMap<Verdict, u64>,
    /// Per (device, request, verdict).
    pub counts: Vec<Count>,
    /// Numbers below the ioctl level the tables do not know (RM controls and classes), which
    /// enforce refuses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unlisted: Vec<Unlisted>,
}

impl Stats {
    /// The stats of `counters`.
    pub fn new(sandbox: &str, mode: Mode, counters: &Counters) -> Self {
        let verdicts = [
            Verdict::Allowed,
            Verdict::Emulated,
            Verdict::Denied,
            Verdict::Audited,
            Verdict::Brokered,
        ];
        Self {
            schema: STATS_SCHEMA.to_owned(),
            sandbox: sandbox.to_owned(),
            mode,
            totals: verdicts.iter().map(|v| (*v, counters.total(*v))).collect(),
            counts: counters.lines(),
            unlisted: counters.unlisted(),
        }
    }

    /// A readable table.
    pub fn render(&self) -> String {
        let mut out = format!(
            "ioctl gate ({} mode) for sandbox {}:\n",
            self.mode, self.sandbox
        );
        for line in &self.counts {
            let verdict = serde_json::to_value(line.verdict)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  {:<16} {:<40} {:<10} {:>8}",
                line.device, line.request, verdict, line.count
            );
        }
        let totals: Vec<String> = self
            .totals
            .iter()
            .map(|(v, n)| {
                format!(
                    "{} {n}",
                    serde_json::to_value(v)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default()
                )
            })
            .collect();
        let _ = writeln!(out, "  totals: {}", totals.join(", "));
        for line in &self.unlisted {
            let _ = writeln!(
                out,
                "  unknown to the tables: {:<12} {} {:#x} ({} calls)",
                line.device, line.request, line.number, line.count
            );
        }
        if self.mode != Mode::Audit {
            out.push_str(
                "  (requests the filter decides in the kernel are not counted; --policy audit sees every call)\n",
            );
        }
        out
    }
}
