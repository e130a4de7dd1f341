//! One error type for everything above the FFI edge, and its one mapping to SQLite result
//! codes.
//!
//! Each layer keeps its own error enum (`WalError`, `LogError`, `SmError`, `SmallFileError`,
//! `TransportError`, `TrustError`, openraft's errors); [`Error`] wraps them as their
//! `#[source]`, so the cause stays typed and reachable through `source()`, and a message is
//! the chain of causes ([`Error::chain`]: "what we did: why: the OS's reason").
//!
//! The mapping ([`Error::sqlite_code`]) decides on the real cause and has no wildcard arm, in
//! it or in the functions it calls: a new variant anywhere forces a decision. The storage
//! layers say what kind of failure each of their errors is (a [`Fault`]: corruption, a failed
//! read, write or fsync...); the mapping turns a fault into its code here.

use std::ffi::c_int;
use std::io;
use std::sync::Arc;

use crate::ffi::sys::*;
use crate::raft::log_store::LogError;
use crate::raft::small_file::SmallFileError;
use crate::raft::state_machine::SmError;
use crate::raft::storage_cause::StorageCause;
use crate::raft::types::{NodeId, TypeConfig};
use crate::transport::TransportError;
use crate::trust::error::TrustError;
use crate::wal::WalError;

mod chain;
mod fault;
mod from_raft;

pub use chain::Chain;
pub use fault::{Fault, SqliteCode};
pub use from_raft::RaftFailure;

/// A boxed cause of any type (openraft's errors are generic over the call that failed).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong in dqlite-vfs, as the caller needs to tell it apart.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A SQL function was called with wrong arguments.
    #[error("{0}")]
    InvalidArgument(String),
    /// The connection's database was not opened through the `ha` VFS.
    #[error("the main database of this connection was not opened through the ha VFS: open it as 'file:NAME?vfs=ha' (or make ha the default VFS) before calling {function}")]
    NotThroughHa {
        /// The SQL function that was called.
        function: &'static str,
    },
    /// The database is not a node (no `ha_init`/`ha_join` yet).
    #[error("this database is not a cluster node: call ha_init(addr) or ha_join(addr, peer, token) first")]
    NotANode,
    /// This node is not the leader, so it may not write.
    #[error("this node is not the leader{}: write on the leader", leader_hint(.leader))]
    NotLeader {
        /// The leader, if known: id and address.
        leader: Option<(NodeId, String)>,
    },
    /// This node leads, but has not heard from a majority lately: it may be cut off, and a
    /// commit could not complete; refused before anything was written.
    #[error("this node leads but has not heard from a majority for {silent_ms} ms (cut off from the cluster?): nothing was written; retry, or write on the other side's leader")]
    LostQuorum {
        /// Time since a majority last acknowledged this leader.
        silent_ms: u64,
    },
    /// The node was stopped (left the cluster or failed).
    #[error("the node of this database is stopped: {0}")]
    NodeStopped(String),
    /// Another process runs the node of this database.
    #[error("the node of this database runs in another process (owner lock {0} is held): this process may read but not write")]
    OwnedElsewhere(String),
    /// The transaction was built on an outdated state; nothing changed, retry.
    #[error("commit did not happen: the transaction conflicted with one committed before it; nothing was written, retrying is safe")]
    Conflict,
    /// The cluster refused the commit before it could take effect (leadership moved, the
    /// node is shutting down): nothing changed, retrying is safe.
    #[error("commit did not happen: {0}; nothing was written, retrying is safe")]
    NotCommitted(String),
    /// The commit was proposed but its fate is not known: it may or may not be committed.
    /// Whatever the cause (kept as the source), the caller must check before retrying.
    #[error("commit outcome unknown: {what}; it may still be committed, so check before retrying")]
    OutcomeUnknown {
        /// What happened to the proposal.
        what: String,
        /// Why, when an error said so.
        #[source]
        cause: Option<BoxError>,
    },
    /// A wait for the cluster ended at its deadline without an answer.
    #[error("{0}")]
    Unreachable(String),
    /// Refused because it would overwrite or lose data, or the cluster refused the request.
    #[error("{0}")]
    Refused(String),
    /// The transport failed: a request to another node (the cause says how: unreachable, a
    /// certificate refused, an error answer...), or setting up TLS.
    #[error("{context}")]
    Transport {
        /// What we were doing (what we asked, and of whom).
        context: String,
        /// The transport's error.
        #[source]
        source: TransportError,
    },
    /// The node could not listen on its address.
    #[error("cannot listen on {addr} (is the address in use, or not local?)")]
    Listen {
        /// The address.
        addr: String,
        /// The transport's error.
        #[source]
        source: TransportError,
    },
    /// openraft refused or failed an operation (see [`RaftFailure`]).
    #[error("{context}")]
    Raft {
        /// What we asked of Raft.
        context: String,
        /// What the failure means for the caller.
        failure: RaftFailure,
        /// openraft's error.
        #[source]
        source: BoxError,
    },
    /// The log store or the state machine failed under openraft; the source carries the
    /// classified cause ([`StorageCause`]).
    #[error("{context}")]
    Storage {
        /// What we asked of Raft.
        context: String,
        /// openraft's storage error.
        #[source]
        source: openraft::StorageError<TypeConfig>,
    },
    /// The WAL or the wal-index could not be read or was not as it must be.
    #[error("{context}")]
    Wal {
        /// What we were doing.
        context: &'static str,
        /// The WAL layer's error.
        #[source]
        source: WalError,
    },
    /// The Raft log failed (opening it, most often: a corrupt record refuses the start).
    #[error("{context}")]
    Log {
        /// What we were doing.
        context: &'static str,
        /// The log store's error.
        #[source]
        source: LogError,
    },
    /// The state machine failed (opening it: a bad snapshot, an unreadable applied state).
    #[error("{context}")]
    StateMachine {
        /// What we were doing.
        context: &'static str,
        /// The state machine's error.
        #[source]
        source: SmError,
    },
    /// A small state file of the node (node.json and the like) could not be read or written.
    #[error("{context}")]
    StateFile {
        /// What we were doing.
        context: String,
        /// The small-file layer's error.
        #[source]
        source: SmallFileError,
    },
    /// A file of the node's state could not be read or written.
    #[error("{context}")]
    Io {
        /// What we were doing.
        context: String,
        /// Which kind of operation failed (decides the code, see [`Fault::of_io`]).
        fault: Fault,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A join token, a proof or a certificate was refused (which, and why, is in the cause).
    #[error(transparent)]
    Trust(#[from] TrustError),
    /// This node was removed from the cluster: its certificate is revoked, so it takes no part
    /// any more. Reads still see its database as of the removal.
    #[error("node {node_id} was removed from the cluster (its certificate is revoked): it no longer replicates; ha_leave() makes the database a plain one again, or join afresh with a new token")]
    Removed {
        /// This node's id.
        node_id: NodeId,
    },
    /// The node's state directory, or a directory under it, is not private to the user running
    /// the node (open to group or others, owned by another user, or a symbolic link): refused,
    /// since it holds the whole database and the cluster's keys.
    #[error("refusing the node state directory {dir}: {problem}; fix: {fix}")]
    InsecureStateDir {
        /// The directory refused.
        dir: String,
        /// What is wrong with it (its mode, owner or type).
        problem: String,
        /// The command or step that fixes it.
        fix: String,
    },
    /// Archiving or restoring failed (the store, a damaged object, an unrestorable target).
    #[error(transparent)]
    Archive(#[from] crate::archive::ArchiveError),
    /// A SQLite call made by the node failed.
    #[error("SQLite error {code}: {message}")]
    Sqlite {
        /// The SQLite result code.
        code: c_int,
        /// SQLite's message.
        message: String,
    },
    /// An answer or a state that should not happen: a peer of another version, or a bug.
    #[error("{0}")]
    Internal(String),
    /// A task of the node's runtime panicked or was cancelled: a bug, or a shutdown.
    #[error("{context}: the task did not finish")]
    Task {
        /// What the task was doing.
        context: &'static str,
        /// The runtime's error.
        #[source]
        source: tokio::task::JoinError,
    },
}

fn archive_code(error: &crate::archive::ArchiveError) -> c_int {
    use crate::archive::store::StoreError;
    use crate::archive::ArchiveError;
    match error {
        // A damaged object is never applied: reported as corruption.
        ArchiveError::Format(_) => SQLITE_CORRUPT,
        // A bad URL or option is the caller's to fix, not a fault.
        ArchiveError::Store(StoreError::InvalidTarget { .. } | StoreError::InvalidName { .. }) => {
            SQLITE_ERROR
        }
        ArchiveError::Store(
            StoreError::Open { .. }
            | StoreError::NotFound { .. }
            | StoreError::TooLarge { .. }
            | StoreError::Timeout { .. }
            | StoreError::Store { .. }
            | StoreError::LocalFile { .. }
            | StoreError::ListTooLong { .. },
        ) => SQLITE_IOERR,
        ArchiveError::Io { .. } => SQLITE_IOERR,
        ArchiveError::Unrestorable(_)
        | ArchiveError::NotEmpty(_)
        | ArchiveError::OtherCluster { .. } => SQLITE_ERROR,
    }
}

fn leader_hint(leader: &Option<(NodeId, String)>) -> String {
    match leader {
        Some((id, addr)) => format!(" (the leader is node {id} at {addr})"),
        None => " (no leader is known right now)".to_string(),
    }
}

impl Error {
    /// Builds an `Io` error: `fault` names the operation that failed.
    pub fn io(fault: Fault, context: impl Into<String>, source: io::Error) -> Error {
        Error::Io { context: context.into(), fault, source }
    }

    /// Builds an `Io` error from an error kept for later callers (a failure remembered once
    /// and reported to each).
    pub fn io_shared(fault: Fault, context: impl Into<String>, source: &Arc<io::Error>) -> Error {
        Error::io(fault, context, io::Error::new(source.kind(), Arc::clone(source)))
    }

    /// A failed request to another node, or a failed TLS setup.
    pub fn transport(context: impl Into<String>, source: TransportError) -> Error {
        Error::Transport { context: context.into(), source }
    }

    /// The message with its chain of causes: "what we did: why: the OS's reason".
    pub fn chain(&self) -> Chain<'_> {
        Chain(self)
    }

    /// True if the error means "this node may not write" (as opposed to a failure).
    pub fn is_not_writable(&self) -> bool {
        matches!(
            self,
            Error::NotLeader { .. }
                | Error::LostQuorum { .. }
                | Error::NodeStopped(_)
                | Error::OwnedElsewhere(_)
                | Error::Removed { .. }
        )
    }

    /// The SQLite result code that reports this error.
    pub fn sqlite_code(&self) -> c_int {
        match self {
            Error::InvalidArgument(_) => SQLITE_ERROR,
            Error::NotThroughHa { .. } => SQLITE_ERROR,
            Error::NotANode => SQLITE_ERROR,
            Error::NotLeader { .. } => SQLITE_READONLY,
            Error::NodeStopped(_) => SQLITE_READONLY,
            Error::LostQuorum { .. } => SQLITE_READONLY,
            Error::Removed { .. } => SQLITE_READONLY,
            Error::OwnedElsewhere(_) => SQLITE_READONLY_CANTLOCK,
            // Did not happen: nothing was written, retrying is safe.
            Error::Conflict => SQLITE_IOERR_WRITE,
            Error::NotCommitted(_) => SQLITE_IOERR_WRITE,
            // Whatever its cause, the caller must check before retrying.
            Error::OutcomeUnknown { .. } => SQLITE_IOERR_COMMIT_ATOMIC,
            // Not CANTOPEN: the database file is fine, the network is not.
            Error::Unreachable(_) => SQLITE_IOERR,
            Error::Refused(_) => SQLITE_ERROR,
            Error::Internal(_) => SQLITE_INTERNAL,
            Error::Task { .. } => SQLITE_INTERNAL,
            Error::Transport { source, .. } => transport_code(source, SQLITE_IOERR),
            // The address is the problem (in use, not local): a configuration error.
            Error::Listen { source, .. } => transport_code(source, SQLITE_ERROR),
            Error::Raft { failure, .. } => raft_code(*failure),
            Error::Storage { source, .. } => fault_code(storage_fault(source)),
            Error::Wal { source, .. } => fault_code(source.fault()),
            Error::Log { source, .. } => fault_code(source.fault()),
            Error::StateMachine { source, .. } => fault_code(source.fault()),
            Error::StateFile { source, .. } => fault_code(source.fault()),
            Error::Io { fault, source, .. } => fault_code(Fault::of_io(source, *fault)),
            // The node cannot safely open its state: the same as a database that cannot be opened.
            Error::InsecureStateDir { .. } => SQLITE_CANTOPEN,
            Error::Sqlite { code, .. } => *code,
            Error::Trust(source) => trust_code(source),
            Error::Archive(error) => archive_code(error),
        }
    }
}

/// The code of each kind of storage failure.
fn fault_code(fault: Fault) -> c_int {
    match fault {
        Fault::Corrupt => SQLITE_CORRUPT,
        Fault::Read => SQLITE_IOERR_READ,
        Fault::ShortRead => SQLITE_IOERR_SHORT_READ,
        Fault::Write => SQLITE_IOERR_WRITE,
        Fault::Fsync => SQLITE_IOERR_FSYNC,
        Fault::Stat => SQLITE_IOERR_FSTAT,
        Fault::Lock => SQLITE_IOERR_LOCK,
        Fault::ShmMap => SQLITE_IOERR_SHMMAP,
        Fault::Open => SQLITE_CANTOPEN,
        Fault::Io => SQLITE_IOERR,
        Fault::Busy => SQLITE_BUSY,
        Fault::Full => SQLITE_FULL,
        Fault::Internal => SQLITE_INTERNAL,
        Fault::Sqlite(code) => code,
    }
}

/// The fault behind a storage error openraft reports: the [`StorageCause`] our log store or
/// state machine gave it.
fn storage_fault(error: &openraft::StorageError<TypeConfig>) -> Fault {
    let cause = std::error::Error::source(error).and_then(|s| s.downcast_ref::<StorageCause>());
    match cause {
        Some(cause) => cause.fault(),
        // Not reachable while `TypeConfig::ErrorSource` is `StorageCause`.
        None => Fault::Io,
    }
}

fn raft_code(failure: RaftFailure) -> c_int {
    match failure {
        RaftFailure::Refused => SQLITE_ERROR,
        RaftFailure::NoQuorum => SQLITE_IOERR,
        RaftFailure::Timeout => SQLITE_IOERR,
        RaftFailure::Stopped => SQLITE_READONLY,
        RaftFailure::Panicked => SQLITE_INTERNAL,
        RaftFailure::Config => SQLITE_INTERNAL,
    }
}

/// A transport failure: `io_code` for a local I/O error, whose meaning depends on the call
/// (binding an address, or talking to a peer).
fn transport_code(error: &TransportError, io_code: c_int) -> c_int {
    match error {
        TransportError::Io(_) => io_code,
        // Our own credentials or TLS setup: an authentication problem, never "unreachable".
        TransportError::Certificate(_) => SQLITE_AUTH,
        TransportError::Pem(_) => SQLITE_AUTH,
        TransportError::TlsConfig(_) => SQLITE_AUTH,
        TransportError::Handshake { .. } => SQLITE_AUTH,
        TransportError::WrongPeer { .. } => SQLITE_AUTH,
        TransportError::Trust(trust) => trust_code(trust),
        // A name that does not resolve is a wrong address, not a network outage.
        TransportError::Resolve { .. } => SQLITE_ERROR,
        TransportError::Unreachable { .. } => SQLITE_IOERR,
        TransportError::ConnectionLost { .. } => SQLITE_IOERR,
        TransportError::Timeout { .. } => SQLITE_IOERR,
        TransportError::Frame(_) => SQLITE_IOERR,
        TransportError::Closed => SQLITE_IOERR,
        TransportError::Remote { .. } => SQLITE_ERROR,
        TransportError::UnexpectedResponse { .. } => SQLITE_INTERNAL,
        TransportError::Snapshot(_) => SQLITE_CORRUPT,
    }
}

/// Refused by the cluster's trust checks: an authorization failure, not a fault; except a
/// failure to read or write the credentials, or of the system's random generator.
fn trust_code(error: &TrustError) -> c_int {
    match error {
        TrustError::Io(source) => fault_code(Fault::of_io(source, Fault::Io)),
        TrustError::Random => SQLITE_INTERNAL,
        TrustError::TokenMalformed { .. }
        | TrustError::TokenExpired { .. }
        | TrustError::TokenUnknown { .. }
        | TrustError::TokenUsedUp { .. }
        | TrustError::TokenWrongRole { .. }
        | TrustError::ProofInvalid
        | TrustError::ForeignCluster { .. }
        | TrustError::Certificate(_)
        | TrustError::PeerIdentity { .. }
        | TrustError::Pem(_)
        | TrustError::KeyMismatch
        | TrustError::Rcgen(_)
        | TrustError::NoCaKey
        | TrustError::IdMalformed { .. }
        | TrustError::ValidityOutOfRange
        | TrustError::NotAMember { .. }
        | TrustError::Revoked { .. }
        | TrustError::WrongCluster
        | TrustError::Refused(_) => SQLITE_AUTH,
    }
}

#[cfg(test)]
mod tests;
