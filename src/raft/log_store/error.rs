//! Errors of the Raft log store, and their conversion to `io::Error` at the openraft boundary.

use std::io;
use std::path::PathBuf;

use crate::raft::small_file::SmallFileError;

/// Why the log store failed. Every variant except `Io` means the on-disk log cannot be trusted
/// and the node must stop rather than guess.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The file system failed.
    #[error("raft log i/o: {0}")]
    Io(#[from] io::Error),
    /// A record that is followed by valid records (or lies in a sealed segment) is damaged:
    /// acknowledged entries would be lost by cutting it, so the node refuses to start.
    #[error("raft log {path} is corrupt at offset {offset} ({reason}); refusing to start: restore this node from a peer")]
    Corrupt { path: PathBuf, offset: u64, reason: &'static str },
    /// A checksummed record does not decode as an entry (format mismatch or a bug).
    #[error("raft log {path}: record at offset {offset} does not decode: {reason}")]
    Decode { path: PathBuf, offset: u64, reason: String },
    /// Entries on disk are not consecutive.
    #[error("raft log {path}: expected entry {expected}, found {found}")]
    Gap { path: PathBuf, expected: u64, found: u64 },
    /// A small state file (vote, purge point) is unreadable.
    #[error(transparent)]
    State(#[from] SmallFileError),
    /// A previous operation panicked while holding the log's lock.
    #[error("raft log lock poisoned by an earlier panic")]
    Poisoned,
}

impl From<LogError> for io::Error {
    fn from(e: LogError) -> Self {
        match e {
            LogError::Io(e) => e,
            LogError::State(e) => e.into(),
            other => io::Error::new(io::ErrorKind::InvalidData, other.to_string()),
        }
    }
}
