//! Large transactions: now and then one transaction of a few MiB of blob data on the leader.
//! Only the newest two rows keep their data (older ones are set to NULL in the same
//! transaction), so a long soak does not fill the disk; every acknowledged row must exist at
//! the end with its recorded size.

use std::time::{Duration, Instant};

use ha_host::protocol::Statement;
use rand::Rng;
use serde_json::json;

use super::{statement, Worker};
use crate::history::{OpKind, Outcome};

/// Blob size range of one transaction.
const BYTES_MIN: i64 = 1 << 20;
const BYTES_MAX: i64 = 4 << 20;
/// Pause between large transactions.
const INTERVAL: Duration = Duration::from_secs(6);

pub fn setup() -> Vec<Statement> {
    vec![Statement::new(
        "CREATE TABLE big(id INTEGER PRIMARY KEY, bytes INTEGER NOT NULL, data BLOB)",
    )]
}

pub fn transactions(worker: &mut Worker) {
    let mut next = Instant::now() + INTERVAL;
    while !worker.stopping() {
        if Instant::now() < next {
            worker.pause(Duration::from_millis(100));
            continue;
        }
        let Some(leader) = worker.leader() else {
            worker.back_off();
            continue;
        };
        let id = worker.shared.history.next_id();
        let key = i64::try_from(id).unwrap_or(i64::MAX);
        let bytes = worker.rng.random_range(BYTES_MIN..=BYTES_MAX);
        let statements = vec![
            Statement::new("UPDATE big SET data = NULL WHERE data IS NOT NULL AND id NOT IN (SELECT id FROM big ORDER BY id DESC LIMIT 1)"),
            statement("INSERT INTO big(id, bytes, data) VALUES (?1, ?2, randomblob(?2))", vec![json!(key), json!(bytes)]),
        ];
        let (reply, _) =
            worker.operate_with_id(id, &leader, OpKind::Large { key, bytes }, statements, true);
        next = Instant::now()
            + if reply.outcome == Outcome::Ok { INTERVAL } else { Duration::from_millis(500) };
    }
}
