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
//!
//! Replication and heartbeats go through [`stream`]: pipelined, one QUIC stream per session.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::Stream;
use openraft::base::BoxFuture;
use openraft::error::{
    NetworkError, RPCError, ReplicationClosed, StreamingError, Timeout, Unreachable,
};
use openraft::network::{RPCOption, RPCTypes};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::type_config::alias::{SnapshotOf, VoteOf};
use openraft::{RaftNetworkFactory, RaftNetworkV2};

use crate::raft::types::{page_bytes, Member, NodeId, SnapshotImage, TypeConfig};
use crate::transport::limits::SNAPSHOT_TRANSFER_TIMEOUT;
use crate::transport::wire::{Request, Response};
use crate::transport::{Client, TransportError};

mod stream;

/// Creates a [`PeerNetwork`] for each replication target of the local node.
#[derive(Clone)]
pub struct NetworkFactory {
    local_id: NodeId,
    client: Client,
    removed: Arc<AtomicBool>,
}

impl NetworkFactory {
    /// A factory for node `local_id` whose calls go through `client`. `removed` is set when a
    /// peer answers that this node's certificate was revoked (it was removed from the cluster).
    pub fn new(local_id: NodeId, client: Client, removed: Arc<AtomicBool>) -> Self {
        NetworkFactory { local_id, client, removed }
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerNetwork;

    async fn new_client(&mut self, target: NodeId, node: &Member) -> PeerNetwork {
        PeerNetwork {
            local_id: self.local_id,
            target,
            addr: node.addr.clone(),
            client: self.client.clone(),
            removed: Arc::clone(&self.removed),
            overdue_streak: Arc::default(),
        }
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
    removed: Arc<AtomicBool>,
    /// Append streams to this peer in a row that ended with an overdue answer (see
    /// `stream::answer_ttl`); back to 0 when entries are acknowledged in time.
    overdue_streak: Arc<AtomicU32>,
}

impl PeerNetwork {
    async fn call(
        &self,
        action: RPCTypes,
        request: Request,
        ttl: Duration,
    ) -> Result<Response, RPCError<TypeConfig>> {
        let response = self
            .client
            .call_node(&self.addr, self.target, request, ttl)
            .await
            .map_err(|e| self.rpc_error(action, ttl, e))?;
        if let Response::Revoked { node_id } = &response {
            if !self.removed.swap(true, Ordering::AcqRel) {
                tracing::warn!(
                    node = node_id,
                    by = self.target,
                    "this node's certificate is revoked: it was removed from the cluster"
                );
            }
        }
        Ok(response)
    }

    fn rpc_error(
        &self,
        action: RPCTypes,
        ttl: Duration,
        e: TransportError,
    ) -> RPCError<TypeConfig> {
        tracing::debug!(target_node = self.target, addr = %self.addr, error = %crate::error::Chain(&e), "{action:?} failed");
        match classify(&e) {
            Kind::Timeout => RPCError::Timeout(Timeout {
                action,
                id: self.local_id,
                target: self.target,
                timeout: ttl,
            }),
            Kind::Unreachable => RPCError::Unreachable(Unreachable::new(&e)),
            Kind::Network => RPCError::Network(NetworkError::new(&e)),
        }
    }

    fn unexpected(&self, action: RPCTypes, ttl: Duration, got: &Response) -> RPCError<TypeConfig> {
        let e = TransportError::UnexpectedResponse {
            expected: action_name(action),
            got: got.kind().into(),
        };
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
        | TransportError::Trust(_)
        | TransportError::WrongPeer { .. }
        | TransportError::Handshake { .. }
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
    fn stream_append<'s, S>(
        &'s mut self,
        input: S,
        option: RPCOption,
    ) -> BoxFuture<'s, stream::AppendStreamResult<'s>>
    where
        S: Stream<Item = AppendEntriesRequest<TypeConfig>> + Send + Unpin + 'static,
    {
        Box::pin(stream::open(self, input, option))
    }

    /// One request, one answer. openraft replicates through `stream_append` above; the trait
    /// still requires this, and it stays a working single call (the transport tests use it).
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
        let send = self.client.send_snapshot(
            (&self.addr, self.target),
            vote,
            snapshot.meta,
            &snapshot.snapshot.path,
            ttl,
        );
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
    rpc.entries.iter().map(page_bytes).sum()
}
