//! The durable Raft log: openraft's `RaftLogStorage` and `RaftLogReader` over segment files in
//! `<state_dir>/log/`.
//!
//! On disk: `<seq>.seg` segment files of checksummed records (one entry each), `vote` and
//! `purged` (fsynced small files). The commit index is not stored: openraft learns it
//! again from the leader (or, alone, on re-election), and re-applying is idempotent.
//!
//! Invariants: an append is one write, made durable by one `fdatasync` in the background
//! (`syncer`), and its `IOFlushed` callback fires only after that sync; all writes are
//! serialized by the state lock. Entries are readable as soon as they are written (openraft
//! replicates them while the leader's own sync runs, and counts the leader's vote only after
//! the callback); the newest are served decoded from memory (`recent`), older ones from the
//! files, whose locations alone are kept in memory. An entry is encoded straight into its
//! segment through a bounded buffer, its page images shared with the entry (see
//! [`shared`](crate::raft::shared)), and one read from a file is decoded with its page images
//! sliced from the buffer read, so neither direction holds an entry twice.

mod error;
mod recent;
mod record;
mod segment;
mod state;
mod syncer;

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use openraft::storage::{IOFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader};

pub use self::error::LogError;
pub use self::record::RECORD_BODY_BYTES_MAX;
pub use self::segment::SEGMENT_BYTES_MAX;
use self::state::State;
use self::syncer::Syncer;
use crate::raft::alias::{EntryT, LogIdT, VoteT};
use crate::raft::shared;
use crate::raft::storage_cause::StorageCause;
use crate::raft::types::{page_bytes, TypeConfig};

pub use crate::state_layout::LOG_DIR;

/// Upper bound on entry bodies returned by one `limited_get_log_entries` call, so that feeding a
/// lagging follower does not load an unbounded part of the log into memory.
pub const READ_BATCH_BYTES_MAX: u64 = 64 << 20;

/// The log store handed to openraft. Cheap to clone; clones share one log.
#[derive(Clone, Debug)]
pub struct LogStore {
    state: Arc<Mutex<State>>,
    dir: PathBuf,
    syncer: Syncer,
}

/// A read handle on the log (used by replication tasks).
#[derive(Clone, Debug)]
pub struct LogReader {
    state: Arc<Mutex<State>>,
}

impl LogStore {
    /// Open (or create) the log in `<state_dir>/log/`, verifying every record and cutting a torn
    /// tail. Blocking: call it before starting Raft or from a blocking thread.
    pub fn open(state_dir: &Path) -> Result<LogStore, LogError> {
        Self::open_with_segment_bytes(state_dir, SEGMENT_BYTES_MAX)
    }

    /// Like [`LogStore::open`] with a custom segment size bound (tests use a small one).
    pub fn open_with_segment_bytes(
        state_dir: &Path,
        segment_bytes_max: u64,
    ) -> Result<LogStore, LogError> {
        let dir = state_dir.join(LOG_DIR);
        let state = State::open(&dir, segment_bytes_max)?;
        Ok(LogStore { state: Arc::new(Mutex::new(state)), dir, syncer: Syncer::start()? })
    }

    /// A read handle sharing this log.
    fn reader(&self) -> LogReader {
        LogReader { state: Arc::clone(&self.state) }
    }

    /// The log directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes the log takes on disk (its segments' records).
    pub fn bytes_on_disk(&self) -> Result<u64, LogError> {
        let st = self.state.lock().map_err(|_| LogError::Poisoned)?;
        Ok(st.bytes_on_disk())
    }

    /// Number of segment files currently in use.
    pub fn segment_count(&self) -> Result<usize, LogError> {
        let st = self.state.lock().map_err(|_| LogError::Poisoned)?;
        Ok(st.segment_count())
    }

    /// Lets the in-memory copy of a newest entry larger than the recent entries' bound go once
    /// this node has applied it (`applied`): it was kept only so that replicating and applying
    /// it read no file. Does nothing if the log is busy; the caller tries again later.
    pub fn release_applied(&self, applied: u64) {
        if let Ok(mut st) = self.state.try_lock() {
            st.recent.release_applied(applied);
        }
    }
}

/// Appends up to this many bytes of page data are written on the calling task.
const INLINE_APPEND_BYTES_MAX: u64 = 256 << 10;

/// Run `f` on the state on a blocking thread, so that file I/O never stalls the async runtime.
async fn with_state<T, F>(state: &Arc<Mutex<State>>, f: F) -> io::Result<T>
where
    T: Send + 'static,
    F: FnOnce(&mut State) -> Result<T, LogError> + Send + 'static,
{
    let state = Arc::clone(state);
    let joined = tokio::task::spawn_blocking(move || {
        let mut st = state.lock().map_err(|_| LogError::Poisoned)?;
        f(&mut st)
    })
    .await;
    match joined {
        Ok(result) => result.map_err(io::Error::from),
        Err(e) => Err(LogError::Task(e).into()),
    }
}

/// `[start, end)` of a range of log indices.
fn bounds<RB: RangeBounds<u64>>(range: &RB) -> (u64, u64) {
    let start = match range.start_bound() {
        Bound::Included(s) => *s,
        Bound::Excluded(s) => s.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(e) => e.saturating_add(1),
        Bound::Excluded(e) => *e,
        Bound::Unbounded => u64::MAX,
    };
    (start, end)
}

/// Read the entries in `[start, end)`, at most `bytes_max` of bodies (at least one entry).
async fn read_entries(
    state: &Arc<Mutex<State>>,
    start: u64,
    end: u64,
    bytes_max: u64,
) -> io::Result<Vec<EntryT>> {
    if start >= end {
        return Ok(Vec::new());
    }
    // Fresh entries (replication right after an append) come from memory, without waiting for
    // the lock if an append or a long read holds it.
    if let Ok(st) = state.try_lock() {
        if let Some(entries) = st.recent.get(start, end, bytes_max) {
            return Ok(entries);
        }
    }
    with_state(state, move |st| {
        // The lock may have been held by the append of the very entries asked for.
        if let Some(entries) = st.recent.get(start, end, bytes_max) {
            return Ok(entries);
        }
        // Reading under the lock keeps the read atomic with respect to a concurrent truncate or
        // purge, as openraft requires; appends wait for it, which is why read batches are bounded.
        let locs = st.locate(start, end, bytes_max);
        let mut out = Vec::with_capacity(locs.len());
        for (file, loc) in locs {
            let body = record::read_indexed(&file, loc.seg, loc.offset, loc.len)?;
            let entry: EntryT = shared::decode(&body).map_err(|e| LogError::Decode {
                path: PathBuf::from(format!("segment {}", loc.seg)),
                offset: loc.offset,
                reason: e.to_string(),
            })?;
            out.push(entry);
        }
        Ok(out)
    })
    .await
}

impl RaftLogReader<TypeConfig> for LogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<EntryT>, io::Error> {
        let (start, end) = bounds(&range);
        read_entries(&self.state, start, end, u64::MAX).await
    }

    async fn read_vote(&mut self) -> Result<Option<VoteT>, io::Error> {
        with_state(&self.state, |st| Ok(st.vote)).await
    }

    async fn limited_get_log_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> Result<Vec<EntryT>, io::Error> {
        read_entries(&self.state, start, end, READ_BATCH_BYTES_MAX).await
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<EntryT>, io::Error> {
        self.reader().try_get_log_entries(range).await
    }

    async fn read_vote(&mut self) -> Result<Option<VoteT>, io::Error> {
        self.reader().read_vote().await
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogReader;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        with_state(&self.state, |st| {
            Ok(LogState { last_purged_log_id: st.purged, last_log_id: st.last_log_id() })
        })
        .await
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.reader()
    }

    async fn save_vote(&mut self, vote: &VoteT) -> Result<(), io::Error> {
        let vote = *vote;
        with_state(&self.state, move |st| st.save_vote(&vote)).await
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<TypeConfig>,
    ) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = EntryT> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<EntryT> = entries.into_iter().collect();
        let last_index = entries.last().map(|e| e.log_id.index);
        // A small append is one short write: cheaper here than the hand-over to a blocking
        // thread, which would sit on every commit's path.
        let small = entries.iter().map(page_bytes).sum::<u64>() <= INLINE_APPEND_BYTES_MAX;
        let inline =
            if small { self.state.try_lock().ok().map(|mut st| st.append(&entries)) } else { None };
        let written = match inline {
            Some(result) => result.map_err(io::Error::from),
            None => with_state(&self.state, move |st| st.append(&entries)).await,
        };
        match written {
            // Written, not yet durable: the syncer fires the callback after fdatasync.
            Ok(Some(file)) => {
                tracing::trace!(target: "dqlite_vfs::latency", last_index, "log written");
                self.syncer.submit(file, callback, last_index);
                Ok(())
            }
            Ok(None) => {
                callback.io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                // The error goes to openraft twice (callback and return): the callback gets
                // its classified copy.
                let cause = <StorageCause as openraft::error::ErrorSource>::from_error(&e);
                callback.io_completed(Err(io::Error::new(e.kind(), cause)));
                Err(e)
            }
        }
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogIdT>) -> Result<(), io::Error> {
        let last_index = last_log_id.map(|l| l.index);
        with_state(&self.state, move |st| st.truncate_after(last_index)).await
    }

    async fn purge(&mut self, log_id: LogIdT) -> Result<(), io::Error> {
        with_state(&self.state, move |st| st.purge(log_id)).await
    }
}

#[cfg(test)]
mod tests;
