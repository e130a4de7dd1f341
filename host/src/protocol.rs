//! The request and response types of the JSON-lines protocol (see the crate header), shared
//! by the server and the harness, and the bounds every request must respect.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Longest request line the server reads; page data comes from `$blob` generators, not lines.
pub const REQUEST_BYTES_MAX: usize = 16 << 20;
/// Most rows one `exec` returns before failing (results travel in one line).
pub const ROWS_MAX: usize = 100_000;
/// Most named connections one host keeps open.
pub const CONNECTIONS_MAX: usize = 64;
/// Most TCP clients served at once.
pub const CLIENTS_MAX: usize = 64;
/// Most units one `repeat` runs.
pub const REPEAT_COUNT_MAX: u64 = 10_000_000;
/// Longest a `repeat` runs.
pub const REPEAT_DURATION_MS_MAX: u64 = 600_000;
/// Most statements in one request, and most `times` of one statement in a unit.
pub const STATEMENTS_MAX: usize = 100_000;
/// Largest `$blob` generator.
pub const BLOB_BYTES_MAX: u64 = 256 << 20;

/// The connection that made the node.
pub const MAIN_CONNECTION: &str = "main";

fn main_connection() -> String {
    MAIN_CONNECTION.to_owned()
}

fn one() -> u32 {
    1
}

/// One request line.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Answers `{"ok":true}`: the host is serving.
    Ping,
    /// Runs statements in order on one connection and returns their rows.
    Exec {
        #[serde(default = "main_connection")]
        conn: String,
        statements: Vec<Statement>,
        /// Wrap them in `BEGIN IMMEDIATE` .. `COMMIT` (rolled back on error).
        #[serde(default)]
        tx: bool,
    },
    /// `SELECT ha_status()` on the main connection, parsed.
    Status,
    /// `SELECT ha_barrier()` on the main connection.
    Barrier,
    /// A timed loop run inside the host.
    Repeat(RepeatSpec),
    /// `getrusage(RUSAGE_SELF)`: the context switches of every thread the host has run,
    /// ended ones included (a request is served on a thread of its own).
    Usage,
    /// Closes a named connection.
    Close { conn: String },
    /// Exits the process after answering.
    Shutdown,
}

/// One SQL statement with its parameters (positional).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Statement {
    pub sql: String,
    #[serde(default)]
    pub params: Vec<Value>,
    /// How many times a `repeat` unit runs it (ignored by `exec`).
    #[serde(default = "one")]
    pub times: u32,
}

impl Statement {
    /// A statement without parameters.
    pub fn new(sql: impl Into<String>) -> Statement {
        Statement { sql: sql.into(), params: Vec::new(), times: 1 }
    }

    /// A statement with positional parameters.
    pub fn with_params(sql: impl Into<String>, params: Vec<Value>) -> Statement {
        Statement { sql: sql.into(), params, times: 1 }
    }

    /// Runs `times` times per `repeat` unit.
    pub fn times(mut self, times: u32) -> Statement {
        self.times = times;
        self
    }
}

/// A `repeat` request: `count` units, or fewer if `duration_ms` passes first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RepeatSpec {
    #[serde(default = "main_connection")]
    pub conn: String,
    pub statements: Vec<Statement>,
    pub count: u64,
    #[serde(default)]
    pub duration_ms: Option<u64>,
    /// Each unit in `BEGIN IMMEDIATE` .. `COMMIT`.
    #[serde(default)]
    pub tx: bool,
    /// Return every unit's latency.
    #[serde(default)]
    pub latencies: bool,
    #[serde(default)]
    pub seed: u64,
    /// Stop at the first failed unit (otherwise failures are counted and the loop goes on).
    #[serde(default)]
    pub stop_on_error: bool,
}

/// What a `repeat` did (the fields besides `ok`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RepeatReport {
    /// Units that succeeded.
    pub units_ok: u64,
    /// Units that failed (their error counted in `errors`).
    pub units_failed: u64,
    /// Rows that the statements returned, summed.
    pub rows: u64,
    /// Wall time of the whole loop.
    pub elapsed_us: u64,
    /// Each successful unit's latency, in order (only if asked for).
    pub latencies_us: Vec<u64>,
    /// Failures by extended code.
    pub errors: Vec<ErrorCount>,
}

/// How often one error happened in a `repeat`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorCount {
    pub code: Option<i32>,
    pub extended: Option<i32>,
    pub count: u64,
    /// The first such error's message.
    pub message: String,
}

/// An error as the protocol reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message} (code {code:?}, extended {extended:?})")]
pub struct SqlError {
    /// SQLite's primary result code (`extended & 0xff`), or None for a host error.
    pub code: Option<i32>,
    /// SQLite's extended result code, or None for a host error.
    pub extended: Option<i32>,
    pub message: String,
}

impl SqlError {
    /// An error that did not come from SQLite.
    pub fn host(message: impl Into<String>) -> SqlError {
        SqlError { code: None, extended: None, message: message.into() }
    }
}

/// SQLite's primary result codes the harness looks at.
pub mod codes {
    pub const SQLITE_BUSY: i32 = 5;
    pub const SQLITE_READONLY: i32 = 8;
}
