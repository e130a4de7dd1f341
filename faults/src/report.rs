//! The run's summary: operations by kind and outcome, faults by kind, failover times, proxy
//! traffic, notes and violations. Failover time is measured from a leader's SIGKILL to the
//! first acknowledged write that completed afterwards on another node (the new leader).
//! Follower staleness comes from [`crate::staleness`].

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::cluster::Slot;
use crate::history::{History, Outcome};
use crate::staleness::{Figures, Percentiles};

/// Failover times in milliseconds, one per leader kill followed by a successful write.
pub fn failover_ms(history: &History, leader_kills: &[(u64, Slot)]) -> Vec<f64> {
    let ops = history.ops();
    leader_kills
        .iter()
        .filter_map(|&(killed_at, slot)| {
            ops.iter()
                .filter(|op| {
                    op.kind.is_write()
                        && op.outcome == Outcome::Ok
                        && op.node != slot
                        && op.complete_us > killed_at
                })
                .map(|op| op.complete_us - killed_at)
                .min()
                .map(|us| us as f64 / 1000.0)
        })
        .collect()
}

/// Median and maximum.
pub fn median_max(values: &[f64]) -> Option<(f64, f64)> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let max = *sorted.last()?;
    let middle = sorted.len() / 2;
    let median = if sorted.len() % 2 == 1 {
        sorted[middle]
    } else {
        (sorted[middle - 1] + sorted[middle]) / 2.0
    };
    Some((median, max))
}

pub struct Summary<'a> {
    pub seed: u64,
    pub nodes: usize,
    pub duration_s: f64,
    pub history: &'a History,
    pub faults: Vec<(String, u64)>,
    pub failovers_ms: Vec<f64>,
    pub elections_ms: Vec<f64>,
    pub proxy: (u64, u64),
    /// Staleness of follower reads: over every read, and outside fault rounds.
    pub staleness: Option<Figures>,
    pub staleness_quiet: Option<Figures>,
    pub notes: &'a [String],
    pub violations: &'a [String],
    pub availability: &'a [String],
}

impl Summary<'_> {
    pub fn render(&self) -> String {
        let mut text = String::new();
        let _ = writeln!(text, "== fault suite summary ==");
        let _ = writeln!(
            text,
            "seed {}  nodes {}  workload+faults {:.1} s",
            self.seed, self.nodes, self.duration_s
        );
        let mut by_kind: BTreeMap<&str, [u64; 3]> = BTreeMap::new();
        let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
        for op in self.history.ops() {
            let reason = match &op.outcome {
                Outcome::Ok => None,
                Outcome::Failed { code } => Some(format!("did not happen, code {code}")),
                Outcome::Unknown { reason } => Some(format!("unknown, {reason}")),
            };
            if let Some(reason) = reason {
                *reasons.entry(reason).or_default() += 1;
            }
            let slot = match op.outcome {
                Outcome::Ok => 0,
                Outcome::Failed { .. } => 1,
                Outcome::Unknown { .. } => 2,
            };
            by_kind.entry(op.kind.label()).or_default()[slot] += 1;
        }
        let _ = writeln!(text, "operations (ok / did not happen / unknown):");
        for (kind, [ok, failed, unknown]) in &by_kind {
            let _ = writeln!(text, "  {kind:<20} {ok:>7} / {failed:>5} / {unknown:>4}");
        }
        let total: u64 = by_kind.values().map(|counts| counts.iter().sum::<u64>()).sum();
        let _ = writeln!(text, "  {:<20} {total:>7}", "total");
        let reasons: Vec<String> =
            reasons.iter().map(|(reason, count)| format!("{reason}: {count}")).collect();
        let _ = writeln!(
            text,
            "  failures by cause (code -1: host unreachable): {}",
            reasons.join("; ")
        );
        let _ = writeln!(text, "faults:");
        for (kind, count) in &self.faults {
            let _ = writeln!(text, "  {kind:<30} {count:>4}");
        }
        for (what, values) in [
            ("kill -> first commit on a new leader", &self.failovers_ms),
            ("kill -> a new leader elected", &self.elections_ms),
        ] {
            match median_max(values) {
                Some((median, max)) => {
                    let all: Vec<String> = values.iter().map(|ms| format!("{ms:.0}")).collect();
                    let _ = writeln!(text, "failover, {what}: {} times, median {median:.0} ms, max {max:.0} ms (all: {})", values.len(), all.join(", "));
                }
                None => {
                    let _ =
                        writeln!(text, "failover, {what}: not measured (no leader kill this run)");
                }
            }
        }
        let _ = writeln!(
            text,
            "proxy: {} datagrams forwarded, {} dropped by cuts",
            self.proxy.0, self.proxy.1
        );
        let _ = writeln!(text, "follower reads without a barrier, staleness (behind the newest acknowledged write / the leader's commit index):");
        for (what, figures) in
            [("all reads", &self.staleness), ("outside fault rounds", &self.staleness_quiet)]
        {
            match figures {
                Some(figures) => {
                    let worst = &figures.worst;
                    let _ = writeln!(
                        text,
                        "  {what:<21} {:>5} reads: {}; {} (stalest: n{} as {} at {:.3} s)",
                        figures.reads,
                        time(&figures.time_ms),
                        entries(figures.entries.as_ref()),
                        worst.node + 1,
                        worst.role.as_deref().unwrap_or("?"),
                        worst.invoke_us as f64 / 1e6
                    );
                }
                None => {
                    let _ = writeln!(text, "  {what:<21} no reads");
                }
            }
        }
        for note in self.notes {
            let _ = writeln!(text, "note: {note}");
        }
        if self.availability.is_empty() {
            let _ = writeln!(text, "availability problems: none");
        } else {
            let _ = writeln!(text, "availability problems: {}", self.availability.len());
            for problem in self.availability {
                let _ = writeln!(text, "  - {problem}");
            }
        }
        if self.violations.is_empty() {
            let _ = writeln!(text, "violations: none");
        } else {
            let _ = writeln!(text, "violations: {}", self.violations.len());
            for violation in self.violations {
                let _ = writeln!(text, "  - {violation}");
            }
        }
        text
    }
}

fn time(lag: &Percentiles) -> String {
    format!("median {:.1} ms, p99 {:.1} ms, max {:.1} ms", lag.median, lag.p99, lag.max)
}

fn entries(lag: Option<&Percentiles>) -> String {
    match lag {
        Some(lag) => {
            format!("median {:.0}, p99 {:.0}, max {:.0} entries", lag.median, lag.p99, lag.max)
        }
        None => "entries not measured".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median_max(&[3.0, 1.0, 2.0]), Some((2.0, 3.0)));
        assert_eq!(median_max(&[4.0, 1.0, 2.0, 3.0]), Some((2.5, 4.0)));
        assert_eq!(median_max(&[]), None);
    }
}
