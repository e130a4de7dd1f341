//! The vocabulary shared by the Raft log, the state machine and the network: what an entry
//! carries, who a member is, and the openraft type configuration that ties them together.
//!
//! Everything here crosses the wire (rmp-serde) and the disk (the Raft log), so field order
//! and names are part of the format. Page images are [`PageData`]: one binary blob each on
//! the wire and on disk, shared (not copied) by everything in memory that holds the entry.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use super::page_data::PageData;

/// A node's id in its cluster. Node 1 is the node that ran `ha_init`.
pub type NodeId = u64;

/// A Raft log position (openraft's `LogId::index`).
pub type LogIndex = u64;

/// What the cluster knows about a member: where to reach it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// `host:port` of the member's QUIC endpoint (UDP).
    pub addr: String,
}

impl fmt::Display for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.addr)
    }
}

/// One page image of a transaction.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page {
    /// 1-based SQLite page number.
    pub number: u32,
    /// The page's full content; its length is the transaction's page size.
    pub data: PageData,
}

impl fmt::Debug for Page {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Page({}, {} bytes)", self.number, self.data.len())
    }
}

/// The effect of one committed SQLite write transaction: the last image of every page it
/// wrote, and the database size after it. Applying a page set is idempotent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageSet {
    /// Page size in bytes (512..=65536, a power of two).
    pub page_size: u32,
    /// Size of the database in pages once the transaction is committed (the commit frame's
    /// "database size" field).
    pub db_size_pages: u32,
    /// Page images, in ascending page-number order, each page at most once.
    pub pages: Vec<Page>,
}

impl PageSet {
    /// Bytes of page data it carries (what replicating it costs).
    pub fn bytes(&self) -> u64 {
        self.pages.iter().map(|page| page.data.len() as u64).sum()
    }
}

/// Identifies one commit attempt of one node, so that the node which proposed an entry can
/// recognise it when it is applied (its pages are already in its own WAL).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ProposalId {
    /// The proposing node.
    pub node: NodeId,
    /// Unique per node and per process lifetime (a random start, then counting up).
    pub seq: u64,
}

/// The payload of a normal Raft entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// A write transaction made on the leader.
    Write {
        /// Who proposed it.
        proposal: ProposalId,
        /// Log index of the last `Write` the proposer's database had applied when SQLite
        /// built this transaction (0: none). The state machine applies the entry only if this
        /// still holds: a page set is only valid on top of the state it was made from.
        base: LogIndex,
        /// The pages.
        pages: PageSet,
        /// When the leader proposed it (ms since the Unix epoch, its clock): the commit time a
        /// point-in-time restore goes by. Absent (0) in entries written before it existed.
        #[serde(default)]
        at_ms: u64,
    },
    /// A change of the cluster's trust state (tokens, admissions, revocations), proposed by
    /// the leader; applied to the [`Registry`](crate::trust::registry::Registry).
    Trust(crate::trust::registry::TrustChange),
    /// Starts, changes or stops (None) the continuous archive; applied to the
    /// [`AppliedState`](crate::raft::state_machine::AppliedState), so every node knows it and
    /// whichever leads uploads.
    Archive(Option<crate::archive::setting::ArchiveSetting>),
    /// The archive holds every entry up to this index: proposed by the uploading leader now
    /// and then, so that followers keep the entries after it in their logs and whichever
    /// leads next can resume the archive without a gap.
    Archived(LogIndex),
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Write { proposal, base, pages, .. } => write!(
                f,
                "write(from {}#{}, base {}, {} pages, size {})",
                proposal.node,
                proposal.seq,
                base,
                pages.pages.len(),
                pages.db_size_pages
            ),
            // No secret is part of a change (tokens are stored as verifiers only).
            Command::Trust(change) => write!(f, "trust({change:?})"),
            // The setting's Display leaves its credentials out.
            Command::Archive(Some(setting)) => write!(f, "archive({setting})"),
            Command::Archive(None) => f.write_str("archive(off)"),
            Command::Archived(index) => write!(f, "archived({index})"),
        }
    }
}

/// Bytes of page data `entry` carries: the bulk of its encoding (0 for blank and membership
/// entries).
pub fn page_bytes(entry: &openraft::type_config::alias::EntryOf<TypeConfig>) -> u64 {
    match &entry.payload {
        openraft::EntryPayload::Normal(Command::Write { pages, .. }) => pages.bytes(),
        _ => 0,
    }
}

/// What applying a `Command` did, returned to the proposer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ApplyOutcome {
    /// The transaction is now part of the database (membership and blank entries too).
    Applied,
    /// The transaction was built on a state that is no longer the latest; nothing changed.
    /// Safe to retry.
    Conflict,
    /// What a `Command::Trust` did (the registry's verdict, decided the same on every node).
    Trust(crate::trust::registry::TrustOutcome),
}

/// A snapshot's data: a complete database image at a known log position (followed by a
/// 32-byte trailer, see `state_machine/snapshot_store.rs`), kept as a file in
/// the node's state directory so that neither side holds it whole in memory.
#[derive(Debug)]
pub struct SnapshotImage {
    /// The file holding the image and its trailer.
    pub path: PathBuf,
}

openraft::declare_raft_types!(
    /// The openraft type configuration of a dqlite-vfs cluster.
    pub TypeConfig:
        D = Command,
        R = ApplyOutcome,
        NodeId = NodeId,
        Node = Member,
        ErrorSource = crate::raft::storage_cause::StorageCause,
);
