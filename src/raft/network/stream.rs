//! Pipelined replication: openraft's `stream_append` over one QUIC stream per session.
//!
//! A feeder task sends openraft's requests as it makes them; the stream openraft reads yields
//! the follower's answers in the same order. Three rules keep it cheap and bounded:
//! - a request without entries waits [`ENTRYLESS_HOLD`] for the next one, which replaces it;
//! - at most [`IN_FLIGHT_KIB_MAX`] of page data is sent and not yet answered;
//! - an answer is overdue only when its own deadline and the time allowed since the previous
//!   answer have both passed;
//! - after a stream to a peer ended with an overdue answer, the next one allows twice as long
//!   (up to 64x openraft's deadline), until entries are acknowledged in time.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use openraft::base::BoxStream;
use openraft::error::RPCError;
use openraft::network::{RPCOption, RPCTypes};
use openraft::raft::{AppendEntriesRequest, StreamAppendResult};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{payload_bytes, transfer_time, PeerNetwork};
use crate::raft::types::{NodeId, TypeConfig};
use crate::transport::append_stream::{AppendReceiver, AppendSender};
use crate::transport::wire::AppendReply;
use crate::transport::TransportError;

/// Opens the stream for `peer` and starts feeding it `input`.
pub(super) async fn open<'s, S>(
    peer: &PeerNetwork,
    input: S,
    option: RPCOption,
) -> AppendStreamResult<'s>
where
    S: Stream<Item = AppendEntriesRequest<TypeConfig>> + Send + Unpin + 'static,
{
    let ttl = answer_ttl(option.hard_ttl(), peer.overdue_streak.load(Ordering::Relaxed));
    let (sender, receiver) = peer
        .client
        .open_append_stream(&peer.addr, peer.target)
        .await
        .map_err(|e| peer.rpc_error(RPCTypes::AppendEntries, ttl, e))?;
    let (pending_tx, pending) = tokio::sync::mpsc::unbounded_channel();
    let in_flight = Arc::new(Semaphore::new(IN_FLIGHT_KIB_MAX as usize));
    let feeder =
        AbortOnDrop(tokio::spawn(feed(input, sender, (pending_tx, in_flight), ttl, peer.target)));
    let last_answer = tokio::time::Instant::now();
    let answers = Answers { peer: peer.clone(), receiver, pending, last_answer, feeder };
    Ok(Box::pin(futures_util::stream::unfold(Some(answers), next_answer)))
}

/// Most times openraft's deadline is doubled for a peer whose answers keep coming late (64x:
/// 3.2 s with the 50 ms heartbeat interval).
const ANSWER_TTL_DOUBLINGS_MAX: u32 = 6;

/// The time allowed for an answer on a new stream, after `streak` streams in a row to the same
/// peer ended with an overdue answer: openraft's deadline (its heartbeat interval), doubled
/// each time. A deadline that fired resends the same entries on a new stream, so a path
/// slower than the deadline (a congested link, a loaded follower) would otherwise time out
/// again and again without a single entry getting through.
fn answer_ttl(openraft_ttl: Duration, streak: u32) -> Duration {
    openraft_ttl.saturating_mul(1 << streak.min(ANSWER_TTL_DOUBLINGS_MAX))
}

/// What `stream_append` returns: the stream of answers, or why it could not be opened.
pub(super) type AppendStreamResult<'s> = Result<
    BoxStream<'s, Result<StreamAppendResult<TypeConfig>, RPCError<TypeConfig>>>,
    RPCError<TypeConfig>,
>;

/// Page bytes (KiB) a stream may have sent and not yet seen answered. Past it, the next
/// request waits: a follower catching up queues what it has received until its log takes it,
/// and this bounds that queue's memory. A larger request goes alone.
const IN_FLIGHT_KIB_MAX: u32 = 32 << 10;

/// A request sent on an append stream whose answer is still to come.
struct Pending {
    deadline: tokio::time::Instant,
    ttl: Duration,
    last_index: Option<u64>,
    /// Its share of [`IN_FLIGHT_KIB_MAX`], given back with the answer.
    _in_flight: OwnedSemaphorePermit,
}

/// The request's share of [`IN_FLIGHT_KIB_MAX`]: its page bytes, at least 1 KiB, at most all.
fn in_flight_kib(request: &AppendEntriesRequest<TypeConfig>) -> u32 {
    let kib = payload_bytes(request).div_ceil(1024).clamp(1, u64::from(IN_FLIGHT_KIB_MAX));
    u32::try_from(kib).unwrap_or(IN_FLIGHT_KIB_MAX)
}

/// The reading side of an append stream, with what it needs to report failures.
struct Answers {
    peer: PeerNetwork,
    receiver: AppendReceiver,
    /// One item per request sent, in order; closed once the input has ended.
    pending: tokio::sync::mpsc::UnboundedReceiver<Pending>,
    /// When the last answer came (or the stream opened).
    last_answer: tokio::time::Instant,
    /// Stops feeding requests as soon as openraft drops the answers (a conflict, a higher
    /// vote, a failure, or the end of the session).
    feeder: AbortOnDrop,
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How long a request without entries (a new commit index, or a probe) waits for the next
/// request of its session. If one comes, it goes instead: it carries the same or a newer
/// commit index and its own log check, and its answer acknowledges everything before it.
/// Under writes, a commit then costs one message less each way per follower; followers learn
/// of a commit at most this much later when no write follows.
const ENTRYLESS_HOLD: Duration = Duration::from_millis(1);

/// Sends openraft's requests as it makes them, noting for each when its answer is due.
async fn feed<S>(
    mut input: S,
    mut sender: AppendSender,
    (pending, in_flight): (tokio::sync::mpsc::UnboundedSender<Pending>, Arc<Semaphore>),
    ttl: Duration,
    target: NodeId,
) where
    S: Stream<Item = AppendEntriesRequest<TypeConfig>> + Unpin,
{
    let mut next = input.next().await;
    // A stream must not be asked again once it has said it ended.
    let mut ended = next.is_none();
    while let Some(request) = next.take() {
        if request.entries.is_empty() {
            // `input` keeps a request it was making when the wait ends: nothing is lost.
            match tokio::time::timeout(ENTRYLESS_HOLD, input.next()).await {
                Ok(Some(newer)) => {
                    next = Some(newer);
                    continue;
                }
                Ok(None) => ended = true,
                Err(_) => {}
            }
        }
        let Ok(share) = Arc::clone(&in_flight).acquire_many_owned(in_flight_kib(&request)).await
        else {
            return;
        };
        let ttl = ttl.max(transfer_time(&request));
        let last_index = request.entries.last().map(|e| e.log_id.index);
        let due = Pending {
            deadline: tokio::time::Instant::now() + ttl,
            ttl,
            last_index,
            _in_flight: share,
        };
        if pending.send(due).is_err() {
            return;
        }
        tracing::trace!(target: "dqlite_vfs::latency", to = target, last_index, "append_entries sent");
        if let Err(e) = sender.send(&request).await {
            // The reader finds the stream broken, or the answer overdue, and reports it.
            tracing::debug!(target_node = target, error = %crate::error::Chain(&e), "append stream: cannot send");
            return;
        }
        if !ended {
            next = input.next().await;
            ended = next.is_none();
        }
    }
    sender.finish();
}

/// The answer to the oldest request not yet answered; the stream ends after the first failure,
/// or once the input has ended and every answer has been read.
///
/// An answer is overdue when both its own deadline and the time allowed since the previous
/// answer have passed: a follower catching up answers a queue of requests one after the other,
/// and is slow only if it stops answering, not because the last of the queue waited its turn.
async fn next_answer(
    answers: Option<Answers>,
) -> Option<(Result<StreamAppendResult<TypeConfig>, RPCError<TypeConfig>>, Option<Answers>)> {
    let mut answers = answers?;
    let Some(due) = answers.pending.recv().await else {
        // Every answer is in and the feeder has ended. Had it panicked, the session did not
        // end: say so rather than let it pass for a clean end.
        let panicked = matches!((&mut answers.feeder.0).await, Err(e) if e.is_panic());
        let failure =
            TransportError::Io(std::io::Error::other("the append stream's sender panicked"));
        return panicked.then(|| {
            (Err(answers.peer.rpc_error(RPCTypes::AppendEntries, Duration::ZERO, failure)), None)
        });
    };
    let deadline = due.deadline.max(answers.last_answer + due.ttl);
    let failure = match tokio::time::timeout_at(deadline, answers.receiver.next()).await {
        Ok(Ok(Some(AppendReply::Appended(result)))) => {
            answers.last_answer = tokio::time::Instant::now();
            if due.last_index.is_some() {
                // Entries got through in time (an answer to a probe proves nothing: the
                // entries after it may still be too slow for the deadline).
                answers.peer.overdue_streak.store(0, Ordering::Relaxed);
            }
            let from = answers.peer.target;
            tracing::trace!(target: "dqlite_vfs::latency", from, last_index = due.last_index, "append_entries acknowledged");
            return Some((Ok(result), Some(answers)));
        }
        Ok(Ok(Some(AppendReply::Failed { message }))) => {
            TransportError::Remote { message, retryable: true }
        }
        Ok(Ok(None)) => TransportError::ConnectionLost {
            addr: answers.peer.addr.clone(),
            reason: "the peer ended the append stream before answering every request".into(),
        },
        Ok(Err(e)) => e,
        Err(_) => {
            let streak = &answers.peer.overdue_streak;
            let _ = streak.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_add(1));
            TransportError::timeout("AppendEntries", due.ttl)
        }
    };
    Some((Err(answers.peer.rpc_error(RPCTypes::AppendEntries, due.ttl, failure)), None))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: each overdue stream doubles the next stream's allowance, up to a bound, so a slow
    // path gets through after a few tries instead of timing out forever.
    #[test]
    fn answer_ttl_doubles_per_overdue_stream_up_to_a_bound() {
        let base = Duration::from_millis(50);
        let ttls: Vec<u128> = (0..9).map(|n| answer_ttl(base, n).as_millis()).collect();
        assert_eq!(ttls, [50, 100, 200, 400, 800, 1600, 3200, 3200, 3200]);
        assert_eq!(answer_ttl(base, u32::MAX), Duration::from_millis(3200));
    }
}
