//! Short names for the openraft types instantiated with our [`TypeConfig`], so storage code
//! reads as the domain it handles rather than as generic plumbing.

use openraft::type_config::alias;

use crate::raft::types::{SnapshotImage, TypeConfig};

/// A log position with the leader that wrote it.
pub type LogIdT = alias::LogIdOf<TypeConfig>;
/// A Raft log entry.
pub type EntryT = alias::EntryOf<TypeConfig>;
/// A vote (term and candidate, committed or not).
pub type VoteT = alias::VoteOf<TypeConfig>;
/// A membership config with the log id that introduced it.
pub type StoredMembershipT = alias::StoredMembershipOf<TypeConfig>;
/// What a snapshot covers: last log id and membership.
pub type SnapshotMetaT = alias::SnapshotMetaOf<TypeConfig>;
/// A snapshot as openraft hands it around: meta plus our image file.
pub type SnapshotT = alias::SnapshotOf<TypeConfig, SnapshotImage>;
