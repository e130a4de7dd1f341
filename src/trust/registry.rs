//! The replicated trust state: outstanding join tokens, admitted nodes, revoked nodes.
//!
//! It lives in the Raft state machine and changes only by applying [`TrustChange`]s committed
//! through Raft. Invariants:
//! - `apply` is deterministic: no clock reads, no randomness; times come inside the changes
//!   (set by the proposing leader), so every member computes the same registry;
//! - a refused change leaves the registry exactly as it was (except `IssueToken`, which first
//!   prunes expired tokens, deterministically);
//! - node ids are allocated in strictly increasing order and never reused;
//! - at most [`TOKENS_OUTSTANDING_MAX`] tokens are stored; a token never outlives
//!   [`TOKEN_TTL_MAX_S`] nor admits more than [`TOKEN_USES_MAX`] nodes.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use super::certs::PeerIdentity;
use super::error::TrustError;
use super::ids::{ClusterId, Fingerprint, NodeId, Role, TokenId};
use super::token::TokenVerifier;

/// The most tokens outstanding at once.
pub const TOKENS_OUTSTANDING_MAX: usize = 1024;

/// The most nodes one token may admit.
pub const TOKEN_USES_MAX: u32 = 1000;

/// The longest a token may stay valid, from its issue.
pub const TOKEN_TTL_MAX_S: u64 = 30 * 24 * 3600;

/// The node id of the bootstrapping node.
pub const FIRST_NODE_ID: NodeId = 1;

/// A stored token: its verifier (never the secret), expiry, remaining uses and role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Checks the joiner's proof.
    pub verifier: TokenVerifier,
    /// The token is refused from this time on.
    pub expires_at_unix_s: u64,
    /// How many more nodes it may admit; the record is removed at 0.
    pub uses_left: u32,
    /// The most powerful role it admits.
    pub role: Role,
}

impl TokenRecord {
    fn expired(&self, now_unix_s: u64) -> bool {
        now_unix_s >= self.expires_at_unix_s
    }
}

/// A node given a certificate and not revoked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Admission {
    /// What it may do.
    pub role: Role,
    /// When its current certificate expires.
    pub cert_not_after_unix_s: u64,
}

/// The trust state of the cluster (see the module docs).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registry {
    /// Set at bootstrap.
    pub cluster_id: Option<ClusterId>,
    /// The CA every member's certificate chains to; set at bootstrap.
    pub ca_fingerprint: Option<Fingerprint>,
    /// The highest node id ever allocated: ids are never reused.
    last_node_id: NodeId,
    tokens: BTreeMap<TokenId, TokenRecord>,
    admitted: BTreeMap<NodeId, Admission>,
    revoked: BTreeSet<NodeId>,
}

/// A change to the registry, proposed by the leader and applied by every member.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TrustChange {
    /// Creates the cluster and admits node 1 as a voter; refused if already bootstrapped.
    Bootstrap {
        /// The new cluster's id.
        cluster_id: ClusterId,
        /// Its CA.
        ca_fingerprint: Fingerprint,
        /// When node 1's certificate expires.
        cert_not_after_unix_s: u64,
    },
    /// Stores a new token (after pruning expired ones).
    IssueToken {
        /// Its id (random, chosen by the leader).
        id: TokenId,
        /// What is stored.
        record: TokenRecord,
        /// The leader's clock when it proposed.
        now_unix_s: u64,
    },
    /// Admits a node with a token: consumes one use and allocates the next node id.
    Admit {
        /// The token used.
        token: TokenId,
        /// The role asked for.
        role: Role,
        /// The leader's clock when it proposed.
        now_unix_s: u64,
        /// When the node's certificate expires.
        cert_not_after_unix_s: u64,
    },
    /// Records a new certificate of an admitted node.
    Renew {
        /// The node.
        node_id: NodeId,
        /// When its new certificate expires.
        cert_not_after_unix_s: u64,
    },
    /// Revokes a node for good (idempotent).
    Revoke {
        /// The node.
        node_id: NodeId,
    },
    /// Withdraws an outstanding token.
    RevokeToken {
        /// The token.
        id: TokenId,
    },
}

/// The result of applying a change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TrustOutcome {
    /// Applied.
    Done,
    /// Applied, and a node id was allocated.
    Admitted {
        /// The new node's id.
        node_id: NodeId,
    },
    /// Not applied; the registry is unchanged.
    Refused(Refusal),
}

/// Why a change was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Refusal {
    /// The cluster has no trust state yet.
    NotBootstrapped,
    /// The cluster already has its trust state.
    AlreadyBootstrapped,
    /// The token is not outstanding.
    TokenUnknown,
    /// The token has expired.
    TokenExpired,
    /// The token has no uses left.
    TokenUsedUp,
    /// The token does not admit the requested role.
    TokenWrongRole,
    /// [`TOKENS_OUTSTANDING_MAX`] tokens are outstanding.
    TooManyTokens,
    /// A token with this id is outstanding.
    DuplicateToken,
    /// A token asks for more than [`TOKEN_USES_MAX`] uses, none, or a longer life than
    /// [`TOKEN_TTL_MAX_S`].
    TokenOutOfBounds,
    /// Every node id has been allocated.
    NodeIdsExhausted,
    /// The node is not admitted (never was, or was revoked).
    NotAdmitted,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refusal::NotBootstrapped => "the cluster's trust state is not bootstrapped yet",
            Refusal::AlreadyBootstrapped => "the cluster is already bootstrapped",
            Refusal::TokenUnknown => {
                "the token is not outstanding: never issued, revoked, or expired"
            }
            Refusal::TokenExpired => "the token has expired",
            Refusal::TokenUsedUp => "the token has no uses left",
            Refusal::TokenWrongRole => "the token does not admit the requested role",
            Refusal::TooManyTokens => "too many tokens are outstanding (the limit is 1024)",
            Refusal::DuplicateToken => "a token with this id is already outstanding",
            Refusal::TokenOutOfBounds => {
                "the token asks for 0 or more than 1000 uses, or lives longer than 30 days"
            }
            Refusal::NodeIdsExhausted => "every node id has been used",
            Refusal::NotAdmitted => "the node is not an admitted member",
        })
    }
}

impl Refusal {
    /// The error to report for this refusal of `change`, as specific as the change allows.
    pub fn into_error(self, change: &TrustChange) -> TrustError {
        match (self, change) {
            (
                Refusal::TokenUnknown,
                TrustChange::Admit { token: id, .. } | TrustChange::RevokeToken { id },
            ) => TrustError::TokenUnknown { id: *id },
            (Refusal::TokenUsedUp, TrustChange::Admit { token, .. }) => {
                TrustError::TokenUsedUp { id: *token }
            }
            (
                Refusal::NotAdmitted,
                TrustChange::Renew { node_id, .. } | TrustChange::Revoke { node_id },
            ) => TrustError::NotAMember { node_id: *node_id },
            (refusal, _) => TrustError::Refused(refusal),
        }
    }
}

impl Registry {
    /// Applies one committed change. Deterministic (see the module docs).
    pub fn apply(&mut self, change: &TrustChange) -> TrustOutcome {
        let result = match change {
            TrustChange::Bootstrap { cluster_id, ca_fingerprint, cert_not_after_unix_s } => {
                self.bootstrap(*cluster_id, *ca_fingerprint, *cert_not_after_unix_s)
            }
            _ if self.cluster_id.is_none() => Err(Refusal::NotBootstrapped),
            TrustChange::IssueToken { id, record, now_unix_s } => {
                self.issue_token(*id, *record, *now_unix_s)
            }
            TrustChange::Admit { token, role, now_unix_s, cert_not_after_unix_s } => {
                self.admit(*token, *role, *now_unix_s, *cert_not_after_unix_s)
            }
            TrustChange::Renew { node_id, cert_not_after_unix_s } => {
                match self.admitted.get_mut(node_id) {
                    Some(admission) => {
                        admission.cert_not_after_unix_s = *cert_not_after_unix_s;
                        Ok(TrustOutcome::Done)
                    }
                    None => Err(Refusal::NotAdmitted),
                }
            }
            TrustChange::Revoke { node_id } => {
                // Only allocated ids: keeps the revoked set bounded by the ids ever given out.
                if *node_id == 0 || *node_id > self.last_node_id {
                    Err(Refusal::NotAdmitted)
                } else {
                    self.admitted.remove(node_id);
                    self.revoked.insert(*node_id);
                    Ok(TrustOutcome::Done)
                }
            }
            TrustChange::RevokeToken { id } => match self.tokens.remove(id) {
                Some(_) => Ok(TrustOutcome::Done),
                None => Err(Refusal::TokenUnknown),
            },
        };
        result.unwrap_or_else(TrustOutcome::Refused)
    }

    fn bootstrap(
        &mut self,
        cluster_id: ClusterId,
        ca: Fingerprint,
        not_after_unix_s: u64,
    ) -> Result<TrustOutcome, Refusal> {
        if self.cluster_id.is_some() {
            return Err(Refusal::AlreadyBootstrapped);
        }
        *self = Registry {
            cluster_id: Some(cluster_id),
            ca_fingerprint: Some(ca),
            last_node_id: FIRST_NODE_ID,
            ..Registry::default()
        };
        let admission = Admission { role: Role::Voter, cert_not_after_unix_s: not_after_unix_s };
        self.admitted.insert(FIRST_NODE_ID, admission);
        Ok(TrustOutcome::Admitted { node_id: FIRST_NODE_ID })
    }

    fn issue_token(
        &mut self,
        id: TokenId,
        record: TokenRecord,
        now_unix_s: u64,
    ) -> Result<TrustOutcome, Refusal> {
        self.tokens.retain(|_, r| !r.expired(now_unix_s));
        let ttl_ok = record.expires_at_unix_s <= now_unix_s.saturating_add(TOKEN_TTL_MAX_S);
        if record.uses_left == 0 || record.uses_left > TOKEN_USES_MAX || !ttl_ok {
            return Err(Refusal::TokenOutOfBounds);
        }
        if self.tokens.contains_key(&id) {
            return Err(Refusal::DuplicateToken);
        }
        if self.tokens.len() >= TOKENS_OUTSTANDING_MAX {
            return Err(Refusal::TooManyTokens);
        }
        self.tokens.insert(id, record);
        Ok(TrustOutcome::Done)
    }

    fn admit(
        &mut self,
        id: TokenId,
        role: Role,
        now_unix_s: u64,
        not_after_unix_s: u64,
    ) -> Result<TrustOutcome, Refusal> {
        self.token_for(id, role, now_unix_s)?;
        let node_id = self.last_node_id.checked_add(1).ok_or(Refusal::NodeIdsExhausted)?;
        // Checks done; from here on the change is applied in full. A used-up token is kept
        // (with no uses left) until it expires, so a replay is told "used up", not "unknown".
        if let Some(r) = self.tokens.get_mut(&id) {
            r.uses_left -= 1;
        }
        self.last_node_id = node_id;
        self.admitted.insert(node_id, Admission { role, cert_not_after_unix_s: not_after_unix_s });
        Ok(TrustOutcome::Admitted { node_id })
    }

    fn token_for(&self, id: TokenId, role: Role, now_unix_s: u64) -> Result<TokenRecord, Refusal> {
        let record = *self.tokens.get(&id).ok_or(Refusal::TokenUnknown)?;
        if record.expired(now_unix_s) {
            return Err(Refusal::TokenExpired);
        }
        if record.uses_left == 0 {
            return Err(Refusal::TokenUsedUp);
        }
        if !record.role.allows(role) {
            return Err(Refusal::TokenWrongRole);
        }
        Ok(record)
    }

    /// What the leader checks before proposing `Admit` (the same checks `apply` makes).
    pub fn check_token(
        &self,
        id: TokenId,
        role: Role,
        now_unix_s: u64,
    ) -> Result<&TokenRecord, TrustError> {
        let record = self.tokens.get(&id).ok_or(TrustError::TokenUnknown { id })?;
        match self.token_for(id, role, now_unix_s) {
            Ok(_) => Ok(record),
            Err(Refusal::TokenExpired) => {
                Err(TrustError::TokenExpired { id, expired_at_unix_s: record.expires_at_unix_s })
            }
            Err(Refusal::TokenWrongRole) => {
                Err(TrustError::TokenWrongRole { id, token_role: record.role, requested: role })
            }
            Err(Refusal::TokenUsedUp) => Err(TrustError::TokenUsedUp { id }),
            Err(other) => Err(TrustError::Refused(other)),
        }
    }

    /// The tokens that can still admit a node at `now_unix_s` (not expired, uses left).
    pub fn outstanding_tokens(
        &self,
        now_unix_s: u64,
    ) -> impl Iterator<Item = (TokenId, &TokenRecord)> {
        self.tokens
            .iter()
            .filter(move |(_, r)| !r.expired(now_unix_s) && r.uses_left > 0)
            .map(|(id, r)| (*id, r))
    }

    /// The admission of `node_id`, if admitted and not revoked.
    pub fn admission(&self, node_id: NodeId) -> Option<&Admission> {
        self.admitted.get(&node_id)
    }

    /// Every admitted, non-revoked node.
    pub fn admitted(&self) -> impl Iterator<Item = (NodeId, &Admission)> {
        self.admitted.iter().map(|(id, a)| (*id, a))
    }

    /// Whether `node_id` was revoked.
    pub fn is_revoked(&self, node_id: NodeId) -> bool {
        self.revoked.contains(&node_id)
    }

    /// The highest node id ever allocated (0 before bootstrap).
    pub fn last_node_id(&self) -> NodeId {
        self.last_node_id
    }

    /// Whether a member presenting `peer` may talk to a node of `own_cluster` at all: its
    /// certificate (whose chain and expiry TLS has checked) names that cluster, and its id is
    /// not revoked.
    ///
    /// Not "admitted in this registry": a node applies the registry as it catches up, so a
    /// member admitted after this node's last applied entry (a leader elected since, say)
    /// would be refused, and the node could never catch up. Certificates are only ever issued
    /// on an admission, so the CA's signature says as much; what a lagging registry can miss is
    /// a revocation, and it learns that from the log like everything else.
    pub fn check_connection(
        &self,
        own_cluster: ClusterId,
        peer: &PeerIdentity,
    ) -> Result<(), TrustError> {
        if peer.cluster_id != own_cluster
            || self.cluster_id.is_some_and(|cluster| cluster != own_cluster)
        {
            return Err(TrustError::WrongCluster);
        }
        if self.is_revoked(peer.node_id) {
            return Err(TrustError::Revoked { node_id: peer.node_id });
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "registry_tests.rs"]
mod tests;
