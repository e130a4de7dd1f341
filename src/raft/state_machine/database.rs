//! The contract between the Raft state machine and the node's SQLite files.
//!
//! The state machine decides *whether* an entry changes the database (deterministically, the
//! same on every node); the `Database` implementation decides *how* pages reach SQLite's files.

use std::io;
use std::path::Path;

use crate::raft::types::{LogIndex, PageSet, ProposalId};

/// The replicated database as the state machine drives it. Implemented by the node over
/// SQLite's files. All methods may block (file I/O); the state machine calls them from a
/// blocking thread.
pub trait Database: Send + Sync + 'static {
    /// The pages of `proposal` are already in this node's WAL (it proposed them and is
    /// waiting): make them final. Returns false if this node has no such pending proposal
    /// (then the caller applies the pages with `apply_pages`).
    fn finish_local(&self, proposal: ProposalId, index: LogIndex) -> io::Result<bool>;
    /// Tell a waiting local proposer its entry will not be applied (conflict), so it can roll
    /// back. A no-op if this node has no such proposal.
    fn reject_local(&self, proposal: ProposalId);
    /// Write a committed transaction made elsewhere (append to the WAL). Applying the same page
    /// set twice must leave the same database (page images are absolute).
    fn apply_pages(&self, index: LogIndex, pages: &PageSet) -> io::Result<()>;
    /// Write a consistent image of the database as of everything applied so far to `path` (a
    /// new, empty file the caller created with its private mode, which must be kept: write
    /// into it rather than replace it; the caller owns it afterwards).
    fn export_image(&self, path: &Path) -> io::Result<()>;
    /// Replace the whole database with the image at `path`, atomically for readers. The file
    /// stays the caller's: copy from it, do not move or keep it.
    fn import_image(&self, path: &Path) -> io::Result<()>;
    /// Make everything applied so far durable.
    fn sync(&self) -> io::Result<()>;
    /// The state machine's `last_write_index` after a restart or a snapshot install (the
    /// proposer builds on it).
    fn set_last_write_index(&self, index: LogIndex);
    /// An opaque token for where the database stands after the last apply (for the WAL: its
    /// generation and last commit frame).
    fn position(&self) -> io::Result<Vec<u8>>;
    /// Whether the database, as found at start-up, still holds everything up to `position`.
    fn holds(&self, position: &[u8]) -> io::Result<bool>;
    /// Whether an apply since the last call left the WAL long enough to be checkpointed.
    fn take_checkpoint_due(&self) -> bool {
        false
    }
    /// Copy the WAL into the database file as far as readers allow. Blocking; called off the
    /// apply path, while applies go on.
    fn checkpoint(&self) {}
}
