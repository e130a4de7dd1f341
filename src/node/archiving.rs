//! The archiver: while this node leads and an archive is set (`ha_archive`), it uploads every
//! committed entry, in order, as segments at least every `interval_ms`, and base images (at
//! the start, then by age or size), then applies retention. It never sits on the commit path:
//! it reads what Raft has applied from the log, after the fact.
//!
//! Resuming: a node that becomes leader lists the archive and continues after the last entry
//! the chain of objects holds, so nothing is skipped; an entry it uploads again is the same
//! committed entry, which restores tolerate. While archiving, the node's log keeps every entry
//! not yet archived (the purge floor read by `compaction.rs`), up to `log_bytes_max`; past
//! that the log is cut anyway, and the archiver finds the entries gone, uploads a new base
//! image and the archive shows a gap (`ha_status()`'s `archive.gaps`).
//!
//! Followers keep the same entries: the leader records how far the archive is in the Raft
//! log (`Command::Archived`, at most once a second, and only while the archive moves), and
//! each node's log keeps what comes after it, so whichever node leads next finds every entry
//! the archive lacks in its own log, or, if it installed a snapshot since, in the other
//! members' logs (`AdminRequest::ArchiveRecords`, answered by [`answer_records`]).
//!
//! Failures (the store down, slow, refusing) are retried with a doubling backoff up to 30 s
//! and shown in `ha_status()` as `last_error`; commits go on meanwhile.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use openraft::storage::{RaftLogReader, RaftLogStorage};
use openraft::{EntryPayload, ServerState};
use serde_json::{json, Value};

use super::lifecycle::RaftNode;
use super::ADMIN_DEADLINE;
use crate::archive::catalog::{Catalog, Gap};
use crate::archive::format::{self, ArchivedWrite, Header, ObjectKind, Record};
use crate::archive::setting::{ArchiveSetting, ArchiveView};
use crate::archive::store::Store;
use crate::archive::ArchiveError;
use crate::clock::{rfc3339_ms, unix_now_ms};
use crate::raft::log_store::LogStore;
use crate::raft::state_machine::open_current;
use crate::raft::types::{Command, LogIndex, NodeId};
use crate::transport::wire::{AdminRequest, AdminResponse, Request, Response};
use crate::transport::Client;

/// A segment holds at most this many raw bytes of entries (one larger entry goes alone).
const SEGMENT_BYTES_TARGET: u64 = 16 << 20;
/// How long to wait for a snapshot the archiver asked for.
const SNAPSHOT_WAIT: Duration = Duration::from_secs(120);
/// Backoff after a failure: from the first value, doubling, up to the last.
const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// How often an idle archiver (not leader, or no setting) looks again.
const IDLE_CHECK: Duration = Duration::from_millis(250);
/// How often, at most, the leader records in the Raft log how far the archive is.
const TELL_FOLLOWERS_EVERY: Duration = Duration::from_secs(1);
/// How long recording it may take before the archiver goes on without.
const TELL_FOLLOWERS_TIMEOUT: Duration = Duration::from_secs(5);
/// Name of the small object that says which cluster an archive belongs to.
const IDENTITY_NAME: &str = "dqlite-vfs-archive.json";
/// No purge floor: the log is cut as if no archive were set.
pub const NO_FLOOR: u64 = u64::MAX;

/// What the archiver shares with the rest of the node.
#[derive(Debug)]
pub struct ArchiveShared {
    /// Entries after this index must stay in the local log (they are not archived yet).
    pub purge_floor: AtomicU64,
    progress: Mutex<Progress>,
}

impl Default for ArchiveShared {
    fn default() -> Self {
        ArchiveShared { purge_floor: AtomicU64::new(NO_FLOOR), progress: Mutex::default() }
    }
}

#[derive(Debug, Default)]
struct Progress {
    uploading: bool,
    archived_index: Option<LogIndex>,
    archived_at_ms: Option<u64>,
    /// When the archive last held everything applied (the lag is the time since, if behind).
    caught_up_at: Option<Instant>,
    last_error: Option<String>,
    window_ms: Option<(u64, u64)>,
    gaps: Vec<Gap>,
    base_images: usize,
}

impl ArchiveShared {
    fn update(&self, f: impl FnOnce(&mut Progress)) {
        f(&mut self.progress.lock().unwrap_or_else(PoisonError::into_inner));
    }

    /// The `archive` object of `ha_status()` (None when no archive is set), with the lag
    /// behind `applied_index` (the node's own, now).
    pub fn status(&self, view: &ArchiveView, applied_index: Option<LogIndex>) -> Value {
        let Some(setting) = view.get() else { return Value::Null };
        let p = self.progress.lock().unwrap_or_else(PoisonError::into_inner);
        // Only the uploading leader knows how far the archive is right now; another node
        // shows how far it was when the leader last recorded it in the log, without a lag.
        let archived_index = match (p.uploading, view.archived_index()) {
            (false, recorded) if recorded > 0 => Some(recorded),
            _ => p.archived_index,
        };
        let lag_entries = match (p.uploading, applied_index, p.archived_index) {
            (true, Some(applied), Some(archived)) => Some(applied.saturating_sub(archived)),
            _ => None,
        };
        let lag_s = match lag_entries {
            Some(0) => Some(0.0),
            _ => p.caught_up_at.map(|at| at.elapsed().as_secs_f64()),
        };
        json!({
            "url": setting.target.display_url(),
            "uploading": p.uploading,
            "interval_ms": setting.interval_ms,
            "archived_index": archived_index,
            "archived_at": p.archived_at_ms.map(rfc3339_ms),
            "lag_entries": lag_entries,
            "lag_s": lag_s,
            "last_error": p.last_error,
            "restorable_from": p.window_ms.map(|w| rfc3339_ms(w.0)),
            "restorable_to": p.window_ms.map(|w| rfc3339_ms(w.1)),
            "base_images": p.base_images,
            "gaps": p.gaps.iter().map(|g| json!({
                "after_index": g.after_index,
                "after": rfc3339_ms(g.after_ms),
                "resumes_index": g.resumes_index,
                "resumes": rfc3339_ms(g.resumes_ms),
            })).collect::<Vec<_>>(),
        })
    }
}

/// The archived index last recorded in the Raft log, and when.
struct Told {
    index: LogIndex,
    at: Instant,
}

/// Everything the archiver reads.
pub struct Archiver {
    pub raft: RaftNode,
    pub log: LogStore,
    /// To ask peers for entries this node's log lacks.
    pub client: Client,
    pub state_dir: PathBuf,
    pub cluster_id: [u8; 16],
    pub shared: Arc<ArchiveShared>,
}

/// Starts `archiver` on the current runtime; it ends when Raft shuts down.
pub fn spawn(archiver: Archiver, view: ArchiveView) {
    tokio::spawn(async move { archiver.run(view).await });
}

impl Archiver {
    fn metrics(&self) -> openraft::RaftMetrics<crate::raft::types::TypeConfig> {
        use openraft::type_config::async_runtime::WatchReceiver;
        self.raft.metrics().borrow_watched().clone()
    }

    async fn run(self, view: ArchiveView) {
        let mut backoff = BACKOFF_MIN;
        loop {
            let metrics = self.metrics();
            if metrics.state == ServerState::Shutdown {
                return;
            }
            let leading = metrics.state == ServerState::Leader;
            let setting = match (view.get(), leading) {
                (Some(setting), true) => setting,
                (setting, _) => {
                    // A follower keeps what the cluster last heard was not archived yet, so
                    // that it can resume the archive without a gap if it comes to lead.
                    let floor = if setting.is_some() { view.archived_index() } else { NO_FLOOR };
                    self.shared.purge_floor.store(floor, Ordering::Release);
                    self.shared.update(|p| p.uploading = false);
                    tokio::time::sleep(IDLE_CHECK).await;
                    continue;
                }
            };
            self.shared.update(|p| p.uploading = true);
            match self.archive_while_leading(&setting, &view).await {
                Ok(()) => backoff = BACKOFF_MIN,
                Err(error) => {
                    tracing::warn!(url = %setting.target.display_url(), %error, "archive: will retry");
                    self.shared.update(|p| p.last_error = Some(error.to_string()));
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }

    /// Archives until leadership or the setting changes (Ok) or something fails (Err).
    async fn archive_while_leading(
        &self,
        setting: &ArchiveSetting,
        view: &ArchiveView,
    ) -> Result<(), ArchiveError> {
        let store = Store::open(&setting.target)?;
        self.check_identity(&store, setting).await?;
        let catalog = list(&store).await?;
        let term = self.metrics().current_term;
        let mut archived = match catalog.archived_index() {
            Some(index) => index,
            None => self.upload_base(&store, true).await?,
        };
        self.refresh(&store, setting).await?;
        let mut last_base = Instant::now();
        let mut bytes_since_base = 0u64;
        let mut told = Told { index: view.archived_index(), at: Instant::now() };
        self.shared.update(|p| p.last_error = None);
        loop {
            // Everything applied by now is archived once this round ends.
            let round_started = Instant::now();
            let metrics = self.metrics();
            let still = metrics.state == ServerState::Leader
                && metrics.current_term == term
                && view.get().as_ref() == Some(setting);
            if !still {
                return Ok(());
            }
            let applied = metrics.last_applied.map_or(0, |id| id.index());
            let purged = metrics.purged.map_or(0, |id| id.index());
            if archived < purged {
                // This node's log lacks entries the archive needs (it installed a snapshot):
                // the other members keep them (they follow the recorded index), so ask them.
                let filled = self.fill_from_peers(&store, archived + 1, purged).await?;
                bytes_since_base += filled.bytes;
                archived = filled.archived;
            }
            if archived < purged {
                // No member holds them any more: start again from a base, leaving a gap.
                tracing::warn!(
                    archived,
                    purged,
                    "archive: entries were cut from the log before upload; uploading a base image"
                );
                archived = self.upload_base(&store, false).await?;
                self.refresh(&store, setting).await?;
                (last_base, bytes_since_base) = (Instant::now(), 0);
            }
            while archived < applied {
                let (last, bytes) = self.upload_segment(&store, archived + 1, applied).await?;
                archived = last;
                bytes_since_base += bytes;
                self.shared.purge_floor.store(archived, Ordering::Release);
            }
            self.shared.purge_floor.store(archived, Ordering::Release);
            self.shared.update(|p| {
                p.archived_index = Some(archived);
                p.last_error = None;
                if archived >= applied {
                    p.caught_up_at = Some(round_started);
                }
            });
            self.tell_followers(archived, &mut told).await;
            let base_due = last_base.elapsed() >= Duration::from_secs(setting.base_interval_s)
                || bytes_since_base >= setting.base_bytes;
            if base_due {
                self.upload_base(&store, true).await?;
                self.refresh(&store, setting).await?;
                (last_base, bytes_since_base) = (Instant::now(), 0);
            }
            // The next round starts an interval after this one did, so a commit waits at most
            // about one interval plus one upload.
            tokio::time::sleep(setting.interval().saturating_sub(round_started.elapsed())).await;
        }
    }

    /// Proposes `Command::Archived(archived)` when the archive has moved on since the followers
    /// were last told, at most once per [`TELL_FOLLOWERS_EVERY`]. "Moved on" means by more than
    /// one entry: the last proposal's own entry is archived after it, and an idle cluster must
    /// not keep proposing. Best effort: if it fails, followers keep more log meanwhile.
    async fn tell_followers(&self, archived: LogIndex, told: &mut Told) {
        if archived <= told.index + 1 || told.at.elapsed() < TELL_FOLLOWERS_EVERY {
            return;
        }
        let write = self.raft.client_write(Command::Archived(archived));
        match tokio::time::timeout(TELL_FOLLOWERS_TIMEOUT, write).await {
            Ok(Ok(_)) => *told = Told { index: archived, at: Instant::now() },
            Ok(Err(error)) => tracing::debug!(%error, "archive: could not record progress"),
            Err(_) => tracing::debug!("archive: recording progress timed out"),
        }
    }

    /// Makes sure the archive is this cluster's (writing its identity object if new).
    async fn check_identity(
        &self,
        store: &Store,
        setting: &ArchiveSetting,
    ) -> Result<(), ArchiveError> {
        let ours = hex(&self.cluster_id);
        match store.get(IDENTITY_NAME, 64 << 10).await {
            Ok(bytes) => {
                let found = serde_json::from_slice::<Value>(&bytes)
                    .ok()
                    .and_then(|v| v.get("cluster_id").and_then(Value::as_str).map(str::to_string))
                    .unwrap_or_else(|| "unreadable".to_string());
                if found != ours {
                    return Err(ArchiveError::OtherCluster {
                        url: setting.target.display_url(),
                        found,
                    });
                }
                Ok(())
            }
            Err(error) if error.is_not_found() => {
                let identity = json!({"format": format::FORMAT_VERSION, "cluster_id": ours});
                store.put(IDENTITY_NAME, bytes::Bytes::from(identity.to_string())).await?;
                Ok(())
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Lists the archive, applies retention, and publishes what it holds.
    async fn refresh(&self, store: &Store, setting: &ArchiveSetting) -> Result<(), ArchiveError> {
        let catalog = list(store).await?;
        let keep_from_ms = setting.retain_s.map(|s| unix_now_ms().saturating_sub(s * 1000));
        let expired = catalog.expired(setting.retain_bases as usize, keep_from_ms);
        for name in &expired {
            store.delete(name).await?;
        }
        let catalog = if expired.is_empty() { catalog } else { list(store).await? };
        self.shared.update(|p| {
            p.archived_index = catalog.archived_index();
            p.archived_at_ms = catalog.archived_at_ms();
            p.window_ms = catalog.window_ms();
            p.gaps = catalog.gaps();
            p.base_images = catalog.bases.len();
        });
        Ok(())
    }

    /// Uploads the entries from `first` on (up to `applied`, about [`SEGMENT_BYTES_TARGET`])
    /// as one segment. Returns its last index and raw size.
    async fn upload_segment(
        &self,
        store: &Store,
        first: LogIndex,
        applied: LogIndex,
    ) -> Result<(LogIndex, u64), ArchiveError> {
        let batch = read_records(&self.log, first, applied).await?;
        let last = batch.last();
        let raw_len = self.upload_batch(store, batch).await?;
        Ok((last, raw_len))
    }

    /// The header of a segment of `count` (at least 1) entries from `first`, the newest
    /// committed at `at_ms`; `format::seal` fills in the body's length and checksum.
    fn segment_header(&self, first: LogIndex, count: u64, at_ms: u64) -> Header {
        Header {
            kind: ObjectKind::Segment,
            cluster_id: self.cluster_id,
            first,
            last: first + count - 1,
            extra: count,
            at_ms,
            raw_len: 0,
            raw_crc: 0,
        }
    }

    /// Seals `batch` as a segment and uploads it. Returns its raw size.
    async fn upload_batch(&self, store: &Store, batch: RecordBatch) -> Result<u64, ArchiveError> {
        let RecordBatch { first, count, raw, at_ms } = batch;
        let header = self.segment_header(first, count, at_ms);
        let last = header.last;
        let raw_len = raw.len() as u64;
        let object = tokio::task::spawn_blocking(move || format::seal(header, &raw))
            .await
            .map_err(|e| ArchiveError::io("compressing a segment", std::io::Error::other(e)))?
            .map_err(|e| ArchiveError::io("compressing a segment", e))?;
        store.put(&format::segment_name(first, last, at_ms), bytes::Bytes::from(object)).await?;
        if at_ms > 0 {
            self.shared.update(|p| {
                p.archived_at_ms = Some(at_ms);
                p.window_ms = p.window_ms.map(|(from, _)| (from, at_ms));
            });
        }
        tracing::debug!(first, last, raw_len, "archive: segment uploaded");
        Ok(raw_len)
    }

    /// Archives entries `first..=through`, which this node's log lacks, from the other
    /// members' logs: each is asked in turn, in segments, until one has them all or none has
    /// more. Returns how far the archive got (it may stop short: the caller then leaves a gap).
    async fn fill_from_peers(
        &self,
        store: &Store,
        first: LogIndex,
        through: LogIndex,
    ) -> Result<Filled, ArchiveError> {
        let metrics = self.metrics();
        let me = metrics.id;
        let peers: Vec<(NodeId, String)> = metrics
            .membership_config
            .membership()
            .nodes()
            .filter(|(id, _)| **id != me)
            .map(|(id, member)| (*id, member.addr.clone()))
            .collect();
        let mut filled = Filled { archived: first - 1, bytes: 0 };
        for (peer, addr) in peers {
            while filled.archived < through {
                let next = filled.archived + 1;
                let batch = match self.ask_peer(peer, &addr, next, through).await {
                    Ok(batch) => batch,
                    Err(why) => {
                        tracing::info!(peer, from = next, %why, "archive: a peer could not give the entries this log lacks");
                        break;
                    }
                };
                filled.archived = batch.last();
                filled.bytes += self.upload_batch(store, batch).await?;
                self.shared.purge_floor.store(filled.archived, Ordering::Release);
            }
        }
        if filled.archived >= first {
            tracing::info!(
                first,
                archived = filled.archived,
                "archive: archived entries this log lacked from the other members"
            );
        }
        Ok(filled)
    }

    /// Asks `peer` for the records `first..=through` (it answers what fits in one segment),
    /// and checks them: a member is trusted with the data, not with its framing.
    async fn ask_peer(
        &self,
        peer: NodeId,
        addr: &str,
        first: LogIndex,
        through: LogIndex,
    ) -> Result<RecordBatch, String> {
        let request = Request::Admin(AdminRequest::ArchiveRecords { first, last: through });
        let response = self
            .client
            .call_node(addr, peer, request, ADMIN_DEADLINE)
            .await
            .map_err(|e| crate::error::Chain(&e).to_string())?;
        let (answered_first, count, raw) = match response {
            Response::Admin(AdminResponse::ArchiveRecords { first, count, raw }) => {
                (first, count, raw)
            }
            Response::Error { message, .. } => return Err(message),
            other => return Err(format!("answered {}", other.kind())),
        };
        let last = answered_first.saturating_add(count).saturating_sub(1);
        if answered_first != first || count == 0 || last > through {
            return Err(format!(
                "answered {count} records from {answered_first} for {first}..={through}"
            ));
        }
        let header = self.segment_header(first, count, 0);
        let name = format!("the records of node {peer}");
        let records = format::decode_records(&name, &header, &raw).map_err(|e| e.to_string())?;
        let at_ms = records.iter().map(|r| r.at_ms).max().unwrap_or(0);
        Ok(RecordBatch { first, count, raw, at_ms })
    }

    /// Uploads a base image: of a fresh snapshot (`fresh`), or of the current one. Returns its
    /// index.
    async fn upload_base(&self, store: &Store, fresh: bool) -> Result<LogIndex, ArchiveError> {
        if fresh {
            let wanted = self.metrics().last_applied.map_or(0, |id| id.index());
            self.raft.trigger().snapshot().await.map_err(|e| {
                ArchiveError::io("asking for a snapshot", std::io::Error::other(e.to_string()))
            })?;
            let deadline = Instant::now() + SNAPSHOT_WAIT;
            while self.metrics().snapshot.map_or(0, |id| id.index()) < wanted {
                if Instant::now() > deadline {
                    return Err(ArchiveError::io(
                        "waiting for a snapshot",
                        std::io::Error::from(std::io::ErrorKind::TimedOut),
                    ));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let state_dir = self.state_dir.clone();
        let object_path = state_dir.join("archive-base.tmp");
        let _ = std::fs::remove_file(&object_path);
        let cluster_id = self.cluster_id;
        let opened = tokio::task::spawn_blocking(move || open_current(&state_dir))
            .await
            .map_err(|e| ArchiveError::io("opening the snapshot", std::io::Error::other(e)))?
            .map_err(|e| ArchiveError::io("opening the snapshot", std::io::Error::other(e)))?;
        let Some((file, image_len, trailer)) = opened else {
            return Err(ArchiveError::io(
                "opening the snapshot",
                std::io::Error::other("this node has no snapshot yet"),
            ));
        };
        let index = trailer.last_log_index.unwrap_or(0);
        let at_ms = self.write_time(trailer.last_write_index).await.unwrap_or_else(unix_now_ms);
        let header = Header {
            kind: ObjectKind::Base,
            cluster_id,
            first: index,
            last: index,
            extra: trailer.last_write_index,
            at_ms,
            raw_len: 0,
            raw_crc: 0,
        };
        let path = object_path.clone();
        tokio::task::spawn_blocking(move || {
            crate::archive::base::seal_image(&file, image_len, header, &path)
        })
        .await
        .map_err(|e| ArchiveError::io("compressing a base image", std::io::Error::other(e)))?
        .map_err(|e| ArchiveError::io("compressing a base image", e))?;
        let uploaded = store.put_file(&format::base_name(index, at_ms), &object_path).await;
        let _ = std::fs::remove_file(&object_path);
        let bytes = uploaded?;
        tracing::info!(index, image_len, bytes, "archive: base image uploaded");
        Ok(index)
    }

    /// The commit time of the write at `index`, if the log still holds it.
    async fn write_time(&self, index: LogIndex) -> Option<u64> {
        if index == 0 {
            return None;
        }
        let mut reader = self.log.clone().get_log_reader().await;
        let entries = reader.try_get_log_entries(index..index + 1).await.ok()?;
        match entries.into_iter().next()?.payload {
            EntryPayload::Normal(Command::Write { at_ms, .. }) if at_ms > 0 => Some(at_ms),
            _ => None,
        }
    }
}

/// How far [`Archiver::fill_from_peers`] got.
struct Filled {
    archived: LogIndex,
    bytes: u64,
}

/// Consecutive log entries encoded as archive records (a segment's body).
struct RecordBatch {
    first: LogIndex,
    /// At least 1.
    count: u64,
    raw: Vec<u8>,
    /// The newest commit time among them (0 if none is a write).
    at_ms: u64,
}

impl RecordBatch {
    fn last(&self) -> LogIndex {
        self.first + self.count - 1
    }
}

/// Reads the entries from `first` on (up to `last`, about [`SEGMENT_BYTES_TARGET`]) from
/// `log` as archive records; at least one, or an error if `first` is not in the log.
async fn read_records(
    log: &LogStore,
    first: LogIndex,
    last: LogIndex,
) -> Result<RecordBatch, ArchiveError> {
    let mut reader = log.clone().get_log_reader().await;
    let mut raw = Vec::new();
    let (mut next, mut count, mut at_ms) = (first, 0u64, 0u64);
    while next <= last && (raw.len() as u64) < SEGMENT_BYTES_TARGET {
        let entries = reader
            .limited_get_log_entries(next, last.saturating_add(1))
            .await
            .map_err(|e| ArchiveError::io("reading the Raft log", e))?;
        if entries.is_empty() {
            break;
        }
        for entry in entries {
            let index = entry.log_id.index();
            if index != next {
                return Err(ArchiveError::io(
                    "reading the Raft log",
                    std::io::Error::other(format!("entry {index} where {next} was expected")),
                ));
            }
            let record = match entry.payload {
                EntryPayload::Normal(Command::Write { base, pages, at_ms: written_at, .. }) => {
                    at_ms = at_ms.max(written_at);
                    Record { index, at_ms: written_at, write: Some(ArchivedWrite { base, pages }) }
                }
                _ => Record { index, at_ms: 0, write: None },
            };
            format::encode_record(&record, &mut raw);
            (next, count) = (next + 1, count + 1);
        }
    }
    if count == 0 {
        return Err(ArchiveError::io(
            "reading the Raft log",
            std::io::Error::other(format!("entry {first} is not in the log")),
        ));
    }
    Ok(RecordBatch { first, count, raw, at_ms })
}

/// Answers a peer's `ArchiveRecords`: what this node's log holds from `first` on, or why not.
pub(super) async fn answer_records(
    log: &LogStore,
    first: LogIndex,
    last: LogIndex,
) -> Result<AdminResponse, String> {
    if first == 0 || last < first {
        return Err(format!("no entries {first}..={last}"));
    }
    let RecordBatch { first, count, raw, .. } =
        read_records(log, first, last).await.map_err(|e| e.to_string())?;
    Ok(AdminResponse::ArchiveRecords { first, count, raw })
}

async fn list(store: &Store) -> Result<Catalog, ArchiveError> {
    let mut names = Vec::new();
    for dir in ["base/", "seg/"] {
        names.extend(store.list(dir).await?.into_iter().map(|entry| entry.name));
    }
    Ok(Catalog::from_names(names.iter().map(String::as_str)))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
