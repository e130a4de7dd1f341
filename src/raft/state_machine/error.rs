//! Errors of the state machine, converted to `io::Error` at the openraft boundary (which keeps
//! the `SmError` inside, so its kind survives: see `raft::storage_cause`).

use std::io;
use std::path::PathBuf;

use crate::error::Fault;
use crate::raft::small_file::SmallFileError;

/// Why the state machine failed. Any of these stops the node: applying is deterministic, so a
/// node that cannot apply an entry must not go on as if it had.
#[derive(Debug, thiserror::Error)]
pub enum SmError {
    /// The file system or the database failed.
    #[error("state machine i/o")]
    Io(#[from] io::Error),
    /// A state file (applied state, snapshot pointer) is unreadable.
    #[error(transparent)]
    State(#[from] SmallFileError),
    /// A snapshot image is not what its metadata says.
    #[error("snapshot image {path}: {reason}")]
    BadImage { path: PathBuf, reason: String },
    /// A blocking task panicked or was cancelled.
    #[error("state machine task failed")]
    Task(#[source] tokio::task::JoinError),
}

impl SmError {
    /// What kind of failure this is (see `crate::error`).
    pub fn fault(&self) -> Fault {
        match self {
            SmError::Io(e) => Fault::of_io(e, Fault::Io),
            SmError::State(e) => e.fault(),
            SmError::BadImage { .. } => Fault::Corrupt,
            SmError::Task(_) => Fault::Internal,
        }
    }

    fn io_kind(&self) -> io::ErrorKind {
        match self {
            SmError::Io(e) => e.kind(),
            SmError::State(e) => e.io_kind(),
            SmError::BadImage { .. } => io::ErrorKind::InvalidData,
            SmError::Task(_) => io::ErrorKind::Other,
        }
    }
}

/// openraft's storage traits speak `io::Error`: the `SmError` travels inside it, where
/// `StorageCause` finds it again.
impl From<SmError> for io::Error {
    fn from(e: SmError) -> Self {
        io::Error::new(e.io_kind(), e)
    }
}
