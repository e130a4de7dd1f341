//! The leader's side of a commit: the VFS hands over a transaction SQLite has written to the
//! WAL; we turn its frames into a page set, propose it, and wait for the cluster.
//!
//! Outcomes the caller can tell apart (docs/ARCHITECTURE.md):
//! - committed: the entry was applied here, which wrote its valid commit-frame header;
//! - did not happen (not the leader, conflict): SQLite rolls back; retrying is safe;
//! - outcome unknown (no answer in time): SQLite rolls back locally, but the entry may still
//!   commit, and then it is applied here like any other entry.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use openraft::error::{ClientWriteError, RaftError};
use openraft::ServerState;

use super::database::{LocalCommit, LocalState};
use super::lifecycle::{members, Node};
use super::runtime::{self, run_blocking};
use super::COMMIT_DEADLINE;
use crate::error::Error;
use crate::ffi::file::RawFile;
use crate::raft::types::{ApplyOutcome, Command, ProposalId};
use crate::vfs::{CommitFrame, Replicator};
use crate::wal::capture::capture_transaction;
use crate::wal::format::{frame_number_at, Salts, WalHeader, WAL_HEADER_BYTES};
use crate::wal::index::header::IndexHeader;

/// What openraft answers a proposal.
type WriteResult = Result<
    openraft::raft::ClientWriteResponse<crate::raft::types::TypeConfig>,
    RaftError<crate::raft::types::TypeConfig, ClientWriteError<crate::raft::types::TypeConfig>>,
>;

/// Slowest replication rate a commit allows before its outcome counts as unknown: a large
/// transaction gets time in proportion to its size on top of [`COMMIT_DEADLINE`].
const COMMIT_BYTES_PER_SEC_MIN: u64 = 10 * 1024 * 1024;

fn commit_deadline(pages: &crate::raft::types::PageSet) -> std::time::Duration {
    COMMIT_DEADLINE
        + std::time::Duration::from_millis(pages.bytes() * 1000 / COMMIT_BYTES_PER_SEC_MIN)
}

impl Node {
    fn not_leader(&self) -> Error {
        let metrics = self.metrics();
        let leader = metrics
            .current_leader
            .and_then(|id| members(self).get(&id).map(|member| (id, member.addr.clone())));
        Error::NotLeader { leader }
    }
}

impl Node {
    /// The salts of the WAL generation being written: the index's, unless the transaction
    /// started a new generation (then only the WAL header has them yet).
    fn wal_generation(&self, wal: &RawFile, before: &IndexHeader) -> Result<Salts, Error> {
        if before.max_frame > 0 {
            return Ok(before.salts);
        }
        let mut bytes = [0u8; WAL_HEADER_BYTES];
        wal.read_exact_at(&mut bytes, 0)
            .map_err(|c| Error::Sqlite { code: c.0, message: "reading the WAL header".into() })?;
        WalHeader::decode(&bytes)
            .map(|header| header.salts)
            .map_err(|source| Error::Wal { context: "reading the WAL header", source })
    }
}

/// How long a write on a leader elected a moment ago waits for it to apply its first entry
/// of the term (one round trip and an fsync, normally) before being refused.
const NEW_LEADER_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// A leader may take local writes once it has applied every entry of earlier terms, which it
/// knows when its own first entry of this term is applied: local transactions are built on
/// the local state and must follow everything committed before them.
fn may_write(metrics: &openraft::RaftMetrics<crate::raft::types::TypeConfig>) -> bool {
    metrics.state == ServerState::Leader
        && metrics
            .last_applied
            .as_ref()
            .is_some_and(|applied| applied.leader_id.term == metrics.current_term)
}

/// How long a leader may go without a majority's acknowledgement before it refuses new
/// writes: the longest election timeout, after which the others may well have elected
/// someone else. Heartbeats go every 50 ms, so a connected leader never comes close.
const QUORUM_SILENCE_MAX: std::time::Duration =
    std::time::Duration::from_millis(super::lifecycle::ELECTION_TIMEOUT_MAX_MS);

/// For a leader of several voters: how long since a majority last acknowledged it, if that
/// is too long (`None`: in contact, or alone, where its own log is the majority).
fn quorum_silence(
    metrics: &openraft::RaftMetrics<crate::raft::types::TypeConfig>,
) -> Option<std::time::Duration> {
    if metrics.membership_config.membership().voter_ids().count() <= 1 {
        return None;
    }
    let silent =
        metrics.last_quorum_acked.as_ref().map(|acked| openraft::Instant::elapsed(&**acked));
    match silent {
        Some(silent) if silent <= QUORUM_SILENCE_MAX => None,
        Some(silent) => Some(silent),
        None => Some(QUORUM_SILENCE_MAX),
    }
}

/// A leader may write only while a majority keeps acknowledging it (see [`quorum_silence`]).
fn in_contact(
    metrics: &openraft::RaftMetrics<crate::raft::types::TypeConfig>,
) -> Result<(), Error> {
    match quorum_silence(metrics) {
        Some(silent) => Err(Error::LostQuorum {
            silent_ms: u64::try_from(silent.as_millis()).unwrap_or(u64::MAX),
        }),
        None => Ok(()),
    }
}

impl Replicator for Node {
    fn check_writable(&self) -> Result<(), Error> {
        let metrics = self.metrics();
        if let Some(reason) = self.stopped_reason(&metrics) {
            return Err(Error::NodeStopped(reason));
        }
        if self.is_removed() {
            return Err(Error::Removed { node_id: self.id() });
        }
        if may_write(&metrics) {
            return in_contact(&metrics);
        }
        if metrics.state == ServerState::Leader {
            // Only a transaction that took the write lock before this node was elected gets
            // here: the others waited in `before_write_lock`.
            return Err(Error::NotCommitted(
                "this node became the leader a moment ago and is still applying earlier entries"
                    .into(),
            ));
        }
        Err(self.not_leader())
    }

    fn before_write_lock(&self) {
        // Every write transaction asks: look at the latest metrics without cloning them.
        let ready = {
            let metrics = self.raft.metrics();
            let metrics =
                openraft::type_config::async_runtime::WatchReceiver::borrow_watched(&metrics);
            metrics.state != ServerState::Leader || may_write(&metrics)
        };
        if ready {
            return;
        }
        // Just elected (after a failover or ha_transfer): wait for the first entry rather
        // than fail a write that would succeed a moment later. Whatever the wait ends with,
        // the first WAL write's `check_writable` decides.
        let raft = self.raft.clone();
        let started = Instant::now();
        let _ = run_blocking(
            async move {
                raft.wait(Some(NEW_LEADER_WAIT))
                    .metrics(
                        |m| may_write(m) || m.state != ServerState::Leader,
                        "apply the term's first entry",
                    )
                    .await
            },
            NEW_LEADER_WAIT,
        );
        tracing::debug!(
            waited_us = started.elapsed().as_micros() as u64,
            "new leader ready for local writes"
        );
    }

    fn commit(&self, wal: &RawFile, commit: &CommitFrame) -> Result<(), Error> {
        let started = std::time::Instant::now();
        let before = self.db.index_header()?;
        let commit_frame = frame_number_at(commit.page_size, commit.header_offset)
            .and_then(|frame| u32::try_from(frame).ok())
            .ok_or_else(|| Error::Refused("the WAL is too long".into()))?;
        let pages = capture_transaction(
            &super::files::Wal { file: wal },
            &before,
            commit_frame,
            Some(&commit.header),
        )
        .map_err(|source| Error::Wal { context: "reading the transaction from the WAL", source })?;
        let salts = self.wal_generation(wal, &before)?;
        let proposal =
            ProposalId { node: self.id(), seq: self.next_proposal.fetch_add(1, Ordering::Relaxed) };
        let base = self.db.last_write_index();
        self.db.begin_local(LocalCommit {
            proposal,
            header_offset: commit.header_offset,
            header: commit.header,
            commit_frame,
            salts,
            state: LocalState::Waiting,
        });
        tracing::trace!(target: "dqlite_vfs::latency", ?proposal, bytes = pages.bytes(), "captured");
        let deadline = commit_deadline(&pages);
        let at_ms = crate::clock::unix_now_ms();
        // The apply settles the commit (`finish_local`) and wakes this thread directly; Raft's
        // own answer matters only when it fails before that.
        let answer: Arc<Mutex<Option<WriteResult>>> = Arc::default();
        let (raft, db, slot) = (self.raft.clone(), Arc::clone(&self.db), Arc::clone(&answer));
        runtime::handle()?.spawn(async move {
            let result = raft.client_write(Command::Write { proposal, base, pages, at_ms }).await;
            *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(result);
            db.wake_local();
        });
        let answered = || answer.lock().unwrap_or_else(PoisonError::into_inner).is_some();
        self.db.wait_local(proposal, Instant::now() + deadline, answered);
        let final_state = self.db.end_local(proposal);
        let outcome = answer.lock().unwrap_or_else(PoisonError::into_inner).take();
        tracing::debug!(
            ?proposal,
            ?final_state,
            answered = outcome.is_some(),
            elapsed_us = started.elapsed().as_micros() as u64,
            "commit finished"
        );
        // Only errors raised before the entry was proposed mean "did not happen"; once it is in
        // the log, anything short of its application here leaves its fate open.
        match (final_state, outcome) {
            (Some(LocalState::Finished), _) => Ok(()),
            (Some(LocalState::Rejected), _) => Err(Error::Conflict),
            (_, Some(Ok(response))) if response.data == ApplyOutcome::Conflict => {
                Err(Error::Conflict)
            }
            (_, Some(Ok(_))) => Err(Error::OutcomeUnknown {
                what: "the entry was applied without finishing the local commit".into(),
                cause: None,
            }),
            (_, Some(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))))) => {
                Err(self.not_leader())
            }
            (_, Some(Err(error))) => Err(Error::OutcomeUnknown {
                what: "the cluster dropped the proposed entry".into(),
                cause: Some(Box::new(error)),
            }),
            (_, None) => Err(Error::OutcomeUnknown {
                what: format!(
                    "no confirmation from the cluster within {} ms",
                    deadline.as_millis()
                ),
                cause: None,
            }),
        }
    }
}
