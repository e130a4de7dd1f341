//! Letting nodes in: join tokens issued by the leader (`ha_token`), the leader's side of a
//! join (check the token, verify the proof, allocate an id through Raft, sign the joiner's
//! key), the joiner's side (pin the CA from the token, prove the secret, follow redirects to
//! the leader), and handing the CA key to voters.
//!
//! Invariants: a token's secret is never stored or sent; only its verifier goes through Raft.
//! The CA key leaves a node only in answer to a voter's authenticated request. A token use is
//! spent (and an id allocated) only once the proof has been verified and the joiner's key
//! found signable, so a failed join costs the token nothing.

use std::sync::{Arc, PoisonError};
use std::time::Duration;

use super::lifecycle::{members, Node};
use super::options::{check_member_addr, TokenOptions};
use super::runtime::wait;
use super::{ADMIN_DEADLINE, JOIN_DEADLINE};
use crate::clock::unix_now_s;
use crate::error::Error;
use crate::raft::types::{ApplyOutcome, Command};
use crate::transport::wire::{
    AdminRequest, AdminResponse, JoinGrant, JoinRequest, Request, Response, Secret,
};
use crate::transport::{JoinAnswer, TransportError};
use crate::trust::certs::{cert_validity, NodeKey};
use crate::trust::error::TrustError;
use crate::trust::registry::{TokenRecord, TrustChange, TrustOutcome};
use crate::trust::token::{JoinToken, ProofBinding, TLS_EXPORTER_BYTES};
use crate::trust::Role;

/// Largest public key a joiner may send (an ECDSA or Ed25519 SubjectPublicKeyInfo is ~100 bytes).
const PUBLIC_KEY_BYTES_MAX: usize = 1024;

/// Redirects a joiner follows before giving up (leadership may move during a join).
const REDIRECTS_MAX: usize = 4;

/// Pause before asking again when the cluster has no leader right now.
const JOIN_RETRY: Duration = Duration::from_millis(200);

/// Proposes a trust change and returns the registry's verdict.
pub(super) async fn propose(node: &Node, change: TrustChange) -> Result<TrustOutcome, Error> {
    match node.raft.client_write(Command::Trust(change)).await {
        Ok(response) => match response.data {
            ApplyOutcome::Trust(outcome) => Ok(outcome),
            other => Err(Error::Internal(format!("a trust change was applied as {other:?}"))),
        },
        Err(error) => Err(Error::raft("proposing a trust change", error)),
    }
}

/// Leader side of `ha_token`: a new token, recorded (as its verifier) through Raft.
pub(super) async fn issue_here(node: &Node, options: TokenOptions) -> Result<AdminResponse, Error> {
    let registry = node.trust.get();
    let (Some(cluster_id), Some(ca_fingerprint)) = (registry.cluster_id, registry.ca_fingerprint)
    else {
        return Err(Error::NotLeader { leader: None });
    };
    let now = unix_now_s();
    let expires_at_unix_s = now.saturating_add(options.ttl_s);
    let token = JoinToken::generate(
        cluster_id,
        ca_fingerprint,
        options.role,
        expires_at_unix_s,
        options.seeds,
    )?;
    let record = TokenRecord {
        verifier: token.verifier(),
        expires_at_unix_s,
        uses_left: options.uses,
        role: options.role,
    };
    match propose(node, TrustChange::IssueToken { id: token.id, record, now_unix_s: now }).await? {
        TrustOutcome::Done => Ok(AdminResponse::Token(Secret(token.encode()))),
        TrustOutcome::Refused(refusal) => {
            Err(Error::Refused(format!("no token issued: {refusal}")))
        }
        TrustOutcome::Admitted { .. } => {
            Err(Error::Internal("issuing a token admitted a node".into()))
        }
    }
}

/// Answers an anonymous `Join`: on the leader, admits; elsewhere, points at the leader.
pub(super) async fn answer_join(
    node: &Arc<Node>,
    tls_exporter: [u8; TLS_EXPORTER_BYTES],
    request: JoinRequest,
) -> Response {
    if !node.raft.is_leader() {
        return super::membership::redirect_to_leader(node);
    }
    match admit_here(node, tls_exporter, request).await {
        Ok(grant) => Response::Join(grant),
        Err(Error::NotLeader { .. }) => Response::Error {
            message: "leadership is changing; retry in a moment".into(),
            retryable: true,
        },
        Err(error) => {
            tracing::info!(error = %error.chain(), "join refused");
            Response::Error { message: error.chain().to_string(), retryable: false }
        }
    }
}

/// Leader side of a join: the checks of the module docs, then the id and the certificate.
async fn admit_here(
    node: &Node,
    tls_exporter: [u8; TLS_EXPORTER_BYTES],
    request: JoinRequest,
) -> Result<JoinGrant, Error> {
    check_member_addr(&request.addr)?;
    if request.public_key_der.len() > PUBLIC_KEY_BYTES_MAX {
        return Err(Error::InvalidArgument(format!(
            "the joiner's public key is over {PUBLIC_KEY_BYTES_MAX} bytes"
        )));
    }
    let registry = node.trust.get();
    let cluster_id = registry.cluster_id.ok_or(Error::NotLeader { leader: None })?;
    let now = unix_now_s();
    let record = registry.check_token(request.token_id, request.role, now)?;
    let binding = ProofBinding {
        token_id: request.token_id,
        tls_exporter,
        joiner_public_key_der: &request.public_key_der,
        role: request.role,
        addr: &request.addr,
    };
    record.verifier.verify(&binding, &request.proof)?;
    let ca = node.ca.read().unwrap_or_else(PoisonError::into_inner).clone();
    if !ca.has_key() {
        return Err(Error::Refused(
            "this leader does not hold the cluster CA key yet; retry in a moment".into(),
        ));
    }
    // Signing once with a placeholder id checks that the key is usable before a token use is
    // spent on it.
    let validity = cert_validity();
    let cert_not_after_unix_s =
        ca.issue(&request.public_key_der, cluster_id, 0, validity, now)?.not_after_unix_s;
    let change = TrustChange::Admit {
        token: request.token_id,
        role: request.role,
        now_unix_s: now,
        cert_not_after_unix_s,
    };
    let node_id = match propose(node, change.clone()).await? {
        TrustOutcome::Admitted { node_id } => node_id,
        TrustOutcome::Refused(refusal) => return Err(Error::Trust(refusal.into_error(&change))),
        TrustOutcome::Done => return Err(Error::Internal("an admission allocated no id".into())),
    };
    let issued = ca.issue(&request.public_key_der, cluster_id, node_id, validity, now)?;
    tracing::info!(node_id, role = %request.role, addr = %request.addr, "admitted a new node");
    Ok(JoinGrant {
        node_id,
        cluster_id,
        ca_cert_pem: ca.cert_pem().to_owned(),
        cert_pem: issued.cert_pem,
        members: members(node),
    })
}

/// Answers a voter's `FetchCaKey` (the caller was checked to be a voter).
pub(super) fn answer_ca_key(node: &Node) -> Response {
    let ca = node.ca.read().unwrap_or_else(PoisonError::into_inner);
    match ca.key_pem() {
        Some(key) => Response::Admin(AdminResponse::CaKey(Secret(key.to_owned()))),
        None => Response::Error {
            message: "this node does not hold the CA key".into(),
            retryable: true,
        },
    }
}

/// What a joiner got: its grant, the key its certificate is for, and the leader that granted it.
pub struct Admitted {
    /// The leader's answer.
    pub grant: JoinGrant,
    /// The key pair made for this node.
    pub key: NodeKey,
    /// The address of the member that granted it (the leader at the time).
    pub leader_addr: String,
}

/// Joiner side: asks `peer` (then the leader it points at) to admit this node, reachable at
/// `my_addr`, with `token`. Retries while the cluster has no leader, until [`JOIN_DEADLINE`].
pub fn request_admission(
    my_addr: &str,
    peer: &str,
    token: &JoinToken,
    role: Role,
) -> Result<Admitted, Error> {
    if token.expires_at_unix_s <= unix_now_s() {
        return Err(Error::Trust(TrustError::TokenExpired {
            id: token.id,
            expired_at_unix_s: token.expires_at_unix_s,
        }));
    }
    let key = NodeKey::generate()?;
    let public_key_der = key.public_key_der();
    let deadline = std::time::Instant::now() + JOIN_DEADLINE;
    let mut target = peer.to_owned();
    let mut redirects = 0;
    loop {
        let (token, my_addr, public_key_der, asked) =
            (token.clone(), my_addr.to_owned(), public_key_der.clone(), target.clone());
        let attempt = wait(
            async move {
                let pin = token.ca_fingerprint;
                let request = move |tls_exporter: [u8; TLS_EXPORTER_BYTES]| {
                    let binding = ProofBinding {
                        token_id: token.id,
                        tls_exporter,
                        joiner_public_key_der: &public_key_der,
                        role,
                        addr: &my_addr,
                    };
                    let proof = token.prove(&binding);
                    JoinRequest {
                        token_id: token.id,
                        role,
                        addr: my_addr.clone(),
                        public_key_der: public_key_der.clone(),
                        proof,
                    }
                };
                Ok(crate::transport::join(&asked, pin, request, ADMIN_DEADLINE).await)
            },
            ADMIN_DEADLINE + Duration::from_secs(1),
            "joining",
        )?;
        match attempt {
            Ok(JoinAnswer::Granted(grant)) => return Ok(Admitted { grant, key, leader_addr: target }),
            Ok(JoinAnswer::Redirect(leader)) if redirects < REDIRECTS_MAX => {
                check_member_addr(&leader)?;
                tracing::debug!(from = %target, to = %leader, "join redirected to the leader");
                redirects += 1;
                target = leader;
            }
            Ok(JoinAnswer::Redirect(leader)) => {
                return Err(Error::Unreachable(format!("the join was redirected {REDIRECTS_MAX} times (last to {leader}): leadership keeps moving; retry")))
            }
            Err(TransportError::Remote { retryable: true, message }) if std::time::Instant::now() + JOIN_RETRY < deadline => {
                tracing::debug!(%message, "join: the cluster is not ready, retrying");
                std::thread::sleep(JOIN_RETRY);
            }
            Err(error) => return Err(join_error(&target, error)),
        }
    }
}

fn join_error(peer: &str, error: TransportError) -> Error {
    match error {
        TransportError::Trust(trust) => Error::Trust(trust),
        TransportError::Remote { message, .. } => {
            Error::Refused(format!("{peer} refused the join: {message}"))
        }
        other => Error::transport(format!("could not join through {peer}"), other),
    }
}

/// After joining as a voter: fetch the CA key from `peer` over this node's authenticated
/// connection and keep it (0600, atomically), so this node can admit others when it leads.
pub fn fetch_ca_key(node: &Node, peer: &str) -> Result<(), Error> {
    if node.ca.read().unwrap_or_else(PoisonError::into_inner).has_key() {
        return Ok(());
    }
    let (client, peer_owned) = (node.client.clone(), peer.to_owned());
    let response = wait(
        async move {
            Ok(client
                .call(&peer_owned, Request::Admin(AdminRequest::FetchCaKey), ADMIN_DEADLINE)
                .await)
        },
        ADMIN_DEADLINE + Duration::from_secs(1),
        "fetching the CA key",
    )?
    .map_err(|error| join_error(peer, error))?;
    let Response::Admin(AdminResponse::CaKey(Secret(key_pem))) = response else {
        return Err(Error::Refused(format!(
            "{peer} answered the CA key request with {}",
            response.kind()
        )));
    };
    let mut ca = node.ca.write().unwrap_or_else(PoisonError::into_inner);
    let with_key = ca.with_key(&key_pem)?;
    with_key.save(&node.state_dir().tls())?;
    *ca = with_key;
    Ok(())
}
