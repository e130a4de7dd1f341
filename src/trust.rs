//! The cluster's trust logic: who may join, who is a member, and how that is proven.
//!
//! Trust model (k3s/kubeadm style): each cluster has an id and its own CA. An operator hands
//! a new node a [`JoinToken`]; it pins the CA by fingerprint (so the joiner never trusts the
//! first certificate it sees) and carries a secret the joiner proves, bound to the TLS session
//! and to the key pair the joiner made itself. The leader checks the proof against the
//! token's verifier in the replicated [`Registry`] and has the CA sign the joiner's public key:
//! the certificate names the node id and cluster id (URI SAN) and expires. Every connection
//! is then checked twice: the chain by TLS, the named node by [`Registry::check_connection`]
//! (this cluster, not revoked).
//!
//! Invariants: secrets (token secrets, private keys) never appear in `Debug` output or error
//! messages; the registry stores only token verifiers, which cannot make a proof; registry
//! changes apply deterministically (times come inside the changes).

pub mod certs;
pub mod error;
mod files;
pub mod ids;
pub(crate) mod peer;
pub mod proof;
pub mod registry;
pub mod token;
pub mod view;

pub use certs::{
    peer_identity, ClusterCa, IssuedCert, NodeIdentity, NodeKey, PeerIdentity, CLUSTER_SERVER_NAME,
    NODE_CERT_VALIDITY, RENEW_BEFORE,
};
pub use error::TrustError;
pub use ids::{ClusterId, Fingerprint, NodeId, Role, TokenId};
pub use registry::{Admission, Refusal, Registry, TokenRecord, TrustChange, TrustOutcome};
pub use token::{
    JoinProof, JoinToken, ProofBinding, TokenVerifier, TLS_EXPORTER_BYTES, TLS_EXPORTER_LABEL,
};
