//! The trust module's error type.
//!
//! Invariant: no message ever contains a token secret or a private key. Variants carry ids,
//! fingerprints, times and fixed reasons only; causes from libraries (rcgen, x509 parsing) are
//! about certificates and keys' *format*, never their bytes.

use super::ids::{Fingerprint, NodeId, Role, TokenId};
use super::registry::Refusal;

/// Everything that can go wrong in `trust`.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// The token text cannot be decoded (a typo, truncation, or another format version).
    #[error("the join token is malformed: {reason}")]
    TokenMalformed {
        /// Which check failed.
        reason: &'static str,
    },

    /// The token's expiry has passed.
    #[error("join token {id} expired at unix time {expired_at_unix_s} s")]
    TokenExpired {
        /// The token.
        id: TokenId,
        /// When it expired.
        expired_at_unix_s: u64,
    },

    /// The registry does not know the token.
    #[error("no outstanding token {id}: it was never issued, was revoked, or has expired")]
    TokenUnknown {
        /// The token.
        id: TokenId,
    },

    /// The token has admitted as many nodes as it was issued for.
    #[error("join token {id} has no uses left")]
    TokenUsedUp {
        /// The token.
        id: TokenId,
    },

    /// A learner token was used to join as a voter.
    #[error("join token {id} was issued for a {token_role} and cannot admit a {requested}")]
    TokenWrongRole {
        /// The token.
        id: TokenId,
        /// The role it was issued for.
        token_role: Role,
        /// The role asked for.
        requested: Role,
    },

    /// The joiner's proof was not made with the token's secret (or for another session).
    #[error("the join proof does not match the token: wrong secret")]
    ProofInvalid,

    /// The contacted peer presented no CA with the token's fingerprint.
    #[error(
        "the peer belongs to another cluster: its CA fingerprint {} differs from the token's {expected}",
        found.map_or_else(|| "(none presented)".to_owned(), |f| f.to_string())
    )]
    ForeignCluster {
        /// The fingerprint in the token.
        expected: Fingerprint,
        /// The CA fingerprint the peer presented, if it presented one.
        found: Option<Fingerprint>,
    },

    /// A certificate is not what the cluster issues (bad DER, missing extension...); the
    /// cause says what is wrong with it.
    #[error("invalid certificate")]
    Certificate(#[source] crate::error::BoxError),

    /// A certificate's node identity (its URI SAN) is missing or malformed.
    #[error("the certificate carries no valid node identity: {reason}")]
    PeerIdentity {
        /// Which check failed.
        reason: &'static str,
    },

    /// A PEM text did not hold the expected certificate or key.
    #[error("invalid PEM")]
    Pem(#[source] crate::error::BoxError),

    /// A key does not belong to the certificate it was paired with (mixed-up files).
    #[error("the key does not belong to the certificate")]
    KeyMismatch,

    /// Generating keys or certificates failed.
    #[error("certificate generation failed")]
    Rcgen(#[from] rcgen::Error),

    /// Signing needs the CA key, which this node does not hold.
    #[error("this node does not hold the cluster CA key, so it cannot issue certificates")]
    NoCaKey,

    /// The system's secure random generator failed.
    #[error("the system random generator failed")]
    Random,

    /// A cluster id or fingerprint text is not in its canonical form.
    #[error("malformed {what}")]
    IdMalformed {
        /// What was being parsed.
        what: &'static str,
    },

    /// A validity period does not fit the certificate's time range.
    #[error("certificate validity out of range")]
    ValidityOutOfRange,

    /// A local file operation failed.
    #[error("I/O error on credentials")]
    Io(#[from] std::io::Error),

    /// The node's certificate is valid but the registry has not admitted it.
    #[error("node {node_id} is not a member of this cluster")]
    NotAMember {
        /// The node.
        node_id: NodeId,
    },

    /// The node was removed and its certificate revoked.
    #[error("node {node_id} has been revoked")]
    Revoked {
        /// The node.
        node_id: NodeId,
    },

    /// The credentials belong to another cluster id (or this cluster is not bootstrapped).
    #[error("the credentials belong to another cluster")]
    WrongCluster,

    /// The replicated registry refused a change (for refusals without a more specific error).
    #[error("the cluster refused the change: {0}")]
    Refused(Refusal),
}
