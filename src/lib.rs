//! dqlite-vfs: load one extension into the SQLite you already use and your database is
//! replicated across machines by Raft.
//!
//! Data flows one way: SQLite -> [`vfs`] (capture at commit) -> [`node`] -> [`raft`]
//! (replicated log) -> [`transport`] (QUIC) -> followers' [`raft`] state machine -> [`wal`]
//! (frames appended to the follower's WAL) -> SQLite readers. `ffi` and `ext` are the only
//! places with `unsafe`.

#![deny(unsafe_code, unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod archive;
pub mod clock;
pub mod error;
#[allow(unsafe_code)]
pub mod ext;
#[allow(unsafe_code)]
pub mod ffi;
pub mod node;
pub mod raft;
pub mod sql;
pub mod state_layout;
pub mod transport;
pub mod trust;
pub mod vfs;
pub mod wal;
