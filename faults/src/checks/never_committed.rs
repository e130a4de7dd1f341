//! Writes that can never have been committed (sent to a leader cut off from every other
//! member, which was killed before it could reach them) must not be on any node, whatever
//! outcome their clients saw: frames SQLite wrote for them, and entries the old leader
//! proposed, must never come back.

use std::collections::BTreeSet;

use super::{Findings, EXAMPLES_MAX};
use crate::history::{History, OpKind, Outcome};
use crate::linearizability::{RegisterEntry, RegisterOp};

/// The unique insert and large transaction keys among `never_committed` present on a node.
pub fn check_keys(
    name: &str,
    unique: &BTreeSet<i64>,
    large: &BTreeSet<i64>,
    never_committed: &[OpKind],
    findings: &mut Findings,
) {
    let back: Vec<String> = never_committed
        .iter()
        .filter_map(|kind| match kind {
            OpKind::Insert { key } if unique.contains(key) => Some(format!("unique insert {key}")),
            OpKind::Large { key, .. } if large.contains(key) => {
                Some(format!("large transaction {key}"))
            }
            _ => None,
        })
        .collect();
    if !back.is_empty() {
        findings.violation(format!(
            "{name}: {} write(s) sent to an isolated leader, which could never commit them, are present, e.g. {:?}",
            back.len(),
            &back[..back.len().min(EXAMPLES_MAX)]
        ));
    }
}

/// No register read (during the run or at the end) returned a value only such a write wrote.
pub fn check_register_reads(
    history: &History,
    final_reads: &[(i64, RegisterEntry)],
    never_committed: &[OpKind],
    findings: &mut Findings,
) {
    let values: BTreeSet<(i64, i64)> = never_committed
        .iter()
        .filter_map(|kind| match kind {
            OpKind::RegisterWrite { key, value } => Some((*key, *value)),
            _ => None,
        })
        .collect();
    let mut seen: Vec<String> = history
        .ops()
        .iter()
        .filter_map(|op| match op.kind {
            OpKind::RegisterRead { key, value: Some(value) }
                if op.outcome == Outcome::Ok && values.contains(&(key, value)) =>
            {
                Some(format!("op {} on n{} read key {key} = {value}", op.id, op.node + 1))
            }
            _ => None,
        })
        .collect();
    for (key, entry) in final_reads {
        if let RegisterOp::Read(Some(value)) = entry.op {
            if values.contains(&(*key, value)) {
                seen.push(format!("a final read of key {key} = {value}"));
            }
        }
    }
    if !seen.is_empty() {
        findings.violation(format!(
            "{} register read(s) saw a value only a write to an isolated leader wrote, e.g. {:?}",
            seen.len(),
            &seen[..seen.len().min(EXAMPLES_MAX)]
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_of_an_isolated_leader_found_anywhere_is_a_violation() {
        let orphans = [
            OpKind::Insert { key: 7 },
            OpKind::Large { key: 9, bytes: 1 },
            OpKind::RegisterWrite { key: 0, value: 11 },
        ];
        let mut findings = Findings::default();
        check_keys("n2", &[1, 2, 3].into(), &[4].into(), &orphans, &mut findings);
        assert!(findings.violations.is_empty());
        check_keys("n2", &[1, 7].into(), &[9].into(), &orphans, &mut findings);
        assert_eq!(findings.violations.len(), 1);
        assert!(findings.violations[0].contains("2 write(s)"), "{:?}", findings.violations);

        let history = History::new();
        let read = |value| RegisterEntry {
            id: 0,
            op: RegisterOp::Read(Some(value)),
            invoke_us: 0,
            complete_us: Some(1),
        };
        let mut findings = Findings::default();
        check_register_reads(&history, &[(0, read(10)), (1, read(11))], &orphans, &mut findings);
        assert!(findings.violations.is_empty(), "key 1 = 11 is another key's value");
        check_register_reads(&history, &[(0, read(11))], &orphans, &mut findings);
        assert_eq!(findings.violations.len(), 1);
    }
}
