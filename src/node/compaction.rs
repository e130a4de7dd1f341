//! Keeps the Raft log's size on disk under its bound. openraft snapshots by entry count, but
//! entries here are transactions of any size, so a count alone bounds nothing: this task
//! watches the bytes, and past the bound snapshots the applied state and drops the log the
//! snapshot covers. A follower that later needs dropped entries gets the snapshot instead.
//! The same tick lets the log store drop its in-memory copy of a large entry once applied.
//!
//! It is also the only place the log is purged below its bound (openraft's own purging is
//! off): after each snapshot, up to [`LOG_KEPT_BEHIND_SNAPSHOT`] entries behind it, but never
//! past what the archiver has uploaded (its purge floor), so the archive misses nothing while
//! the log is under its bound. Over the bound, the bound wins.

use std::time::Duration;

use openraft::ServerState;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::archiving::ArchiveShared;
use super::lifecycle::RaftNode;
use crate::raft::log_store::{LogStore, SEGMENT_BYTES_MAX};

/// Entries kept behind a snapshot, so a briefly lagging follower catches up from the log
/// rather than from a whole image.
pub const LOG_KEPT_BEHIND_SNAPSHOT: u64 = 1_000;

/// How often the log's size is checked.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Segment files are deleted whole, so they must be a fraction of the bound for dropping the
/// covered log to bring the size under it.
pub fn segment_bytes_for(log_bytes_max: u64) -> u64 {
    (log_bytes_max / 4).clamp(1 << 20, SEGMENT_BYTES_MAX)
}

/// Starts the watch on the current runtime; it ends when Raft shuts down.
pub fn spawn(raft: RaftNode, log: LogStore, bytes_max: u64, archive: Arc<ArchiveShared>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(CHECK_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let applied = openraft::type_config::async_runtime::WatchReceiver::borrow_watched(
                &raft.metrics(),
            )
            .last_applied;
            if let Some(applied) = applied {
                log.release_applied(applied.index());
            }
            let reading = log.clone();
            // The size sits behind the log's lock, which an append of a large entry may hold.
            let bytes = match tokio::task::spawn_blocking(move || reading.bytes_on_disk()).await {
                Ok(Ok(bytes)) => bytes,
                _ => return,
            };
            let metrics = openraft::type_config::async_runtime::WatchReceiver::borrow_watched(
                &raft.metrics(),
            )
            .clone();
            if metrics.state == ServerState::Shutdown {
                return;
            }
            if bytes <= bytes_max {
                let floor = archive.purge_floor.load(Ordering::Acquire);
                let behind =
                    metrics.snapshot.map(|id| id.index().saturating_sub(LOG_KEPT_BEHIND_SNAPSHOT));
                let upto = behind.map(|index| index.min(floor)).unwrap_or(0);
                let purged = metrics.purged.map_or(0, |id| id.index());
                if upto > purged && raft.trigger().purge_log(upto).await.is_err() {
                    return;
                }
                continue;
            }
            let applied = metrics.last_applied.map(|id| id.index());
            let snapshot = metrics.snapshot.map(|id| id.index());
            let triggered = match snapshot {
                Some(snapshot) if Some(snapshot) >= applied => {
                    tracing::info!(
                        bytes,
                        bytes_max,
                        upto = snapshot,
                        "raft log over its bound: dropping what the snapshot covers"
                    );
                    raft.trigger().purge_log(snapshot).await
                }
                _ => {
                    tracing::info!(bytes, bytes_max, "raft log over its bound: snapshotting");
                    raft.trigger().snapshot().await
                }
            };
            if triggered.is_err() {
                return;
            }
        }
    });
}
