//! The serving side of `ha-host`: makes the node, prints the ready line, then answers JSON-line
//! requests from TCP clients on 127.0.0.1, one thread per client (at most [`CLIENTS_MAX`]).
//!
//! Invariants: a named connection is used by one request at a time (each sits behind its own
//! mutex); `status` and `barrier` use a connection of their own so they never queue behind a
//! long `repeat` on `main`; the process exits when stdin closes, so it never outlives its parent.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use nix::sys::resource::{getrusage, UsageWho};
use rusqlite::Connection;
use serde_json::{json, Map, Value};

use crate::protocol::{
    Request, SqlError, Statement, CLIENTS_MAX, CONNECTIONS_MAX, MAIN_CONNECTION, REQUEST_BYTES_MAX,
};
use crate::sqlite::{self, DatabaseConfig};

/// The connection `status` and `barrier` run on.
const ADMIN_CONNECTION: &str = "$admin";

/// Everything the command line decides.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// The extension to load; None runs a host without it (plain SQLite only).
    pub extension: Option<PathBuf>,
    pub database: DatabaseConfig,
    /// Run in order on the main connection before serving (e.g. `SELECT ha_init(...)`).
    pub startup: Vec<String>,
    /// TCP port on 127.0.0.1; 0 lets the system choose (the ready line tells).
    pub port: u16,
}

struct Host {
    database: DatabaseConfig,
    connections: Mutex<HashMap<String, Arc<Mutex<Connection>>>>,
}

/// A poisoned lock only means another request panicked; the connection itself is still usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Host {
    fn connection(&self, name: &str) -> Result<Arc<Mutex<Connection>>, SqlError> {
        let mut connections = lock(&self.connections);
        if let Some(conn) = connections.get(name) {
            return Ok(Arc::clone(conn));
        }
        if connections.len() >= CONNECTIONS_MAX {
            return Err(SqlError::host(format!("more than {CONNECTIONS_MAX} connections")));
        }
        let conn = Arc::new(Mutex::new(self.database.open()?));
        connections.insert(name.to_owned(), Arc::clone(&conn));
        Ok(conn)
    }

    fn handle(&self, request: Request) -> Result<Map<String, Value>, (SqlError, Option<usize>)> {
        let mut answer = Map::new();
        match request {
            Request::Ping | Request::Shutdown => {}
            Request::Exec { conn, statements, tx } => {
                let conn = self.connection(&conn).map_err(|e| (e, None))?;
                let results = sqlite::exec(&lock(&conn), &statements, tx)?;
                answer.insert("results".into(), Value::Array(results));
            }
            Request::Status => {
                let text = self.scalar(ADMIN_CONNECTION, "SELECT ha_status()")?;
                let text = text
                    .as_str()
                    .ok_or_else(|| (SqlError::host("ha_status() is not text"), None))?;
                let status = serde_json::from_str(text)
                    .map_err(|e| (SqlError::host(format!("ha_status(): {e}")), None))?;
                answer.insert("status".into(), status);
            }
            Request::Barrier => {
                answer
                    .insert("index".into(), self.scalar(ADMIN_CONNECTION, "SELECT ha_barrier()")?);
            }
            Request::Repeat(spec) => {
                let conn = self.connection(&spec.conn).map_err(|e| (e, None))?;
                let report = crate::repeat::run(&lock(&conn), &spec).map_err(|e| (e, None))?;
                if let Value::Object(fields) = json!(report) {
                    answer.extend(fields);
                }
            }
            Request::Usage => {
                let usage = getrusage(UsageWho::RUSAGE_SELF)
                    .map_err(|e| (SqlError::host(format!("getrusage: {e}")), None))?;
                let switches =
                    usage.voluntary_context_switches() + usage.involuntary_context_switches();
                answer.insert("context_switches".into(), json!(switches));
            }
            Request::Close { conn } => {
                if conn == MAIN_CONNECTION || conn == ADMIN_CONNECTION {
                    return Err((
                        SqlError::host(format!("connection {conn} cannot be closed")),
                        None,
                    ));
                }
                lock(&self.connections).remove(&conn);
            }
        }
        Ok(answer)
    }

    /// First column of the first row of `sql`.
    fn scalar(&self, conn: &str, sql: &str) -> Result<Value, (SqlError, Option<usize>)> {
        let conn = self.connection(conn).map_err(|e| (e, None))?;
        let result =
            sqlite::run_statement(&lock(&conn), &Statement::new(sql)).map_err(|e| (e, None))?;
        Ok(result["rows"][0][0].clone())
    }
}

fn error_json(error: &SqlError) -> Value {
    json!({ "code": error.code, "extended": error.extended, "message": error.message })
}

/// Prints one JSON line on stdout and flushes it (the parent waits for it).
fn say(line: &Value) {
    let mut out = std::io::stdout().lock();
    // If stdout is gone the parent is gone; stdin's end of file will stop us.
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

/// Runs the host until stdin closes or a `shutdown` request; returns only on a start-up error.
pub fn run(config: HostConfig) -> SqlError {
    let (listener, startup) = match start(&config) {
        Ok(started) => started,
        Err(error) => {
            say(&json!({ "ready": false, "error": error_json(&error) }));
            return error;
        }
    };
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    say(&json!({ "ready": true, "port": port, "pid": std::process::id(), "startup": startup.1 }));
    std::thread::spawn(exit_when_stdin_closes);
    let host = startup.0;
    let clients = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        if clients.fetch_add(1, Ordering::SeqCst) >= CLIENTS_MAX {
            clients.fetch_sub(1, Ordering::SeqCst);
            let mut stream = stream;
            let refusal =
                json!({ "ok": false, "error": error_json(&SqlError::host("too many clients")) });
            let _ = writeln!(stream, "{refusal}");
            continue;
        }
        let (host, clients) = (Arc::clone(&host), Arc::clone(&clients));
        std::thread::spawn(move || {
            serve_client(&host, stream);
            clients.fetch_sub(1, Ordering::SeqCst);
        });
    }
    SqlError::host("listener closed")
}

type Started = (TcpListener, (Arc<Host>, Value));

fn start(config: &HostConfig) -> Result<Started, SqlError> {
    if let Some(library) = &config.extension {
        sqlite::load_extension(library)?;
    }
    let host = Arc::new(Host {
        database: config.database.clone(),
        connections: Mutex::new(HashMap::new()),
    });
    let main = host.connection(MAIN_CONNECTION)?;
    let mut last = Value::Null;
    for sql in &config.startup {
        let result = sqlite::run_statement(&lock(&main), &Statement::new(sql.clone()))?;
        if let Some(value) =
            result["rows"].as_array().and_then(|rows| rows.last()).map(|row| row[0].clone())
        {
            last = value;
        }
    }
    let listener = TcpListener::bind(("127.0.0.1", config.port))
        .map_err(|e| SqlError::host(format!("bind 127.0.0.1:{}: {e}", config.port)))?;
    Ok((listener, (host, last)))
}

fn exit_when_stdin_closes() {
    let mut sink = [0u8; 256];
    let mut stdin = std::io::stdin();
    while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
    std::process::exit(0);
}

fn serve_client(host: &Host, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let Ok(mut writer) = stream.try_clone() else { return };
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    loop {
        line.clear();
        let limit = u64::try_from(REQUEST_BYTES_MAX).unwrap_or(u64::MAX) + 1;
        match (&mut reader).take(limit).read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let (answer, shutdown) = if line.len() > REQUEST_BYTES_MAX {
            (
                json!({ "ok": false, "error": error_json(&SqlError::host("request line too long")) }),
                false,
            )
        } else {
            answer(host, line.trim_end())
        };
        if writeln!(writer, "{answer}").and_then(|()| writer.flush()).is_err() {
            return;
        }
        if shutdown {
            std::process::exit(0);
        }
        if line.len() > REQUEST_BYTES_MAX {
            return;
        }
    }
}

fn answer(host: &Host, line: &str) -> (Value, bool) {
    let request: Request = match serde_json::from_str(line) {
        Ok(request) => request,
        Err(e) => {
            return (
                json!({ "ok": false, "error": error_json(&SqlError::host(format!("bad request: {e}"))) }),
                false,
            )
        }
    };
    let shutdown = matches!(request, Request::Shutdown);
    let answer = match host.handle(request) {
        Ok(mut fields) => {
            fields.insert("ok".into(), Value::Bool(true));
            Value::Object(fields)
        }
        Err((error, statement)) => {
            json!({ "ok": false, "error": error_json(&error), "statement": statement })
        }
    };
    (answer, shutdown)
}
