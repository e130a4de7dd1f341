//! The safe half of the `ha` VFS: what happens to a database's files when SQLite reads,
//! writes, locks and syncs them.
//!
//! A database opened through `ha` that is not a node is passed through untouched. Once a
//! node is attached to its path ([`attach`]), two things change:
//! - its WAL's commit frames are held back from the file's valid state until the cluster
//!   has committed the transaction ([`wal_file`]), and
//! - local write transactions are refused unless the node may write ([`Replicator`]).

mod file;
pub mod last_error;
pub mod owner;
mod registry;
mod shm_locks;
mod wal_file;
mod write_turns;

pub use file::{FileKind, HaFile, PragmaDecision};
pub use registry::{attach, detach, SharedDb};
pub use write_turns::sleep_in_line;

use crate::error::Error;
use crate::ffi::file::RawFile;

/// Where the commit frame of a transaction being committed sits in the WAL.
#[derive(Clone, Debug)]
pub struct CommitFrame {
    /// Byte offset of the frame header in the WAL file.
    pub header_offset: u64,
    /// The header SQLite meant to write; the file holds a deliberately invalid copy until
    /// the cluster has committed the transaction.
    pub header: [u8; crate::wal::format::FRAME_HEADER_BYTES],
    /// The WAL's page size.
    pub page_size: u32,
}

/// What the VFS needs from the node that owns a database. Implemented by the node layer;
/// the VFS never reaches into Raft itself.
pub trait Replicator: Send + Sync + 'static {
    /// May a local connection write now? Asked when it takes the WAL write lock for a write
    /// transaction, and again at its first WAL write (leadership may have moved in between).
    /// `Err` explains why not (a follower, a stopped node, a leader cut off).
    fn check_writable(&self) -> Result<(), Error>;

    /// A local connection is about to take the WAL write lock for a write transaction. A
    /// node that has just become the leader waits here, holding no lock, until it may write:
    /// it must first apply the entries of earlier terms, and each of those applies needs that
    /// very lock. [`Replicator::check_writable`] then decides.
    fn before_write_lock(&self);

    /// SQLite has written every frame of a transaction, ending with `commit` (whose valid
    /// header is not yet in the file). Returns once the cluster has committed it, with the
    /// valid header written, or fails and leaves the transaction invisible to recovery.
    fn commit(&self, wal: &RawFile, commit: &CommitFrame) -> Result<(), Error>;
}
