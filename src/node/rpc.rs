//! Answers what peers ask of this node over QUIC, after checking that the asker may ask it:
//! Raft messages go to openraft; joins, tokens and membership changes are carried out here if
//! this node leads, else forwarded to (or, for joins, redirected to) the leader.
//!
//! Who may ask what (every request of a member is first checked against the trust registry:
//! a revoked node gets [`Response::Revoked`] and nothing else):
//! - appends and snapshots: only the node the request's vote names as leader;
//! - votes and pre-votes: only the candidate the vote names, and only if it is a voter;
//! - leadership transfers: only the leader that hands over;
//! - adding a member: the admitted node itself (in the role it was admitted for), or a voter;
//! - removals, transfers, tokens, the CA key and archive records: voters only (any member may
//!   remove itself);
//! - status and read-index: any member; a certificate renewal: any member, for itself only;
//! - joins: anonymous callers, proven against their TLS session.
//!
//! Every term and index in a Raft message is checked against [`bounds`] first, so no message
//! can push a counter near overflow.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock, Weak};

use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use openraft::raft::AppendEntriesRequest;

use super::lifecycle::Node;
use super::membership::{lead_admin, leader_addr};
use super::{admission, renewal, ADMIN_DEADLINE};
use crate::error::Error;
use crate::raft::alias::SnapshotMetaT;
use crate::raft::bounds;
use crate::raft::types::{NodeId, SnapshotImage, TypeConfig};
use crate::transport::wire::{AdminRequest, AppendReply, Request, Response, SnapshotHeader};
use crate::transport::{BoxFuture, Caller, RpcHandler};
use crate::trust::certs::PeerIdentity;
use crate::trust::error::TrustError;

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
    fn handle(&self, caller: &Caller, request: Request) -> BoxFuture<Response> {
        let node = self.node();
        let caller = caller.clone();
        Box::pin(async move {
            let node = match node {
                Ok(node) => node,
                Err(response) => return response,
            };
            match caller {
                Caller::Anonymous { tls_exporter } => match request {
                    Request::Join(join) => admission::answer_join(&node, tls_exporter, join).await,
                    _ => error_response(
                        "peer has no cluster certificate: only Join is allowed",
                        false,
                    ),
                },
                Caller::Member(peer) => match (authorize(&node, &peer, &request), request) {
                    (Err(refusal), _) => refusal,
                    // A renewal is for the caller its certificate names, never for another.
                    (Ok(()), Request::Admin(AdminRequest::Renew { public_key_der })) => {
                        renewal::answer_renew(&node, peer.node_id, public_key_der).await
                    }
                    (Ok(()), request) => answer(&node, request).await,
                },
            }
        })
    }

    fn append_stream(
        &self,
        caller: &PeerIdentity,
        requests: BoxStream<'static, AppendEntriesRequest<TypeConfig>>,
    ) -> BoxStream<'static, AppendReply> {
        let node = match self.node() {
            Ok(node) => node,
            Err(_) => return failed_stream("this node is starting or stopping; retry".to_string()),
        };
        if let Err(refusal) = check_member(&node, caller) {
            return failed_stream(refusal_message(refusal));
        }
        let (id, sender) = (node.id(), caller.node_id);
        // A request not sent by the leader its vote names ends the stream: every later
        // request of the stream would come from the same impostor.
        let requests = requests.take_while(move |rpc| {
            let allowed = check_append(sender, rpc);
            if let Err(why) = &allowed {
                tracing::warn!(node = id, from = sender, %why, "append stream: refusing a request");
            }
            std::future::ready(allowed.is_ok())
        });
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

    fn accept_snapshot(
        &self,
        caller: &PeerIdentity,
        header: &SnapshotHeader,
    ) -> Result<(), Response> {
        let node = self.node()?;
        check_member(&node, caller)?;
        if header.size_bytes > node.snapshot_bytes_max {
            return Err(error_response(
                format!(
                    "a snapshot of {} bytes exceeds this node's snapshot_bytes_max of {}",
                    header.size_bytes, node.snapshot_bytes_max
                ),
                false,
            ));
        }
        bounds::check_vote(&header.vote).map_err(|e| error_response(e.to_string(), false))?;
        if let Some(last) = &header.meta.last_log_id {
            bounds::check_log_id(last).map_err(|e| error_response(e.to_string(), false))?;
        }
        from_named_node(
            caller.node_id,
            bounds::vote_node(&header.vote),
            "a snapshot's sender must be the leader its vote names",
        )
    }

    fn incoming_snapshot_path(&self) -> PathBuf {
        let dir =
            self.node().map(|n| n.state_dir().snapshots()).unwrap_or_else(|_| std::env::temp_dir());
        dir.join(crate::state_layout::incoming_snapshot_name())
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

fn failed_stream(message: String) -> BoxStream<'static, AppendReply> {
    Box::pin(futures_util::stream::once(async { AppendReply::Failed { message } }))
}

fn refusal_message(refusal: Response) -> String {
    match refusal {
        Response::Error { message, .. } => message,
        Response::Revoked { node_id } => {
            format!("node {node_id} was removed from the cluster: its certificate is revoked")
        }
        other => other.kind().to_string(),
    }
}

/// Whether the member presenting `peer` may talk to this node at all
/// ([`Registry::check_connection`](crate::trust::registry::Registry::check_connection)).
fn check_member(node: &Node, peer: &PeerIdentity) -> Result<(), Response> {
    match node.trust.get().check_connection(node.cluster_id(), peer) {
        Ok(()) => Ok(()),
        Err(TrustError::Revoked { node_id }) => Err(Response::Revoked { node_id }),
        Err(error) => Err(error_response(crate::error::Chain(&error).to_string(), false)),
    }
}

/// The per-request rules of the module docs.
fn authorize(node: &Node, peer: &PeerIdentity, request: &Request) -> Result<(), Response> {
    check_member(node, peer)?;
    let refuse = |e: bounds::BoundsError| error_response(e.to_string(), false);
    match request {
        Request::AppendEntries(rpc) => {
            check_append(peer.node_id, rpc).map_err(|why| error_response(why, false))
        }
        Request::Vote(rpc) | Request::PreVote(rpc) => {
            bounds::check_vote_request(rpc).map_err(refuse)?;
            from_named_node(
                peer.node_id,
                bounds::vote_node(&rpc.vote),
                "a vote request's sender must be the candidate",
            )?;
            // An admitted node that is not (yet) a voter has no election to run: its votes
            // could only raise terms and disturb the cluster.
            if is_voter(node, peer.node_id) {
                Ok(())
            } else {
                Err(error_response(
                    format!(
                        "refused: node {} is not a voter, so it cannot be a candidate",
                        peer.node_id
                    ),
                    false,
                ))
            }
        }
        Request::TransferLeader(rpc) => {
            bounds::check_vote(rpc.from_leader()).map_err(refuse)?;
            from_named_node(
                peer.node_id,
                bounds::vote_node(rpc.from_leader()),
                "a transfer's sender must be the leader",
            )
        }
        Request::Join(_) => Err(error_response(
            "a member does not join again: Join is for nodes without a certificate",
            false,
        )),
        Request::Admin(
            AdminRequest::Status | AdminRequest::ReadIndex | AdminRequest::Renew { .. },
        ) => Ok(()),
        Request::Admin(AdminRequest::AddMember { node_id, addr, learner }) => {
            super::options::check_member_addr(addr)
                .map_err(|e| error_response(e.to_string(), false))?;
            let registry = node.trust.get();
            let admitted = registry.admission(*node_id).ok_or_else(|| {
                error_response(
                    format!("node {node_id} was never admitted with a token (or was revoked)"),
                    false,
                )
            })?;
            if admitted.role == crate::trust::Role::Learner && !learner {
                return Err(error_response(
                    format!("node {node_id} was admitted as a learner: it cannot become a voter"),
                    false,
                ));
            }
            if peer.node_id == *node_id || is_voter(node, peer.node_id) {
                Ok(())
            } else {
                Err(error_response(
                    "only the admitted node itself or a voter may add a member",
                    false,
                ))
            }
        }
        // Leaving: any member may remove itself.
        Request::Admin(AdminRequest::Remove { node_id }) if *node_id == peer.node_id => Ok(()),
        Request::Admin(
            AdminRequest::Remove { .. }
            | AdminRequest::Transfer { .. }
            | AdminRequest::IssueToken { .. }
            | AdminRequest::SetArchive { .. }
            | AdminRequest::ArchiveRecords { .. }
            | AdminRequest::FetchCaKey,
        ) => {
            if is_voter(node, peer.node_id) {
                Ok(())
            } else {
                Err(error_response(format!("node {} is not a voter: only voters may change the cluster, issue tokens, hold the CA key or read archive records", peer.node_id), false))
            }
        }
    }
}

/// Whether `id` is a voter in this node's current membership.
fn is_voter(node: &Node, id: NodeId) -> bool {
    node.metrics().membership_config.membership().voter_ids().any(|voter| voter == id)
}

fn from_named_node(sender: NodeId, named: NodeId, rule: &str) -> Result<(), Response> {
    if sender == named {
        Ok(())
    } else {
        Err(error_response(
            format!("refused: node {sender} sent a message naming node {named} ({rule})"),
            false,
        ))
    }
}

/// An append (or heartbeat) is taken only from the leader its vote names, with every term and
/// index in bounds.
fn check_append(sender: NodeId, rpc: &AppendEntriesRequest<TypeConfig>) -> Result<(), String> {
    bounds::check_append(rpc).map_err(|e| e.to_string())?;
    let leader = bounds::vote_node(&rpc.vote);
    if leader == sender {
        Ok(())
    } else {
        Err(format!("refused: node {sender} sent entries in the name of leader {leader}"))
    }
}

async fn answer(node: &Arc<Node>, request: Request) -> Response {
    let raft = &node.raft;
    let failed = |e: &dyn std::fmt::Display| error_response(e.to_string(), true);
    match request {
        Request::AppendEntries(rpc) => {
            let last_index = rpc.entries.last().map(|e| e.log_id.index);
            tracing::trace!(target: "dqlite_vfs::latency", node = node.id(), last_index, "append_entries received");
            let response =
                raft.append_entries(rpc).await.map_or_else(|e| failed(&e), Response::AppendEntries);
            tracing::trace!(target: "dqlite_vfs::latency", node = node.id(), last_index, "append_entries answered");
            response
        }
        Request::Vote(rpc) => raft.vote(rpc).await.map_or_else(|e| failed(&e), Response::Vote),
        Request::PreVote(rpc) => {
            raft.pre_vote(rpc).await.map_or_else(|e| failed(&e), Response::PreVote)
        }
        Request::TransferLeader(rpc) => match raft.handle_transfer_leader(rpc).await {
            Ok(response) => Response::TransferLeader(response),
            Err(e) => failed(&e),
        },
        Request::Join(_) => error_response("a member does not join again", false),
        Request::Admin(AdminRequest::FetchCaKey) => admission::answer_ca_key(node),
        Request::Admin(AdminRequest::ArchiveRecords { first, last }) => {
            match super::archiving::answer_records(&node.log, first, last).await {
                Ok(records) => Response::Admin(records),
                Err(why) => error_response(why, false),
            }
        }
        Request::Admin(admin) => {
            if !raft.is_leader() {
                return forward(node, Request::Admin(admin)).await;
            }
            // Only "not the leader (any more)" is retryable: the caller may then ask again
            // without risking doing it twice.
            match lead_admin(node, admin).await {
                Ok(done) => Response::Admin(done),
                Err(Error::NotLeader { .. }) => {
                    error_response("leadership is changing; retry in a moment", true)
                }
                Err(e) => error_response(e.chain().to_string(), false),
            }
        }
    }
}

/// Passes an admin request to the leader and its answer back.
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
        Err(e) => error_response(
            format!("could not reach the leader at {leader}: {}", crate::error::Chain(&e)),
            false,
        ),
    }
}
