//! The applied state of the state machine and its file `<state_dir>/applied`.
//!
//! Invariant: the file never claims more than the database holds durably, because it is
//! written only after `Database::sync`. It may claim less (it is not rewritten on every apply):
//! re-applying the entries after it is safe because the conflict rule depends only on
//! `last_write_index`, which is stored together with `last_applied`, and page sets are absolute.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::raft::alias::{LogIdT, StoredMembershipT};
use crate::raft::small_file::{self, SmallFileError};
use crate::raft::types::LogIndex;

/// File name of the applied state inside the state directory.
pub const APPLIED_FILE: &str = "applied";

/// Everything the state machine must remember besides the database itself.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedState {
    /// The last entry applied (or covered by an installed snapshot).
    pub last_applied: Option<LogIdT>,
    /// The last membership config applied.
    pub last_membership: StoredMembershipT,
    /// Log index of the last applied `Command::Write` (0: none): the base a new write must name.
    pub last_write_index: LogIndex,
}

/// Read the applied state; the default (nothing applied) if there is no file yet.
pub(crate) fn load(state_dir: &Path) -> Result<AppliedState, SmallFileError> {
    Ok(small_file::read(&state_dir.join(APPLIED_FILE))?.unwrap_or_default())
}

/// Durably record `state`. Call only after the database is synced up to `state.last_applied`.
pub(crate) fn store(state_dir: &Path, state: &AppliedState) -> Result<(), SmallFileError> {
    small_file::write(&state_dir.join(APPLIED_FILE), state)
}
