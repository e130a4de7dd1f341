//! SQLite's C ABI as the rest of the crate names it: the types, constants and API functions of
//! `libsqlite3-sys` built with `loadable_extension`, re-exported whole.
//!
//! In that mode each `sqlite3_*` function is a Rust wrapper that calls through the API table
//! the host handed our entry point (stored by [`super::api::install`]), so the shipped
//! library links no SQLite of its own. Its bindings are those of SQLite 3.34.1; we refuse
//! hosts older than 3.37.0 before calling any of them (`api.rs`), so every function they
//! declare exists in the host.
//!
//! Nothing is declared here by hand: a name the crate needs that `libsqlite3-sys` lacks
//! belongs in this file with the reason, and there is none today (`sqlite3_mprintf`, which it
//! cannot wrap because it is variadic, is replaced by `sqlite3_malloc` plus a copy, memory
//! SQLite frees with `sqlite3_free` alike; see `vfs::sqlite_string`).

pub use libsqlite3_sys::*;
