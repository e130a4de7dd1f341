//! One file opened through `ha`: decides, per call, whether to pass it through or to apply
//! the replication rules of its database.

use std::ffi::c_int;
use std::path::PathBuf;
use std::sync::Arc;

use super::owner::check_not_owned_elsewhere;
use super::registry::{shared, SharedDb};
use super::shm_locks::{self, ShmLocks};
use super::wal_file::WalWriter;
use super::write_turns::{self, Ticket, WriteTurns};
use crate::ffi::file::{Code, RawFile};
use crate::ffi::sys::{
    SQLITE_BUSY, SQLITE_OPEN_MAIN_DB, SQLITE_OPEN_WAL, SQLITE_READONLY_CANTLOCK,
};

/// True for the writes that begin every WAL frame or a new WAL (frame headers are 24
/// bytes, the WAL header 32): checking those catches a transaction before its pages land.
fn is_wal_header_write(data: &[u8], offset: u64) -> bool {
    data.len() == 24 || (offset == 0 && data.len() == 32)
}

/// What kind of file SQLite opened, from its open flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// A main database file (the one that can become a node).
    MainDb,
    /// A write-ahead log.
    Wal,
    /// Anything else (temp files, rollback journals, attached non-node databases' files).
    Other,
}

impl FileKind {
    /// Classifies SQLite open flags.
    pub fn from_flags(flags: c_int) -> FileKind {
        if flags & SQLITE_OPEN_MAIN_DB != 0 {
            FileKind::MainDb
        } else if flags & SQLITE_OPEN_WAL != 0 {
            FileKind::Wal
        } else {
            FileKind::Other
        }
    }
}

/// Answer to a `PRAGMA` seen by the VFS (SQLITE_FCNTL_PRAGMA).
#[derive(Debug, PartialEq, Eq)]
pub enum PragmaDecision {
    /// Not ours: SQLite handles it as usual.
    PassOn,
    /// Refused, with this message as the statement's error.
    Refuse(String),
}

/// Pragmas whose change would break replication of a node's database, with the value a
/// node needs (None: any change is refused).
const GUARDED_PRAGMAS: &[(&str, Option<&str>)] =
    &[("journal_mode", Some("wal")), ("locking_mode", Some("normal")), ("page_size", None)];

/// Our state for one open file.
pub struct HaFile {
    raw: RawFile,
    kind: FileKind,
    db: Option<Arc<SharedDb>>,
    wal: Option<WalWriter>,
    locks: ShmLocks,
    /// This connection's place in its database's line for the write lock.
    ticket: Ticket,
}

impl HaFile {
    /// Wraps a file the wrapped VFS just opened at `path`.
    pub fn open(path: Option<String>, kind: FileKind, raw: RawFile) -> HaFile {
        let db_path = match (kind, path) {
            (FileKind::MainDb, Some(path)) => Some(PathBuf::from(path)),
            (FileKind::Wal, Some(path)) => path.strip_suffix("-wal").map(PathBuf::from),
            _ => None,
        };
        let db = db_path.map(|path| shared(&path));
        let wal = (kind == FileKind::Wal).then(WalWriter::default);
        HaFile { raw, kind, db, wal, locks: ShmLocks::default(), ticket: write_turns::new_ticket() }
    }

    /// Gives back the wrapped file, for closing.
    pub fn into_raw(self) -> RawFile {
        self.raw
    }

    /// `xWrite`: WAL writes of a node's database go through the commit protocol; WAL writes
    /// to a database whose node runs in another process are refused.
    pub fn write(&mut self, data: &[u8], offset: u64) -> Result<(), Code> {
        let replicator = self.db.as_ref().and_then(|db| db.replicator());
        match (&mut self.wal, replicator, &self.db) {
            (Some(wal), Some(replicator), _) => {
                wal.write(&self.raw, replicator.as_ref(), data, offset)
            }
            (Some(_), None, Some(db)) if is_wal_header_write(data, offset) => {
                check_not_owned_elsewhere(db.path()).map_err(|error| {
                    tracing::debug!(error = %error.chain(), "write refused");
                    Code(SQLITE_READONLY_CANTLOCK)
                })?;
                self.raw.write_all_at(data, offset)
            }
            _ => self.raw.write_all_at(data, offset),
        }
    }

    /// `xSync`: a node's WAL is made durable by the Raft log, not by syncing it per commit.
    pub fn skip_sync(&self) -> bool {
        self.kind == FileKind::Wal && self.db.as_ref().is_some_and(|db| db.replicator().is_some())
    }

    /// `xShmLock`: passed through, except the WAL write lock for a write transaction on a
    /// node's database:
    /// - a node that may not write refuses it right there (a follower is a read replica:
    ///   `BEGIN IMMEDIATE` fails at once, and no idle transaction can hold up the apply of
    ///   the leader's entries, which needs that lock); a leader elected a moment ago first
    ///   gets ready;
    /// - on the leader, connections take turns ([`WriteTurns`](super::write_turns)), so that
    ///   several writers share the lock fairly instead of starving in SQLite's busy handler.
    ///
    /// Recovery of the wal-index and checkpoints take the write lock too, and pass.
    pub fn shm_lock(&mut self, slot: usize, count: usize, flags: c_int) -> Result<(), Code> {
        let turns = match self.locks.classify(slot, flags) {
            shm_locks::Request::BeginWrite => self.before_write_transaction()?,
            shm_locks::Request::Other => None,
        };
        if let Some(turns) = &turns {
            if !turns.may_try(self.ticket) {
                turns.wait_in_line(self.ticket);
                return Err(Code(SQLITE_BUSY));
            }
        }
        match self.raw.shm_lock(slot, count, flags)? {
            true => {
                self.locks.granted(slot, count, flags);
                if let Some(turns) = turns {
                    turns.took_lock(self.ticket);
                }
                if shm_locks::releases_write_lock(slot, flags) {
                    if let Some(db) = &self.db {
                        db.turns().released();
                    }
                }
                Ok(())
            }
            false => {
                if let Some(turns) = turns {
                    turns.wait_in_line(self.ticket);
                }
                Err(Code(SQLITE_BUSY))
            }
        }
    }

    /// A write transaction asks for the WAL write lock: `Err` if this node may not write,
    /// else the line to take a turn in (None: not a node's database).
    fn before_write_transaction(&self) -> Result<Option<Arc<WriteTurns>>, Code> {
        let Some(db) = &self.db else { return Ok(None) };
        let Some(replicator) = db.replicator() else { return Ok(None) };
        super::last_error::clear();
        replicator.before_write_lock();
        replicator.check_writable().map_err(|error| {
            tracing::debug!(error = %error.chain(), "write transaction refused");
            super::last_error::record(&error);
            Code(error.sqlite_code())
        })?;
        Ok(Some(Arc::clone(db.turns())))
    }

    /// `SQLITE_FCNTL_PRAGMA`: refuses settings that would stop replication working.
    pub fn pragma(&mut self, name: &str, value: Option<&str>) -> PragmaDecision {
        let Some(value) = value else { return PragmaDecision::PassOn };
        let is_node = self.db.as_ref().is_some_and(|db| db.replicator().is_some());
        if self.kind != FileKind::MainDb || !is_node {
            return PragmaDecision::PassOn;
        }
        let name = name.to_ascii_lowercase();
        let value = value.trim_matches(|c| c == '\'' || c == '"').to_ascii_lowercase();
        match GUARDED_PRAGMAS.iter().find(|(guarded, _)| *guarded == name) {
            Some((_, Some(required))) if value == *required => PragmaDecision::PassOn,
            Some((_, required)) => PragmaDecision::Refuse(format!(
                "PRAGMA {name}={value} is not allowed on a replicated database{}",
                required.map(|r| format!(" (it must stay {r})")).unwrap_or_default()
            )),
            None => PragmaDecision::PassOn,
        }
    }
}
