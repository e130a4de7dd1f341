//! Staleness: one thread sets a counter on the leader to ever larger values (the operation id),
//! another reads it on followers and the learner without a barrier, together with that node's
//! role and applied index, right after asking the leader for its commit index. The figures
//! (`crate::staleness`) say how far behind the newest acknowledged write such a read is, in
//! time and in log entries; the checks hold that a read never sees a value that was not
//! written.

use std::time::Duration;

use ha_host::protocol::Statement;
use rand::seq::IndexedRandom;
use serde_json::{json, Value};

use super::{statement, Worker};
use crate::history::{OpKind, Outcome};

/// Pause between writes, and between reads.
const WRITE_PACE: Duration = Duration::from_millis(20);
const READ_PACE: Duration = Duration::from_millis(40);

pub fn setup() -> Vec<Statement> {
    vec![
        Statement::new("CREATE TABLE counter(id INTEGER PRIMARY KEY, n INTEGER NOT NULL)"),
        Statement::new("INSERT INTO counter(id, n) VALUES (0, 0)"),
    ]
}

/// The counter's value on a node.
pub fn read_statement() -> Statement {
    Statement::new("SELECT n FROM counter WHERE id = 0")
}

pub fn writes(worker: &mut Worker) {
    while !worker.stopping() {
        let Some(leader) = worker.leader() else {
            worker.back_off();
            continue;
        };
        // One writer, ids only grow: each value is larger than every earlier one.
        let id = worker.shared.history.next_id();
        let value = i64::try_from(id).unwrap_or(i64::MAX);
        let write = vec![statement("UPDATE counter SET n = ?1 WHERE id = 0", vec![json!(value)])];
        let (reply, _) =
            worker.operate_with_id(id, &leader, OpKind::CounterWrite { value }, write, false);
        if reply.outcome != Outcome::Ok {
            worker.back_off();
        }
        worker.pause(WRITE_PACE);
    }
}

pub fn reads(worker: &mut Worker) {
    while !worker.stopping() {
        let Some(leader) = worker.leader() else {
            worker.back_off();
            continue;
        };
        let others: Vec<_> = worker
            .shared
            .cluster
            .endpoints()
            .into_iter()
            .filter(|e| e.slot != leader.slot)
            .collect();
        let Some(node) = others.choose(&mut worker.rng).cloned() else {
            worker.back_off();
            continue;
        };
        // Asked first, so every entry it counts was committed before the read began.
        let leader_commit_index = worker
            .shared
            .cluster
            .status(leader.slot)
            .ok()
            .and_then(|status| status["commit_index"].as_u64());
        let id = worker.shared.history.next_id();
        let invoke_us = worker.shared.history.now_us();
        let read = vec![Statement::new("SELECT n, ha_status() FROM counter WHERE id = 0")];
        let reply = worker.run(&node, read, false);
        let row = reply.rows.first();
        let value = row.and_then(|row| row.first()).and_then(Value::as_i64);
        let status: Value = row
            .and_then(|row| row.get(1))
            .and_then(Value::as_str)
            .and_then(|text| serde_json::from_str(text).ok())
            .unwrap_or_default();
        let kind = OpKind::CounterRead {
            value,
            role: status["role"].as_str().map(str::to_owned),
            applied_index: status["applied_index"].as_u64(),
            leader_commit_index,
        };
        worker.record(id, &node, kind, &reply, invoke_us);
        worker.pause(READ_PACE);
    }
}
