//! A small sqllogictest runner: parse the corpus format, drive a 3-node cluster through the real
//! `sqlite3` shell, and render and compare results the way the reference harness does.

pub mod cluster;
pub mod parse;
pub mod shell;
pub mod value;
