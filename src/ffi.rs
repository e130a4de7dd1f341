//! The FFI edge: every raw pointer and every `unsafe` block of the crate lives under here
//! (and in `ext.rs`). Each module turns one part of SQLite's C interface into safe calls.

pub mod api;
pub mod connection;
pub mod file;
pub mod file_control;
pub mod functions;
pub mod io_methods;
pub mod sys;
pub mod vfs;
