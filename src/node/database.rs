//! The replicated database as the node drives it: the state machine's [`Database`] (apply a
//! committed page set, finish a local commit, export and import images, sync, checkpoint)
//! over the database's own files and two internal connections: a reader, and one kept for
//! checkpoints.
//!
//! Invariants:
//! - Only committed Raft entries change what readers see. A local commit is finished (its
//!   valid commit-frame header written) by the state machine when its entry is applied;
//!   entries from elsewhere are appended to the WAL under the WAL write lock.
//! - Everything here is called from the state machine task, one call at a time, except
//!   [`ReplicatedDb::index_header`] and the `pending` slot, which the committing SQLite
//!   thread also uses, and the checkpoint, which runs on a blocking thread beside the
//!   applies, on its own connection.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::files::{DbFiles, Index, Wal};
use crate::error::{Error, Fault, SqliteCode};
use crate::ffi::connection::{Connection, Through};
use crate::raft::state_machine::{Database, SmError};
use crate::raft::types::{LogIndex, Page, PageData, PageSet, ProposalId};
use crate::wal::append::WriteLock;
use crate::wal::format::Salts;
use crate::wal::index::header::{read_header, IndexHeader};
use crate::wal::index::SharedIndex;

/// How long an apply waits for the WAL write lock before the node gives up (and stops). Local
/// write transactions take the lock only where the node may write, and one waiting for its
/// own entry is refused (`take_write_lock`); what remains are local checkpoints and wal-index
/// recoveries, which hold it at most for their connection's busy timeout.
const WRITE_LOCK_WAIT: Duration = Duration::from_secs(60);
/// How often a blocked apply looks for a local commit to refuse (see `take_write_lock`).
const WRITE_LOCK_RETRY: Duration = Duration::from_millis(20);
/// How long an export or sync waits for SQLite to publish a finished local commit.
const PUBLISH_WAIT: Duration = Duration::from_secs(5);
/// A follower checkpoints once its WAL holds this many frames (SQLite's own default).
const CHECKPOINT_FRAMES: u32 = 1000;
/// Largest page count of an imported image we accept (a 64 KiB-page database of 16 TiB).
const IMAGE_PAGES_MAX: u64 = 1 << 28;

/// The state of this node's one in-flight local commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LocalState {
    /// Proposed; waiting for the entry to be applied.
    Waiting,
    /// Applied: its valid header is written. `commit_frame` is its frame number.
    Finished,
    /// Not applied (conflict).
    Rejected,
}

/// A local commit whose frames are in the WAL behind an invalid commit header.
#[derive(Clone, Debug)]
pub struct LocalCommit {
    /// Its proposal.
    pub proposal: ProposalId,
    /// Where the commit frame header goes.
    pub header_offset: u64,
    /// The valid header.
    pub header: [u8; 24],
    /// The commit frame's number.
    pub commit_frame: u32,
    /// The salts of the WAL generation it was written in (the header's own salts may be
    /// zero until SQLite rewrites them, see `wal/capture.rs`).
    pub salts: Salts,
    /// Progress.
    pub state: LocalState,
}

/// One node's database.
pub struct ReplicatedDb {
    path: PathBuf,
    files: DbFiles,
    reader: Mutex<Connection>,
    /// A second internal connection, for checkpoints run beside the applies (which use the
    /// reader).
    checkpointer: Mutex<Connection>,
    /// Set by an apply that left the WAL at [`CHECKPOINT_FRAMES`] or more.
    checkpoint_due: AtomicBool,
    pending: Mutex<Option<LocalCommit>>,
    /// Signalled when the pending commit settles or its proposal is answered, so the
    /// committing thread wakes straight from the apply rather than through the runtime.
    settled: Condvar,
    last_write_index: AtomicU64,
    /// Where the WAL stands after the last apply (see [`WalPosition`]).
    position: Mutex<Option<WalPosition>>,
}

/// A point in this database's WAL history: a generation (its salts) and a commit frame in
/// it. Everything applied up to a position is in the WAL up to that frame, or was
/// checkpointed into the database file before the WAL was restarted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct WalPosition {
    salts: Salts,
    commit_frame: u32,
}

impl WalPosition {
    const BYTES: usize = 12;

    fn encode(self) -> Vec<u8> {
        [self.salts.salt1, self.salts.salt2, self.commit_frame]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect()
    }

    fn decode(bytes: &[u8]) -> Option<WalPosition> {
        let bytes: &[u8; Self::BYTES] = bytes.try_into().ok()?;
        let word =
            |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        Some(WalPosition { salts: Salts { salt1: word(0), salt2: word(4) }, commit_frame: word(8) })
    }
}

/// An error for the `io::Result`s of the `Database` trait, keeping its type (the state
/// machine's error classification finds it again, see `crate::error::Fault::of_io`).
fn other(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> io::Error {
    io::Error::other(error)
}

/// A snapshot image that is not a database of the size it claims: corrupt.
fn bad_image(path: &Path, reason: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, SmError::BadImage { path: path.to_owned(), reason })
}

/// A failed read of a snapshot image.
#[derive(Debug, thiserror::Error)]
#[error("reading snapshot image {}", path.display())]
struct ImageRead {
    path: PathBuf,
    #[source]
    source: io::Error,
}

impl ReplicatedDb {
    /// Opens the database at `path` for the node, making sure it is a non-empty WAL-mode
    /// database (SQLite deletes the WAL of an empty database file on open).
    pub fn open(path: &Path) -> Result<ReplicatedDb, Error> {
        let reader = Connection::open(path, Through::Ha)?;
        let mode = reader.query_text("PRAGMA journal_mode=WAL")?;
        if mode.as_deref() != Some("wal") {
            return Err(Error::Refused(format!(
                "could not put {} in WAL mode (it is in {} mode; is another connection using it in exclusive mode?)",
                path.display(),
                mode.unwrap_or_default()
            )));
        }
        let files = DbFiles::open(path)?;
        let checkpointer = Connection::open(path, Through::Ha)?;
        Ok(ReplicatedDb {
            path: path.to_owned(),
            files,
            reader: Mutex::new(reader),
            checkpointer: Mutex::new(checkpointer),
            checkpoint_due: AtomicBool::new(false),
            pending: Mutex::new(None),
            settled: Condvar::new(),
            last_write_index: AtomicU64::new(0),
            position: Mutex::new(None),
        })
    }

    /// The database path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The internal reader connection (for checks and image exports).
    pub fn with_reader<T>(&self, f: impl FnOnce(&Connection) -> T) -> T {
        f(&self.reader.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Log index of the last applied write (the base of the next local transaction).
    pub fn last_write_index(&self) -> LogIndex {
        self.last_write_index.load(Ordering::Acquire)
    }

    /// The published wal-index header.
    pub fn index_header(&self) -> Result<IndexHeader, Error> {
        let index = self.files.index();
        let region0 =
            index.region(0).map_err(|e| Error::io(Fault::ShmMap, "mapping the wal-index", e))?;
        read_header(&index, &region0)
            .map_err(|source| Error::Wal { context: "reading the wal-index header", source })
    }

    /// Registers the local commit about to be proposed.
    pub fn begin_local(&self, commit: LocalCommit) {
        tracing::debug!(proposal = ?commit.proposal, frame = commit.commit_frame, "local commit begins");
        *self.pending.lock().unwrap_or_else(PoisonError::into_inner) = Some(commit);
    }

    /// Waits until the local commit `proposal` is no longer waiting, `answered()` holds (Raft
    /// answered its proposal; see [`ReplicatedDb::wake_local`]), or `until` passes.
    pub fn wait_local(&self, proposal: ProposalId, until: Instant, answered: impl Fn() -> bool) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            let waiting = pending
                .as_ref()
                .is_some_and(|c| c.proposal == proposal && c.state == LocalState::Waiting);
            let now = Instant::now();
            if !waiting || answered() || now >= until {
                return;
            }
            pending = self
                .settled
                .wait_timeout(pending, until - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Wakes the thread in [`ReplicatedDb::wait_local`]; call after making `answered()` true.
    /// Taking the lock first means the waiter either saw the answer or is already waiting.
    pub fn wake_local(&self) {
        let _pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        self.settled.notify_all();
    }

    /// The proposer stops waiting: returns the final state of its commit. Unless it finished
    /// (then the slot stays until SQLite has published it, see `wait_published`), the slot is
    /// cleared, so a later apply of the same entry writes its pages normally.
    pub fn end_local(&self, proposal: ProposalId) -> Option<LocalState> {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        match pending.as_ref() {
            Some(commit) if commit.proposal == proposal => {
                let state = commit.state;
                if state != LocalState::Finished {
                    *pending = None;
                }
                Some(state)
            }
            _ => None,
        }
    }

    /// Makes sure the wal-index header is valid (SQLite recovers it in a read if needed).
    fn refresh_index(&self) -> io::Result<()> {
        self.with_reader(|reader| reader.query_text("PRAGMA schema_version").map(|_| ()))
            .map_err(other)
    }

    /// Waits until a finished local commit is published in the wal-index.
    fn wait_published(&self) -> io::Result<()> {
        let deadline = Instant::now() + PUBLISH_WAIT;
        loop {
            let finished = {
                let pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
                match pending.as_ref() {
                    Some(commit) if commit.state == LocalState::Finished => {
                        Some((commit.commit_frame, commit.salts))
                    }
                    _ => None,
                }
            };
            let Some((frame, salts)) = finished else { return Ok(()) };
            // SQLite may be writing the header right now (the two copies then differ for a
            // moment, as readers also see): such a read just means "not yet".
            let published = match self.index_header() {
                // Published, or the WAL has since restarted (so it was published before).
                Ok(header) => header.max_frame >= frame || header.salts != salts,
                Err(_) => false,
            };
            if published {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(other("a finished local commit was not published in time"));
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    fn append(&self, pages: &PageSet) -> io::Result<()> {
        self.append_with(|wal, index| crate::wal::append::append_transaction(wal, index, pages))
    }

    /// Runs one WAL append under the write lock and records where the database then stands.
    fn append_with(
        &self,
        write: impl FnOnce(
            &Wal<'_>,
            &Index<'_>,
        ) -> Result<crate::wal::append::AppendReport, crate::wal::WalError>,
    ) -> io::Result<()> {
        self.refresh_index()?;
        let index = self.files.index();
        let lock = self.take_write_lock(&index)?;
        let report = write(&self.files.wal(), &index).map_err(other)?;
        let header = self.index_header().map_err(other)?;
        drop(lock);
        *self.position.lock().unwrap_or_else(PoisonError::into_inner) =
            Some(WalPosition { salts: header.salts, commit_frame: report.commit_frame });
        if report.commit_frame >= CHECKPOINT_FRAMES {
            self.checkpoint_due.store(true, Ordering::Release);
        }
        Ok(())
    }

    /// Takes the WAL write lock for an apply. The holder may be a local transaction waiting for
    /// its own entry, which sits in the log behind the one being applied: it would wait for
    /// us while we wait for it. Its entry is built on a base older than this one, so the state
    /// machine will refuse it anyway: it is told so now (a conflict), SQLite rolls it back and
    /// releases the lock.
    fn take_write_lock<'a>(&self, index: &'a Index<'a>) -> io::Result<WriteLock<'a, Index<'a>>> {
        let started = Instant::now();
        let mut warned = false;
        loop {
            match crate::wal::append::acquire_write_lock(index, WRITE_LOCK_RETRY) {
                Ok(lock) => return Ok(lock),
                Err(crate::wal::error::WalError::WriteLockBusy)
                    if started.elapsed() < WRITE_LOCK_WAIT =>
                {
                    self.doom_waiting_local();
                    if !warned && started.elapsed() >= Duration::from_secs(1) {
                        tracing::warn!("applying waits for the WAL write lock, held by a local checkpoint or recovery");
                        warned = true;
                    }
                }
                Err(error) => return Err(other(error)),
            }
        }
    }

    /// Settles a waiting local commit as rejected (see [`ReplicatedDb::take_write_lock`]).
    fn doom_waiting_local(&self) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(commit) = pending.as_mut().filter(|c| c.state == LocalState::Waiting) {
            tracing::info!(proposal = ?commit.proposal, "local commit superseded by an earlier entry; refusing it");
            commit.state = LocalState::Rejected;
            self.settled.notify_all();
        }
    }
}

impl Database for ReplicatedDb {
    fn take_checkpoint_due(&self) -> bool {
        self.checkpoint_due.swap(false, Ordering::AcqRel)
    }

    /// SQLite's PASSIVE checkpoint, as far as readers allow; the next append then restarts
    /// the WAL from its beginning. It takes neither the WAL write lock nor the reader, so
    /// applies go on while it copies.
    fn checkpoint(&self) {
        let checkpointer = self.checkpointer.lock().unwrap_or_else(PoisonError::into_inner);
        let started = Instant::now();
        match checkpointer.exec("PRAGMA wal_checkpoint(PASSIVE)") {
            Ok(()) => tracing::debug!(
                elapsed_ms = started.elapsed().as_millis() as u64,
                "checkpoint done"
            ),
            Err(error) => tracing::warn!(%error, "checkpoint failed"),
        }
    }

    fn finish_local(&self, proposal: ProposalId, index: LogIndex) -> io::Result<bool> {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(commit) =
            pending.as_mut().filter(|c| c.proposal == proposal && c.state == LocalState::Waiting)
        else {
            tracing::debug!(?proposal, pending = ?pending.as_ref().map(|c| (c.proposal, c.state)), "not a waiting local commit");
            return Ok(false);
        };
        self.files
            .wal
            .write_all_at(&commit.header, commit.header_offset)
            .map_err(|c| other(SqliteCode { what: "writing a commit header", code: c.0 }))?;
        commit.state = LocalState::Finished;
        self.settled.notify_all();
        *self.position.lock().unwrap_or_else(PoisonError::into_inner) =
            Some(WalPosition { salts: commit.salts, commit_frame: commit.commit_frame });
        tracing::debug!(?proposal, index, "local commit finished");
        self.last_write_index.store(index, Ordering::Release);
        Ok(true)
    }

    fn reject_local(&self, proposal: ProposalId) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(commit) = pending.as_mut().filter(|c| c.proposal == proposal) {
            commit.state = LocalState::Rejected;
            self.settled.notify_all();
        }
    }

    fn apply_pages(&self, index: LogIndex, pages: &PageSet) -> io::Result<()> {
        self.wait_published()?;
        self.append(pages)?;
        self.last_write_index.store(index, Ordering::Release);
        Ok(())
    }

    fn export_image(&self, path: &Path) -> io::Result<()> {
        self.wait_published()?;
        let dest = Connection::open(path, Through::Plain).map_err(other)?;
        self.with_reader(|reader| -> Result<(), Error> {
            reader.exec("BEGIN")?;
            let result = (|| {
                let cookie: i64 = reader
                    .query_text("PRAGMA schema_version")?
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                // The backup sets the copy's schema cookie to its old value + 1 and a
                // rollback-mode commit rewrites the change counter: prepare the copy so
                // that page 1 comes out byte for byte as in the source.
                dest.query_text("PRAGMA journal_mode=WAL")?;
                dest.exec(&format!(
                    "PRAGMA schema_version={}",
                    cookie.wrapping_sub(1) as u32 as i64
                ))?;
                reader.backup_into(&dest)
            })();
            let _ = reader.exec("COMMIT");
            result
        })
        .map_err(other)?;
        drop(dest);
        Ok(())
    }

    fn import_image(&self, path: &Path) -> io::Result<()> {
        let mut image = ImageReader::open(path)?;
        self.wait_published()?;
        let (page_size, page_count) = (image.page_size, image.page_count);
        self.append_with(|wal, index| {
            crate::wal::append::append_batches(wal, index, page_size, u64::from(page_count), || {
                image.next_batch().map_err(crate::wal::WalError::from)
            })
        })
    }

    fn set_last_write_index(&self, index: LogIndex) {
        self.last_write_index.store(index, Ordering::Release);
    }

    fn position(&self) -> io::Result<Vec<u8>> {
        let recorded = *self.position.lock().unwrap_or_else(PoisonError::into_inner);
        let position = match recorded {
            Some(position) => position,
            None => {
                self.refresh_index()?;
                let header = self.index_header().map_err(other)?;
                WalPosition { salts: header.salts, commit_frame: header.max_frame }
            }
        };
        Ok(position.encode())
    }

    fn holds(&self, position: &[u8]) -> io::Result<bool> {
        let Some(position) = WalPosition::decode(position) else { return Ok(false) };
        let scan = crate::wal::scan::scan(&self.files.wal()).map_err(other)?;
        Ok(match scan.header {
            // No committed frame in the WAL: whatever was committed before is in the
            // database file (a WAL restarts only once fully checkpointed).
            _ if scan.last_commit_frame == 0 => true,
            Some(header) => {
                header.salts == position.salts && scan.last_commit_frame >= position.commit_frame
            }
            None => true,
        })
    }

    fn sync(&self) -> io::Result<()> {
        self.wait_published()?;
        self.files.wal.sync().map_err(|c| other(SqliteCode { what: "syncing the WAL", code: c.0 }))
    }
}

/// Reads a database image file into a page set of all its pages.
/// Bytes of a snapshot image read into memory at once while importing it.
const IMPORT_BATCH_BYTES: u64 = 4 << 20;

/// Reads a snapshot image (a plain database file) in batches of pages, so an import holds
/// [`IMPORT_BATCH_BYTES`] of it in memory, not the whole image.
struct ImageReader {
    file: std::fs::File,
    path: std::path::PathBuf,
    page_size: u32,
    page_count: u32,
    next_page: u32,
}

impl ImageReader {
    /// Opens the image and checks its page size and length.
    fn open(path: &Path) -> io::Result<ImageReader> {
        use std::os::unix::fs::FileExt;
        let file = std::fs::File::open(path)?;
        let len = file.metadata()?.len();
        let mut header = [0u8; 100];
        if len < header.len() as u64 {
            return Err(bad_image(path, format!("too short to be a database ({len} bytes)")));
        }
        file.read_exact_at(&mut header, 0)?;
        let raw_size = u32::from(u16::from_be_bytes([header[16], header[17]]));
        let page_size = if raw_size == 1 { 65_536 } else { raw_size };
        if !(512..=65_536).contains(&page_size)
            || !page_size.is_power_of_two()
            || len % u64::from(page_size) != 0
        {
            return Err(bad_image(path, format!("bad page size {page_size} for {len} bytes")));
        }
        let count = len / u64::from(page_size);
        if count > IMAGE_PAGES_MAX {
            return Err(bad_image(path, format!("too many pages ({count})")));
        }
        Ok(ImageReader {
            file,
            path: path.to_owned(),
            page_size,
            page_count: count as u32,
            next_page: 1,
        })
    }

    /// The next pages, or `None` past the last; each a slice of one buffer read for the batch.
    fn next_batch(&mut self) -> io::Result<Option<PageSet>> {
        use std::os::unix::fs::FileExt;
        if self.next_page > self.page_count {
            return Ok(None);
        }
        let per_batch = (IMPORT_BATCH_BYTES / u64::from(self.page_size)).max(1) as u32;
        let count = per_batch.min(self.page_count - self.next_page + 1);
        let mut buffer = vec![0u8; count as usize * self.page_size as usize];
        let offset = u64::from(self.next_page - 1) * u64::from(self.page_size);
        self.file.read_exact_at(&mut buffer, offset).map_err(|source| {
            io::Error::new(source.kind(), ImageRead { path: self.path.clone(), source })
        })?;
        let bytes = bytes::Bytes::from(buffer);
        let first = self.next_page;
        let pages = bytes
            .chunks_exact(self.page_size as usize)
            .enumerate()
            .map(|(i, data)| Page {
                number: first + i as u32,
                data: PageData::from(bytes.slice_ref(data)),
            })
            .collect();
        self.next_page += count;
        Ok(Some(PageSet { page_size: self.page_size, db_size_pages: self.page_count, pages }))
    }
}
