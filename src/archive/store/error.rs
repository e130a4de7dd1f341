//! Errors of the archive's object store: each names the operation and the object, keeps its
//! cause, and never holds a credential (targets and stores print none, and object_store's
//! errors carry URLs and server messages, which hold no secret: SigV4 signs in headers).

use std::time::Duration;

/// What went wrong with an archive target or one call to its store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The `ha_archive` URL or options were refused.
    #[error("archive target refused: {reason}")]
    InvalidTarget {
        /// Why, naming the option or part of the URL.
        reason: String,
    },
    /// An object name is not a relative `a/b/c` path of allowed characters.
    #[error("archive object name {name:?} refused: {reason}")]
    InvalidName {
        /// The name, cut to a printable length.
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// The store could not be set up (directory not creatable, client not buildable).
    #[error("archive store {url}: cannot open: {source}")]
    Open {
        /// The target's URL, without credentials.
        url: String,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// The object does not exist. Callers rely on telling this apart.
    #[error("archive {op} {name}: no such object")]
    NotFound {
        /// The operation (`get`, `get_to_file`, ...).
        op: &'static str,
        /// The object's name below the archive root.
        name: String,
    },
    /// The object is larger than the caller accepts; nothing past the refusal was read.
    #[error("archive {op} {name}: object is {size} bytes, more than the {bytes_max} accepted")]
    TooLarge {
        /// The operation.
        op: &'static str,
        /// The object's name.
        name: String,
        /// Its size as announced, or the bytes seen so far when the store sent more.
        size: u64,
        /// The caller's bound.
        bytes_max: u64,
    },
    /// The call did not finish within its deadline (the store is down or too slow).
    #[error("archive {op} {name}: no answer within {} ms (store down or too slow?)", .after.as_millis())]
    Timeout {
        /// The operation.
        op: &'static str,
        /// The object's name (or the listed directory).
        name: String,
        /// The deadline that passed.
        after: Duration,
    },
    /// The store refused or failed the request.
    #[error("archive {op} {name}: {source}")]
    Store {
        /// The operation.
        op: &'static str,
        /// The object's name (or the listed directory).
        name: String,
        /// object_store's error.
        #[source]
        source: object_store::Error,
    },
    /// Reading or writing the local file of `put_file` / `get_to_file` failed.
    #[error("archive {op} {name}: local file {path}: {source}")]
    LocalFile {
        /// The operation.
        op: &'static str,
        /// The object's name.
        name: String,
        /// The local file.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A listing holds more entries than one call returns.
    #[error("archive list {dir}: more than {entries_max} objects; list a narrower directory")]
    ListTooLong {
        /// The listed directory.
        dir: String,
        /// The bound.
        entries_max: usize,
    },
}

impl StoreError {
    /// True when the object does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, StoreError::NotFound { .. })
    }

    /// Maps object_store's error, keeping NotFound apart.
    pub(super) fn from_store(op: &'static str, name: &str, source: object_store::Error) -> Self {
        match source {
            object_store::Error::NotFound { .. } => StoreError::NotFound { op, name: name.into() },
            source => StoreError::Store { op, name: name.into(), source },
        }
    }
}
