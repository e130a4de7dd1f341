//! Errors of the Raft log store, and their conversion to `io::Error` at the openraft boundary
//! (which keeps the `LogError` inside, so its kind survives: see `raft::storage_cause`).

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use crate::error::Fault;
use crate::raft::small_file::SmallFileError;

/// Why the log store failed. Every variant except the I/O ones means the on-disk log cannot
/// be trusted and the node must stop rather than guess.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// A file-system operation other than a read, a write or a sync failed (open, list,
    /// create, remove, truncate).
    #[error("raft log i/o")]
    Io(#[from] io::Error),
    /// Reading a record failed.
    #[error("reading the raft log")]
    Read(#[source] io::Error),
    /// Writing records failed.
    #[error("writing the raft log")]
    Write(#[source] io::Error),
    /// Making written records durable failed; every append of the batch reports it, so the
    /// error is shared.
    #[error("syncing the raft log to disk")]
    Sync(#[source] Arc<io::Error>),
    /// A record that is followed by valid records (or lies in a sealed segment) is damaged:
    /// acknowledged entries would be lost by cutting it, so the node refuses to start.
    #[error("raft log {path} is corrupt at offset {offset} ({reason}); refusing to start: restore this node from a peer")]
    Corrupt { path: PathBuf, offset: u64, reason: &'static str },
    /// A record read back no longer matches its checksum (it changed on disk after it was
    /// verified).
    #[error("raft log segment {segment}: the record at offset {offset} changed on disk (checksum mismatch)")]
    RecordChanged { segment: u64, offset: u64 },
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
    /// A task of the log store panicked or was cancelled.
    #[error("raft log task failed")]
    Task(#[source] tokio::task::JoinError),
}

impl LogError {
    /// What kind of failure this is (see `crate::error`).
    pub fn fault(&self) -> Fault {
        match self {
            LogError::Io(e) => Fault::of_io(e, Fault::Io),
            LogError::Read(e) => Fault::of_io(e, Fault::Read),
            LogError::Write(e) => Fault::of_io(e, Fault::Write),
            LogError::Sync(_) => Fault::Fsync,
            LogError::Corrupt { .. }
            | LogError::RecordChanged { .. }
            | LogError::Decode { .. }
            | LogError::Gap { .. } => Fault::Corrupt,
            LogError::State(e) => e.fault(),
            LogError::Poisoned | LogError::Task(_) => Fault::Internal,
        }
    }

    fn io_kind(&self) -> io::ErrorKind {
        match self {
            LogError::Io(e) | LogError::Read(e) | LogError::Write(e) => e.kind(),
            LogError::Sync(e) => e.kind(),
            LogError::State(e) => e.io_kind(),
            LogError::Corrupt { .. }
            | LogError::RecordChanged { .. }
            | LogError::Decode { .. }
            | LogError::Gap { .. } => io::ErrorKind::InvalidData,
            LogError::Poisoned | LogError::Task(_) => io::ErrorKind::Other,
        }
    }
}

/// openraft's storage traits speak `io::Error`: the `LogError` travels inside it, where
/// `StorageCause` finds it again.
impl From<LogError> for io::Error {
    fn from(e: LogError) -> Self {
        io::Error::new(e.io_kind(), e)
    }
}
