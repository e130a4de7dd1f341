//! Log store tests: crash recovery (torn tail, corrupt middle), durability of truncate, purge
//! and vote across reopen, and segment rollover.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;

use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, RaftLogStorage};
use openraft::vote::RaftLeaderIdExt;
use openraft::{EntryPayload, RaftLogReader, RaftTypeConfig};

use super::segment;
use super::{LogError, LogStore, LOG_DIR};
use crate::raft::alias::{EntryT, LogIdT, VoteT};
use crate::raft::types::TypeConfig;

type LeaderIdT = <TypeConfig as RaftTypeConfig>::LeaderId;

fn log_id(term: u64, index: u64) -> LogIdT {
    LogIdT::new(LeaderIdT::new_committed(term, 1), index)
}

fn blank(term: u64, index: u64) -> EntryT {
    EntryT::new(log_id(term, index), EntryPayload::Blank)
}

async fn append(log: &mut LogStore, range: std::ops::RangeInclusive<u64>) {
    let entries: Vec<EntryT> = range.map(|i| blank(1, i)).collect();
    log.append(entries, IOFlushed::noop()).await.unwrap();
}

async fn indices(log: &mut LogStore) -> Vec<u64> {
    log.try_get_log_entries(0..u64::MAX).await.unwrap().iter().map(|e| e.log_id().index).collect()
}

fn only_segment(state_dir: &Path) -> std::path::PathBuf {
    let dir = state_dir.join(LOG_DIR);
    let seqs = segment::list(&dir).unwrap();
    assert_eq!(seqs.len(), 1);
    segment::path_of(&dir, seqs[0])
}

// Goal: garbage left by a crash mid-append is cut at open and appends continue after it.
#[tokio::test]
async fn torn_tail_is_cut_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = LogStore::open(dir.path()).unwrap();
    append(&mut log, 1..=3).await;
    drop(log);
    let seg = only_segment(dir.path());
    let good_len = fs::metadata(&seg).unwrap().len();
    // A header promising 100 bytes followed by only 3: a record cut short by the crash.
    OpenOptions::new()
        .append(true)
        .open(&seg)
        .unwrap()
        .write_all(&[100, 0, 0, 0, 1, 2, 3, 4, 9, 9, 9])
        .unwrap();
    let mut log = LogStore::open(dir.path()).unwrap();
    assert_eq!(indices(&mut log).await, vec![1, 2, 3]);
    assert_eq!(fs::metadata(&seg).unwrap().len(), good_len);
    append(&mut log, 4..=4).await;
    drop(log);
    let mut log = LogStore::open(dir.path()).unwrap();
    assert_eq!(indices(&mut log).await, vec![1, 2, 3, 4]);
}

/// Writes entries 1-3 to a new log in `dir`, then flips `mask` into byte `at` of the second
/// record (its length at 0, its checksum at 4, its body from 8); returns the record's offset.
async fn damage_second_record(dir: &std::path::Path, at: usize, mask: u8) -> usize {
    let mut log = LogStore::open(dir).unwrap();
    append(&mut log, 1..=3).await;
    drop(log);
    let seg = only_segment(dir);
    let mut bytes = fs::read(&seg).unwrap();
    let first_len = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    let second = 8 + first_len;
    bytes[second + at] ^= mask;
    fs::write(&seg, &bytes).unwrap();
    second
}

// Goal: a damaged record followed by good ones stops the node instead of losing entries.
#[tokio::test]
async fn corrupt_middle_record_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    damage_second_record(dir.path(), 8 + 2, 0xff).await;
    let err = LogStore::open(dir.path()).unwrap_err();
    assert!(matches!(err, LogError::Corrupt { .. }), "{err}");
}

// Goal: a damaged length field in the middle of the newest segment, which hides where the next
// record starts, stops the node too: the records after it are found by searching, never cut
// as if they were a torn tail.
#[tokio::test]
async fn corrupt_middle_length_is_refused() {
    // A length made too large for the file, and one made one byte short.
    for (byte, mask) in [(3, 0x40), (0, 0x01)] {
        let dir = tempfile::tempdir().unwrap();
        let second = damage_second_record(dir.path(), byte, mask).await;
        match LogStore::open(dir.path()) {
            Err(LogError::Corrupt { offset, .. }) => assert_eq!(offset, second as u64),
            Err(other) => panic!("length byte {byte}: another error: {other}"),
            Ok(mut log) => {
                panic!("length byte {byte}: opened with entries {:?}", indices(&mut log).await)
            }
        }
    }
}

// Goal: a record cut short while being appended (its header and part of its body) is a torn
// tail even though it begins like a real record.
#[tokio::test]
async fn partial_record_at_the_end_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = LogStore::open(dir.path()).unwrap();
    append(&mut log, 1..=3).await;
    drop(log);
    let seg = only_segment(dir.path());
    let bytes = fs::read(&seg).unwrap();
    let first_len = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    let mut torn = bytes.clone();
    torn.extend_from_slice(&bytes[..8 + first_len - 1]);
    fs::write(&seg, &torn).unwrap();
    let mut log = LogStore::open(dir.path()).unwrap();
    assert_eq!(indices(&mut log).await, vec![1, 2, 3]);
    assert_eq!(fs::read(&seg).unwrap(), bytes);
}

// Goal: every entry's encoding begins with the prefix the search for intact records relies on.
#[test]
fn entries_begin_with_the_body_prefix() {
    let membership =
        openraft::Membership::new_with_defaults(vec![std::collections::BTreeSet::from([1])], []);
    for entry in [blank(3, 7), EntryT::new(log_id(2, 9), EntryPayload::Membership(membership))] {
        let body = rmp_serde::to_vec_named(&entry).unwrap();
        assert!(body.starts_with(&super::record::ENTRY_BODY_PREFIX), "{:02x?}", &body[..12]);
    }
}

// Goal: truncate_after and purge survive a reopen, and the log state reflects both.
#[tokio::test]
async fn truncate_and_purge_are_durable() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = LogStore::open(dir.path()).unwrap();
    append(&mut log, 1..=10).await;
    log.truncate_after(Some(log_id(1, 7))).await.unwrap();
    log.purge(log_id(1, 3)).await.unwrap();
    drop(log);
    let mut log = LogStore::open(dir.path()).unwrap();
    assert_eq!(indices(&mut log).await, vec![4, 5, 6, 7]);
    let state = log.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 3)));
    assert_eq!(state.last_log_id, Some(log_id(1, 7)));
}

// Goal: purging drops whole segments no longer needed; entries stay readable from the rest.
#[tokio::test]
async fn purge_deletes_old_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = LogStore::open_with_segment_bytes(dir.path(), 64).unwrap();
    for i in 1..=6 {
        append(&mut log, i..=i).await;
    }
    let before = log.segment_count().unwrap();
    assert!(before >= 3, "small bound must roll segments, got {before}");
    log.purge(log_id(1, 4)).await.unwrap();
    assert!(log.segment_count().unwrap() < before);
    drop(log);
    let mut log = LogStore::open_with_segment_bytes(dir.path(), 64).unwrap();
    assert_eq!(indices(&mut log).await, vec![5, 6]);
}

// Goal: a saved vote is read back after reopen.
#[tokio::test]
async fn vote_is_durable() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = LogStore::open(dir.path()).unwrap();
    let vote = VoteT::new_committed(5, 2);
    log.save_vote(&vote).await.unwrap();
    drop(log);
    let mut log = LogStore::open(dir.path()).unwrap();
    assert_eq!(log.read_vote().await.unwrap(), Some(vote));
}

// Goal: an append that would leave a hole is refused and nothing is written.
#[tokio::test]
async fn append_with_gap_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = LogStore::open(dir.path()).unwrap();
    append(&mut log, 1..=2).await;
    let res = log.append(vec![blank(1, 5)], IOFlushed::noop()).await;
    assert!(res.is_err());
    assert_eq!(indices(&mut log).await, vec![1, 2]);
}

// Goal: the log directory is 0700 and its segments and vote file 0600 whatever the umask (the
// defaults under umask 022 would be 0755 and 0644); a temp file left by a crash is removed
// at open.
#[tokio::test]
async fn log_files_are_private_and_temp_files_removed() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777;
    let dir = tempfile::tempdir().unwrap();
    let mut log = LogStore::open(dir.path()).unwrap();
    append(&mut log, 1..=2).await;
    log.save_vote(&VoteT::new_committed(1, 1)).await.unwrap();
    drop(log);
    let log_dir = dir.path().join(LOG_DIR);
    assert_eq!(mode(&log_dir), 0o700);
    for entry in fs::read_dir(&log_dir).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(mode(&path), 0o600, "{}", path.display());
    }
    let stale = log_dir.join("vote.tmp-00000000deadbeef");
    fs::write(&stale, b"partial").unwrap();
    let mut log = LogStore::open(dir.path()).unwrap();
    assert!(!stale.exists());
    assert_eq!(indices(&mut log).await, vec![1, 2]);
}
