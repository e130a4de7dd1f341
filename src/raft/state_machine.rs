//! The Raft state machine: applies committed entries to the replicated SQLite database and
//! builds / installs snapshots of it.
//!
//! Apply rule (deterministic on every node): a `Write` at index `i` is applied only if its
//! `base` equals `last_write_index` (the index of the last applied write); otherwise its outcome
//! is `Conflict`, nothing is written and a waiting local proposer is told. An applied write sets
//! `last_write_index = i`. Blank and membership entries are `Applied`.
//!
//! Durability: the database and `<state_dir>/applied` are synced every [`APPLIED_SYNC_ENTRIES`]
//! entries or [`APPLIED_SYNC_INTERVAL_MS`], and before every snapshot; the Raft log is what makes
//! a commit durable, and re-applying after a stale `applied` file is safe (see `applied.rs`).
//! Snapshots are built inside the state machine task, between applies, so an image always
//! matches its recorded index exactly.
//!
//! Trust: `Command::Trust` entries change the cluster's [`Registry`](crate::trust::registry::Registry)
//! (part of the applied state, and of every snapshot file); each change is published to the
//! node's [`TrustView`] at once, so the transport's checks follow the log.

mod applied;
mod database;
mod error;
mod snapshot_store;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{Stream, StreamExt};
use openraft::entry::RaftEntry;
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder, StoredMembership};

pub use self::applied::{AppliedState, APPLIED_FILE};
pub use self::database::Database;
pub use self::error::SmError;
use self::snapshot_store::CurrentSnapshot;
pub use self::snapshot_store::{
    open_current, remove_incoming, ImageTrailer, SnapshotExtras, SNAPSHOT_DIR, TRAILER_BYTES,
};
pub use crate::archive::setting::ArchiveView;
use crate::raft::alias::{EntryT, LogIdT, SnapshotMetaT, SnapshotT, StoredMembershipT};
use crate::raft::types::{ApplyOutcome, Command, SnapshotImage, TypeConfig};
pub use crate::trust::view::TrustView;

/// Sync the database and the applied file after this many applied entries...
pub const APPLIED_SYNC_ENTRIES: u64 = 1024;
/// ...or once this much time has passed since the last sync, whichever comes first.
pub const APPLIED_SYNC_INTERVAL_MS: u64 = 1000;

/// The state machine handed to openraft.
pub struct StateMachine<D: Database> {
    state_dir: PathBuf,
    db: Arc<D>,
    applied: AppliedState,
    hint_file: Arc<applied::HintFile>,
    current: Option<CurrentSnapshot>,
    unsynced_entries: u64,
    last_sync: Instant,
    /// Whether a checkpoint started by [`StateMachine::checkpoint_if_due`] is still running.
    checkpointing: Arc<AtomicBool>,
    /// Where the node reads the trust state this state machine applies.
    trust: TrustView,
    /// Where the node's archiver reads the archive setting this state machine applies.
    archive: ArchiveView,
}

/// A snapshot already built by the state machine task; `build_snapshot` just hands it over.
pub struct SnapshotBuilder {
    built: Option<Result<SnapshotT, SmError>>,
}

/// Run `f` on a blocking thread: database and file calls must not stall the async runtime.
async fn blocking<T, F>(f: F) -> Result<T, SmError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, SmError> + Send + 'static,
{
    tokio::task::spawn_blocking(f).await.map_err(SmError::Task)?
}

impl<D: Database> StateMachine<D> {
    /// Open the state machine of the node whose state directory is `state_dir`: read the
    /// applied state and the current snapshot. Blocking.
    pub fn open(
        state_dir: &Path,
        db: Arc<D>,
        (trust, archive): (TrustView, ArchiveView),
    ) -> Result<StateMachine<D>, SmError> {
        crate::raft::small_file::create_private_dir(state_dir)?;
        let mut applied = applied::load(state_dir)?;
        if let Some(hint) = applied::load_hint(state_dir) {
            if hint.state.last_applied > applied.last_applied && db.holds(&hint.position)? {
                applied = hint.state;
            }
        }
        let hint_file = applied::HintFile::open(state_dir)?;
        let current = snapshot_store::open(state_dir)?;
        db.set_last_write_index(applied.last_write_index);
        trust.publish(&applied.registry);
        archive.publish(applied.archive.clone());
        archive.publish_archived(applied.archived_index);
        Ok(StateMachine {
            state_dir: state_dir.to_path_buf(),
            db,
            applied,
            hint_file: Arc::new(hint_file),
            current,
            unsynced_entries: 0,
            last_sync: Instant::now(),
            checkpointing: Arc::default(),
            trust,
            archive,
        })
    }

    /// The applied state as held in memory (may be ahead of the file).
    pub fn applied(&self) -> &AppliedState {
        &self.applied
    }

    /// Sync the database, then record the applied state durably.
    pub async fn persist(&mut self) -> Result<(), SmError> {
        let db = Arc::clone(&self.db);
        let dir = self.state_dir.clone();
        let state = self.applied.clone();
        blocking(move || {
            db.sync()?;
            applied::store(&dir, &state)?;
            Ok(())
        })
        .await?;
        self.unsynced_entries = 0;
        self.last_sync = Instant::now();
        Ok(())
    }

    async fn persist_if_due(&mut self) -> Result<(), SmError> {
        let elapsed = self.last_sync.elapsed() >= Duration::from_millis(APPLIED_SYNC_INTERVAL_MS);
        if self.unsynced_entries >= APPLIED_SYNC_ENTRIES || (self.unsynced_entries > 0 && elapsed) {
            self.persist().await?;
        }
        Ok(())
    }

    /// Records the applied state and the database's position after an entry (see
    /// `applied.rs`). Inline rather than on a blocking thread: it is one small positioned
    /// write, cheaper than the hand-over, and it is on every commit's path.
    async fn store_hint(&mut self) -> Result<(), SmError> {
        let position = self.db.position()?;
        self.hint_file.store(&applied::Hint { state: self.applied.clone(), position })?;
        Ok(())
    }

    /// Apply one committed entry and return its outcome.
    async fn apply_one(&mut self, entry: EntryT) -> Result<ApplyOutcome, SmError> {
        let log_id = entry.log_id();
        tracing::trace!(target: "dqlite_vfs::latency", index = log_id.index, "applying");
        let outcome = match entry.payload {
            EntryPayload::Blank => ApplyOutcome::Applied,
            EntryPayload::Membership(m) => {
                self.applied.last_membership = StoredMembership::new(Some(log_id), m);
                ApplyOutcome::Applied
            }
            EntryPayload::Normal(Command::Write { proposal, base, pages, .. }) => {
                let db = Arc::clone(&self.db);
                let index = log_id.index;
                if base != self.applied.last_write_index {
                    db.reject_local(proposal);
                    ApplyOutcome::Conflict
                } else {
                    // The leader's own transaction is already in its WAL: finishing it is one
                    // 24-byte write, done here rather than handed to a blocking thread, since
                    // it is on every commit's path. Pages from elsewhere need the file work.
                    if !db.finish_local(proposal, index)? {
                        blocking(move || Ok(db.apply_pages(index, &pages)?)).await?;
                        self.checkpoint_if_due();
                    }
                    self.applied.last_write_index = index;
                    ApplyOutcome::Applied
                }
            }
            EntryPayload::Normal(Command::Trust(change)) => {
                let outcome = self.applied.registry.apply(&change);
                self.trust.publish(&self.applied.registry);
                ApplyOutcome::Trust(outcome)
            }
            EntryPayload::Normal(Command::Archive(setting)) => {
                if setting != self.applied.archive {
                    // Another archive (or none): nothing is known to be in it yet.
                    self.applied.archived_index = 0;
                    self.archive.publish_archived(0);
                }
                self.applied.archive = setting;
                self.archive.publish(self.applied.archive.clone());
                ApplyOutcome::Applied
            }
            EntryPayload::Normal(Command::Archived(index)) => {
                // Only forward: a leader that resumed from an older listing may report less.
                if self.applied.archive.is_some() && index > self.applied.archived_index {
                    self.applied.archived_index = index;
                    self.archive.publish_archived(index);
                }
                ApplyOutcome::Applied
            }
        };
        self.applied.last_applied = Some(log_id);
        self.unsynced_entries += 1;
        self.store_hint().await?;
        tracing::trace!(target: "dqlite_vfs::latency", index = log_id.index, "applied");
        Ok(outcome)
    }

    /// Starts a checkpoint on a blocking thread if the applies asked for one and none is
    /// running. Not awaited: a checkpoint copies the whole WAL into the database file (all
    /// of a 64 MiB transaction, say), and the entries behind it need not wait for that. While
    /// one runs, a new request stays pending until the next apply.
    fn checkpoint_if_due(&self) {
        // Only the state machine's task starts checkpoints, so there is no race between the
        // load and the store.
        if self.checkpointing.load(Ordering::Acquire) || !self.db.take_checkpoint_due() {
            return;
        }
        self.checkpointing.store(true, Ordering::Release);
        let (db, checkpointing) = (Arc::clone(&self.db), Arc::clone(&self.checkpointing));
        tokio::task::spawn_blocking(move || {
            db.checkpoint();
            checkpointing.store(false, Ordering::Release);
        });
    }

    /// Build a snapshot of everything applied so far and make it current.
    async fn build_now(&mut self) -> Result<SnapshotT, SmError> {
        self.persist().await?;
        let meta = SnapshotMetaT {
            last_log_id: self.applied.last_applied,
            last_membership: self.applied.last_membership.clone(),
        };
        let (db, dir, lwi, prev, extras) = (
            Arc::clone(&self.db),
            self.state_dir.clone(),
            self.applied.last_write_index,
            self.current.clone(),
            SnapshotExtras {
                registry: self.applied.registry.clone(),
                archive: self.applied.archive.clone(),
                archived_index: self.applied.archived_index,
            },
        );
        let cur = blocking(move || {
            snapshot_store::build(&dir, &*db, meta, (lwi, &extras), prev.as_ref())
        })
        .await?;
        let snap = cur.to_snapshot(&self.state_dir.join(SNAPSHOT_DIR));
        self.current = Some(cur);
        Ok(snap)
    }

    async fn builder(&mut self) -> SnapshotBuilder {
        let built = self.build_now().await;
        SnapshotBuilder { built: Some(built) }
    }
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    type SnapshotData = SnapshotImage;

    async fn build_snapshot(&mut self) -> Result<SnapshotT, io::Error> {
        match self.built.take() {
            Some(Ok(snap)) => Ok(snap),
            Some(Err(e)) => Err(e.into()),
            None => Err(io::Error::other("snapshot builder used twice")),
        }
    }
}

impl<D: Database> RaftStateMachine<TypeConfig> for StateMachine<D> {
    type SnapshotData = SnapshotImage;
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogIdT>, StoredMembershipT), io::Error> {
        Ok((self.applied.last_applied, self.applied.last_membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        while let Some(item) = entries.next().await {
            let (entry, responder) = item?;
            let outcome = self.apply_one(entry).await?;
            if let Some(responder) = responder {
                responder.send(outcome);
            }
        }
        self.persist_if_due().await?;
        Ok(())
    }

    async fn try_create_snapshot_builder(&mut self, _force: bool) -> Option<SnapshotBuilder> {
        Some(self.builder().await)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        self.builder().await
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMetaT,
        snapshot: SnapshotImage,
    ) -> Result<(), io::Error> {
        let (db, dir, prev, meta2) =
            (Arc::clone(&self.db), self.state_dir.clone(), self.current.clone(), meta.clone());
        let (cur, extras) = blocking(move || {
            snapshot_store::install(&dir, &*db, meta2, &snapshot.path, prev.as_ref())
        })
        .await?;
        self.applied = AppliedState {
            last_applied: meta.last_log_id,
            last_membership: meta.last_membership.clone(),
            last_write_index: cur.last_write_index,
            registry: extras.registry,
            archive: extras.archive,
            archived_index: extras.archived_index,
        };
        self.trust.publish(&self.applied.registry);
        self.archive.publish(self.applied.archive.clone());
        self.archive.publish_archived(self.applied.archived_index);
        self.db.set_last_write_index(cur.last_write_index);
        self.current = Some(cur);
        self.persist().await?;
        self.store_hint().await?;
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<SnapshotT>, io::Error> {
        let dir = self.state_dir.join(SNAPSHOT_DIR);
        Ok(self.current.as_ref().map(|c| c.to_snapshot(&dir)))
    }
}

#[cfg(test)]
pub(crate) mod fake_db;
#[cfg(test)]
mod tests;
