//! One error type for everything above the FFI edge, and its one mapping to SQLite result
//! codes. The mapping has no wildcard arm: a new variant forces a decision.

use std::ffi::c_int;

use crate::ffi::sys::*;
use crate::raft::types::NodeId;

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
    #[error("commit outcome unknown: {0}; it may still be committed, so check before retrying")]
    OutcomeUnknown(String),
    /// The cluster could not be reached or did not answer.
    #[error("{0}")]
    Unreachable(String),
    /// Refused because it would overwrite or lose data.
    #[error("{0}")]
    Refused(String),
    /// Raft reported an error.
    #[error("raft: {0}")]
    Raft(String),
    /// A file of the node's state could not be read or written.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing.
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A join token, a proof or a certificate was refused (which, and why, is in the cause).
    #[error("{0}")]
    Trust(#[from] crate::trust::error::TrustError),
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
}

fn archive_code(error: &crate::archive::ArchiveError) -> c_int {
    use crate::archive::ArchiveError;
    match error {
        // A damaged object is never applied: reported as corruption.
        ArchiveError::Format(_) => SQLITE_CORRUPT,
        ArchiveError::Store(_) | ArchiveError::Io { .. } => SQLITE_IOERR,
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
    /// Builds an `Io` error with context.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io { context: context.into(), source }
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
            Error::OwnedElsewhere(_) => SQLITE_READONLY_CANTLOCK,
            Error::Conflict => SQLITE_IOERR_WRITE,
            Error::NotCommitted(_) => SQLITE_IOERR_WRITE,
            Error::OutcomeUnknown(_) => SQLITE_IOERR_COMMIT_ATOMIC,
            // Not CANTOPEN: the database file is fine, the network is not.
            Error::Unreachable(_) => SQLITE_IOERR,
            Error::Refused(_) => SQLITE_ERROR,
            Error::Raft(_) => SQLITE_IOERR_WRITE,
            Error::Io { .. } => SQLITE_IOERR,
            // The node cannot safely open its state: the same as a database that cannot be opened.
            Error::InsecureStateDir { .. } => SQLITE_CANTOPEN,
            Error::Sqlite { code, .. } => *code,
            // Refused by the cluster's trust checks: an authorization failure, not a fault.
            Error::Trust(_) => SQLITE_AUTH,
            Error::Removed { .. } => SQLITE_READONLY,
            Error::Archive(error) => archive_code(error),
        }
    }
}
