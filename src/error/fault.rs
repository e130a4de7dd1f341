//! What kind of failure a storage error is ([`Fault`]), and how an `io::Error` that carries
//! one of our errors is seen through. The storage layers classify their errors into faults;
//! `crate::error` turns each fault into its result code.

use std::ffi::c_int;
use std::io;

use super::Error;
use crate::raft::log_store::LogError;
use crate::raft::small_file::SmallFileError;
use crate::raft::state_machine::SmError;
use crate::raft::storage_cause::StorageCause;
use crate::wal::WalError;

/// What kind of failure a storage error is, as far as its result code goes. The storage
/// layers classify their errors into these (`WalError::fault` and the like);
/// `Error::sqlite_code` turns each into its code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Fault {
    /// Stored data failed a check: a log record, a snapshot image, a WAL frame or header, a
    /// state file.
    Corrupt,
    /// A read failed.
    Read,
    /// A read found less data than must be there.
    ShortRead,
    /// A write failed.
    Write,
    /// Making written data durable failed.
    Fsync,
    /// Looking at a file's metadata failed.
    Stat,
    /// Taking a file or wal-index lock failed.
    Lock,
    /// Mapping the wal-index failed.
    ShmMap,
    /// Opening or creating a file or directory failed.
    Open,
    /// Any other file-system operation failed (list, rename, remove).
    Io,
    /// A lock stayed taken until the deadline.
    Busy,
    /// A limit of the format was reached (the WAL's frame count).
    Full,
    /// An impossible state: a bug, a poisoned lock, a panicked task.
    Internal,
    /// The wrapped SQLite VFS failed with this code: it is passed on as is.
    Sqlite(c_int),
}

/// A result code of the wrapped SQLite VFS, carried as the cause of an `io::Error` so the
/// code survives the trip through the `wal` module's and the state machine's `io::Result`s.
#[derive(Clone, Copy, Debug, thiserror::Error)]
#[error("{what}: the SQLite VFS failed with code {code}")]
pub struct SqliteCode {
    /// What was being done.
    pub what: &'static str,
    /// The code the VFS returned.
    pub code: c_int,
}

impl Fault {
    /// The fault of an I/O error: the typed cause it carries if it carries one of ours (the
    /// storage traits speak `io::Result`), else `otherwise`, the operation that failed (a
    /// read that hit the end of the file is a short read).
    pub fn of_io(error: &io::Error, otherwise: Fault) -> Fault {
        if let Some(inner) = error.get_ref() {
            if let Some(code) = inner.downcast_ref::<SqliteCode>() {
                return Fault::Sqlite(code.code);
            }
            // One of ours passed down as an `io::Error` (a node call under a storage trait).
            if let Some(error) = inner.downcast_ref::<Error>() {
                return Fault::Sqlite(error.sqlite_code());
            }
            if let Some(cause) = inner.downcast_ref::<StorageCause>() {
                return cause.fault();
            }
            if let Some(wal) = inner.downcast_ref::<WalError>() {
                return wal.fault();
            }
            if let Some(log) = inner.downcast_ref::<LogError>() {
                return log.fault();
            }
            if let Some(sm) = inner.downcast_ref::<SmError>() {
                return sm.fault();
            }
            if let Some(file) = inner.downcast_ref::<SmallFileError>() {
                return file.fault();
            }
        }
        match (error.kind(), otherwise) {
            (io::ErrorKind::UnexpectedEof, Fault::Read | Fault::Io) => Fault::ShortRead,
            (_, otherwise) => otherwise,
        }
    }
}
