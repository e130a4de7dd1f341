//! Registers: a few keys, written on the leader with values never used before (the operation
//! id) and read on any node after `ha_barrier()`. The history of each key must be
//! linearizable (checked by [`crate::linearizability`]).

use std::time::Duration;

use ha_host::protocol::Statement;
use rand::Rng;
use serde_json::json;

use super::{statement, Worker};
use crate::history::{OpKind, Outcome};

pub const KEYS: i64 = 3;
/// Pause between operations: keeps each key's history small enough to check quickly.
const PACE: Duration = Duration::from_millis(60);

pub fn setup() -> Vec<Statement> {
    vec![Statement::new("CREATE TABLE reg(k INTEGER PRIMARY KEY, v INTEGER NOT NULL)")]
}

/// The read of one key after a barrier, as statements.
pub fn read_statements(key: i64) -> Vec<Statement> {
    vec![
        Statement::new("SELECT ha_barrier()"),
        statement("SELECT v FROM reg WHERE k = ?1", vec![json!(key)]),
    ]
}

pub fn operations(worker: &mut Worker) {
    while !worker.stopping() {
        let key = worker.rng.random_range(0..KEYS);
        if worker.rng.random_bool(0.5) {
            let Some(leader) = worker.leader() else {
                worker.back_off();
                continue;
            };
            let id = worker.shared.history.next_id();
            let value = i64::try_from(id).unwrap_or(i64::MAX);
            let write = vec![statement(
                "INSERT INTO reg(k, v) VALUES (?1, ?2) ON CONFLICT(k) DO UPDATE SET v = excluded.v",
                vec![json!(key), json!(value)],
            )];
            let (reply, _) = worker.operate_with_id(
                id,
                &leader,
                OpKind::RegisterWrite { key, value },
                write,
                false,
            );
            if reply.outcome != Outcome::Ok {
                worker.back_off();
            }
        } else {
            let Some(node) = worker.any_node() else {
                worker.back_off();
                continue;
            };
            let id = worker.shared.history.next_id();
            let invoke_us = worker.shared.history.now_us();
            let reply = worker.run(&node, read_statements(key), false);
            let value = reply.rows.first().and_then(|row| row.first()).and_then(|v| v.as_i64());
            worker.record(id, &node, OpKind::RegisterRead { key, value }, &reply, invoke_us);
        }
        worker.pause(PACE);
    }
}
