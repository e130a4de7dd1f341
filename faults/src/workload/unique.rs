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
    vec![Statement::new("CREATE TABLE uniq(k INTEGER PRIMARY KEY, tag TEXT)")]
}

/// The text each insert of `key` also writes: unique, so the nemesis can find the frames of a
/// given insert in a WAL file.
pub fn tag(key: i64) -> String {
    format!("<unique {key}>")
}

/// The statement that inserts `key`.
pub fn insert(key: i64) -> Statement {
    statement("INSERT INTO uniq(k, tag) VALUES (?1, ?2)", vec![json!(key), json!(tag(key))])
}

pub fn inserts(worker: &mut Worker) {
    while !worker.stopping() {
        let Some(leader) = worker.leader() else {
            worker.back_off();
            continue;
        };
        let id = worker.shared.history.next_id();
        let key = i64::try_from(id).unwrap_or(i64::MAX);
        let (reply, _) =
            worker.operate_with_id(id, &leader, OpKind::Insert { key }, vec![insert(key)], false);
        if reply.outcome != Outcome::Ok {
            worker.back_off();
        }
        worker.pause(PACE);
    }
}
