//! End-to-end cross-checks against the real SQLite (`/usr/bin/sqlite3`, 3.40.1): a leader
//! database written by the shell is replicated page set by page set into a follower copy
//! with [`append_transaction`], then the shell must accept the follower (integrity, same
//! rows), and the wal-index SQLite rebuilds from our WAL must equal the one we built.

use super::append::{acquire_write_lock, append_transaction};
use super::capture::capture_transaction;
use super::index::hash::region_of_frame;
use super::index::header::{backfill, read_header};
use super::index::{SharedIndex, REGION_BYTES};
use super::scan::{rebuild_index, scan};
use super::testutil::{index_header_after, open_rw, sqlite, FileIndex};
use crate::raft::types::PageSet;
use std::path::Path;
use std::time::Duration;

const SETUP: &str = ".filectrl persist_wal 1\nPRAGMA wal_autocheckpoint=0;\n";
const ROWS: &str =
    "(WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i<{count}) \
                    SELECT i FROM c)";
const CHECK: &str = ".filectrl persist_wal 1\nPRAGMA integrity_check;\n\
                     SELECT count(*), sum(length(x)) FROM t;\n.sha3sum\n";

fn rows(n: u32) -> String {
    ROWS.replace("{count}", &n.to_string())
}

/// Every transaction of `wal` after `after_frame`, as the leader would have captured them.
fn captured_since(wal_path: &Path, after_frame: u32) -> Vec<PageSet> {
    let wal = open_rw(wal_path);
    let found = scan(&wal).unwrap();
    let mut before = after_frame;
    let mut sets = Vec::new();
    for commit in found.commit_frames.iter().copied().filter(|c| *c > after_frame) {
        let header = index_header_after(&wal, &found, before);
        sets.push(capture_transaction(&wal, &header, commit, None).unwrap());
        before = commit;
    }
    sets
}

fn apply_all(db: &Path, index: &FileIndex, sets: &[PageSet]) -> Vec<bool> {
    let wal = open_rw(&db.with_extension("db-wal"));
    let mut restarted = Vec::new();
    for set in sets {
        let _lock = acquire_write_lock(index, Duration::from_millis(10)).unwrap();
        restarted.push(append_transaction(&wal, index, set).unwrap().restarted);
    }
    restarted
}

/// Compares the deterministic parts of two wal-index images: header copy 0 except iChange
/// and its checksum, and the hash-table regions up to `max_frame`.
fn assert_same_index(ours: &[u8], theirs: &[u8], max_frame: u32) {
    assert_eq!(ours[..8], theirs[..8], "iVersion");
    assert_eq!(ours[12..40], theirs[12..40], "header fields after iChange");
    for region in 0..=region_of_frame(max_frame) {
        let start = region * REGION_BYTES + if region == 0 { 136 } else { 0 };
        let end = (region + 1) * REGION_BYTES;
        assert!(ours[start..end] == theirs[start..end], "hash region {region} differs");
    }
}

// Goal: a follower built only from captured page sets is a database SQLite accepts, with the
// leader's exact content, and our wal-index (crossing a region boundary) equals SQLite's.
// Then, after SQLite checkpointed the follower, the next append restarts the WAL, and SQLite
// still reads the result correctly.
#[test]
fn follower_replay_matches_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let leader = dir.path().join("a.db");
    let follower = dir.path().join("b.db");
    sqlite(&leader, "PRAGMA page_size=512;\nPRAGMA journal_mode=WAL;\n");
    std::fs::copy(&leader, &follower).unwrap();
    let script = format!(
        "{SETUP}CREATE TABLE t(id INTEGER PRIMARY KEY, x);\n\
         INSERT INTO t(x) SELECT randomblob(300) FROM {};\n\
         UPDATE t SET x = randomblob(100) WHERE id % 5 = 0;\n\
         DELETE FROM t WHERE id % 11 = 0;\n\
         INSERT INTO t(x) SELECT randomblob(200) FROM {};\n",
        rows(3000),
        rows(1500)
    );
    sqlite(&leader, &script);
    let sets = captured_since(&leader.with_extension("db-wal"), 0);
    assert_eq!(sets.len(), 5);

    let index = FileIndex::open(&follower.with_extension("db-shm"));
    let empty_wal = open_rw(&follower.with_extension("db-wal"));
    rebuild_index(&index, &scan(&empty_wal).unwrap()).unwrap();
    assert_eq!(apply_all(&follower, &index, &sets), vec![false; 5]);
    let ours = std::fs::read(follower.with_extension("db-shm")).unwrap();
    let max_frame = read_header(&index, &index.region(0).unwrap()).unwrap().max_frame;
    assert!(max_frame > 4062, "the test must cross into region 1 ({max_frame} frames)");

    let expected = sqlite(&leader, CHECK);
    assert!(expected.contains("\nok\n"), "{expected}");
    assert_eq!(sqlite(&follower, CHECK), expected);
    let theirs = std::fs::read(follower.with_extension("db-shm")).unwrap();
    assert_same_index(&ours, &theirs, max_frame);

    // SQLite checkpointed the follower on close: the next append must restart the WAL.
    let region0 = index.region(0).unwrap();
    let header = read_header(&index, &region0).unwrap();
    assert_eq!(backfill(&region0), header.max_frame, "SQLite checkpoints on close");
    let leader_frames = scan(&open_rw(&leader.with_extension("db-wal"))).unwrap();
    sqlite(&leader, &format!("{SETUP}INSERT INTO t(x) SELECT randomblob(20) FROM {};\n", rows(40)));
    let next = captured_since(&leader.with_extension("db-wal"), leader_frames.last_commit_frame);
    assert_eq!(next.len(), 1);
    assert_eq!(apply_all(&follower, &index, &next), vec![true]);
    let restarted = scan(&open_rw(&follower.with_extension("db-wal"))).unwrap();
    assert_eq!(restarted.header.unwrap().salts.salt1, header.salts.salt1.wrapping_add(1));
    assert_eq!(restarted.commit_frames, vec![next[0].pages.len() as u32]);
    assert_eq!(sqlite(&follower, CHECK), sqlite(&leader, CHECK));
}
