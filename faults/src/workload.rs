//! The workloads' shared machinery: a worker thread with its own host connections, that finds
//! the leader, runs one operation at a time with a deadline, classifies how it ended and
//! records it in the history.
//!
//! Classification (the guarantee under test is that these codes tell the truth):
//! `SQLITE_READONLY` (8: not the leader / node stopped), `SQLITE_READONLY_CANTLOCK` (520),
//! `SQLITE_IOERR_WRITE` (778) and `SQLITE_BUSY` (5, local locking) are "did not happen";
//! `SQLITE_IOERR_COMMIT_ATOMIC` (7690), any other error, a timeout or a lost connection are
//! "unknown". The checks then hold "did not happen" to its word.

pub mod bank;
pub mod large;
pub mod register;
pub mod staleness;
pub mod unique;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ha_host::process::{Client, HostError};
use ha_host::protocol::{Request, Statement};
use rand::rngs::StdRng;
use rand::Rng;
use serde_json::Value;

use crate::cluster::{Cluster, Endpoint, Slot};
use crate::history::{History, Op, OpKind, Outcome};
use crate::write_gate::WriteGate;

/// Deadline of one operation's request: above the node's commit deadline (10 s plus a
/// size-scaled part) and `ha_barrier`'s 15 s, so the node's own answer normally comes first.
pub const OP_DEADLINE: Duration = Duration::from_secs(40);
/// Pause after an operation that failed, before trying again (possibly elsewhere).
const RETRY_PAUSE: Duration = Duration::from_millis(50);

/// Result codes that promise the write did not happen.
const DID_NOT_HAPPEN: [i32; 4] = [5, 8, 520, 778];

/// What one request returned: each statement's rows.
pub type Rows = Vec<Vec<Value>>;

/// How an operation's request ended.
pub struct Reply {
    pub outcome: Outcome,
    pub message: Option<String>,
    /// The rows of the last statement, when it succeeded.
    pub rows: Rows,
}

/// State shared by every worker.
pub struct Shared {
    pub cluster: Arc<Cluster>,
    pub history: Arc<History>,
    pub stop: AtomicBool,
    /// Every write passes it; the nemesis may hold it for a moment.
    pub writes: Arc<WriteGate>,
}

/// One workload thread's context.
pub struct Worker {
    pub name: String,
    pub shared: Arc<Shared>,
    pub rng: StdRng,
    clients: HashMap<(Slot, SocketAddr), Client>,
    /// The leader this worker believes in.
    leader: Option<Slot>,
    leader_checked: Option<Instant>,
}

impl Worker {
    pub fn new(name: &str, shared: Arc<Shared>, rng: StdRng) -> Self {
        Worker {
            name: name.to_owned(),
            shared,
            rng,
            clients: HashMap::new(),
            leader: None,
            leader_checked: None,
        }
    }

    pub fn stopping(&self) -> bool {
        self.shared.stop.load(Ordering::Relaxed)
    }

    pub fn pause(&self, duration: Duration) {
        std::thread::sleep(duration);
    }

    /// The endpoint of the believed leader, looking it up when unknown (at most every 200 ms).
    pub fn leader(&mut self) -> Option<Endpoint> {
        let endpoints = self.shared.cluster.endpoints();
        if let Some(leader) = self.leader {
            if let Some(endpoint) = endpoints.iter().find(|e| e.slot == leader) {
                return Some(endpoint.clone());
            }
        }
        if self.leader_checked.is_some_and(|at| at.elapsed() < Duration::from_millis(200)) {
            return None;
        }
        self.leader_checked = Some(Instant::now());
        self.leader = self.shared.cluster.leader();
        let leader = self.leader?;
        endpoints.into_iter().find(|e| e.slot == leader)
    }

    /// Forget the leader (after a refusal or an unknown outcome there).
    pub fn lost_leader(&mut self) {
        self.leader = None;
    }

    /// Any running node, chosen at random.
    pub fn any_node(&mut self) -> Option<Endpoint> {
        let endpoints = self.shared.cluster.endpoints();
        if endpoints.is_empty() {
            return None;
        }
        let index = self.rng.random_range(0..endpoints.len());
        endpoints.into_iter().nth(index)
    }

    /// Runs `statements` on `endpoint` (in one transaction if `tx`) and classifies the result.
    pub fn run(&mut self, endpoint: &Endpoint, statements: Vec<Statement>, tx: bool) -> Reply {
        let key = (endpoint.slot, endpoint.control_addr);
        let client = match self.clients.remove(&key) {
            Some(client) => Ok(client),
            None => Client::connect(&format!("n{}", endpoint.slot + 1), endpoint.control_addr),
        };
        let mut client = match client {
            Ok(client) => client,
            Err(error) => {
                return Reply {
                    outcome: Outcome::Failed { code: -1 },
                    message: Some(error.to_string()),
                    rows: Vec::new(),
                }
            }
        };
        let request = Request::Exec { conn: self.name.clone(), statements, tx };
        match client.request(&request, OP_DEADLINE) {
            Ok(answer) => {
                self.clients.insert(key, client);
                let rows = answer["results"]
                    .as_array()
                    .and_then(|results| results.last())
                    .and_then(|last| last["rows"].as_array())
                    .map(|rows| {
                        rows.iter().map(|row| row.as_array().cloned().unwrap_or_default()).collect()
                    })
                    .unwrap_or_default();
                Reply { outcome: Outcome::Ok, message: None, rows }
            }
            Err(error) => {
                let outcome = classify(&error);
                // After an SQL error the connection is in step; after anything else drop it.
                if error.sql().is_some() {
                    self.clients.insert(key, client);
                }
                Reply { outcome, message: Some(error.to_string()), rows: Vec::new() }
            }
        }
    }

    /// Runs one operation and records it; returns the reply for the caller to read rows.
    pub fn operate(
        &mut self,
        endpoint: &Endpoint,
        kind: OpKind,
        statements: Vec<Statement>,
        tx: bool,
    ) -> (Reply, OpKind) {
        let id = self.shared.history.next_id();
        self.operate_with_id(id, endpoint, kind, statements, tx)
    }

    /// As [`Worker::operate`] with an id taken beforehand (when the id is the written value).
    pub fn operate_with_id(
        &mut self,
        id: u64,
        endpoint: &Endpoint,
        kind: OpKind,
        statements: Vec<Statement>,
        tx: bool,
    ) -> (Reply, OpKind) {
        let writes = Arc::clone(&self.shared.writes);
        let _pass = kind.is_write().then(|| writes.enter());
        let invoke_us = self.shared.history.now_us();
        let reply = self.run(endpoint, statements, tx);
        if reply.outcome != Outcome::Ok && kind.is_write() {
            self.lost_leader();
        }
        self.record(id, endpoint, kind.clone(), &reply, invoke_us);
        (reply, kind)
    }

    /// Records an operation that completed now.
    pub fn record(
        &self,
        id: u64,
        endpoint: &Endpoint,
        kind: OpKind,
        reply: &Reply,
        invoke_us: u64,
    ) {
        self.shared.history.record(Op {
            id,
            worker: self.name.clone(),
            node: endpoint.slot,
            invoke_us,
            complete_us: self.shared.history.now_us(),
            kind,
            outcome: reply.outcome.clone(),
            message: reply.message.clone(),
        });
    }

    /// Waits a little after a failure, to give elections and restarts time.
    pub fn back_off(&self) {
        std::thread::sleep(RETRY_PAUSE);
    }
}

/// How an error ended an operation.
pub fn classify(error: &HostError) -> Outcome {
    match error.sql() {
        Some(sql) => match (sql.code, sql.extended) {
            (Some(code), Some(extended)) if DID_NOT_HAPPEN.contains(&extended) || code == 5 => {
                Outcome::Failed { code: i64::from(extended) }
            }
            (_, Some(extended)) => Outcome::Unknown { reason: format!("code {extended}") },
            _ => Outcome::Unknown { reason: "host error".into() },
        },
        None => Outcome::Unknown { reason: "no answer".into() },
    }
}

/// A statement with parameters.
pub fn statement(sql: &str, params: Vec<Value>) -> Statement {
    Statement::with_params(sql, params)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ha_host::protocol::SqlError;

    fn sql_error(code: i32, extended: i32) -> HostError {
        HostError::Sql {
            name: "n1".into(),
            error: SqlError { code: Some(code), extended: Some(extended), message: String::new() },
        }
    }

    #[test]
    fn error_codes_map_to_outcomes() {
        // Not the leader, another owner, refused by raft, busy: did not happen.
        for (code, extended) in [(8, 8), (8, 520), (10, 778), (5, 5), (5, 517)] {
            assert_eq!(
                classify(&sql_error(code, extended)),
                Outcome::Failed { code: i64::from(extended) },
                "{extended}"
            );
        }
        // Outcome unknown, and anything unexpected, may have happened.
        assert_eq!(classify(&sql_error(10, 7690)), Outcome::Unknown { reason: "code 7690".into() });
        assert_eq!(classify(&sql_error(1, 1)), Outcome::Unknown { reason: "code 1".into() });
        let lost = HostError::Io { name: "n1".into(), detail: "connection closed".into() };
        assert_eq!(classify(&lost), Outcome::Unknown { reason: "no answer".into() });
        let late = HostError::Timeout { name: "n1".into(), deadline: OP_DEADLINE };
        assert_eq!(classify(&late), Outcome::Unknown { reason: "no answer".into() });
    }
}
