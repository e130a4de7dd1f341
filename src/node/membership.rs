//! Forming and changing the cluster: bootstrap of node 1, the two-step join (get an id,
//! then become a voter once running), leave and remove. Changes are made by the leader;
//! any member forwards them there.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use openraft::error::{ChangeMembershipError, ClientWriteError, RaftError};
use openraft::{ChangeMembers, ReadPolicy, ServerState};

use super::lifecycle::{members, Node};
use super::options::TokenOptions;
use super::runtime::wait;
use super::{ADMIN_DEADLINE, JOIN_DEADLINE, START_DEADLINE};
use crate::error::Error;
use crate::ffi::connection::{Connection, Through};
use crate::raft::types::{Member, NodeId};
use crate::transport::wire::{AdminRequest, AdminResponse, Request, Response, Secret};
use crate::transport::TransportError;
use crate::trust::registry::{TrustChange, TrustOutcome};

/// Node 1 of a new cluster: initialise Raft with itself, wait to lead, and put the
/// database's current contents into a snapshot so later members start from it.
pub fn bootstrap(node: &Arc<Node>) -> Result<(), Error> {
    let raft = node.raft.clone();
    let me = BTreeMap::from([(node.id(), Member { addr: node.member_addr().to_owned() })]);
    let (ca_fingerprint, cert_not_after_unix_s) = {
        let ca = node.ca.read().unwrap_or_else(PoisonError::into_inner);
        (ca.fingerprint(), node.cert_not_after_unix_s())
    };
    let bootstrap = TrustChange::Bootstrap {
        cluster_id: node.cluster_id(),
        ca_fingerprint,
        cert_not_after_unix_s,
    };
    let node = Arc::clone(node);
    wait(
        async move {
            raft.initialize(me).await.map_err(|e| Error::raft("initialising Raft", e))?;
            raft.wait(Some(START_DEADLINE))
                .metrics(
                    |m| {
                        m.state == ServerState::Leader
                            && m.last_applied
                                .as_ref()
                                .is_some_and(|a| a.leader_id.term == m.current_term)
                    },
                    "lead and apply the first entry of the term",
                )
                .await
                .map_err(|e| Error::raft_wait("waiting to lead the new cluster", e))?;
            // The trust state starts with node 1 admitted, before any snapshot: every later
            // member receives it with the cluster's data.
            match super::admission::propose(&node, bootstrap).await? {
                TrustOutcome::Admitted { node_id: 1 } => {}
                other => {
                    return Err(Error::Internal(format!(
                        "recording the cluster's trust state: {other:?}"
                    )))
                }
            }
            let applied = node.metrics().last_applied.map(|id| id.index());
            raft.trigger()
                .snapshot()
                .await
                .map_err(|e| Error::fatal("triggering the initial snapshot", e))?;
            let metrics = raft
                .wait(Some(START_DEADLINE))
                .metrics(
                    |m| m.snapshot.is_some() && m.snapshot.map(|s| s.index()) >= applied,
                    "initial snapshot",
                )
                .await
                .map_err(|e| Error::raft_wait("waiting for the initial snapshot", e))?;
            if let Some(snapshot) = metrics.snapshot {
                raft.trigger()
                    .purge_log(snapshot.index())
                    .await
                    .map_err(|e| Error::fatal("purging the log behind the snapshot", e))?;
            }
            Ok(())
        },
        START_DEADLINE,
        "starting the cluster",
    )
}

/// Refuses to join with a database that already holds tables: joining replaces them.
pub fn check_joinable(db: &Path) -> Result<(), Error> {
    let connection = Connection::open(db, Through::Ha)?;
    let tables: u64 = connection
        .query_text("SELECT count(*) FROM sqlite_schema")?
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    if tables > 0 {
        return Err(Error::Refused(format!(
            "{} already holds {tables} schema object(s); ha_join would replace them with the cluster's data: join with an empty database file",
            db.display()
        )));
    }
    Ok(())
}

/// The last step of a join: now running with its id and certificate, ask the cluster (through
/// `peer`, a voter or the leader) to make this node a member in the role it was admitted for,
/// then wait until it holds the cluster's data.
pub fn finish_join(node: &Node, peer: &str) -> Result<(), Error> {
    let learner = node.is_learner();
    let request = Request::Admin(AdminRequest::AddMember {
        node_id: node.id(),
        addr: node.member_addr().to_owned(),
        learner,
    });
    admin_call(node, peer, request, JOIN_DEADLINE)?;
    let raft = node.raft.clone();
    let id = node.id();
    wait(
        async move {
            raft.wait(Some(JOIN_DEADLINE))
                .metrics(
                    |m| {
                        let membership = m.membership_config.membership();
                        let joined = if learner {
                            membership.learner_ids().any(|l| l == id)
                        } else {
                            membership.voter_ids().any(|v| v == id)
                        };
                        joined
                            && m.last_applied.as_ref().map(|l| l.index())
                                >= m.local_committed.as_ref().map(|c| c.index())
                    },
                    "become a member",
                )
                .await
                .map_err(|e| Error::raft_wait("waiting to become a member", e))?;
            Ok(())
        },
        JOIN_DEADLINE,
        "waiting to become a member holding the cluster's data",
    )
}

/// `ha_leave`: remove this node through the leader.
/// Any member may leave, a learner too. A node the cluster already removed has nothing to
/// ask of it: it only marks its state directory as left.
pub fn leave(node: &Arc<Node>) -> Result<(), Error> {
    if !node.is_removed() {
        let request = Request::Admin(AdminRequest::Remove { node_id: node.id() });
        send_to_leader(node, request)?;
    }
    let mut identity = node.state_dir().identity()?.ok_or(Error::NotANode)?;
    identity.left = true;
    node.state_dir().save_identity(&identity)
}

/// `ha_remove`: remove another member through the leader.
pub fn remove(node: &Arc<Node>, id: NodeId) -> Result<(), Error> {
    if !members(node).contains_key(&id) {
        return Err(Error::InvalidArgument(format!(
            "node {id} is not a member of this cluster (see ha_status())"
        )));
    }
    to_leader(node, Request::Admin(AdminRequest::Remove { node_id: id })).map(|_| ())
}

/// `ha_token`: a join token, issued by the leader (asked through this node, a voter).
pub fn issue_token(node: &Arc<Node>, options: TokenOptions) -> Result<String, Error> {
    let TokenOptions { role, ttl_s, uses, seeds } = options;
    match to_leader(node, Request::Admin(AdminRequest::IssueToken { role, ttl_s, uses, seeds }))? {
        AdminResponse::Token(Secret(token)) => Ok(token),
        other => Err(Error::Internal(format!("unexpected answer to a token request: {other:?}"))),
    }
}

/// `ha_archive`: starts, changes or stops (None) the continuous archive, through the leader.
pub fn set_archive(
    node: &Arc<Node>,
    setting: Option<crate::archive::setting::ArchiveSetting>,
) -> Result<(), Error> {
    to_leader(node, Request::Admin(AdminRequest::SetArchive { setting })).map(|_| ())
}

/// `ha_transfer`: hands leadership to voter `id`, through the leader.
pub fn transfer(node: &Arc<Node>, id: NodeId) -> Result<(), Error> {
    if transfer_needed(&node.metrics(), id)? {
        to_leader(node, Request::Admin(AdminRequest::Transfer { node_id: id })).map(|_| ())
    } else {
        Ok(())
    }
}

/// Whether leadership must move to `to`: not if it already leads; an error if it cannot lead.
/// Checked where `ha_transfer` is called (no round trip for a bad call) and again on the
/// leader, whose membership is the one that counts.
fn transfer_needed(
    metrics: &openraft::RaftMetrics<crate::raft::types::TypeConfig>,
    to: NodeId,
) -> Result<bool, Error> {
    if metrics.current_leader == Some(to) {
        return Ok(false);
    }
    if !metrics.membership_config.membership().voter_ids().any(|v| v == to) {
        return Err(Error::InvalidArgument(format!(
            "node {to} is not a voter of this cluster (see ha_status()): only voters can lead"
        )));
    }
    Ok(true)
}

/// How long the leader waits for `ha_transfer`'s target to take over. If the target does not,
/// the old leader has stopped heartbeats and the followers elect someone within their
/// election timeout.
const TRANSFER_DEADLINE: Duration = Duration::from_secs(5);

/// Leader side of `ha_transfer`: openraft stops proposing here and tells `to` to campaign at
/// once; returns when `to` leads.
async fn transfer_here(raft: &super::lifecycle::RaftNode, to: NodeId) -> Result<(), Error> {
    let metrics =
        openraft::type_config::async_runtime::WatchReceiver::borrow_watched(&raft.metrics())
            .clone();
    if !transfer_needed(&metrics, to)? {
        return Ok(());
    }
    raft.trigger()
        .transfer_leader(to)
        .await
        .map_err(|e| Error::fatal(format!("handing leadership to node {to}"), e))?;
    let moved = raft
        .wait(Some(TRANSFER_DEADLINE))
        .metrics(|m| m.current_leader == Some(to), "hand leadership over")
        .await;
    match moved {
        Ok(_) => Ok(()),
        Err(_) => {
            let metrics = openraft::type_config::async_runtime::WatchReceiver::borrow_watched(
                &raft.metrics(),
            )
            .clone();
            Err(Error::Unreachable(format!(
                "leadership did not move to node {to} within {} s (the leader is now {}): retry",
                TRANSFER_DEADLINE.as_secs(),
                metrics.current_leader.map_or("unknown".to_string(), |id| format!("node {id}"))
            )))
        }
    }
}

/// Runs an admin request on the leader: here if this node leads, else over the network.
/// While leadership moves (no leader known, or the one asked has just lost it) the request
/// cannot have been carried out, so it is tried again until the deadline.
fn to_leader(node: &Arc<Node>, request: Request) -> Result<AdminResponse, Error> {
    check_voter(node)?;
    send_to_leader(node, request)
}

/// [`to_leader`] without the voter check (for a node removing itself).
fn send_to_leader(node: &Arc<Node>, request: Request) -> Result<AdminResponse, Error> {
    let deadline = std::time::Instant::now() + ADMIN_DEADLINE;
    loop {
        let remaining = deadline.saturating_duration_since(std::time::Instant::now());
        let attempt = match (&request, node.raft.is_leader()) {
            (Request::Admin(admin), true) => {
                let (leader, admin) = (Arc::clone(node), admin.clone());
                wait(
                    async move { lead_admin(&leader, admin).await },
                    remaining,
                    "changing the cluster",
                )
            }
            _ => match leader_addr(node) {
                Some(leader) => admin_request(node, &leader, request.clone(), remaining),
                None => Err(Error::NotLeader { leader: None }),
            },
        };
        match attempt {
            Err(Error::NotLeader { .. }) if std::time::Instant::now() + LEADER_CHANGE_RETRY < deadline => {
                tracing::debug!("leadership is moving; asking the leader again");
                std::thread::sleep(LEADER_CHANGE_RETRY);
            }
            Err(Error::NotLeader { .. }) => {
                return Err(Error::Unreachable(format!(
                    "no leader took the request within {} s (leadership kept changing, or no majority is up): retry",
                    ADMIN_DEADLINE.as_secs()
                )))
            }
            other => return other,
        }
    }
}

/// Membership changes, transfers and tokens are for voters: a learner (a read replica) is
/// refused here with a clear error, and again by the leader if asked directly; so is a node
/// the cluster has removed.
fn check_voter(node: &Node) -> Result<(), Error> {
    if node.is_removed() {
        return Err(Error::Removed { node_id: node.id() });
    }
    if node.is_learner() {
        return Err(Error::Refused(format!(
            "node {} is a learner: membership changes, transfers and tokens need a voter (run this on a voter)",
            node.id()
        )));
    }
    Ok(())
}

/// Pause before asking again for a leader that was changing.
const LEADER_CHANGE_RETRY: Duration = Duration::from_millis(100);

fn admin_call(node: &Node, addr: &str, request: Request, deadline: Duration) -> Result<(), Error> {
    match admin_request(node, addr, request, deadline)? {
        AdminResponse::Done => Ok(()),
        other => Err(Error::Internal(format!("unexpected answer from {addr}: {other:?}"))),
    }
}

fn admin_request(
    node: &Node,
    addr: &str,
    request: Request,
    deadline: Duration,
) -> Result<AdminResponse, Error> {
    let (client, addr_owned) = (node.client.clone(), addr.to_owned());
    let response = wait(
        async move {
            client.call(&addr_owned, request, deadline).await.map_err(|e| match e {
                // The one retryable answer to an admin request: the node asked has no leader
                // to give it to (see `node/rpc.rs`); nothing was done.
                TransportError::Remote { retryable: true, .. } => Error::NotLeader { leader: None },
                TransportError::Remote { message, .. } => Error::Refused(message),
                other => Error::transport("the request failed", other),
            })
        },
        deadline + Duration::from_secs(1),
        "asking the cluster",
    )?;
    match response {
        Response::Admin(answer) => Ok(answer),
        other => Err(Error::Internal(format!("unexpected answer from {addr}: {other:?}"))),
    }
}

/// `ha_barrier`: waits until this node has applied everything the cluster had committed
/// when it was called (the leader's read-index), so reads after it are linearizable.
pub fn barrier(node: &Node) -> Result<u64, Error> {
    let index = leader_read_index(node)?;
    let raft = node.raft.clone();
    wait(
        async move {
            raft.wait(Some(ADMIN_DEADLINE))
                .applied_index_at_least(Some(index), "apply up to the read index")
                .await
                .map_err(|e| Error::raft_wait("applying up to the read index", e))?;
            Ok(index)
        },
        ADMIN_DEADLINE + Duration::from_secs(1),
        "catching up",
    )
}

/// The leader's read-index, here if this node leads, else asked of the leader. A node that
/// just restarted may still believe it leads an old term, and leadership may move during the
/// call, so both ways are retried until the deadline.
fn leader_read_index(node: &Node) -> Result<u64, Error> {
    let deadline = std::time::Instant::now() + ADMIN_DEADLINE;
    loop {
        let attempt = if node.raft.is_leader() {
            let raft = node.raft.clone();
            wait(async move { read_index(&raft).await }, ADMIN_DEADLINE, "confirming leadership")
        } else {
            match leader_addr(node).filter(|addr| addr != node.member_addr()) {
                Some(leader) => match admin_request(
                    node,
                    &leader,
                    Request::Admin(AdminRequest::ReadIndex),
                    ADMIN_DEADLINE,
                ) {
                    Ok(AdminResponse::ReadIndex { index }) => Ok(index),
                    Ok(other) => {
                        Err(Error::Internal(format!("unexpected answer from {leader}: {other:?}")))
                    }
                    Err(error) => Err(error),
                },
                None => Err(Error::NotLeader { leader: None }),
            }
        };
        match attempt {
            Ok(index) => return Ok(index),
            Err(error) if std::time::Instant::now() < deadline => {
                tracing::debug!(error = %error.chain(), "read-index not available yet, retrying");
                std::thread::sleep(READ_INDEX_RETRY);
            }
            Err(error) => return Err(error),
        }
    }
}

/// The answer of a member that does not lead to a request only the leader can carry out
/// (a join, a renewal): the leader's address, or "retry" while none is known.
pub(super) fn redirect_to_leader(node: &Node) -> Response {
    match leader_addr(node) {
        Some(leader_addr) if leader_addr != node.member_addr() => {
            Response::Redirect { leader_addr }
        }
        _ => Response::Error {
            message: "no leader is known right now; retry in a moment".into(),
            retryable: true,
        },
    }
}

/// The leader's address as this node knows it.
pub fn leader_addr(node: &Node) -> Option<String> {
    let leader = node.metrics().current_leader?;
    members(node).get(&leader).map(|m| m.addr.clone())
}

/// The leader's read-index. Confirming leadership needs a quorum's answer to a heartbeat;
/// followers busy with a large entry may miss one round, so retry until the deadline.
async fn read_index(raft: &super::lifecycle::RaftNode) -> Result<u64, Error> {
    let deadline = tokio::time::Instant::now() + ADMIN_DEADLINE;
    loop {
        match raft.ensure_linearizable(ReadPolicy::ReadIndex).await {
            Ok(read) => return Ok(read.index()),
            Err(error) if tokio::time::Instant::now() < deadline && raft.is_leader() => {
                tracing::debug!(%error, "read-index not confirmed yet, retrying");
                tokio::time::sleep(READ_INDEX_RETRY).await;
            }
            Err(error) => return Err(Error::raft("confirming leadership", error)),
        }
    }
}

/// Pause between read-index attempts.
const READ_INDEX_RETRY: Duration = Duration::from_millis(50);

/// Pause between attempts of a membership change that found another one in progress.
const CHANGE_RETRY: Duration = Duration::from_millis(50);

/// Runs one membership change, retrying while another is still being committed (two nodes
/// joining at once, say): openraft allows one change at a time.
async fn change<F, Fut>(what: &str, mut attempt: F) -> Result<(), Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<
        Output = Result<
            openraft::raft::ClientWriteResponse<crate::raft::types::TypeConfig>,
            RaftError<
                crate::raft::types::TypeConfig,
                ClientWriteError<crate::raft::types::TypeConfig>,
            >,
        >,
    >,
{
    let deadline = tokio::time::Instant::now() + ADMIN_DEADLINE;
    loop {
        match attempt().await {
            Ok(_) => return Ok(()),
            Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(
                ChangeMembershipError::InProgress(_),
            ))) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(CHANGE_RETRY).await;
            }
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => {
                return Err(Error::NotLeader { leader: None })
            }
            Err(error) => return Err(Error::raft(what, error)),
        }
    }
}

/// Leader side of an admin request.
pub async fn lead_admin(node: &Arc<Node>, request: AdminRequest) -> Result<AdminResponse, Error> {
    let raft = &node.raft;
    match request {
        AdminRequest::AddMember { node_id, addr, learner } => {
            let member = Member { addr };
            change("adding a learner", || raft.add_learner(node_id, member.clone(), true)).await?;
            if !learner {
                change("making it a voter", || {
                    raft.change_membership(
                        ChangeMembers::AddVoterIds(BTreeSet::from([node_id])),
                        false,
                    )
                })
                .await?;
            }
        }
        AdminRequest::Transfer { node_id } => transfer_here(raft, node_id).await?,
        AdminRequest::Remove { node_id } => {
            let metrics = openraft::type_config::async_runtime::WatchReceiver::borrow_watched(
                &raft.metrics(),
            )
            .clone();
            let membership = metrics.membership_config.membership().clone();
            let removal = if membership.voter_ids().any(|v| v == node_id) {
                ChangeMembers::RemoveVoters(BTreeSet::from([node_id]))
            } else if membership.nodes().any(|(id, _)| *id == node_id) {
                ChangeMembers::RemoveNodes(BTreeSet::from([node_id]))
            } else {
                return Err(Error::InvalidArgument(format!("node {node_id} is not a member")));
            };
            change("removing the node", || raft.change_membership(removal.clone(), false)).await?;
            // Removal revokes: from this entry on, every member refuses the node's certificate.
            match super::admission::propose(node, TrustChange::Revoke { node_id }).await? {
                TrustOutcome::Done => {}
                other => {
                    return Err(Error::Internal(format!(
                    "node {node_id} was removed, but revoking it gave {other:?}: retry ha_remove"
                )))
                }
            }
        }
        AdminRequest::IssueToken { role, ttl_s, uses, seeds } => {
            return super::admission::issue_here(node, TokenOptions { role, ttl_s, uses, seeds })
                .await
        }
        AdminRequest::SetArchive { setting } => {
            let written = raft.client_write(crate::raft::types::Command::Archive(setting)).await;
            written.map_err(|error| Error::raft("setting the archive", error))?;
        }
        AdminRequest::FetchCaKey | AdminRequest::ArchiveRecords { .. } => {
            return Err(Error::InvalidArgument("answered by the node asked".into()))
        }
        AdminRequest::Renew { .. } => {
            return Err(Error::InvalidArgument("a renewal is answered for its caller".into()))
        }
        AdminRequest::Status => {
            return Err(Error::InvalidArgument("status is answered locally".into()))
        }
        AdminRequest::ReadIndex => {
            return Ok(AdminResponse::ReadIndex { index: read_index(raft).await? })
        }
    }
    Ok(AdminResponse::Done)
}
