//! openraft's network, over the QUIC transport: a factory that hands openraft one
//! [`PeerNetwork`] per target, each a thin adapter that turns an openraft RPC into a
//! [`Request`], and a [`TransportError`] into the `RPCError` kind that makes openraft do the
//! right thing:
//!
//! - no connection (refused, TLS rejected, in backoff, unresolvable) -> `Unreachable`:
//!   openraft backs off before retrying;
//! - a deadline passed -> `Timeout`;
//! - a broken stream or connection, a bad frame, or a retryable peer error -> `Network`:
//!   openraft retries soon (the next call reconnects if needed);
//! - a non-retryable peer error or a protocol mismatch -> `Unreachable`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use openraft::error::{NetworkError, RPCError, ReplicationClosed, StreamingError, Timeout, Unreachable};
use openraft::network::{RPCOption, RPCTypes};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest, TransferLeaderResponse,
    VoteRequest, VoteResponse,
};
use openraft::base::{BoxFuture, BoxStream};
use openraft::raft::StreamAppendResult;
use openraft::type_config::alias::{SnapshotOf, VoteOf};
use openraft::{RaftNetworkFactory, RaftNetworkV2};
use futures_util::{Stream, StreamExt};

use crate::raft::types::{Command, Member, NodeId, SnapshotImage, TypeConfig};
use crate::transport::limits::SNAPSHOT_TRANSFER_TIMEOUT;
use crate::transport::append_stream::{AppendReceiver, AppendSender};
use crate::transport::wire::{AppendReply, Request, Response};
use crate::transport::{Client, TransportError};

/// Creates a [`PeerNetwork`] for each replication target of the local node.
#[derive(Clone)]
pub struct NetworkFactory {
    local_id: NodeId,
    client: Client,
}

impl NetworkFactory {
    /// A factory for node `local_id` whose calls go through `client`.
    pub fn new(local_id: NodeId, client: Client) -> Self {
        NetworkFactory { local_id, client }
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerNetwork;

    async fn new_client(&mut self, target: NodeId, node: &Member) -> PeerNetwork {
        PeerNetwork { local_id: self.local_id, target, addr: node.addr.clone(), client: self.client.clone() }
    }
}

/// openraft's view of one peer. Connections are shared through the [`Client`], so creating
/// and dropping these is cheap.
#[derive(Clone)]
pub struct PeerNetwork {
    local_id: NodeId,
    target: NodeId,
    addr: String,
    client: Client,
}

impl PeerNetwork {
    async fn call(&self, action: RPCTypes, request: Request, ttl: Duration) -> Result<Response, RPCError<TypeConfig>> {
        self.client.call(&self.addr, request, ttl).await.map_err(|e| self.rpc_error(action, ttl, e))
    }

    fn rpc_error(&self, action: RPCTypes, ttl: Duration, e: TransportError) -> RPCError<TypeConfig> {
        tracing::debug!(target_node = self.target, addr = %self.addr, error = %e, "{action:?} failed");
        match classify(&e) {
            Kind::Timeout => RPCError::Timeout(Timeout { action, id: self.local_id, target: self.target, timeout: ttl }),
            Kind::Unreachable => RPCError::Unreachable(Unreachable::new(&e)),
            Kind::Network => RPCError::Network(NetworkError::new(&e)),
        }
    }

    fn unexpected(&self, action: RPCTypes, ttl: Duration, got: &Response) -> RPCError<TypeConfig> {
        let e = TransportError::UnexpectedResponse { expected: action_name(action), got: got.kind().into() };
        self.rpc_error(action, ttl, e)
    }
}

/// How openraft should treat a transport failure.
enum Kind {
    Timeout,
    Unreachable,
    Network,
}

/// One exhaustive decision per transport error (no wildcard: a new variant must be placed).
fn classify(e: &TransportError) -> Kind {
    match e {
        TransportError::Timeout { .. } => Kind::Timeout,
        TransportError::Unreachable { .. }
        | TransportError::Resolve { .. }
        | TransportError::Closed
        | TransportError::UnexpectedResponse { .. }
        | TransportError::Certificate(_)
        | TransportError::Pem(_)
        | TransportError::TlsConfig(_)
        | TransportError::Remote { retryable: false, .. } => Kind::Unreachable,
        TransportError::ConnectionLost { .. }
        | TransportError::Frame(_)
        | TransportError::Io(_)
        | TransportError::Snapshot(_)
        | TransportError::Remote { retryable: true, .. } => Kind::Network,
    }
}

fn action_name(action: RPCTypes) -> &'static str {
    match action {
        RPCTypes::Vote => "Vote",
        RPCTypes::AppendEntries => "AppendEntries",
        RPCTypes::InstallSnapshot => "Snapshot",
        RPCTypes::TransferLeader => "TransferLeader",
    }
}

impl RaftNetworkV2<TypeConfig> for PeerNetwork {
    type SnapshotData = SnapshotImage;

    /// Replication and heartbeats: one QUIC stream per session, requests sent as openraft makes
    /// them and answers read in order, so a commit's entries never wait behind the answer to
    /// the previous request (openraft's default sends one request at a time).
    fn stream_append<'s, S>(&'s mut self, input: S, option: RPCOption) -> BoxFuture<'s, AppendStreamResult<'s>>
    where
        S: Stream<Item = AppendEntriesRequest<TypeConfig>> + Send + Unpin + 'static,
    {
        Box::pin(async move {
            let ttl = option.hard_ttl();
            let (sender, receiver) = self
                .client
                .open_append_stream(&self.addr)
                .await
                .map_err(|e| self.rpc_error(RPCTypes::AppendEntries, ttl, e))?;
            let (pending_tx, pending) = tokio::sync::mpsc::unbounded_channel();
            let in_flight = Arc::new(Semaphore::new(IN_FLIGHT_KIB_MAX as usize));
            let feeder = AbortOnDrop(tokio::spawn(feed(input, sender, (pending_tx, in_flight), ttl, self.target)));
            let last_answer = tokio::time::Instant::now();
            let answers = Answers { peer: self.clone(), receiver, pending, last_answer, feeder };
            let stream: BoxStream<'s, _> = Box::pin(futures_util::stream::unfold(Some(answers), next_answer));
            Ok(stream)
        })
    }

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        let ttl = option.hard_ttl().max(transfer_time(&rpc));
        let last_index = rpc.entries.last().map(|e| e.log_id.index);
        tracing::trace!(target: "dqlite_vfs::latency", to = self.target, last_index, "append_entries sent");
        match self.call(RPCTypes::AppendEntries, Request::AppendEntries(rpc), ttl).await? {
            Response::AppendEntries(r) => {
                tracing::trace!(target: "dqlite_vfs::latency", from = self.target, last_index, "append_entries acknowledged");
                Ok(r)
            }
            other => Err(self.unexpected(RPCTypes::AppendEntries, ttl, &other)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        let ttl = option.hard_ttl();
        match self.call(RPCTypes::Vote, Request::Vote(rpc), ttl).await? {
            Response::Vote(r) => Ok(r),
            other => Err(self.unexpected(RPCTypes::Vote, ttl, &other)),
        }
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        let ttl = option.hard_ttl();
        match self.call(RPCTypes::Vote, Request::PreVote(rpc), ttl).await? {
            Response::PreVote(r) => Ok(r),
            other => Err(self.unexpected(RPCTypes::Vote, ttl, &other)),
        }
    }

    async fn full_snapshot(
        &mut self,
        vote: VoteOf<TypeConfig>,
        snapshot: SnapshotOf<TypeConfig, SnapshotImage>,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        // openraft's `install_snapshot_timeout` (default 200 ms) was made for one chunk of the
        // old chunked API; a whole image needs longer. A stalled transfer is still caught by the
        // per-chunk bound inside the transport, and `cancel` stops it at once.
        let _ = option;
        let ttl = SNAPSHOT_TRANSFER_TIMEOUT;
        let send = self.client.send_snapshot(&self.addr, vote, snapshot.meta, &snapshot.snapshot.path, ttl);
        let result = tokio::select! {
            closed = cancel => return Err(StreamingError::Closed(closed)),
            result = send => result,
        };
        result.map_err(|e| match self.rpc_error(RPCTypes::InstallSnapshot, ttl, e) {
            RPCError::Timeout(t) => StreamingError::Timeout(t),
            RPCError::Unreachable(u) => StreamingError::Unreachable(u),
            RPCError::Network(n) => StreamingError::Network(n),
            RPCError::RemoteError(never) => match never.source {},
        })
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        let ttl = option.hard_ttl();
        match self.call(RPCTypes::TransferLeader, Request::TransferLeader(req), ttl).await? {
            Response::TransferLeader(r) => Ok(r),
            other => Err(self.unexpected(RPCTypes::TransferLeader, ttl, &other)),
        }
    }
}

/// What `stream_append` returns: the stream of answers, or why it could not be opened.
type AppendStreamResult<'s> =
    Result<BoxStream<'s, Result<StreamAppendResult<TypeConfig>, RPCError<TypeConfig>>>, RPCError<TypeConfig>>;

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
        let Ok(share) = Arc::clone(&in_flight).acquire_many_owned(in_flight_kib(&request)).await else {
            return;
        };
        let ttl = ttl.max(transfer_time(&request));
        let last_index = request.entries.last().map(|e| e.log_id.index);
        let due = Pending { deadline: tokio::time::Instant::now() + ttl, ttl, last_index, _in_flight: share };
        if pending.send(due).is_err() {
            return;
        }
        tracing::trace!(target: "dqlite_vfs::latency", to = target, last_index, "append_entries sent");
        if let Err(e) = sender.send(&request).await {
            // The reader finds the stream broken, or the answer overdue, and reports it.
            tracing::debug!(target_node = target, error = %e, "append stream: cannot send");
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
        let failure = TransportError::Io(std::io::Error::other("the append stream's sender panicked"));
        return panicked.then(|| (Err(answers.peer.rpc_error(RPCTypes::AppendEntries, Duration::ZERO, failure)), None));
    };
    let deadline = due.deadline.max(answers.last_answer + due.ttl);
    let failure = match tokio::time::timeout_at(deadline, answers.receiver.next()).await {
        Ok(Ok(Some(AppendReply::Appended(result)))) => {
            answers.last_answer = tokio::time::Instant::now();
            let from = answers.peer.target;
            tracing::trace!(target: "dqlite_vfs::latency", from, last_index = due.last_index, "append_entries acknowledged");
            return Some((Ok(result), Some(answers)));
        }
        Ok(Ok(Some(AppendReply::Failed { message }))) => TransportError::Remote { message, retryable: true },
        Ok(Ok(None)) => TransportError::ConnectionLost {
            addr: answers.peer.addr.clone(),
            reason: "the peer ended the append stream before answering every request".into(),
        },
        Ok(Err(e)) => e,
        Err(_) => TransportError::timeout("AppendEntries", due.ttl),
    };
    Some((Err(answers.peer.rpc_error(RPCTypes::AppendEntries, due.ttl, failure)), None))
}

/// Slowest transfer rate we allow a peer before an AppendEntries counts as timed out.
/// openraft's own deadline is sized for heartbeats; a batch carrying a large transaction's
/// pages needs time in proportion to its size, or it would be retried forever.
const TRANSFER_BYTES_PER_SEC_MIN: u64 = 10 * 1024 * 1024;

/// Time to allow for sending the entries of `rpc` at the slowest acceptable rate.
fn transfer_time(rpc: &AppendEntriesRequest<TypeConfig>) -> Duration {
    Duration::from_millis(payload_bytes(rpc) * 1000 / TRANSFER_BYTES_PER_SEC_MIN)
}

/// The page bytes `rpc` carries (the bulk of its size).
fn payload_bytes(rpc: &AppendEntriesRequest<TypeConfig>) -> u64 {
    rpc.entries
        .iter()
        .map(|entry| match &entry.payload {
            openraft::EntryPayload::Normal(Command::Write { pages, .. }) => pages.bytes(),
            _ => 0,
        })
        .sum()
}
