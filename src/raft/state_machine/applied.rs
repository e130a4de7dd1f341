//! The applied state of the state machine, in two files:
//!
//! - `<state_dir>/applied`: written durably, only after `Database::sync`, so it never claims
//!   more than the database holds durably. It may claim less (it is not rewritten on every
//!   apply).
//! - `<state_dir>/applied.hint`: overwritten in place after every entry, without fsync, with
//!   the database's position (`Database::position`). After a process crash it is exact; it
//!   is trusted only if the database confirms it still holds that position
//!   (`Database::holds`), which a power loss may undo.
//!
//! Why both: re-applying entries the database already holds is correct in the end (page sets
//! are absolute, and the conflict rule depends only on `last_write_index`, stored with
//! `last_applied`), but while it runs, readers would see older pages of some entries over
//! newer ones of others. Resuming from the hint avoids that replay.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::raft::alias::{LogIdT, StoredMembershipT};
use crate::raft::small_file::{self, SmallFileError};
use crate::raft::types::LogIndex;
use crate::trust::registry::Registry;

pub use crate::state_layout::APPLIED_FILE;
use crate::state_layout::APPLIED_HINT_FILE as HINT_FILE;

/// Everything the state machine must remember besides the database itself.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedState {
    /// The last entry applied (or covered by an installed snapshot).
    pub last_applied: Option<LogIdT>,
    /// The last membership config applied.
    pub last_membership: StoredMembershipT,
    /// Log index of the last applied `Command::Write` (0: none): the base a new write must name.
    pub last_write_index: LogIndex,
    /// The cluster's trust state (tokens, admissions, revocations) as of `last_applied`.
    #[serde(default)]
    pub registry: Registry,
    /// The continuous archive's setting as of `last_applied` (None: off).
    #[serde(default)]
    pub archive: Option<crate::archive::setting::ArchiveSetting>,
    /// How far the archive set by `archive` is known to hold every entry (0: not known yet).
    #[serde(default)]
    pub archived_index: LogIndex,
}

/// The applied state after an entry, and where the database stood then.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hint {
    /// The state machine's state.
    pub state: AppliedState,
    /// The database's position token (`Database::position`).
    #[serde(with = "serde_bytes")]
    pub position: Vec<u8>,
}

/// Writer of the hint file, kept open so each update is one positioned write.
pub(crate) struct HintFile {
    path: std::path::PathBuf,
    file: std::fs::File,
}

impl HintFile {
    /// Opens (creating, mode 0600, never through a symbolic link) the hint file of `state_dir`.
    pub(crate) fn open(state_dir: &Path) -> Result<HintFile, SmallFileError> {
        let path = state_dir.join(HINT_FILE);
        let file = small_file::private_file_options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| SmallFileError::Io { path: path.clone(), source })?;
        Ok(HintFile { path, file })
    }

    /// Overwrites the hint (no fsync: see the module doc).
    pub(crate) fn store(&self, hint: &Hint) -> Result<(), SmallFileError> {
        use std::os::unix::fs::FileExt;
        let bytes = small_file::encode(&self.path, hint)?;
        self.file
            .write_all_at(&bytes, 0)
            .map_err(|source| SmallFileError::Io { path: self.path.clone(), source })
    }
}

/// The hint, if it is readable; a damaged hint is only a lost shortcut.
pub(crate) fn load_hint(state_dir: &Path) -> Option<Hint> {
    match small_file::read(&state_dir.join(HINT_FILE)) {
        Ok(hint) => hint,
        Err(error) => {
            tracing::warn!(error = %crate::error::Chain(&error), "ignoring the applied-state hint");
            None
        }
    }
}

/// Read the applied state; the default (nothing applied) if there is no file yet.
pub(crate) fn load(state_dir: &Path) -> Result<AppliedState, SmallFileError> {
    Ok(small_file::read(&state_dir.join(APPLIED_FILE))?.unwrap_or_default())
}

/// Durably record `state`. Call only after the database is synced up to `state.last_applied`.
pub(crate) fn store(state_dir: &Path, state: &AppliedState) -> Result<(), SmallFileError> {
    small_file::write(&state_dir.join(APPLIED_FILE), state)
}
