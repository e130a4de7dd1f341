//! Pipelined replication: openraft's `stream_append` over one QUIC stream per session.
//!
//! A feeder task sends openraft's requests as it makes them; the stream openraft reads yields
//! the follower's answers in the same order. Three rules keep it cheap and bounded:
//! - a request without entries waits [`ENTRYLESS_HOLD`] for the next one, which replaces it;
//! - at most [`IN_FLIGHT_KIB_MAX`] of page data is sent and not yet answered;
//! - an answer is overdue only when its own deadline and the time allowed since the previous
//!   answer have both passed.

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
    let ttl = option.hard_ttl();
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
        Err(_) => TransportError::timeout("AppendEntries", due.ttl),
    };
    Some((Err(answers.peer.rpc_error(RPCTypes::AppendEntries, due.ttl, failure)), None))
}
