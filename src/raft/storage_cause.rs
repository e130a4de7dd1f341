//! The cause openraft keeps inside a `StorageError` (our `TypeConfig::ErrorSource`).
//!
//! openraft needs the cause to be cloneable, comparable and serialisable, so it cannot hold our
//! typed errors (`LogError`, `SmError`, an `io::Error`). This type keeps what matters of them:
//! the kind of failure ([`Fault`]: corruption, a failed read, write or fsync...), decided
//! when openraft wraps the error, and the message with its chain of causes. `crate::error`
//! reads the fault back to choose the result code.

use std::error::Error as StdError;
use std::io;

use serde::{Deserialize, Serialize};

use crate::error::{Chain, Fault};
use crate::raft::log_store::LogError;
use crate::raft::small_file::SmallFileError;
use crate::raft::state_machine::SmError;

/// A storage failure as openraft carries it: its kind and its message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct StorageCause {
    fault: Fault,
    message: String,
}

impl StorageCause {
    /// What kind of failure it was.
    pub fn fault(&self) -> Fault {
        self.fault
    }
}

/// The fault of any error our storage hands openraft: an `io::Error` (carrying one of our
/// errors, or the OS's), or one of our errors directly.
fn classify(error: &(dyn StdError + 'static)) -> Fault {
    if let Some(io) = error.downcast_ref::<io::Error>() {
        return Fault::of_io(io, Fault::Io);
    }
    if let Some(cause) = error.downcast_ref::<StorageCause>() {
        return cause.fault;
    }
    if let Some(log) = error.downcast_ref::<LogError>() {
        return log.fault();
    }
    if let Some(sm) = error.downcast_ref::<SmError>() {
        return sm.fault();
    }
    if let Some(file) = error.downcast_ref::<SmallFileError>() {
        return file.fault();
    }
    Fault::Io
}

impl openraft::error::ErrorSource for StorageCause {
    fn from_error<E: StdError + 'static>(error: &E) -> Self {
        StorageCause { fault: classify(error), message: Chain(error).to_string() }
    }

    /// openraft words its own findings about the store (an inverted log order, an entry that
    /// should be there and is not): the stored state is inconsistent.
    fn from_string(message: impl ToString) -> Self {
        StorageCause { fault: Fault::Corrupt, message: message.to_string() }
    }
}

#[cfg(test)]
mod tests {
    use openraft::error::ErrorSource;

    use super::*;

    // Goal: the kind of a log store error survives the trip through `io::Error` into
    // openraft's cause, and the message keeps the chain.
    #[test]
    fn log_error_kind_survives_openraft() {
        let changed = io::Error::from(LogError::RecordChanged { segment: 1, offset: 8 });
        let cause = StorageCause::from_error(&changed);
        assert_eq!(cause.fault(), Fault::Corrupt);
        assert!(cause.to_string().contains("changed on disk"), "{cause}");

        let os = io::Error::from(io::ErrorKind::PermissionDenied);
        let write = io::Error::from(LogError::Write(os));
        let cause = StorageCause::from_error(&write);
        assert_eq!(cause.fault(), Fault::Write);
        assert!(cause.to_string().starts_with("writing the raft log: "), "{cause}");
    }

    // Goal: openraft's own findings about the store count as corruption.
    #[test]
    fn openraft_findings_are_corruption() {
        assert_eq!(StorageCause::from_string("inverted log order").fault(), Fault::Corrupt);
    }
}
