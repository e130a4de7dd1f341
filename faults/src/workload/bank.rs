//! Bank: transfers between accounts in `BEGIN IMMEDIATE`..`COMMIT` on the leader, and reads of
//! the total on every node (followers too, without a barrier). Every successful read must see
//! the initial total over all accounts: a transaction is applied whole or not at all,
//! everywhere.

use std::time::Duration;

use ha_host::protocol::Statement;
use rand::Rng;
use serde_json::json;

use super::{statement, Worker};
use crate::history::{OpKind, Outcome};

pub const ACCOUNTS: i64 = 5;
pub const INITIAL_BALANCE: i64 = 100;
/// The total every read must see.
pub const TOTAL: i64 = ACCOUNTS * INITIAL_BALANCE;
/// Pause between operations of one worker.
const PACE: Duration = Duration::from_millis(10);

/// Creates the accounts (run once, on the first node, before the others join).
pub fn setup() -> Vec<Statement> {
    let mut statements = vec![Statement::new(
        "CREATE TABLE accounts(id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)",
    )];
    for id in 0..ACCOUNTS {
        statements.push(statement(
            "INSERT INTO accounts(id, balance) VALUES (?1, ?2)",
            vec![json!(id), json!(INITIAL_BALANCE)],
        ));
    }
    statements
}

/// Transfers on the leader until told to stop.
pub fn transfers(worker: &mut Worker) {
    while !worker.stopping() {
        let Some(leader) = worker.leader() else {
            worker.back_off();
            continue;
        };
        let from = worker.rng.random_range(0..ACCOUNTS);
        let to = (from + worker.rng.random_range(1..ACCOUNTS)) % ACCOUNTS;
        let amount = worker.rng.random_range(1..=10);
        let statements = vec![
            statement(
                "UPDATE accounts SET balance = balance - ?1 WHERE id = ?2",
                vec![json!(amount), json!(from)],
            ),
            statement(
                "UPDATE accounts SET balance = balance + ?1 WHERE id = ?2",
                vec![json!(amount), json!(to)],
            ),
        ];
        let (reply, _) =
            worker.operate(&leader, OpKind::Transfer { from, to, amount }, statements, true);
        if reply.outcome != Outcome::Ok {
            worker.back_off();
        }
        worker.pause(PACE);
    }
}

/// Reads the total on a random node until told to stop.
pub fn reads(worker: &mut Worker) {
    while !worker.stopping() {
        let Some(node) = worker.any_node() else {
            worker.back_off();
            continue;
        };
        let id = worker.shared.history.next_id();
        let read = vec![Statement::new("SELECT sum(balance), count(*) FROM accounts")];
        let invoke_us = worker.shared.history.now_us();
        let reply = worker.run(&node, read, false);
        let row = reply.rows.first();
        let total = row.and_then(|row| row.first()).and_then(|v| v.as_i64());
        let accounts = row.and_then(|row| row.get(1)).and_then(|v| v.as_i64());
        worker.record(id, &node, OpKind::ReadTotal { total, accounts }, &reply, invoke_us);
        worker.pause(PACE);
    }
}
