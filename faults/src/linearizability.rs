//! Linearizability checker for one read/write register (one key), in the style of Wing & Gong
//! with Lowe's memoization: a depth-first search for a total order of the operations that
//! respects real time (an operation that completed before another was invoked comes first)
//! and the register's sequential meaning (a read returns the latest write before it).
//!
//! Outcomes: an acknowledged operation must appear in the order. A write whose outcome is
//! unknown (the client gave up waiting) may take effect at any moment after its invocation, or
//! never: it has no completion time and the search may leave it out. Operations that failed
//! with "did not happen", and reads that failed, are not given to the checker at all.
//!
//! Keys are independent (P-compositionality), so callers check one key at a time; the search
//! state is one bitset over that key's operations plus the register's value.

use std::collections::HashSet;

/// A register value; `None` is "never written" (the row does not exist).
pub type Value = Option<i64>;

/// What one operation did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegisterOp {
    /// Set the register to the value.
    Write(i64),
    /// Returned this value.
    Read(Value),
}

/// One operation of one key, with its real-time interval in microseconds since the run began.
#[derive(Clone, Debug)]
pub struct RegisterEntry {
    /// The history's operation id, for reports.
    pub id: u64,
    pub op: RegisterOp,
    pub invoke_us: u64,
    /// `None`: outcome unknown (only meaningful for writes; the caller drops unknown reads).
    pub complete_us: Option<u64>,
}

/// The checker's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Linearizable,
    /// No valid order exists. `stuck_ids` are the acknowledged operations the deepest search
    /// state could not place next (the place to look in the history).
    Violation {
        stuck_ids: Vec<u64>,
    },
    /// The search used its whole budget of states without an answer.
    Inconclusive {
        states: u64,
    },
}

/// Checks one key's history starting from `initial`, exploring at most `states_max` states.
pub fn check_register(entries: &[RegisterEntry], initial: Value, states_max: u64) -> Verdict {
    let mut ops = prune_unobserved_unknown_writes(entries);
    ops.sort_by_key(|entry| entry.invoke_us);
    Search::new(&ops, initial, states_max).run()
}

/// An unknown-outcome write whose value no read returned can always be left out: in any valid
/// order containing it, no read sits between it and the next write, so dropping it keeps the
/// order valid. Dropping them keeps the search from trying every subset of them.
fn prune_unobserved_unknown_writes(entries: &[RegisterEntry]) -> Vec<RegisterEntry> {
    let read_values: HashSet<i64> = entries
        .iter()
        .filter_map(|entry| match entry.op {
            RegisterOp::Read(Some(value)) => Some(value),
            _ => None,
        })
        .collect();
    entries
        .iter()
        .filter(|entry| match entry.op {
            RegisterOp::Write(value) => entry.complete_us.is_some() || read_values.contains(&value),
            RegisterOp::Read(_) => entry.complete_us.is_some(),
        })
        .cloned()
        .collect()
}

struct Search<'a> {
    ops: &'a [RegisterEntry],
    initial: Value,
    states_max: u64,
    /// States already explored (and found to lead nowhere).
    seen: HashSet<(Vec<u64>, Value)>,
    /// Acknowledged operations that must all be placed.
    acknowledged_total: usize,
    /// The state that placed the most acknowledged operations, for the violation report.
    deepest: (usize, Vec<u64>),
}

/// One level of the depth-first search: a state and the candidates left to try from it.
struct Frame {
    done: Vec<u64>,
    value: Value,
    acknowledged_done: usize,
    candidates: Vec<usize>,
    next: usize,
}

impl<'a> Search<'a> {
    fn new(ops: &'a [RegisterEntry], initial: Value, states_max: u64) -> Self {
        let acknowledged_total = ops.iter().filter(|op| op.complete_us.is_some()).count();
        Search {
            ops,
            initial,
            states_max,
            seen: HashSet::new(),
            acknowledged_total,
            deepest: (0, vec![0; ops.len().div_ceil(64)]),
        }
    }

    fn run(mut self) -> Verdict {
        let done = vec![0u64; self.ops.len().div_ceil(64)];
        let first = self.frame(done, self.initial, 0);
        let mut stack = vec![first];
        while let Some(top) = stack.last_mut() {
            if top.acknowledged_done == self.acknowledged_total {
                return Verdict::Linearizable;
            }
            let Some(&index) = top.candidates.get(top.next) else {
                stack.pop();
                continue;
            };
            top.next += 1;
            let op = &self.ops[index];
            let value = match op.op {
                RegisterOp::Write(value) => Some(value),
                RegisterOp::Read(read) if read == top.value => top.value,
                RegisterOp::Read(_) => continue,
            };
            let mut done = top.done.clone();
            done[index / 64] |= 1 << (index % 64);
            let acknowledged_done = top.acknowledged_done + usize::from(op.complete_us.is_some());
            if !self.seen.insert((done.clone(), value)) {
                continue;
            }
            if self.seen.len() as u64 > self.states_max {
                return Verdict::Inconclusive { states: self.seen.len() as u64 };
            }
            if acknowledged_done > self.deepest.0 {
                self.deepest = (acknowledged_done, done.clone());
            }
            let frame = self.frame(done, value, acknowledged_done);
            stack.push(frame);
        }
        Verdict::Violation { stuck_ids: self.stuck_after_deepest() }
    }

    fn is_done(done: &[u64], index: usize) -> bool {
        done[index / 64] & (1 << (index % 64)) != 0
    }

    /// The operations that may come next from `done`: not yet placed and invoked before the
    /// earliest completion among the acknowledged operations not yet placed (that one must
    /// precede everything invoked after it completed).
    fn frame(&self, done: Vec<u64>, value: Value, acknowledged_done: usize) -> Frame {
        let mut earliest_completion = u64::MAX;
        let mut candidates = Vec::new();
        for (index, op) in self.ops.iter().enumerate() {
            if Self::is_done(&done, index) {
                continue;
            }
            // Sorted by invocation: nothing from here on can be a candidate or lower the bound.
            if op.invoke_us > earliest_completion {
                break;
            }
            candidates.push(index);
            if let Some(completion) = op.complete_us {
                earliest_completion = earliest_completion.min(completion);
            }
        }
        // The bound may have dropped after earlier candidates were pushed.
        candidates.retain(|&index| self.ops[index].invoke_us <= earliest_completion);
        Frame { done, value, acknowledged_done, candidates, next: 0 }
    }

    /// The acknowledged operations that could not be placed after the deepest state reached.
    fn stuck_after_deepest(&self) -> Vec<u64> {
        let done = &self.deepest.1;
        let frame = self.frame(done.clone(), None, self.deepest.0);
        frame
            .candidates
            .iter()
            .map(|&index| &self.ops[index])
            .filter(|op| op.complete_us.is_some())
            .map(|op| op.id)
            .take(8)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(id: u64, value: i64, invoke_us: u64, complete_us: Option<u64>) -> RegisterEntry {
        RegisterEntry { id, op: RegisterOp::Write(value), invoke_us, complete_us }
    }

    fn read(id: u64, value: Value, invoke_us: u64, complete_us: u64) -> RegisterEntry {
        RegisterEntry { id, op: RegisterOp::Read(value), invoke_us, complete_us: Some(complete_us) }
    }

    const BUDGET: u64 = 1_000_000;

    #[test]
    fn sequential_history_is_linearizable() {
        let history = [
            read(1, None, 0, 1),
            write(2, 5, 2, Some(3)),
            read(3, Some(5), 4, 5),
            write(4, 6, 6, Some(7)),
            read(5, Some(6), 8, 9),
        ];
        assert_eq!(check_register(&history, None, BUDGET), Verdict::Linearizable);
    }

    #[test]
    fn stale_read_after_acknowledged_write_is_a_violation() {
        let history =
            [write(1, 5, 0, Some(10)), write(2, 6, 11, Some(20)), read(3, Some(5), 21, 30)];
        let verdict = check_register(&history, None, BUDGET);
        assert!(matches!(verdict, Verdict::Violation { .. }), "{verdict:?}");
    }

    #[test]
    fn concurrent_read_may_see_old_or_new_value() {
        // The write overlaps both reads: one sees it, the other not yet, in either order.
        let history = [write(1, 5, 0, Some(100)), read(2, None, 10, 20), read(3, Some(5), 30, 40)];
        assert_eq!(check_register(&history, None, BUDGET), Verdict::Linearizable);
    }

    #[test]
    fn reads_may_not_go_back_in_time() {
        // Both reads overlap the write, but the second read starts after the first one saw the
        // new value, so it must see it too.
        let history = [write(1, 5, 0, Some(100)), read(2, Some(5), 10, 20), read(3, None, 30, 40)];
        let verdict = check_register(&history, None, BUDGET);
        assert_eq!(verdict, Verdict::Violation { stuck_ids: vec![3] });
    }

    #[test]
    fn unknown_write_may_take_effect_long_after_its_invocation() {
        // Write 7 timed out at 50 but was committed later: reads at 60 and 200 see it.
        let history = [write(1, 7, 0, None), read(2, None, 60, 70), read(3, Some(7), 200, 210)];
        assert_eq!(check_register(&history, None, BUDGET), Verdict::Linearizable);
    }

    #[test]
    fn unknown_write_may_never_take_effect() {
        let history =
            [write(1, 7, 0, None), write(2, 8, 100, Some(110)), read(3, Some(8), 200, 210)];
        assert_eq!(check_register(&history, None, BUDGET), Verdict::Linearizable);
    }

    #[test]
    fn value_never_written_is_a_violation() {
        let history = [write(1, 7, 0, Some(10)), read(2, Some(9), 20, 30)];
        assert!(matches!(check_register(&history, None, BUDGET), Verdict::Violation { .. }));
    }

    #[test]
    fn unknown_write_cannot_be_seen_before_its_invocation() {
        let history = [read(1, Some(7), 0, 10), write(2, 7, 20, None)];
        assert!(matches!(check_register(&history, None, BUDGET), Verdict::Violation { .. }));
    }

    #[test]
    fn lost_acknowledged_write_is_a_violation() {
        // Write 8 was acknowledged after write 7; a later read sees 7 again.
        let history = [
            write(1, 7, 0, Some(10)),
            read(2, Some(7), 11, 12),
            write(3, 8, 20, Some(30)),
            read(4, Some(8), 31, 32),
            read(5, Some(7), 40, 50),
        ];
        assert!(matches!(check_register(&history, None, BUDGET), Verdict::Violation { .. }));
    }

    #[test]
    fn long_concurrent_history_checks_quickly() {
        // 4 clients, 2,000 operations, overlapping in pairs; a correct register's history.
        let mut history = Vec::new();
        let mut value = None;
        for step in 0..2_000u64 {
            let start = step * 10;
            let entry = if step % 3 == 0 {
                value = Some(step as i64);
                write(step, step as i64, start, Some(start + 15))
            } else {
                // Linearized at start + 1: sees the value the last write set, even if that
                // write is still in flight (its point was earlier).
                read(step, value, start, start + 15)
            };
            history.push(entry);
        }
        assert_eq!(check_register(&history, None, 200_000), Verdict::Linearizable);
    }

    #[test]
    fn budget_exhaustion_is_reported_not_passed() {
        // Twelve overlapping writes and an impossible read: proving the violation needs many
        // states, more than the budget of ten.
        let mut history: Vec<_> = (0..12).map(|id| write(id, id as i64, 0, Some(100))).collect();
        history.push(read(99, Some(1_000), 200, 210));
        assert_eq!(check_register(&history, None, 10), Verdict::Inconclusive { states: 11 });
    }
}
