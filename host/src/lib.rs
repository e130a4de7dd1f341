//! `ha-host`: a real SQLite host process for dqlite-vfs nodes, and the harness that drives it.
//!
//! The binary (`src/main.rs`) links rusqlite against the **system** libsqlite3 (the one the
//! `sqlite3` shell uses; the extension refuses a second SQLite library in one process), loads
//! `libdqlite_vfs.so`, opens `file:DB?vfs=ha` (or plain `file:DB` in `--plain` mode), runs the
//! startup SQL that makes the node (`SELECT ha_init(...)` / `SELECT ha_join(...)`), and then
//! serves requests as JSON lines over TCP on 127.0.0.1. Timed loops run inside the host, so a
//! latency never includes the socket.
//!
//! # Start-up
//! ```text
//! ha-host --extension target/release/libdqlite_vfs.so --db /tmp/x/n1.db \
//!         --startup "SELECT ha_init('127.0.0.1:17601')" [--port 0] [--plain]
//! ```
//! Once ready it prints one JSON line on stdout, `{"ready":true,"port":P,"pid":N,"startup":V}`
//! (`V`: first column of the last row the startup SQL returned, e.g. the node id), or
//! `{"ready":false,"error":{...}}` and exits 1. It exits when its stdin reaches end of file
//! (so it never outlives the parent that holds the pipe) or on a `shutdown` request.
//! Every SQLite connection has a 5 s busy timeout and `synchronous=FULL`; `--plain` databases
//! are put in WAL mode (a node's database is put in WAL mode by the node).
//!
//! # Requests (one JSON object per line) and responses (one JSON object per line)
//! Every response has `"ok": true` or `"ok": false, "error": {"code", "extended", "message"}`,
//! where `code`/`extended` are SQLite's primary and extended result codes (null for errors
//! that did not come from SQLite, such as a malformed request).
//! Requests name a connection with `"conn"` (default `"main"`, the connection that made the
//! node); any other name opens a new connection to the same database on first use, so several
//! writers can run at once (one TCP client per writer: each client is served by its own thread).
//!
//! | op | fields | answer |
//! |---|---|---|
//! | `ping` | | `{}` |
//! | `exec` | `statements: [{sql, params?}]`, `tx?: bool` (wrap in BEGIN IMMEDIATE..COMMIT) | `results: [{columns, rows, changes}]`; on error also `statement` (its index); a failed `tx` is rolled back |
//! | `status` | | `status`: the parsed `ha_status()` JSON |
//! | `barrier` | | `index`: what `ha_barrier()` returned |
//! | `repeat` | `statements`, `count`, `duration_ms?`, `tx?`, `latencies?`, `seed?`, `stop_on_error?` | see [`protocol::RepeatReport`] |
//! | `usage` | | `context_switches`: voluntary and involuntary, of every thread the host has run (`getrusage(RUSAGE_SELF)`) |
//! | `close` | `conn` | `{}` (the `main` connection cannot be closed) |
//! | `shutdown` | | `{}`, then the process exits |
//!
//! Values: JSON null, integers, floats and strings map to SQLite NULL, INTEGER, REAL and TEXT;
//! `{"$hex": "00ff"}` is a BLOB both ways. In `repeat`, a parameter may also be a generator,
//! evaluated at every execution: `{"$seq": S}` (S plus the number of statements run so far in
//! this request), `{"$rand": [LO, HI]}` (uniform integer, seeded by `seed`), `{"$blob": N}`
//! (N pseudo-random bytes). A `repeat` runs `count` units (each unit: every statement once,
//! with `times` repetitions each, inside one transaction if `tx`) or until `duration_ms`.
//!
//! # Library
//! [`process::HostProcess`] spawns and controls one host process (signals, requests with a
//! deadline, RSS from `/proc`); [`cluster::Cluster`] starts 1- or 3-node clusters of them.

#![deny(unsafe_code)]

pub mod cli;
pub mod cluster;
pub mod process;
pub mod protocol;
pub mod repeat;
pub mod server;
pub mod sqlite;

/// Busy timeout of every connection the host opens.
pub const BUSY_TIMEOUT_MS: u64 = 5_000;
