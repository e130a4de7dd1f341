//! The newest log entries, kept decoded in memory, so that replicating a fresh entry to the
//! followers, which happens right after it is appended, needs no file read, no decode and no
//! hand-over to a blocking thread.
//!
//! Invariant: the entries held are a contiguous suffix of the log (consecutive indices ending
//! at the log's last entry), so a range starting inside them is answered exactly as the files
//! would answer it.
//!
//! Bound: [`RECENT_BYTES_MAX`] of encoded entries, except that the newest entry is always
//! kept, whatever its size: a large transaction is then replicated to every follower and
//! applied from the one copy in memory (its page images are shared, not copied, by every
//! reader). The exception lasts until the next append or until the entry is applied here
//! ([`RecentEntries::release_applied`]), so it never outlives the transaction's replication.

use std::collections::VecDeque;

use crate::raft::alias::EntryT;

/// Bytes of encoded entries kept at most.
pub(crate) const RECENT_BYTES_MAX: u64 = 8 << 20;
/// Entries kept at most.
pub(crate) const RECENT_ENTRIES_MAX: usize = 4096;

#[derive(Debug, Default)]
pub(crate) struct RecentEntries {
    /// Each entry with its encoded size.
    entries: VecDeque<(EntryT, u64)>,
    bytes: u64,
}

impl RecentEntries {
    /// Records an entry just appended after the current last one.
    pub(crate) fn push(&mut self, entry: &EntryT, encoded_bytes: u64) {
        self.entries.push_back((entry.clone(), encoded_bytes));
        self.bytes += encoded_bytes;
        // The newest entry stays, whatever its size (see the module docs).
        while (self.bytes > RECENT_BYTES_MAX || self.entries.len() > RECENT_ENTRIES_MAX)
            && self.entries.len() > 1
        {
            self.pop_front();
        }
    }

    /// Forgets the entries over the bound once the entry that made it go over is applied.
    pub(crate) fn release_applied(&mut self, applied: u64) {
        while self.bytes > RECENT_BYTES_MAX
            && self.entries.front().is_some_and(|(e, _)| e.log_id.index <= applied)
        {
            self.pop_front();
        }
    }

    fn pop_front(&mut self) {
        if let Some((_, bytes)) = self.entries.pop_front() {
            self.bytes -= bytes;
        }
    }

    /// Forgets every entry after `last_index` (all if `None`): the log was truncated.
    pub(crate) fn truncate_after(&mut self, last_index: Option<u64>) {
        while self.entries.back().is_some_and(|(e, _)| Some(e.log_id.index) > last_index) {
            if let Some((_, bytes)) = self.entries.pop_back() {
                self.bytes -= bytes;
            }
        }
    }

    /// Forgets every entry up to and including `upto`: the log was purged.
    pub(crate) fn purge(&mut self, upto: u64) {
        while self.entries.front().is_some_and(|(e, _)| e.log_id.index <= upto) {
            self.pop_front();
        }
    }

    /// The entries in `[start, end)`, at most `bytes_max` (but at least one), if `start` is
    /// at or after the first entry held; `None` means "read the files".
    pub(crate) fn get(&self, start: u64, end: u64, bytes_max: u64) -> Option<Vec<EntryT>> {
        let first = self.entries.front()?.0.log_id.index;
        if start < first {
            return None;
        }
        let skip = usize::try_from(start - first).ok()?;
        let mut out = Vec::new();
        let mut bytes = 0u64;
        for (entry, size) in
            self.entries.iter().skip(skip).take_while(|(e, _)| e.log_id.index < end)
        {
            if !out.is_empty() && bytes + size > bytes_max {
                break;
            }
            bytes += size;
            out.push(entry.clone());
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use openraft::entry::RaftEntry;
    use openraft::vote::RaftLeaderIdExt;
    use openraft::{EntryPayload, RaftTypeConfig};

    use super::*;
    use crate::raft::alias::LogIdT;
    use crate::raft::types::TypeConfig;

    fn blank(index: u64) -> EntryT {
        let leader = <TypeConfig as RaftTypeConfig>::LeaderId::new_committed(1, 1);
        EntryT::new(LogIdT::new(leader, index), EntryPayload::Blank)
    }

    fn indices(entries: Option<Vec<EntryT>>) -> Option<Vec<u64>> {
        entries.map(|v| v.iter().map(|e| e.log_id.index).collect())
    }

    #[test]
    fn answers_ranges_inside_the_suffix_it_holds() {
        // Goal: ranges starting in the cache are answered like the files; others are not.
        let mut recent = RecentEntries::default();
        for i in 5..10 {
            recent.push(&blank(i), 10);
        }
        assert_eq!(indices(recent.get(7, 100, u64::MAX)), Some(vec![7, 8, 9]));
        assert_eq!(indices(recent.get(6, 8, u64::MAX)), Some(vec![6, 7]));
        assert_eq!(indices(recent.get(5, 100, 25)), Some(vec![5, 6]));
        assert_eq!(indices(recent.get(12, 20, u64::MAX)), Some(vec![]));
        assert_eq!(indices(recent.get(4, 8, u64::MAX)), None);
        recent.truncate_after(Some(7));
        recent.purge(5);
        assert_eq!(indices(recent.get(6, 100, u64::MAX)), Some(vec![6, 7]));
    }

    #[test]
    fn a_large_newest_entry_is_kept_until_the_next_append_or_its_apply() {
        // Goal: a transaction over the bound is served from memory while it is the newest
        // entry and not yet applied; the suffix invariant holds and memory returns to the bound.
        let mut recent = RecentEntries::default();
        recent.push(&blank(1), 10);
        recent.push(&blank(2), 4 * RECENT_BYTES_MAX);
        assert_eq!(indices(recent.get(1, 10, u64::MAX)), None);
        assert_eq!(indices(recent.get(2, 10, u64::MAX)), Some(vec![2]));
        recent.release_applied(1);
        assert_eq!(indices(recent.get(2, 10, u64::MAX)), Some(vec![2]));
        recent.push(&blank(3), 10);
        assert_eq!(indices(recent.get(2, 10, u64::MAX)), None);
        assert_eq!(indices(recent.get(3, 10, u64::MAX)), Some(vec![3]));

        recent.push(&blank(4), 2 * RECENT_BYTES_MAX);
        recent.release_applied(4);
        assert_eq!(indices(recent.get(4, 10, u64::MAX)), None);
        assert_eq!(recent.bytes, 0);
        recent.push(&blank(5), 10);
        recent.release_applied(5);
        assert_eq!(
            indices(recent.get(5, 10, u64::MAX)),
            Some(vec![5]),
            "within the bound, applied entries stay"
        );
    }

    #[test]
    fn the_bound_evicts_the_oldest() {
        // Goal: memory stays bounded by bytes and by count.
        let mut recent = RecentEntries::default();
        for i in 3..9 {
            recent.push(&blank(i), RECENT_BYTES_MAX / 4);
        }
        assert_eq!(indices(recent.get(4, 10, u64::MAX)), None);
        assert_eq!(indices(recent.get(5, 10, u64::MAX)), Some(vec![5, 6, 7, 8]));
        for i in 9..9 + RECENT_ENTRIES_MAX as u64 {
            recent.push(&blank(i), 1);
        }
        assert_eq!(recent.entries.len(), RECENT_ENTRIES_MAX);
    }
}
