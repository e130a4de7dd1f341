//! Unique inserts: each insert on the leader writes a key never used before. At the end every
//! acknowledged key must be on every node, no key that failed with "did not happen" may be,
//! and no key that was never attempted.

use std::time::Duration;

use ha_host::protocol::Statement;
use serde_json::json;

use super::{statement, Worker};
use crate::history::{OpKind, Outcome};

const PACE: Duration = Duration::from_millis(10);

pub fn setup() -> Vec<Statement> {
    // `tag`: text the nemesis's own writes carry, to find their frames in a WAL.
    vec![Statement::new("CREATE TABLE uniq(k INTEGER PRIMARY KEY, tag TEXT)")]
}

pub fn inserts(worker: &mut Worker) {
    while !worker.stopping() {
        let Some(leader) = worker.leader() else {
            worker.back_off();
            continue;
        };
        let id = worker.shared.history.next_id();
        let key = i64::try_from(id).unwrap_or(i64::MAX);
        let insert = vec![statement("INSERT INTO uniq(k) VALUES (?1)", vec![json!(key)])];
        let (reply, _) = worker.operate_with_id(id, &leader, OpKind::Insert { key }, insert, false);
        if reply.outcome != Outcome::Ok {
            worker.back_off();
        }
        worker.pause(PACE);
    }
}
