//! State machine tests: the conflict rule, local-vs-remote apply, restart, snapshot round trip.

use std::sync::Arc;

use futures_util::stream;
use openraft::entry::RaftEntry;
use openraft::storage::RaftStateMachine;
use openraft::vote::RaftLeaderIdExt;
use openraft::{EntryPayload, RaftSnapshotBuilder, RaftTypeConfig};

use super::fake_db::{Call, FakeDb};
use super::StateMachine;
use crate::raft::alias::{EntryT, LogIdT};
use crate::raft::types::{Command, Page, PageSet, ProposalId, TypeConfig};

type LeaderIdT = <TypeConfig as RaftTypeConfig>::LeaderId;

fn log_id(index: u64) -> LogIdT {
    LogIdT::new(LeaderIdT::new_committed(1, 1), index)
}

fn write(index: u64, seq: u64, base: u64, page: u32, byte: u8) -> EntryT {
    let pages = PageSet {
        page_size: 4,
        db_size_pages: page,
        pages: vec![Page { number: page, data: vec![byte; 4].into() }],
    };
    EntryT::new(
        log_id(index),
        EntryPayload::Normal(Command::Write {
            proposal: ProposalId { node: 1, seq },
            base,
            pages,
            at_ms: 0,
        }),
    )
}

async fn apply(sm: &mut StateMachine<FakeDb>, entries: Vec<EntryT>) {
    sm.apply(stream::iter(entries.into_iter().map(|e| Ok((e, None))))).await.unwrap();
}

// Goal: a write whose base is not the last applied write is a conflict: nothing written, proposer told.
#[tokio::test]
async fn base_mismatch_is_conflict() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(FakeDb::default());
    let mut sm = StateMachine::open(dir.path(), Arc::clone(&db), Default::default()).unwrap();
    apply(
        &mut sm,
        vec![write(1, 10, 0, 1, 0xaa), write(2, 11, 0, 1, 0xbb), write(3, 12, 1, 2, 0xcc)],
    )
    .await;
    assert_eq!(
        db.calls(),
        vec![Call::Apply(1), Call::Reject(ProposalId { node: 1, seq: 11 }), Call::Apply(3)]
    );
    assert_eq!(db.page(1), Some(vec![0xaa; 4]));
    assert_eq!(sm.applied().last_write_index, 3);
    assert_eq!(sm.applied().last_applied, Some(log_id(3)));
}

// Goal: the proposer's own entry is finished locally; only others' entries are applied as pages.
#[tokio::test]
async fn finish_local_preferred_over_apply_pages() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(FakeDb::default());
    db.pending.lock().unwrap().push(ProposalId { node: 1, seq: 20 });
    let mut sm = StateMachine::open(dir.path(), Arc::clone(&db), Default::default()).unwrap();
    apply(&mut sm, vec![write(1, 20, 0, 1, 1), write(2, 21, 1, 1, 2)]).await;
    assert_eq!(db.calls(), vec![Call::Finish(ProposalId { node: 1, seq: 20 }, 1), Call::Apply(2)]);
}

// Goal: after persist and reopen the state machine resumes from the recorded applied state.
#[tokio::test]
async fn applied_state_restored_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(FakeDb::default());
    let mut sm = StateMachine::open(dir.path(), Arc::clone(&db), Default::default()).unwrap();
    apply(&mut sm, vec![write(1, 1, 0, 1, 1), EntryT::new(log_id(2), EntryPayload::Blank)]).await;
    sm.persist().await.unwrap();
    let before = sm.applied().clone();
    drop(sm);
    let sm = StateMachine::open(dir.path(), db, Default::default()).unwrap();
    assert_eq!(sm.applied(), &before);
    assert_eq!(sm.applied().last_write_index, 1);
}

// Goal: after a crash (applied state not persisted since), the state machine resumes from the
// per-entry hint when the database still holds that position, and from the durable file when
// it does not: entries the database already holds are not replayed over newer pages.
#[tokio::test]
async fn restart_resumes_from_the_hint_only_when_the_database_holds_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(FakeDb::default());
    let mut sm = StateMachine::open(dir.path(), Arc::clone(&db), Default::default()).unwrap();
    apply(&mut sm, vec![write(1, 1, 0, 1, 1)]).await;
    sm.persist().await.unwrap();
    let durable = sm.applied().clone();
    apply(&mut sm, vec![write(2, 2, 1, 2, 2), EntryT::new(log_id(3), EntryPayload::Blank)]).await;
    let latest = sm.applied().clone();
    drop(sm); // a crash: no persist after entries 2 and 3

    let sm = StateMachine::open(dir.path(), Arc::clone(&db), Default::default()).unwrap();
    assert_eq!(
        sm.applied(),
        &durable,
        "a database that lost the position: replay from the durable state"
    );
    drop(sm);
    db.vouch.store(true, std::sync::atomic::Ordering::Relaxed);
    let sm = StateMachine::open(dir.path(), db, Default::default()).unwrap();
    assert_eq!(sm.applied(), &latest, "a database that holds the position: resume after entry 3");
    assert_eq!(sm.applied().last_write_index, 2);
}

// Goal: a snapshot built on one node installs on another with the same pages and last_write_index,
// so both judge the next write alike.
#[tokio::test]
async fn snapshot_build_install_round_trip() {
    let (dir_l, dir_f) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (db_l, db_f) = (Arc::new(FakeDb::default()), Arc::new(FakeDb::default()));
    let mut leader =
        StateMachine::open(dir_l.path(), Arc::clone(&db_l), Default::default()).unwrap();
    apply(
        &mut leader,
        vec![
            write(1, 1, 0, 1, 7),
            write(2, 2, 1, 2, 8),
            EntryT::new(log_id(3), EntryPayload::Blank),
        ],
    )
    .await;
    let snap =
        leader.try_create_snapshot_builder(true).await.unwrap().build_snapshot().await.unwrap();
    assert_eq!(snap.meta.last_log_id, Some(log_id(3)));

    let mut follower =
        StateMachine::open(dir_f.path(), Arc::clone(&db_f), Default::default()).unwrap();
    follower.install_snapshot(&snap.meta, snap.snapshot).await.unwrap();
    assert_eq!(db_f.page(1), Some(vec![7; 4]));
    assert_eq!(db_f.page(2), Some(vec![8; 4]));
    assert_eq!(follower.applied().last_write_index, 2);
    assert_eq!(follower.applied().last_applied, Some(log_id(3)));

    // The follower's current snapshot survives a restart and still carries last_write_index.
    drop(follower);
    let mut follower =
        StateMachine::open(dir_f.path(), Arc::clone(&db_f), Default::default()).unwrap();
    let cur = follower.get_current_snapshot().await.unwrap().expect("current snapshot");
    assert_eq!(cur.meta, snap.meta);
    apply(&mut follower, vec![write(4, 3, 2, 3, 9)]).await;
    assert_eq!(db_f.page(3), Some(vec![9; 4]));
}

// Goal: an image whose trailer disagrees with the meta is refused and the database is untouched.
#[tokio::test]
async fn install_refuses_mismatched_image() {
    let (dir_l, dir_f) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let db_f = Arc::new(FakeDb::default());
    let mut leader =
        StateMachine::open(dir_l.path(), Arc::new(FakeDb::default()), Default::default()).unwrap();
    apply(&mut leader, vec![write(1, 1, 0, 1, 7)]).await;
    let mut snap =
        leader.try_create_snapshot_builder(true).await.unwrap().build_snapshot().await.unwrap();
    snap.meta.last_log_id = Some(log_id(9));
    let mut follower =
        StateMachine::open(dir_f.path(), Arc::clone(&db_f), Default::default()).unwrap();
    assert!(follower.install_snapshot(&snap.meta, snap.snapshot).await.is_err());
    assert_eq!(db_f.page(1), None);
    assert!(follower.get_current_snapshot().await.unwrap().is_none());
}

/// Checks every directory under `root` is 0700 and every file 0600.
fn assert_private_tree(root: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    for entry in std::fs::read_dir(root).unwrap() {
        let path = entry.unwrap().path();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let mode = meta.permissions().mode() & 0o777;
        if meta.is_dir() {
            assert_eq!(mode, 0o700, "{}", path.display());
            assert_private_tree(&path);
        } else {
            assert_eq!(mode, 0o600, "{}", path.display());
        }
    }
}

// Goal: every directory and file the state machine creates (applied, applied.hint, snapshots/,
// a built snapshot, an installed copy, current) is private whatever the umask: under the
// usual umask 022 the defaults would be 0755 and 0644.
#[tokio::test]
async fn state_files_are_private() {
    let (dir_l, dir_f) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut leader =
        StateMachine::open(dir_l.path(), Arc::new(FakeDb::default()), Default::default()).unwrap();
    apply(&mut leader, vec![write(1, 1, 0, 1, 7)]).await;
    let snap =
        leader.try_create_snapshot_builder(true).await.unwrap().build_snapshot().await.unwrap();
    let mut follower =
        StateMachine::open(dir_f.path(), Arc::new(FakeDb::default()), Default::default()).unwrap();
    follower.install_snapshot(&snap.meta, snap.snapshot).await.unwrap();
    assert!(
        dir_l.path().join("applied").exists() && dir_f.path().join("snapshots/current").exists()
    );
    assert_private_tree(dir_l.path());
    assert_private_tree(dir_f.path());
}

// Goal: partial snapshot files left by a crash (an interrupted transfer, the import copy, a
// temp file of an atomic replace) are removed when the state machine opens; the current
// snapshot is kept.
#[tokio::test]
async fn partial_snapshot_files_are_removed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut sm =
        StateMachine::open(dir.path(), Arc::new(FakeDb::default()), Default::default()).unwrap();
    apply(&mut sm, vec![write(1, 1, 0, 1, 7)]).await;
    sm.try_create_snapshot_builder(true).await.unwrap().build_snapshot().await.unwrap();
    drop(sm);
    let snapshots = dir.path().join("snapshots");
    let partial = [
        "incoming-00000000000000ab.db",
        "import.tmp",
        "current.tmp-00000000000000cd",
        "snap-x.db-wal",
    ];
    for name in partial {
        std::fs::write(snapshots.join(name), b"partial").unwrap();
    }
    let mut sm =
        StateMachine::open(dir.path(), Arc::new(FakeDb::default()), Default::default()).unwrap();
    for name in partial {
        assert!(!snapshots.join(name).exists(), "{name} removed");
    }
    assert!(sm.get_current_snapshot().await.unwrap().is_some());
}
