//! Certificate renewal: every node renews its own certificate well before it expires, over its
//! authenticated connection, with a key pair it makes afresh; the leader signs it and records
//! the new expiry through Raft (so `ha_status()` shows every member's).
//!
//! Invariants: a node asks only for itself (the leader signs for the node the caller's
//! certificate names, never for an id in the request); the new certificate is checked (same
//! node, same cluster, the key just made) and saved atomically before it is presented; a failed
//! attempt changes nothing and is retried at the next check. Established connections keep the
//! certificate they were made with; new ones present the new one.

use std::sync::{Arc, PoisonError, Weak};
use std::time::Duration;

use super::admission::propose;
use super::lifecycle::Node;
use super::membership::leader_addr;
use super::ADMIN_DEADLINE;
use crate::clock::unix_now_s;
use crate::error::Error;
use crate::raft::types::NodeId;
use crate::transport::wire::{AdminRequest, AdminResponse, Request, Response};
use crate::trust::certs::{cert_validity, renew_before, NodeIdentity, NodeKey};
use crate::trust::registry::{TrustChange, TrustOutcome};

/// Longest pause between two looks at the certificate's expiry.
const CHECK_INTERVAL_MAX: Duration = Duration::from_secs(3600);

/// Redirects followed to reach the leader.
const REDIRECTS_MAX: usize = 4;

/// Leader side: a certificate for `node_id` (the caller) and `public_key_der`, its new expiry
/// committed through Raft first.
pub(super) async fn renew_for(
    node: &Node,
    node_id: NodeId,
    public_key_der: &[u8],
) -> Result<String, Error> {
    let registry = node.trust.get();
    let cluster_id = registry.cluster_id.ok_or(Error::NotLeader { leader: None })?;
    if registry.admission(node_id).is_none() {
        return Err(Error::Refused(format!(
            "node {node_id} is not an admitted member: no certificate for it"
        )));
    }
    let ca = node.ca.read().unwrap_or_else(PoisonError::into_inner).clone();
    if !ca.has_key() {
        return Err(Error::Refused(
            "this leader does not hold the cluster CA key yet; retry in a moment".into(),
        ));
    }
    let (now, validity) = (unix_now_s(), cert_validity());
    let issued = ca.issue(public_key_der, cluster_id, node_id, validity, now)?;
    match propose(
        node,
        TrustChange::Renew { node_id, cert_not_after_unix_s: issued.not_after_unix_s },
    )
    .await?
    {
        TrustOutcome::Done => Ok(issued.cert_pem),
        other => Err(Error::Refused(format!(
            "the renewal of node {node_id} was not recorded: {other:?}"
        ))),
    }
}

/// Answers a member's `Renew`: on the leader, signs; elsewhere, points at the leader.
pub(super) async fn answer_renew(
    node: &Arc<Node>,
    caller: NodeId,
    public_key_der: Vec<u8>,
) -> Response {
    if !node.raft.is_leader() {
        return super::membership::redirect_to_leader(node);
    }
    match renew_for(node, caller, &public_key_der).await {
        Ok(cert_pem) => Response::Admin(AdminResponse::Certificate(cert_pem)),
        Err(error) => Response::Error { message: error.chain().to_string(), retryable: false },
    }
}

/// Starts the task that renews this node's certificate when a third of its life is left. It
/// holds the node weakly and ends when the node is gone.
pub(super) fn spawn(node: &Arc<Node>) -> Result<(), Error> {
    let weak = Arc::downgrade(node);
    super::runtime::handle()?.spawn(async move { renew_when_due(weak).await });
    Ok(())
}

async fn renew_when_due(node: Weak<Node>) {
    loop {
        let interval = (cert_validity() / 10).min(CHECK_INTERVAL_MAX);
        tokio::time::sleep(interval).await;
        let Some(node) = node.upgrade() else { return };
        if node.stopped_reason(&node.metrics()).is_some() || node.is_removed() {
            return;
        }
        let left_s = node.cert_not_after_unix_s().saturating_sub(unix_now_s());
        if Duration::from_secs(left_s) > renew_before(cert_validity()) {
            continue;
        }
        match renew(&node).await {
            Ok(not_after) => tracing::info!(node = node.id(), not_after, "certificate renewed"),
            Err(error) => {
                tracing::warn!(node = node.id(), error = %error.chain(), seconds_left = left_s, "certificate renewal failed; retrying at the next check")
            }
        }
    }
}

/// Renews this node's certificate now; returns its new expiry.
pub(super) async fn renew(node: &Arc<Node>) -> Result<u64, Error> {
    let key = NodeKey::generate()?;
    let public_key_der = key.public_key_der();
    let cert_pem = if node.raft.is_leader() {
        renew_for(node, node.id(), &public_key_der).await?
    } else {
        ask_leader(node, public_key_der).await?
    };
    let identity = NodeIdentity::new(&cert_pem, key)?;
    let named = identity.peer();
    if named.node_id != node.id() || named.cluster_id != node.cluster_id() {
        return Err(Error::Refused(format!(
            "the leader's renewal names node {} of cluster {}, not this node",
            named.node_id, named.cluster_id
        )));
    }
    identity.save(&node.state_dir().tls())?;
    node.present(&identity)?;
    Ok(named.not_after_unix_s)
}

/// Sends the renewal request to the leader, following redirects.
async fn ask_leader(node: &Node, public_key_der: Vec<u8>) -> Result<String, Error> {
    let mut target = leader_addr(node).ok_or(Error::NotLeader { leader: None })?;
    for _ in 0..REDIRECTS_MAX {
        let request =
            Request::Admin(AdminRequest::Renew { public_key_der: public_key_der.clone() });
        match node.client.call(&target, request, ADMIN_DEADLINE).await {
            Ok(Response::Admin(AdminResponse::Certificate(cert_pem))) => return Ok(cert_pem),
            Ok(Response::Redirect { leader_addr }) => target = leader_addr,
            Ok(other) => {
                return Err(Error::Refused(format!(
                    "{target} answered the renewal with {}",
                    other.kind()
                )))
            }
            Err(error) => {
                return Err(Error::transport(format!("renewing through {target}"), error))
            }
        }
    }
    Err(Error::Unreachable("leadership kept moving during the renewal".into()))
}
