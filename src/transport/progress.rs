//! Snapshot transfers in flight on one endpoint, and the last one that ended, so
//! `ha_status()` can show a long catch-up moving (bytes done of bytes total) rather than a
//! node that looks stuck.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use serde::Serialize;

/// Which way the image flows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// This node streams its snapshot to a peer that needs it.
    Sending,
    /// This node receives a snapshot from the leader.
    Receiving,
}

/// One transfer as `ha_status()` reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TransferReport {
    /// Which way.
    pub direction: Direction,
    /// The other side's address.
    pub peer: String,
    /// Bytes streamed so far.
    pub bytes_done: u64,
    /// Size of the image.
    pub bytes_total: u64,
    /// Time since the transfer started (or its duration, once ended).
    pub elapsed_ms: u64,
    /// For an ended transfer: whether it completed (`None` while in flight).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed: Option<bool>,
}

struct Live {
    direction: Direction,
    peer: String,
    bytes_total: u64,
    bytes_done: Arc<AtomicU64>,
    started: Instant,
}

impl Live {
    fn report(&self, completed: Option<bool>) -> TransferReport {
        TransferReport {
            direction: self.direction,
            peer: self.peer.clone(),
            bytes_done: self.bytes_done.load(Ordering::Relaxed),
            bytes_total: self.bytes_total,
            elapsed_ms: u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            completed,
        }
    }
}

#[derive(Default)]
struct Table {
    next_id: u64,
    live: BTreeMap<u64, Live>,
    last_ended: Option<TransferReport>,
}

/// The transfers of one endpoint. Cheap to clone; clones share the table.
#[derive(Clone, Default)]
pub struct SnapshotTransfers {
    table: Arc<Mutex<Table>>,
}

impl SnapshotTransfers {
    /// Registers a transfer; it is listed until the returned guard is finished or dropped.
    pub fn start(
        &self,
        direction: Direction,
        peer: impl Into<String>,
        bytes_total: u64,
    ) -> TransferGuard {
        let bytes_done = Arc::new(AtomicU64::new(0));
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        let id = table.next_id;
        table.next_id += 1;
        let live = Live {
            direction,
            peer: peer.into(),
            bytes_total,
            bytes_done: Arc::clone(&bytes_done),
            started: Instant::now(),
        };
        table.live.insert(id, live);
        TransferGuard { transfers: self.clone(), id, bytes_done, completed: false }
    }

    /// Transfers in flight.
    pub fn in_flight(&self) -> Vec<TransferReport> {
        let table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        table.live.values().map(|live| live.report(None)).collect()
    }

    /// The transfer that ended last, if any.
    pub fn last_ended(&self) -> Option<TransferReport> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner).last_ended.clone()
    }

    fn end(&self, id: u64, completed: bool) {
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(live) = table.live.remove(&id) {
            table.last_ended = Some(live.report(Some(completed)));
        }
    }
}

/// A transfer in flight; dropping it unfinished records it as failed.
pub struct TransferGuard {
    transfers: SnapshotTransfers,
    id: u64,
    bytes_done: Arc<AtomicU64>,
    completed: bool,
}

impl TransferGuard {
    /// Counts `bytes` more streamed.
    pub fn advance(&self, bytes: u64) {
        self.bytes_done.fetch_add(bytes, Ordering::Relaxed);
    }

    /// The transfer completed.
    pub fn finish(mut self) {
        self.completed = true;
    }
}

impl Drop for TransferGuard {
    fn drop(&mut self) {
        self.transfers.end(self.id, self.completed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfers_are_listed_while_live_and_remembered_when_ended() {
        // Goal: progress is visible during a transfer, and its outcome after it.
        let transfers = SnapshotTransfers::default();
        let sending = transfers.start(Direction::Sending, "127.0.0.1:7002", 100);
        sending.advance(40);
        let live = transfers.in_flight();
        assert_eq!((live.len(), live[0].bytes_done, live[0].bytes_total), (1, 40, 100));
        sending.advance(60);
        sending.finish();
        assert!(transfers.in_flight().is_empty());
        assert_eq!(
            transfers.last_ended().map(|t| (t.bytes_done, t.completed)),
            Some((100, Some(true)))
        );
        drop(transfers.start(Direction::Receiving, "127.0.0.1:7001", 100));
        assert_eq!(
            transfers.last_ended().map(|t| (t.direction, t.completed)),
            Some((Direction::Receiving, Some(false)))
        );
    }
}
