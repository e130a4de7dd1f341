//! The SQLite WAL and wal-index formats: reading committed frames and appending new ones.
//!
//! Leaders use [`capture`] to turn the frames of a just-written transaction into a
//! [`PageSet`](crate::raft::types::PageSet); followers use [`append`] to write a page set into
//! their own WAL exactly as a SQLite writer would, and to publish it in the wal-index so that
//! SQLite readers see it. [`scan`] reads a WAL from its start (SQLite's recovery view) and cuts
//! torn tails at start-up.
//!
//! Formats: <https://www.sqlite.org/walformat.html> and
//! <https://www.sqlite.org/fileformat2.html#walformat>. Everything here is safe code; the shared
//! memory itself is reached through the [`index::SharedIndex`] trait, implemented by the VFS.
#![deny(unsafe_code)]

pub mod append;
pub mod capture;
pub mod checksum;
pub mod error;
pub mod file;
pub mod format;
pub mod index;
pub mod scan;
#[cfg(test)]
mod sqlite_crosscheck;
#[cfg(test)]
mod testutil;

pub use error::WalError;
