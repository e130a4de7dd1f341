//! openraft's errors brought into [`Error`]. openraft's errors are generic over the call
//! that failed, so each is classified once, here, when it is wrapped: what it means for the
//! caller (not the leader, refused, no quorum, stopped, a storage failure) decides the
//! variant, and openraft's error stays the source.

use openraft::error::{
    ChangeMembershipError, ClientWriteError, Fatal, Infallible, InitializeError,
    LinearizableReadError, RaftError,
};
use openraft::metrics::WaitError;

use super::Error;
use crate::raft::types::TypeConfig;

/// What an openraft failure means for the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RaftFailure {
    /// Raft refused the request as made (already initialised, a membership change it does not
    /// allow): retrying the same request will not help.
    Refused,
    /// The leader could not reach a quorum to confirm itself.
    NoQuorum,
    /// A wait for Raft ended at its deadline, or Raft was busy with an earlier change: the
    /// same request may succeed later.
    Timeout,
    /// Raft has stopped (the node is shutting down, or a fatal error stopped it).
    Stopped,
    /// Raft's core panicked: a bug.
    Panicked,
    /// Our Raft configuration is not valid: a bug.
    Config,
}

/// An openraft API error (the `E` of `RaftError<C, E>`), as an [`Error`].
pub trait RaftApiError: std::error::Error + Send + Sync + Sized + 'static {
    /// The error met while `context`.
    fn into_error(self, context: String) -> Error;
}

impl Error {
    /// An openraft error met while `context`.
    pub fn raft<E: RaftApiError>(
        context: impl Into<String>,
        error: RaftError<TypeConfig, E>,
    ) -> Error {
        let context = context.into();
        match error {
            RaftError::APIError(api) => api.into_error(context),
            RaftError::Fatal(fatal) => Error::fatal(context, fatal),
        }
    }

    /// openraft stopped with `fatal` while `context`.
    pub fn fatal(context: impl Into<String>, fatal: Fatal<TypeConfig>) -> Error {
        let context = context.into();
        let failure = match fatal {
            Fatal::StorageError(source) => return Error::Storage { context, source },
            Fatal::Panicked => RaftFailure::Panicked,
            Fatal::Stopped => RaftFailure::Stopped,
        };
        Error::Raft { context, failure, source: Box::new(fatal) }
    }

    /// A wait on Raft's metrics that failed while `context`.
    pub fn raft_wait(context: impl Into<String>, error: WaitError) -> Error {
        let failure = match error {
            WaitError::Timeout(..) => RaftFailure::Timeout,
            WaitError::ShuttingDown => RaftFailure::Stopped,
        };
        Error::Raft { context: context.into(), failure, source: Box::new(error) }
    }

    /// Our Raft configuration, refused by openraft.
    pub fn raft_config(error: openraft::ConfigError) -> Error {
        Error::Raft {
            context: "checking the Raft configuration".into(),
            failure: RaftFailure::Config,
            source: Box::new(error),
        }
    }

    fn refused_by_raft(context: String, error: impl RaftApiError) -> Error {
        Error::Raft { context, failure: RaftFailure::Refused, source: Box::new(error) }
    }
}

/// The leader a `ForwardToLeader` names, as `NotLeader` reports it.
fn not_leader(forward: &openraft::error::ForwardToLeader<TypeConfig>) -> Error {
    let leader = forward.leader_id.zip(forward.leader_node.as_ref().map(|m| m.addr.clone()));
    Error::NotLeader { leader }
}

impl RaftApiError for Infallible {
    fn into_error(self, _context: String) -> Error {
        match self {}
    }
}

impl RaftApiError for ClientWriteError<TypeConfig> {
    fn into_error(self, context: String) -> Error {
        match &self {
            // Refused before its entry was appended: nothing happened.
            ClientWriteError::ForwardToLeader(forward) => not_leader(forward),
            // The entry was appended, then dropped for another leader's log: it may still
            // commit through that leader.
            ClientWriteError::LogEntryDiscarded(_) => {
                Error::OutcomeUnknown { what: context, cause: Some(Box::new(self)) }
            }
            ClientWriteError::ChangeMembershipError(change) => {
                let failure = match change {
                    // Another change, or the leader's own first entry, is still being
                    // committed: the same request may succeed a moment later.
                    ChangeMembershipError::InProgress(_)
                    | ChangeMembershipError::UncommittedLeaderLog(_) => RaftFailure::Timeout,
                    ChangeMembershipError::EmptyMembership(_)
                    | ChangeMembershipError::LearnerNotFound(_)
                    | ChangeMembershipError::UnsupportedMembershipTransition(_)
                    | ChangeMembershipError::NodeMetadataChanged(_) => RaftFailure::Refused,
                };
                Error::Raft { context, failure, source: Box::new(self) }
            }
            ClientWriteError::PreconditionFailed(_) => Error::refused_by_raft(context, self),
        }
    }
}

impl RaftApiError for InitializeError<TypeConfig> {
    fn into_error(self, context: String) -> Error {
        match &self {
            InitializeError::NotAllowed(_) | InitializeError::NotInMembers(_) => {
                Error::refused_by_raft(context, self)
            }
        }
    }
}

impl RaftApiError for LinearizableReadError<TypeConfig> {
    fn into_error(self, context: String) -> Error {
        match &self {
            LinearizableReadError::ForwardToLeader(forward) => not_leader(forward),
            LinearizableReadError::QuorumNotEnough(_) => {
                Error::Raft { context, failure: RaftFailure::NoQuorum, source: Box::new(self) }
            }
        }
    }
}
