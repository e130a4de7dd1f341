//! Answers what peers ask of this node over QUIC: Raft messages go to openraft; joins and
//! membership changes are carried out here if this node leads, else forwarded to the leader.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock, Weak};

use super::lifecycle::Node;
use super::membership::{grant_join, lead_admin, leader_addr};
use super::ADMIN_DEADLINE;
use crate::error::Error;
use crate::raft::alias::SnapshotMetaT;
use crate::raft::types::{SnapshotImage, TypeConfig};
use crate::transport::wire::{AppendReply, Request, Response};
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use openraft::raft::AppendEntriesRequest;
use crate::transport::{BoxFuture, RpcHandler};

/// The RPC handler of one node. Created before the node (the endpoint needs it to bind),
/// then attached to it.
#[derive(Default)]
pub struct Handler {
    node: OnceLock<Weak<Node>>,
}

impl Handler {
    /// Attaches the node this handler serves.
    pub fn attach(&self, node: &Arc<Node>) {
        let _ = self.node.set(Arc::downgrade(node));
    }

    fn node(&self) -> Result<Arc<Node>, Response> {
        self.node
            .get()
            .and_then(Weak::upgrade)
            .ok_or_else(|| error_response("this node is starting or stopping; retry", true))
    }
}

fn error_response(message: impl Into<String>, retryable: bool) -> Response {
    Response::Error { message: message.into(), retryable }
}

impl RpcHandler for Handler {
    fn handle(&self, _from_authenticated_peer: bool, request: Request) -> BoxFuture<Response> {
        let node = self.node();
        Box::pin(async move {
            let node = match node {
                Ok(node) => node,
                Err(response) => return response,
            };
            answer(&node, request).await
        })
    }

    fn append_stream(&self, requests: BoxStream<'static, AppendEntriesRequest<TypeConfig>>) -> BoxStream<'static, AppendReply> {
        let node = match self.node() {
            Ok(node) => node,
            Err(_) => {
                let message = "this node is starting or stopping; retry".to_string();
                return Box::pin(futures_util::stream::once(async { AppendReply::Failed { message } }));
            }
        };
        let id = node.id();
        let requests = requests.inspect(move |rpc| {
            let last_index = rpc.entries.last().map(|e| e.log_id.index);
            tracing::trace!(target: "dqlite_vfs::latency", node = id, last_index, "append_entries received");
        });
        // The replies hold the Raft handle, not the node: a stream open at shutdown does not
        // keep the node alive.
        Box::pin(node.raft.stream_append(requests).map(move |reply| match reply {
            Ok(result) => {
                tracing::trace!(target: "dqlite_vfs::latency", node = id, last_index = ?result.as_ref().ok().and_then(|m| m.as_ref()).map(|l| l.index), "append_entries answered");
                AppendReply::Appended(result)
            }
            Err(fatal) => AppendReply::Failed { message: fatal.to_string() },
        }))
    }

    fn incoming_snapshot_path(&self) -> PathBuf {
        let dir = self.node().map(|n| n.state_dir().snapshots()).unwrap_or_else(|_| std::env::temp_dir());
        dir.join(format!("incoming-{:016x}.db", rand::random::<u64>()))
    }

    fn install_snapshot(
        &self,
        vote: openraft::type_config::alias::VoteOf<TypeConfig>,
        meta: SnapshotMetaT,
        image: SnapshotImage,
    ) -> BoxFuture<Result<openraft::raft::SnapshotResponse<TypeConfig>, String>> {
        let node = self.node();
        Box::pin(async move {
            let node = node.map_err(|_| "node not running".to_string())?;
            let snapshot = openraft::storage::Snapshot { meta, snapshot: image };
            node.raft.install_full_snapshot(vote, snapshot).await.map_err(|e| e.to_string())
        })
    }
}

async fn answer(node: &Node, request: Request) -> Response {
    let raft = &node.raft;
    let failed = |e: &dyn std::fmt::Display| error_response(e.to_string(), true);
    match request {
        Request::AppendEntries(rpc) => {
            let last_index = rpc.entries.last().map(|e| e.log_id.index);
            tracing::trace!(target: "dqlite_vfs::latency", node = node.id(), last_index, "append_entries received");
            let response = raft.append_entries(rpc).await.map_or_else(|e| failed(&e), Response::AppendEntries);
            tracing::trace!(target: "dqlite_vfs::latency", node = node.id(), last_index, "append_entries answered");
            response
        }
        Request::Vote(rpc) => raft.vote(rpc).await.map_or_else(|e| failed(&e), Response::Vote),
        Request::PreVote(rpc) => raft.pre_vote(rpc).await.map_or_else(|e| failed(&e), Response::PreVote),
        Request::TransferLeader(rpc) => match raft.handle_transfer_leader(rpc).await {
            Ok(response) => Response::TransferLeader(response),
            Err(e) => failed(&e),
        },
        request @ (Request::Join { .. } | Request::Admin(_)) => {
            if !raft.is_leader() {
                return forward(node, request).await;
            }
            match request {
                Request::Join { .. } => grant_join(node).map_or_else(|e| error_response(e.to_string(), false), Response::Join),
                // Only "not the leader (any more)" is retryable: the caller may then ask again
                // without risking doing it twice.
                Request::Admin(admin) => match lead_admin(raft, admin).await {
                    Ok(done) => Response::Admin(done),
                    Err(Error::NotLeader { .. }) => error_response("leadership is changing; retry in a moment", true),
                    Err(e) => error_response(e.to_string(), false),
                },
                _ => error_response("unreachable request kind", false),
            }
        }
    }
}

/// Passes a membership request to the leader and its answer back.
async fn forward(node: &Node, request: Request) -> Response {
    let Some(leader) = leader_addr(node) else {
        return error_response("no leader is known right now; retry in a moment", true);
    };
    if leader == node.member_addr() {
        return error_response("leadership is changing; retry in a moment", true);
    }
    match node.client.call(&leader, request, ADMIN_DEADLINE).await {
        Ok(response) => response,
        // Not retryable: the leader may have carried the request out before the answer was lost.
        Err(e) => error_response(format!("could not reach the leader at {leader}: {e}"), false),
    }
}
