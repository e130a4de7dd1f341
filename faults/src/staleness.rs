//! Follower staleness figures from the counter workload (`workload::staleness`).
//!
//! For each successful read on a node that was not the leader, two lags:
//! - time: how long before the read began the first write it does not show was acknowledged
//!   (0 when it shows every write acknowledged before it began). The counter has one writer
//!   and grows, so the writes a read of `v` misses are exactly those of values above `v`, and
//!   the first acknowledged of them is the one of the smallest value;
//! - entries: the leader's commit index (asked just before the read) minus the node's applied
//!   index (read in the same statement), or 0.
//!
//! Figures are given over every read and over the reads outside fault rounds (a node cut off
//! or paused is as stale as the fault is long, which says nothing of normal operation). A round
//! ends once every node it touched has caught up with the leader, so these are steady-state
//! figures.

use crate::cluster::Slot;
use crate::history::{Op, OpKind, Outcome};

/// After a fault round ends, how long its after-effects (a node catching up) are left out of
/// the figures outside faults.
pub const SETTLE_US: u64 = 1_000_000;

/// One follower read's lag.
#[derive(Clone, Debug, PartialEq)]
pub struct Lag {
    /// The node read, and its role then.
    pub node: Slot,
    pub role: Option<String>,
    pub invoke_us: u64,
    pub complete_us: u64,
    pub time_ms: f64,
    pub entries: Option<u64>,
}

/// Median, 99th percentile (nearest rank) and maximum.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Percentiles {
    pub median: f64,
    pub p99: f64,
    pub max: f64,
}

/// The figures of a set of reads.
#[derive(Clone, Debug, PartialEq)]
pub struct Figures {
    pub reads: usize,
    pub time_ms: Percentiles,
    pub entries: Option<Percentiles>,
    /// The stalest read, to look it up in the history.
    pub worst: Lag,
}

/// The lag of every successful counter read on a node that was not the leader.
pub fn lags(ops: &[Op]) -> Vec<Lag> {
    let mut acks: Vec<(i64, u64)> = ops
        .iter()
        .filter_map(|op| match op.kind {
            OpKind::CounterWrite { value } if op.outcome == Outcome::Ok => {
                Some((value, op.complete_us))
            }
            _ => None,
        })
        .collect();
    acks.sort_unstable();
    ops.iter()
        .filter_map(|op| match &op.kind {
            OpKind::CounterRead {
                value: Some(value),
                role,
                applied_index,
                leader_commit_index,
            } if op.outcome == Outcome::Ok && role.as_deref() != Some("leader") => {
                let missed = acks.partition_point(|(acked, _)| acked <= value);
                let time_us = match acks.get(missed) {
                    Some((_, acked_us)) if *acked_us <= op.invoke_us => op.invoke_us - acked_us,
                    _ => 0,
                };
                let entries = match (leader_commit_index, applied_index) {
                    (Some(commit), Some(applied)) => Some(commit.saturating_sub(*applied)),
                    _ => None,
                };
                Some(Lag {
                    node: op.node,
                    role: role.clone(),
                    invoke_us: op.invoke_us,
                    complete_us: op.complete_us,
                    time_ms: time_us as f64 / 1000.0,
                    entries,
                })
            }
            _ => None,
        })
        .collect()
}

/// The lags of reads that overlap no fault window (each extended by [`SETTLE_US`]).
pub fn outside(lags: &[Lag], windows: &[(u64, u64)]) -> Vec<Lag> {
    lags.iter()
        .filter(|lag| {
            windows
                .iter()
                .all(|&(start, end)| lag.complete_us < start || lag.invoke_us > end + SETTLE_US)
        })
        .cloned()
        .collect()
}

pub fn percentiles(values: &[f64]) -> Option<Percentiles> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = |fraction: f64| {
        sorted[((fraction * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1]
    };
    let max = *sorted.last()?;
    Some(Percentiles { median: rank(0.5), p99: rank(0.99), max })
}

pub fn figures(lags: &[Lag]) -> Option<Figures> {
    let time: Vec<f64> = lags.iter().map(|lag| lag.time_ms).collect();
    let entries: Vec<f64> = lags.iter().filter_map(|lag| lag.entries).map(|e| e as f64).collect();
    let worst = lags.iter().max_by(|a, b| a.time_ms.total_cmp(&b.time_ms))?.clone();
    Some(Figures {
        reads: lags.len(),
        time_ms: percentiles(&time)?,
        entries: percentiles(&entries),
        worst,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(kind: OpKind, invoke_us: u64, complete_us: u64) -> Op {
        Op {
            id: 0,
            worker: "t".into(),
            node: 1,
            invoke_us,
            complete_us,
            kind,
            outcome: Outcome::Ok,
            message: None,
        }
    }

    fn read(value: i64, role: &str, invoke_us: u64, applied: u64, commit: u64) -> Op {
        let kind = OpKind::CounterRead {
            value: Some(value),
            role: Some(role.into()),
            applied_index: Some(applied),
            leader_commit_index: Some(commit),
        };
        op(kind, invoke_us, invoke_us + 100)
    }

    #[test]
    fn a_read_lags_from_the_first_acknowledged_write_it_misses() {
        let mut failed = op(OpKind::CounterWrite { value: 25 }, 1_500, 1_600);
        failed.outcome = Outcome::Failed { code: 8 };
        let ops = vec![
            op(OpKind::CounterWrite { value: 10 }, 0, 1_000),
            failed,
            op(OpKind::CounterWrite { value: 30 }, 2_000, 3_000),
            op(OpKind::CounterWrite { value: 40 }, 4_000, 5_000),
            // Saw 10 at 7 ms: it misses 30, acknowledged at 3 ms.
            read(10, "follower", 7_000, 5, 9),
            // Saw 40: misses nothing.
            read(40, "learner", 7_000, 9, 9),
            // Saw 30 before 40 was acknowledged: not stale.
            read(30, "follower", 4_500, 8, 8),
            // The leader's own reads are not follower reads.
            read(10, "leader", 7_000, 9, 9),
        ];
        let lags = lags(&ops);
        let times: Vec<f64> = lags.iter().map(|lag| lag.time_ms).collect();
        assert_eq!(times, vec![4.0, 0.0, 0.0]);
        let entries: Vec<Option<u64>> = lags.iter().map(|lag| lag.entries).collect();
        assert_eq!(entries, vec![Some(4), Some(0), Some(0)]);
    }

    #[test]
    fn reads_during_and_just_after_faults_are_left_out() {
        let lag = |invoke_us: u64| Lag {
            node: 1,
            role: None,
            invoke_us,
            complete_us: invoke_us + 10,
            time_ms: 0.0,
            entries: None,
        };
        let all = vec![lag(100), lag(5_000), lag(10_500), lag(2_000_000)];
        let kept = outside(&all, &[(4_000, 10_000)]);
        assert_eq!(kept, vec![lag(100), lag(2_000_000)]);
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let values: Vec<f64> = (1..=200).map(f64::from).collect();
        assert_eq!(
            percentiles(&values),
            Some(Percentiles { median: 100.0, p99: 198.0, max: 200.0 })
        );
        assert_eq!(percentiles(&[7.0]), Some(Percentiles { median: 7.0, p99: 7.0, max: 7.0 }));
        assert_eq!(percentiles(&[]), None);
    }
}
