//! dqlite-vfs: load one extension into the SQLite you already use and your database is
//! replicated across machines by Raft.
//!
//! Data flows one way: SQLite -> [`vfs`] (capture at commit) -> [`raft`] (replicated log) ->
//! [`transport`] (QUIC) -> followers' [`raft`] state machine -> [`wal`] (frames appended to
//! the follower's WAL) -> SQLite readers. `ffi` and `ext` are the only places with `unsafe`.

pub mod raft;
pub mod transport;
pub mod wal;
