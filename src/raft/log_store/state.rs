//! The log store's state behind its lock: the open segments, the index from log position to
//! record location, the purge point and the vote. Every method here does blocking file I/O and
//! runs on a blocking thread.
//!
//! Invariants: `locs` holds consecutive log indices, all greater than `purged`; `locs[i]` points
//! at a checksummed record in `segments`; a mutation is on disk (fsynced) before it is visible
//! in memory.

use std::collections::{BTreeMap, VecDeque};
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::entry::RaftEntry;
use serde::Deserialize;

use super::error::LogError;
use super::recent::RecentEntries;
use super::record;
#[cfg(doc)]
use super::segment::SEGMENT_BYTES_MAX;
use super::segment::{self, Segment};
use crate::raft::alias::{EntryT, LogIdT, VoteT};
use crate::raft::shared;
use crate::raft::small_file::{self, sync_dir};

use crate::state_layout::{PURGED_FILE, VOTE_FILE};

/// Where one entry's record is.
#[derive(Clone, Debug)]
pub(crate) struct Loc {
    pub(crate) seg: u64,
    pub(crate) offset: u64,
    pub(crate) len: u32,
    pub(crate) log_id: LogIdT,
}

/// The part of an encoded entry needed to index it; the payload is skipped, not decoded.
#[derive(Deserialize)]
struct EntryHead {
    log_id: LogIdT,
}

#[derive(Debug)]
pub(crate) struct State {
    dir: PathBuf,
    /// Size at which a new segment is started ([`SEGMENT_BYTES_MAX`] outside tests).
    segment_bytes_max: u64,
    segments: BTreeMap<u64, Segment>,
    locs: VecDeque<Loc>,
    pub(crate) purged: Option<LogIdT>,
    pub(crate) vote: Option<VoteT>,
    /// The newest entries, decoded (a suffix of `locs`).
    pub(crate) recent: RecentEntries,
}

impl State {
    /// Open the log in `dir` (created if missing): scan and verify every segment, cut a torn tail.
    pub(crate) fn open(dir: &Path, segment_bytes_max: u64) -> Result<State, LogError> {
        small_file::create_private_dir(dir)?;
        // The owner lock is held: no write can be in flight, so any temp file is a crash's.
        small_file::remove_temp_files(dir)?;
        let purged: Option<LogIdT> = small_file::read(&dir.join(PURGED_FILE))?;
        let vote = small_file::read(&dir.join(VOTE_FILE))?;
        let seqs = segment::list(dir)?;
        let mut st = State {
            dir: dir.to_path_buf(),
            segment_bytes_max,
            segments: BTreeMap::new(),
            locs: VecDeque::new(),
            purged,
            vote,
            recent: RecentEntries::default(),
        };
        for (i, seq) in seqs.iter().enumerate() {
            let mut seg = segment::open(dir, *seq)?;
            let newest = i + 1 == seqs.len();
            let valid_len = segment::scan(&seg, newest, |offset, len, body| {
                st.index_record(&seg.path, *seq, offset, len, &body)
            })?;
            if valid_len < seg.len {
                segment::truncate(&mut seg, valid_len)?;
            }
            st.segments.insert(*seq, seg);
        }
        Ok(st)
    }

    fn index_record(
        &mut self,
        path: &Path,
        seg: u64,
        offset: u64,
        len: u32,
        body: &[u8],
    ) -> Result<(), LogError> {
        let head: EntryHead = rmp_serde::from_slice(body).map_err(|e| LogError::Decode {
            path: path.to_path_buf(),
            offset,
            reason: e.to_string(),
        })?;
        let index = head.log_id.index;
        if self.purged.as_ref().is_some_and(|p| index <= p.index) {
            return Ok(());
        }
        if let Some(expected) = self.next_index() {
            if index != expected {
                return Err(LogError::Gap { path: path.to_path_buf(), expected, found: index });
            }
        }
        self.locs.push_back(Loc { seg, offset, len, log_id: head.log_id });
        Ok(())
    }

    /// The index the next appended entry must have, if the log has a position yet.
    fn next_index(&self) -> Option<u64> {
        self.last_log_id().map(|l| l.index + 1)
    }

    /// The last entry's id, or the purge point if no entry is left.
    pub(crate) fn last_log_id(&self) -> Option<LogIdT> {
        self.locs.back().map(|l| l.log_id).or(self.purged)
    }

    /// Locations of the entries in `[start, end)` that the log holds, at most `bytes_max` of
    /// bodies (but at least one entry), with the file each is in.
    pub(crate) fn locate(&self, start: u64, end: u64, bytes_max: u64) -> Vec<(Arc<File>, Loc)> {
        let Some(first) = self.locs.front().map(|l| l.log_id.index) else {
            return Vec::new();
        };
        let from = usize::try_from(start.saturating_sub(first)).unwrap_or(usize::MAX);
        let mut out = Vec::new();
        let mut bytes = 0u64;
        for loc in self.locs.iter().skip(from).take_while(|l| l.log_id.index < end) {
            if !out.is_empty() && bytes + u64::from(loc.len) > bytes_max {
                break;
            }
            bytes += u64::from(loc.len);
            let file = self.segments.get(&loc.seg).map(|s| Arc::clone(&s.file));
            if let Some(file) = file {
                out.push((file, loc.clone()));
            }
        }
        out
    }

    /// Writes `entries` after the last one; returns the file to sync for them to be durable
    /// (None when there was nothing to write). Readers see them at once.
    ///
    /// Every entry is encoded (and its size checked) before anything is written; the
    /// encodings reference the entries' page images, and the records are streamed into the
    /// file through a bounded buffer (`record::write_at`).
    pub(crate) fn append(&mut self, entries: &[EntryT]) -> Result<Option<Arc<File>>, LogError> {
        let mut records = Vec::with_capacity(entries.len());
        let mut expected = self.next_index();
        for e in entries {
            let log_id = e.log_id();
            if let Some(exp) = expected {
                if log_id.index != exp {
                    return Err(LogError::Gap {
                        path: self.dir.clone(),
                        expected: exp,
                        found: log_id.index,
                    });
                }
            }
            expected = Some(log_id.index + 1);
            let body =
                shared::encode(e).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            records.push(record::Record::new(body)?);
        }
        if records.is_empty() {
            return Ok(None);
        }
        let seg = self.segment_for_append()?;
        let base = seg.len;
        seg.len = record::write_at(&seg.file, base, &records).map_err(LogError::Write)?;
        let (seq, file) = (seg.seq, Arc::clone(&seg.file));
        let mut offset = base;
        for (entry, rec) in entries.iter().zip(&records) {
            self.recent.push(entry, u64::from(rec.body_len()));
            self.locs.push_back(Loc {
                seg: seq,
                offset,
                len: rec.body_len(),
                log_id: entry.log_id(),
            });
            offset += rec.bytes();
        }
        Ok(Some(file))
    }

    /// The newest segment, or a new one if there is none or it has reached its size bound.
    fn segment_for_append(&mut self) -> io::Result<&mut Segment> {
        let newest = self.segments.last_key_value().map(|(seq, s)| (*seq, s.len));
        let seq = match newest {
            Some((seq, len)) if len < self.segment_bytes_max => seq,
            Some((seq, _)) => seq + 1,
            None => 0,
        };
        match self.segments.entry(seq) {
            std::collections::btree_map::Entry::Occupied(segment) => Ok(segment.into_mut()),
            std::collections::btree_map::Entry::Vacant(slot) => {
                Ok(slot.insert(segment::create(&self.dir, seq)?))
            }
        }
    }

    /// Remove every entry after `last_index` (all if `None`), durably, newest first so that a
    /// crash part-way leaves a shorter log, never a hole.
    pub(crate) fn truncate_after(&mut self, last_index: Option<u64>) -> Result<(), LogError> {
        let Some(pos) = self.locs.iter().position(|l| Some(l.log_id.index) > last_index) else {
            return Ok(());
        };
        let cut = self.locs[pos].clone();
        let later: Vec<u64> = self.segments.range(cut.seg + 1..).map(|(s, _)| *s).rev().collect();
        for seq in &later {
            if let Some(seg) = self.segments.remove(seq) {
                fs::remove_file(&seg.path)?;
            }
        }
        if !later.is_empty() {
            sync_dir(&self.dir)?;
        }
        if let Some(seg) = self.segments.get_mut(&cut.seg) {
            segment::truncate(seg, cut.offset)?;
        }
        self.locs.truncate(pos);
        self.recent.truncate_after(last_index);
        Ok(())
    }

    /// Forget every entry up to and including `upto`: record the purge point durably first, then
    /// delete the segments that hold only purged entries, oldest first.
    pub(crate) fn purge(&mut self, upto: LogIdT) -> Result<(), LogError> {
        if self.purged.as_ref().is_some_and(|p| p.index >= upto.index) {
            return Ok(());
        }
        small_file::write(&self.dir.join(PURGED_FILE), &upto)?;
        while self.locs.front().is_some_and(|l| l.log_id.index <= upto.index) {
            self.locs.pop_front();
        }
        self.purged = Some(upto);
        self.recent.purge(upto.index);
        let newest = self.segments.keys().next_back().copied();
        let keep_from = self.locs.front().map(|l| l.seg).or(newest).unwrap_or(0);
        let dead: Vec<u64> = self.segments.range(..keep_from).map(|(s, _)| *s).collect();
        for seq in &dead {
            if let Some(seg) = self.segments.remove(seq) {
                fs::remove_file(&seg.path)?;
            }
        }
        if !dead.is_empty() {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }

    pub(crate) fn save_vote(&mut self, vote: &VoteT) -> Result<(), LogError> {
        small_file::write(&self.dir.join(VOTE_FILE), vote)?;
        self.vote = Some(*vote);
        Ok(())
    }

    /// Bytes of records in the segment files.
    pub(crate) fn bytes_on_disk(&self) -> u64 {
        self.segments.values().map(|segment| segment.len).sum()
    }

    /// Number of segment files (for tests and metrics).
    pub(crate) fn segment_count(&self) -> usize {
        self.segments.len()
    }
}
