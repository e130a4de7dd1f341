//! The archive's errors. Each keeps its cause; none names a credential (the store's errors are
//! written without them, and settings print their URL only).

use std::io;

use thiserror::Error;

use super::format::FormatError;
use super::store::StoreError;

/// Why archiving or restoring failed.
#[derive(Debug, Error)]
pub enum ArchiveError {
    /// The store refused or did not answer.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An object is damaged, foreign or of an unknown format: never applied.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// A local file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The archive cannot give what was asked (no base, a gap, a target past its end).
    #[error("cannot restore: {0}")]
    Unrestorable(String),
    /// `ha_restore` was called on a database that is not empty, or is a node.
    #[error("ha_restore needs an empty database opened through 'ha' that is not a node: {0}")]
    NotEmpty(String),
    /// The archive in the store belongs to another cluster.
    #[error("the archive at {url} belongs to another cluster ({found}); archive this cluster to another prefix")]
    OtherCluster {
        /// The archive's URL (no credentials).
        url: String,
        /// The cluster it belongs to.
        found: String,
    },
}

impl ArchiveError {
    /// Wraps an I/O error with what was being done.
    pub fn io(what: impl Into<String>, source: io::Error) -> ArchiveError {
        ArchiveError::Io { what: what.into(), source }
    }
}
