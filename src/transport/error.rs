//! The transport's error type. Callers (the Raft network adapter, the node layer) decide
//! from the variant whether to retry at once, back off, or give up.

use crate::transport::wire::FrameError;

/// Everything that can go wrong in `transport`.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// Generating keys or certificates failed (rcgen).
    #[error("certificate generation failed")]
    Certificate(#[from] rcgen::Error),

    /// A PEM text did not hold the expected certificate or key.
    #[error("invalid PEM: {0}")]
    Pem(String),

    /// Building a TLS or QUIC configuration failed (bad key, unsupported suite...).
    #[error("TLS configuration")]
    TlsConfig(#[source] crate::error::BoxError),

    /// Credentials are missing, malformed, or not trusted (see [`crate::trust`]).
    #[error(transparent)]
    Trust(#[from] crate::trust::TrustError),

    /// A local file or socket operation failed (the OS's error says which and why).
    #[error(transparent)]
    Io(#[from] std::io::Error),

    /// A `host:port` did not resolve to any address (or resolving took too long).
    #[error("cannot resolve address {addr}")]
    Resolve {
        /// The address as given.
        addr: String,
    },

    /// No connection to the peer could be established (refused, handshake failed, TLS
    /// rejected, or still in the backoff period after such a failure).
    #[error("peer {addr} unreachable: {reason}")]
    Unreachable {
        /// The peer's address.
        addr: String,
        /// Why, for the logs.
        reason: String,
    },

    /// The TLS handshake with the peer failed: one side refused the other's certificate
    /// (another cluster, a revoked or expired certificate, an unknown CA).
    #[error("TLS handshake with {addr} failed (a certificate was refused)")]
    Handshake {
        /// The peer's address.
        addr: String,
        /// The QUIC error, carrying the TLS alert.
        #[source]
        source: quinn::ConnectionError,
    },

    /// An established connection broke while a call was using it; the next call reconnects.
    #[error("connection to {addr} lost: {reason}")]
    ConnectionLost {
        /// The peer's address.
        addr: String,
        /// Why, for the logs.
        reason: String,
    },

    /// A frame could not be encoded, or what the peer sent could not be decoded.
    #[error("bad frame")]
    Frame(#[from] FrameError),

    /// A deadline passed before the operation completed; its outcome at the peer is unknown.
    #[error("{what} timed out after {after_ms} ms")]
    Timeout {
        /// What was being waited for.
        what: &'static str,
        /// The deadline that passed.
        after_ms: u64,
    },

    /// The peer handled the request and answered with an error.
    #[error("peer error: {message} (retryable: {retryable})")]
    Remote {
        /// The peer's explanation.
        message: String,
        /// Whether sending the same request again may succeed.
        retryable: bool,
    },

    /// The peer answered with a response of the wrong kind for the request.
    #[error("unexpected response: expected {expected}, got {got}")]
    UnexpectedResponse {
        /// The response kind the request calls for.
        expected: &'static str,
        /// The kind that arrived.
        got: String,
    },

    /// A snapshot transfer was refused or ended malformed (size or checksum mismatch).
    #[error("snapshot transfer: {0}")]
    Snapshot(String),

    /// The peer at an address presented the certificate of another member than the one
    /// dialled (the member moved, or was replaced by a new node at its address).
    #[error("the node at {addr} is {}, not node {expected}", found.map_or("not a member".to_string(), |id| format!("node {id}")))]
    WrongPeer {
        /// The address dialled.
        addr: String,
        /// The member meant.
        expected: crate::raft::types::NodeId,
        /// The member its certificate names, if any.
        found: Option<crate::raft::types::NodeId>,
    },
    /// The local endpoint is shut down.
    #[error("endpoint closed")]
    Closed,
}

impl TransportError {
    /// Builds a [`TransportError::Timeout`] from a duration.
    pub fn timeout(what: &'static str, after: std::time::Duration) -> Self {
        TransportError::Timeout {
            what,
            after_ms: u64::try_from(after.as_millis()).unwrap_or(u64::MAX),
        }
    }
}
