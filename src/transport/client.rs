//! The calling half of an endpoint: one long-lived connection per peer address, a stream per
//! call (or per replication session, for append streams), a deadline on every call.
//!
//! Invariants: at most one connection attempt per peer at a time (the peer's slot is locked
//! while connecting); after a failed attempt, calls to that peer fail fast as `Unreachable`
//! until a backoff delay (doubling from [`RECONNECT_BACKOFF_MIN`] to
//! [`RECONNECT_BACKOFF_MAX`]) has passed, so a dead peer costs nothing per call. Addresses are
//! resolved at each connection attempt, so a member may move.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::raft::SnapshotResponse;
use openraft::type_config::alias::{SnapshotMetaOf, VoteOf};
use quinn::Connection;
use tokio::time::{timeout, Instant};

use crate::raft::types::{NodeId, TypeConfig};
use crate::transport::append_stream::{AppendReceiver, AppendSender};
use crate::transport::error::TransportError;
use crate::transport::limits::{
    CONNECT_TIMEOUT, FRAME_BYTES_MAX, RECONNECT_BACKOFF_MAX, RECONNECT_BACKOFF_MIN,
    SNAPSHOT_TRANSFER_TIMEOUT,
};
use crate::transport::progress::SnapshotTransfers;
use crate::transport::snapshot;
use crate::transport::wire::{
    read_frame, write_frame, Request, Response, SnapshotHeader, StreamOpen,
};
use crate::trust::peer_identity;
use crate::trust::CLUSTER_SERVER_NAME;

/// Peer slots kept at most; past this, slots without a live connection are forgotten.
const PEERS_MAX: usize = 1024;

/// Makes calls to peers. Cheap to clone; all clones share the connections.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    endpoint: quinn::Endpoint,
    /// Replaced when the node's certificate is renewed; connections made before keep theirs.
    config: std::sync::RwLock<quinn::ClientConfig>,
    peers: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Peer>>>>,
    /// Snapshot transfers of this endpoint, both ways (the server side records into it too).
    transfers: SnapshotTransfers,
}

/// What we know of one peer address.
#[derive(Default)]
struct Peer {
    conn: Option<Connection>,
    failures: u32,
    retry_at: Option<Instant>,
}

impl Client {
    pub(crate) fn new(endpoint: quinn::Endpoint, config: quinn::ClientConfig) -> Self {
        let transfers = SnapshotTransfers::default();
        Client {
            inner: Arc::new(Inner {
                endpoint,
                config: std::sync::RwLock::new(config),
                peers: Mutex::new(HashMap::new()),
                transfers,
            }),
        }
    }

    /// Makes later connections present a new certificate (after a renewal).
    pub(crate) fn set_config(&self, config: quinn::ClientConfig) {
        *self.inner.config.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = config;
    }

    /// The snapshot transfers of this endpoint.
    pub fn transfers(&self) -> &SnapshotTransfers {
        &self.inner.transfers
    }

    /// Sends `request` to the peer at `addr` (`host:port`) and waits for its response, all
    /// within `deadline`. A `Response::Error` from the peer becomes [`TransportError::Remote`].
    pub async fn call(
        &self,
        addr: &str,
        request: Request,
        deadline: Duration,
    ) -> Result<Response, TransportError> {
        timeout(deadline, self.call_unbounded(addr, request))
            .await
            .map_err(|_| TransportError::timeout("rpc", deadline))?
    }

    /// [`Client::call`] to the member `node`: refused with [`TransportError::WrongPeer`] if
    /// the certificate presented at `addr` names another node (a member replaced at the same
    /// address, say), so a message meant for one member never reaches another.
    pub async fn call_node(
        &self,
        addr: &str,
        node: NodeId,
        request: Request,
        deadline: Duration,
    ) -> Result<Response, TransportError> {
        timeout(deadline, async {
            self.member_connection(addr, node).await?;
            self.call_unbounded(addr, request).await
        })
        .await
        .map_err(|_| TransportError::timeout("rpc", deadline))?
    }

    /// The connection to `addr`, checked to present the certificate of member `node`.
    async fn member_connection(
        &self,
        addr: &str,
        node: NodeId,
    ) -> Result<Connection, TransportError> {
        let conn = self.connection(addr).await?;
        let found = conn
            .peer_identity()
            .and_then(|identity| {
                identity.downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>().ok()
            })
            .and_then(|chain| chain.first().and_then(|cert| peer_identity(cert.as_ref()).ok()))
            .map(|peer| peer.node_id);
        if found == Some(node) {
            Ok(conn)
        } else {
            Err(TransportError::WrongPeer { addr: addr.into(), expected: node, found })
        }
    }

    async fn call_unbounded(
        &self,
        addr: &str,
        request: Request,
    ) -> Result<Response, TransportError> {
        let conn = self.connection(addr).await?;
        let (mut send, mut recv) = conn.open_bi().await.map_err(|e| lost(addr, e))?;
        write_frame(&mut send, &StreamOpen::Rpc(request)).await?;
        // Finishing tells the server no more bytes follow on this stream.
        let _ = send.finish();
        let response = read_frame::<_, Response>(&mut recv, FRAME_BYTES_MAX).await?;
        match response {
            Response::Error { message, retryable } => {
                Err(TransportError::Remote { message, retryable })
            }
            other => Ok(other),
        }
    }

    /// Opens a pipelined AppendEntries stream to the peer at `addr` (see
    /// [`wire`](super::wire)); connecting is bounded by the connection deadline.
    /// Checked like [`Client::call_node`]: the peer must be member `node`.
    pub async fn open_append_stream(
        &self,
        addr: &str,
        node: NodeId,
    ) -> Result<(AppendSender, AppendReceiver), TransportError> {
        let conn = self.member_connection(addr, node).await?;
        let (mut send, recv) = conn.open_bi().await.map_err(|e| lost(addr, e))?;
        write_frame(&mut send, &StreamOpen::AppendStream).await?;
        Ok((AppendSender { send }, AppendReceiver { recv }))
    }

    /// Streams the snapshot image at `path` to member `node` at `addr` (checked like
    /// [`Client::call_node`]) and waits for it to be installed.
    /// `deadline` bounds the whole transfer (capped at [`SNAPSHOT_TRANSFER_TIMEOUT`]); each
    /// chunk must also progress within its own bound.
    pub async fn send_snapshot(
        &self,
        (addr, node): (&str, NodeId),
        vote: VoteOf<TypeConfig>,
        meta: SnapshotMetaOf<TypeConfig>,
        path: &Path,
        deadline: Duration,
    ) -> Result<SnapshotResponse<TypeConfig>, TransportError> {
        let deadline = deadline.min(SNAPSHOT_TRANSFER_TIMEOUT);
        let header = SnapshotHeader { vote, meta, size_bytes: 0 };
        let transfer = async {
            let conn = self.member_connection(addr, node).await?;
            let (mut send, mut recv) = conn.open_bi().await.map_err(|e| lost(addr, e))?;
            snapshot::send(&mut send, header, path, (&self.inner.transfers, addr)).await?;
            let _ = send.finish();
            read_frame::<_, Response>(&mut recv, FRAME_BYTES_MAX)
                .await
                .map_err(TransportError::from)
        };
        let response = timeout(deadline, transfer)
            .await
            .map_err(|_| TransportError::timeout("snapshot", deadline))??;
        match response {
            Response::Snapshot(r) => Ok(r),
            Response::Error { message, retryable } => {
                Err(TransportError::Remote { message, retryable })
            }
            other => Err(TransportError::UnexpectedResponse {
                expected: "Snapshot",
                got: other.kind().into(),
            }),
        }
    }

    fn slot(&self, addr: &str) -> Arc<tokio::sync::Mutex<Peer>> {
        let mut peers = self.inner.peers.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if !peers.contains_key(addr) && peers.len() >= PEERS_MAX {
            // Forget peers nobody is using and that have no live connection.
            peers.retain(|_, slot| slot.try_lock().map(|p| p.conn.is_some()).unwrap_or(true));
        }
        peers.entry(addr.to_owned()).or_default().clone()
    }

    /// The live connection to `addr`, opening one if needed (and allowed by the backoff).
    async fn connection(&self, addr: &str) -> Result<Connection, TransportError> {
        let slot = self.slot(addr);
        let mut peer = slot.lock().await;
        if let Some(conn) = &peer.conn {
            if conn.close_reason().is_none() {
                return Ok(conn.clone());
            }
            tracing::debug!(addr, "connection closed, reconnecting");
            peer.conn = None;
        }
        if peer.retry_at.is_some_and(|at| Instant::now() < at) {
            return Err(unreachable(addr, "backing off after a failed connection attempt"));
        }
        match self.connect(addr).await {
            Ok(conn) => {
                *peer = Peer { conn: Some(conn.clone()), failures: 0, retry_at: None };
                Ok(conn)
            }
            Err(e) => {
                peer.failures = peer.failures.saturating_add(1);
                peer.retry_at = Some(Instant::now() + backoff(peer.failures));
                tracing::debug!(addr, failures = peer.failures, error = %crate::error::Chain(&e), "connection attempt failed");
                Err(e)
            }
        }
    }

    async fn connect(&self, addr: &str) -> Result<Connection, TransportError> {
        let socket_addr = resolve(addr).await?;
        let connecting = self
            .inner
            .endpoint
            .connect_with(
                self.inner.config.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone(),
                socket_addr,
                CLUSTER_SERVER_NAME,
            )
            .map_err(|e| unreachable(addr, e))?;
        match timeout(CONNECT_TIMEOUT, connecting).await {
            Ok(Ok(conn)) => Ok(conn),
            // QUIC gives up on a silent peer after its idle timeout, before our own deadline.
            Ok(Err(quinn::ConnectionError::TimedOut)) => Err(unreachable(
                addr,
                "no answer to the handshake (is a node running at that address?)",
            )),
            Ok(Err(e)) if is_tls_alert(&e) => {
                Err(TransportError::Handshake { addr: addr.into(), source: e })
            }
            Ok(Err(e)) => Err(unreachable(addr, e)),
            Err(_) => Err(unreachable(addr, "handshake timed out")),
        }
    }
}

/// The delay before the `failures`-th reconnection attempt.
fn backoff(failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(16);
    RECONNECT_BACKOFF_MIN.saturating_mul(1u32 << exponent).min(RECONNECT_BACKOFF_MAX)
}

/// Resolves `host:port` to its first address, within [`CONNECT_TIMEOUT`].
pub(crate) async fn resolve(addr: &str) -> Result<SocketAddr, TransportError> {
    let resolved = timeout(CONNECT_TIMEOUT, tokio::net::lookup_host(addr)).await;
    match resolved {
        Ok(Ok(mut addrs)) => {
            addrs.next().ok_or_else(|| TransportError::Resolve { addr: addr.into() })
        }
        _ => Err(TransportError::Resolve { addr: addr.into() }),
    }
}

/// Whether a failed connection attempt ended with a TLS alert (QUIC's crypto error codes,
/// 0x100 + the alert): a certificate refused by one side, not an unreachable peer.
fn is_tls_alert(error: &quinn::ConnectionError) -> bool {
    let code = match error {
        quinn::ConnectionError::TransportError(e) => e.code,
        quinn::ConnectionError::ConnectionClosed(close) => close.error_code,
        _ => return false,
    };
    (0x100..0x200).contains(&u64::from(code))
}

pub(crate) fn unreachable(addr: &str, reason: impl std::fmt::Display) -> TransportError {
    TransportError::Unreachable { addr: addr.into(), reason: reason.to_string() }
}

fn lost(addr: &str, reason: impl std::fmt::Display) -> TransportError {
    TransportError::ConnectionLost { addr: addr.into(), reason: reason.to_string() }
}
