//! The staleness counter (`workload::staleness`): a follower read may be stale, but it must
//! see a value that was written (the initial 0, or a write not refused as "did not happen"),
//! and at the end every node holds at least the newest acknowledged value.

use std::collections::HashMap;

use super::{Findings, EXAMPLES_MAX};
use crate::history::{History, OpKind, Outcome};

/// How each value was written: every counter write's outcome, by value.
fn writes(history: &History) -> HashMap<i64, Outcome> {
    history
        .ops()
        .into_iter()
        .filter_map(|op| match op.kind {
            OpKind::CounterWrite { value } => Some((value, op.outcome)),
            _ => None,
        })
        .collect()
}

/// Why `value` cannot be on a node: never written, or refused.
fn impossible(value: i64, writes: &HashMap<i64, Outcome>) -> Option<&'static str> {
    match writes.get(&value) {
        _ if value == 0 => None,
        None => Some("never written"),
        Some(Outcome::Failed { .. }) => Some("refused as did-not-happen"),
        Some(_) => None,
    }
}

/// Every successful counter read saw a value that may have been written.
pub fn check_reads(history: &History, findings: &mut Findings) {
    let writes = writes(history);
    let bad: Vec<String> = history
        .ops()
        .iter()
        .filter_map(|op| match op.kind {
            OpKind::CounterRead { value: Some(value), .. } if op.outcome == Outcome::Ok => {
                impossible(value, &writes)
                    .map(|why| format!("op {} on n{} read {value} ({why})", op.id, op.node + 1))
            }
            _ => None,
        })
        .collect();
    if !bad.is_empty() {
        findings.violation(format!(
            "{} counter reads saw a value that was not written, e.g. {:?}",
            bad.len(),
            &bad[..bad.len().min(EXAMPLES_MAX)]
        ));
    }
}

/// A node's final counter is a value that may have been written, and no older than the newest
/// acknowledged one (values only grow).
pub fn check_final(name: &str, value: Option<i64>, history: &History, findings: &mut Findings) {
    let writes = writes(history);
    let newest_acknowledged = writes
        .iter()
        .filter(|(_, outcome)| **outcome == Outcome::Ok)
        .map(|(value, _)| *value)
        .max()
        .unwrap_or(0);
    match value {
        None => findings.violation(format!("{name}: the counter row is missing")),
        Some(value) if value < newest_acknowledged => findings.violation(format!(
            "{name}: final counter {value} is older than the acknowledged {newest_acknowledged}"
        )),
        Some(value) => {
            if let Some(why) = impossible(value, &writes) {
                findings.violation(format!("{name}: final counter {value} was {why}"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Op;

    fn record(history: &History, kind: OpKind, outcome: Outcome) {
        history.record(Op {
            id: 1,
            worker: "t".into(),
            node: 0,
            invoke_us: 0,
            complete_us: 1,
            kind,
            outcome,
            message: None,
        });
    }

    #[test]
    fn reads_and_final_values_must_have_been_written() {
        let history = History::new();
        record(&history, OpKind::CounterWrite { value: 5 }, Outcome::Ok);
        record(&history, OpKind::CounterWrite { value: 6 }, Outcome::Failed { code: 8 });
        record(
            &history,
            OpKind::CounterWrite { value: 7 },
            Outcome::Unknown { reason: "timeout".into() },
        );
        let read = |value| OpKind::CounterRead {
            value: Some(value),
            role: None,
            applied_index: None,
            leader_commit_index: None,
        };
        for value in [0, 5, 7] {
            record(&history, read(value), Outcome::Ok);
        }
        let mut findings = Findings::default();
        check_reads(&history, &mut findings);
        assert!(findings.violations.is_empty(), "{:?}", findings.violations);
        record(&history, read(6), Outcome::Ok);
        record(&history, read(8), Outcome::Ok);
        check_reads(&history, &mut findings);
        assert_eq!(findings.violations.len(), 1);
        assert!(findings.violations[0].starts_with("2 counter reads"), "{:?}", findings.violations);

        let mut findings = Findings::default();
        for ok in [Some(5), Some(7)] {
            check_final("n1", ok, &history, &mut findings);
        }
        assert!(findings.violations.is_empty(), "{:?}", findings.violations);
        for bad in [None, Some(0), Some(6), Some(9)] {
            check_final("n1", bad, &history, &mut findings);
        }
        assert_eq!(findings.violations.len(), 4, "{:?}", findings.violations);
    }
}
