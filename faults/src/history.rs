//! The run's history: every operation the workloads issued, with its invocation and
//! completion times and outcome, and every fault the nemesis injected. The checks read it at
//! the end; on a violation it is written to the run directory as JSON lines.
//!
//! Times are microseconds since the run began, from one monotonic clock shared by all threads.

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use serde::Serialize;

use crate::NodeId;

/// How an operation ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Acknowledged: it happened.
    Ok,
    /// Failed with a code that says it did not happen (`code` is the SQLite result code).
    Failed { code: i64 },
    /// May or may not have happened (outcome unknown, a timeout, the node died mid-request).
    Unknown { reason: String },
}

/// What an operation was, and what a read returned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OpKind {
    /// Move `amount` from one account to another, in one transaction on the leader.
    Transfer { from: i64, to: i64, amount: i64 },
    /// The sum and count of all balances read on `node` (local read, followers too).
    ReadTotal { total: Option<i64>, accounts: Option<i64> },
    /// Insert a row with a unique key.
    Insert { key: i64 },
    /// Set register `key` to `value` on the leader.
    RegisterWrite { key: i64, value: i64 },
    /// After `ha_barrier()`, the value of register `key` (None: never written).
    RegisterRead { key: i64, value: Option<i64> },
    /// One transaction of `bytes` of blob data, key `key`.
    Large { key: i64, bytes: i64 },
    /// Set the staleness counter to `value` (larger than every earlier one) on the leader.
    CounterWrite { value: i64 },
    /// The counter read on a follower or learner without a barrier, with that node's role and
    /// applied index (in the same statement) and the leader's commit index just before.
    CounterRead {
        value: Option<i64>,
        role: Option<String>,
        applied_index: Option<u64>,
        leader_commit_index: Option<u64>,
    },
}

impl OpKind {
    /// A label for counting in the summary.
    pub fn label(&self) -> &'static str {
        match self {
            OpKind::Transfer { .. } => "bank transfer",
            OpKind::ReadTotal { .. } => "bank read",
            OpKind::Insert { .. } => "unique insert",
            OpKind::RegisterWrite { .. } => "register write",
            OpKind::RegisterRead { .. } => "register read",
            OpKind::Large { .. } => "large transaction",
            OpKind::CounterWrite { .. } => "counter write",
            OpKind::CounterRead { .. } => "counter read",
        }
    }

    /// Whether the operation writes (goes to the leader).
    pub fn is_write(&self) -> bool {
        !matches!(
            self,
            OpKind::ReadTotal { .. } | OpKind::RegisterRead { .. } | OpKind::CounterRead { .. }
        )
    }
}

/// One completed operation.
#[derive(Clone, Debug, Serialize)]
pub struct Op {
    pub id: u64,
    /// The workload thread that issued it.
    pub worker: String,
    /// The node it ran on.
    pub node: NodeId,
    pub invoke_us: u64,
    pub complete_us: u64,
    #[serde(flatten)]
    pub kind: OpKind,
    #[serde(flatten)]
    pub outcome: Outcome,
    /// The error message, when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// One nemesis action (fault or heal).
#[derive(Clone, Debug, Serialize)]
pub struct NemesisEvent {
    pub at_us: u64,
    pub action: String,
    pub nodes: Vec<NodeId>,
}

/// The shared, append-only record of the run.
pub struct History {
    start: Instant,
    ops: Mutex<Vec<Op>>,
    events: Mutex<Vec<NemesisEvent>>,
    next_id: std::sync::atomic::AtomicU64,
}

impl History {
    pub fn new() -> Self {
        History {
            start: Instant::now(),
            ops: Mutex::default(),
            events: Mutex::default(),
            next_id: std::sync::atomic::AtomicU64::new(1),
        }
    }

    /// Microseconds since the run began.
    pub fn now_us(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// A fresh operation id (also used as a unique written value).
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    pub fn record(&self, op: Op) {
        if let Ok(mut ops) = self.ops.lock() {
            ops.push(op);
        }
    }

    pub fn event(&self, action: impl Into<String>, nodes: &[NodeId]) {
        let event =
            NemesisEvent { at_us: self.now_us(), action: action.into(), nodes: nodes.to_vec() };
        eprintln!(
            "[nemesis {:>8.3}s] {} {:?}",
            event.at_us as f64 / 1e6,
            event.action,
            event.nodes
        );
        if let Ok(mut events) = self.events.lock() {
            events.push(event);
        }
    }

    /// A copy of the operations so far, in completion order.
    pub fn ops(&self) -> Vec<Op> {
        self.ops.lock().map(|ops| ops.clone()).unwrap_or_default()
    }

    pub fn events(&self) -> Vec<NemesisEvent> {
        self.events.lock().map(|events| events.clone()).unwrap_or_default()
    }

    /// Writes the operations and nemesis events as JSON lines (events first, tagged).
    pub fn write_to(&self, path: &Path) -> anyhow::Result<()> {
        let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
        for event in self.events() {
            writeln!(file, "{}", serde_json::json!({ "nemesis": event }))?;
        }
        for op in self.ops() {
            writeln!(file, "{}", serde_json::to_string(&op)?)?;
        }
        file.flush()?;
        Ok(())
    }
}
