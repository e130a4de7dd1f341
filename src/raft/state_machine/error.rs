//! Errors of the state machine, converted to `io::Error` at the openraft boundary.

use std::io;
use std::path::PathBuf;

use crate::raft::small_file::SmallFileError;

/// Why the state machine failed. Any of these stops the node: applying is deterministic, so a
/// node that cannot apply an entry must not go on as if it had.
#[derive(Debug, thiserror::Error)]
pub enum SmError {
    /// The file system or the database failed.
    #[error("state machine i/o: {0}")]
    Io(#[from] io::Error),
    /// A state file (applied state, snapshot pointer) is unreadable.
    #[error(transparent)]
    State(#[from] SmallFileError),
    /// A snapshot image is not what its metadata says.
    #[error("snapshot image {path}: {reason}")]
    BadImage { path: PathBuf, reason: String },
    /// A blocking task panicked or was cancelled.
    #[error("state machine task failed: {0}")]
    Task(String),
}

impl From<SmError> for io::Error {
    fn from(e: SmError) -> Self {
        match e {
            SmError::Io(e) => e,
            SmError::State(e) => e.into(),
            other => io::Error::new(io::ErrorKind::InvalidData, other.to_string()),
        }
    }
}
