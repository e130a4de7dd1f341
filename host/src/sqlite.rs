//! The host's SQLite side: loading the extension, opening connections the same way for every
//! connection of a host, converting values between JSON and SQLite, and running `exec`.
//!
//! Invariant: every connection has the busy timeout [`crate::BUSY_TIMEOUT_MS`] and
//! `synchronous=FULL`, so plain SQLite and nodes are compared under the same settings.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::{Connection, OpenFlags};
use serde_json::{json, Map, Value};

use crate::protocol::{SqlError, Statement, ROWS_MAX};

/// Prepared statements each connection keeps (a `repeat` unit re-runs the same few).
const STATEMENT_CACHE: usize = 64;

/// How a host opens its database.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    pub path: PathBuf,
    /// Plain SQLite (default VFS, WAL, synchronous=FULL) instead of the `ha` VFS.
    pub plain: bool,
}

impl DatabaseConfig {
    /// The URI every connection of this host opens.
    fn uri(&self) -> String {
        let path = self.path.display();
        if self.plain {
            format!("file:{path}")
        } else {
            format!("file:{path}?vfs=ha")
        }
    }

    /// Opens one more connection to the database, with the host's settings.
    pub fn open(&self) -> Result<Connection, SqlError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(self.uri(), flags).map_err(sql_error)?;
        conn.busy_timeout(Duration::from_millis(crate::BUSY_TIMEOUT_MS)).map_err(sql_error)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        if self.plain {
            let mode: String = conn
                .query_row("PRAGMA journal_mode=WAL", [], |row| row.get(0))
                .map_err(sql_error)?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(SqlError::host(format!("journal_mode is {mode}, not wal")));
            }
        }
        conn.execute_batch("PRAGMA synchronous=FULL").map_err(sql_error)?;
        Ok(conn)
    }
}

/// Loads the extension into the process through a throwaway in-memory connection. The
/// extension answers `SQLITE_OK_LOAD_PERMANENTLY`: its VFS and its `ha_*` functions (through
/// `sqlite3_auto_extension`) stay for every connection opened afterwards.
pub fn load_extension(library: &Path) -> Result<(), SqlError> {
    let loader = Connection::open_in_memory().map_err(sql_error)?;
    load_into(&loader, library)?;
    Ok(())
}

/// The one place this crate needs `unsafe`: rusqlite marks loading a native library unsafe,
/// since its code runs in our process with no checks.
#[allow(unsafe_code)]
fn load_into(conn: &Connection, library: &Path) -> Result<(), SqlError> {
    // SAFETY: the library is the dqlite-vfs extension named by the operator on the command
    // line, trusted like the binary itself; no SQL runs while loading is enabled (the guard
    // disables it again when dropped, before this function returns).
    unsafe {
        let _guard = rusqlite::LoadExtensionGuard::new(conn).map_err(sql_error)?;
        conn.load_extension(library, Some("sqlite3_dqlitevfs_init")).map_err(sql_error)
    }
}

/// rusqlite's error as the protocol's: SQLite failures keep their codes.
pub fn sql_error(error: rusqlite::Error) -> SqlError {
    match error {
        rusqlite::Error::SqliteFailure(failure, message) => {
            let extended = failure.extended_code;
            SqlError {
                code: Some(extended & 0xff),
                extended: Some(extended),
                message: message.unwrap_or_else(|| failure.to_string()),
            }
        }
        other => SqlError::host(other.to_string()),
    }
}

/// A JSON parameter as a SQLite value (generators are resolved before this, in `repeat`).
pub fn to_sql(value: &Value) -> Result<SqlValue, SqlError> {
    Ok(match value {
        Value::Null => SqlValue::Null,
        Value::Bool(b) => SqlValue::Integer(i64::from(*b)),
        Value::Number(n) => match n.as_i64() {
            Some(i) => SqlValue::Integer(i),
            None => SqlValue::Real(
                n.as_f64().ok_or_else(|| SqlError::host(format!("number {n} out of range")))?,
            ),
        },
        Value::String(s) => SqlValue::Text(s.clone()),
        Value::Object(map) => match map.get("$hex").and_then(Value::as_str) {
            Some(hex) if map.len() == 1 => SqlValue::Blob(from_hex(hex)?),
            _ => return Err(SqlError::host(format!("unknown parameter object {value}"))),
        },
        Value::Array(_) => {
            return Err(SqlError::host(format!("an array is not a parameter: {value}")))
        }
    })
}

/// A SQLite value as JSON.
pub fn to_json(value: ValueRef<'_>) -> Value {
    match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => json!(i),
        ValueRef::Real(f) => json!(f),
        ValueRef::Text(t) => Value::String(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => json!({ "$hex": to_hex(b) }),
    }
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(hex: &str) -> Result<Vec<u8>, SqlError> {
    if !hex.len().is_multiple_of(2) {
        return Err(SqlError::host("odd-length $hex"));
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&hex[i..i + 2], 16)
                .map_err(|_| SqlError::host(format!("bad $hex: {hex}")))
        })
        .collect()
}

/// Runs one statement and collects its rows (at most [`ROWS_MAX`]).
pub fn run_statement(conn: &Connection, statement: &Statement) -> Result<Value, SqlError> {
    let params = statement.params.iter().map(to_sql).collect::<Result<Vec<_>, _>>()?;
    let mut stmt = conn.prepare_cached(&statement.sql).map_err(sql_error)?;
    let columns: Vec<Value> =
        stmt.column_names().into_iter().map(|c| Value::String(c.to_owned())).collect();
    let width = columns.len();
    let mut rows_out = Vec::new();
    let mut rows = stmt.query(rusqlite::params_from_iter(params.iter())).map_err(sql_error)?;
    while let Some(row) = rows.next().map_err(sql_error)? {
        if rows_out.len() == ROWS_MAX {
            return Err(SqlError::host(format!("more than {ROWS_MAX} rows")));
        }
        let values = (0..width)
            .map(|i| row.get_ref(i).map(to_json))
            .collect::<Result<Vec<_>, _>>()
            .map_err(sql_error)?;
        rows_out.push(Value::Array(values));
    }
    drop(rows);
    let mut result = Map::new();
    result.insert("columns".into(), Value::Array(columns));
    result.insert("rows".into(), Value::Array(rows_out));
    result.insert("changes".into(), json!(conn.changes()));
    Ok(Value::Object(result))
}

/// `exec`: the statements in order, optionally in one `BEGIN IMMEDIATE` transaction. On
/// failure returns the error and the failing statement's index (None: BEGIN or COMMIT).
pub fn exec(
    conn: &Connection,
    statements: &[Statement],
    tx: bool,
) -> Result<Vec<Value>, (SqlError, Option<usize>)> {
    if tx {
        conn.execute_batch("BEGIN IMMEDIATE").map_err(|e| (sql_error(e), None))?;
    }
    let mut results = Vec::with_capacity(statements.len());
    for (index, statement) in statements.iter().enumerate() {
        match run_statement(conn, statement) {
            Ok(result) => results.push(result),
            Err(error) => {
                roll_back_if_open(conn);
                return Err((error, Some(index)));
            }
        }
    }
    if tx {
        if let Err(error) = conn.execute_batch("COMMIT") {
            roll_back_if_open(conn);
            return Err((sql_error(error), None));
        }
    }
    Ok(results)
}

/// After a failure, leaves the connection in autocommit mode again. A failed COMMIT (for
/// example SQLITE_BUSY) can leave the transaction open; its outcome is already decided then.
pub fn roll_back_if_open(conn: &Connection) {
    if !conn.is_autocommit() {
        // Nothing more to do if even the rollback fails: the next BEGIN will report it.
        let _ = conn.execute_batch("ROLLBACK");
    }
}
