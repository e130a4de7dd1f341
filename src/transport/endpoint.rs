//! A node's QUIC endpoint: one UDP socket that both serves peers (through the node layer's
//! [`RpcHandler`]) and calls them (through [`Client`]).
//!
//! Several endpoints may live in one process (one per node, each on its own port); they share
//! nothing but the tokio runtime they were created on. [`join`] uses a short-lived client-only
//! endpoint of its own, since a joining node has no certificate to bind a server with.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::QuicClientConfig;
use tokio::task::JoinHandle;
use tokio::time::timeout;

use crate::transport::client::{resolve, unreachable, Client};
use crate::transport::error::TransportError;
use crate::transport::limits::{
    CONNECTION_RECEIVE_WINDOW_BYTES, IDLE_TIMEOUT, KEEP_ALIVE_INTERVAL, SEND_WINDOW_BYTES,
    SHUTDOWN_TIMEOUT, SOCKET_BUFFER_BYTES, STREAMS_PER_CONNECTION_MAX, STREAM_RECEIVE_WINDOW_BYTES,
    UDP_PAYLOAD_BYTES_MAX,
};
use crate::transport::limits::{CONNECT_TIMEOUT, JOIN_RESPONSE_BYTES_MAX};
use crate::transport::server::{accept_loop, RpcHandler};
use crate::transport::tls::{client_config, join_client_config, join_exporter, server_config};
use crate::transport::wire::{
    read_frame, write_frame, JoinGrant, JoinRequest, Request, Response, StreamOpen,
};
use crate::trust::certs::{ClusterCa, NodeIdentity};
use crate::trust::error::TrustError;
use crate::trust::token::TLS_EXPORTER_BYTES;
use crate::trust::Fingerprint;
use crate::trust::CLUSTER_SERVER_NAME;

/// QUIC application error code sent when we close connections on shutdown.
const CLOSE_CODE_SHUTDOWN: u32 = 0;

/// A bound, serving endpoint.
pub struct Endpoint {
    quic: quinn::Endpoint,
    client: Client,
    accept_task: JoinHandle<()>,
}

impl Endpoint {
    /// Binds `listen` (`host:port`, UDP; port 0 picks one), starts serving with `handler`,
    /// and prepares a client that presents `identity`. Must be called on the node's runtime.
    pub async fn bind(
        listen: &str,
        ca: &ClusterCa,
        identity: &NodeIdentity,
        handler: Arc<dyn RpcHandler>,
    ) -> Result<Self, TransportError> {
        let addr = resolve(listen).await?;
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(server_config(ca, identity)?));
        server.transport_config(transport_config()?);
        let socket = with_large_buffers(std::net::UdpSocket::bind(addr)?);
        let endpoint_config = quinn::EndpointConfig::new(Arc::new(identity.stateless_reset_key()));
        let quic = quinn::Endpoint::new(
            endpoint_config,
            Some(server),
            socket,
            Arc::new(quinn::TokioRuntime),
        )?;
        let client = Client::new(quic.clone(), quic_client_config(client_config(ca, identity)?)?);
        let accept_task =
            tokio::spawn(accept_loop(quic.clone(), handler, client.transfers().clone()));
        tracing::info!(addr = %quic.local_addr()?, "transport endpoint bound");
        Ok(Endpoint { quic, client, accept_task })
    }

    /// Presents `identity` from now on, on both sides: new connections use it; established
    /// ones keep the certificate they were made with until they end.
    pub fn present(&self, ca: &ClusterCa, identity: &NodeIdentity) -> Result<(), TransportError> {
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(server_config(ca, identity)?));
        server.transport_config(transport_config()?);
        self.quic.set_server_config(Some(server));
        self.client.set_config(quic_client_config(client_config(ca, identity)?)?);
        Ok(())
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> Result<SocketAddr, TransportError> {
        Ok(self.quic.local_addr()?)
    }

    /// A client that calls peers from this endpoint's socket.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// Closes every connection, stops accepting, and waits (at most [`SHUTDOWN_TIMEOUT`])
    /// for peers to acknowledge, so they see a close rather than an idle timeout.
    pub async fn shutdown(self) {
        close(&self.quic).await;
        self.accept_task.abort();
    }
}

async fn close(quic: &quinn::Endpoint) {
    quic.close(CLOSE_CODE_SHUTDOWN.into(), b"shutdown");
    if timeout(SHUTDOWN_TIMEOUT, quic.wait_idle()).await.is_err() {
        tracing::debug!("peers did not acknowledge the close in time");
    }
}

/// `socket` with kernel buffers of [`SOCKET_BUFFER_BYTES`], as far as the system allows (a
/// smaller buffer only costs speed, so a refusal is not an error).
fn with_large_buffers(socket: std::net::UdpSocket) -> std::net::UdpSocket {
    let socket = socket2::Socket::from(socket);
    if let Err(error) = socket.set_recv_buffer_size(SOCKET_BUFFER_BYTES) {
        tracing::debug!(%error, "cannot enlarge the UDP receive buffer");
    }
    if let Err(error) = socket.set_send_buffer_size(SOCKET_BUFFER_BYTES) {
        tracing::debug!(%error, "cannot enlarge the UDP send buffer");
    }
    socket.into()
}

/// Settings shared by both directions: bounded streams and flow-control windows (what one
/// peer can make us buffer), keep-alive under the idle timeout, datagrams as large as the path
/// allows.
fn transport_config() -> Result<Arc<quinn::TransportConfig>, TransportError> {
    let idle = quinn::IdleTimeout::try_from(IDLE_TIMEOUT)
        .map_err(|e| TransportError::TlsConfig(Box::new(e)))?;
    let mut config = quinn::TransportConfig::default();
    let mut mtu = quinn::MtuDiscoveryConfig::default();
    mtu.upper_bound(UDP_PAYLOAD_BYTES_MAX);
    config
        .mtu_discovery_config(Some(mtu))
        .max_concurrent_bidi_streams(STREAMS_PER_CONNECTION_MAX.into())
        .max_concurrent_uni_streams(0u32.into())
        .max_idle_timeout(Some(idle))
        .keep_alive_interval(Some(KEEP_ALIVE_INTERVAL))
        .stream_receive_window(STREAM_RECEIVE_WINDOW_BYTES.into())
        .receive_window(CONNECTION_RECEIVE_WINDOW_BYTES.into())
        .send_window(SEND_WINDOW_BYTES);
    Ok(Arc::new(config))
}

pub(crate) fn quic_client_config(
    crypto: QuicClientConfig,
) -> Result<quinn::ClientConfig, TransportError> {
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(transport_config()?);
    Ok(config)
}

/// What a member answered a join request.
#[derive(Debug)]
pub enum JoinAnswer {
    /// Admitted: the new node's id and certificate.
    Granted(JoinGrant),
    /// The member does not lead: ask the leader at this address.
    Redirect(String),
}

/// Asks the member at `seed_addr` to admit this node. The member must prove it belongs to the
/// cluster whose CA has fingerprint `pin` (from the token): a member of another cluster fails
/// the handshake with [`TrustError::ForeignCluster`]. `request` builds the join request from
/// this TLS session's exporter output, which the proof signs. Uses its own short-lived socket
/// (a joiner has no certificate to bind a server with); bounded by `deadline`.
pub async fn join(
    seed_addr: &str,
    pin: Fingerprint,
    request: impl FnOnce([u8; TLS_EXPORTER_BYTES]) -> JoinRequest,
    deadline: Duration,
) -> Result<JoinAnswer, TransportError> {
    let target = resolve(seed_addr).await?;
    let local: SocketAddr =
        if target.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
    let quic = quinn::Endpoint::client(local)?;
    let (crypto, pin_check) = join_client_config(pin)?;
    let config = quic_client_config(crypto)?;
    let exchange = async {
        let connecting = quic
            .connect_with(config, target, CLUSTER_SERVER_NAME)
            .map_err(|e| unreachable(seed_addr, e))?;
        let conn = match timeout(CONNECT_TIMEOUT, connecting).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => {
                return Err(match (pin_check.foreign_fingerprint(), e) {
                    (Some(found), _) => TransportError::Trust(TrustError::ForeignCluster {
                        expected: pin,
                        found: Some(found),
                    }),
                    // QUIC gives up on a silent peer after its idle timeout, before our own deadline.
                    (None, quinn::ConnectionError::TimedOut) => unreachable(
                        seed_addr,
                        "no answer to the handshake (is a node running at that address?)",
                    ),
                    (None, e) => unreachable(seed_addr, e),
                });
            }
            Err(_) => return Err(unreachable(seed_addr, "handshake timed out")),
        };
        let tls_exporter = join_exporter(&conn)?;
        let (mut send, mut recv) = conn.open_bi().await.map_err(|e| unreachable(seed_addr, e))?;
        write_frame(&mut send, &StreamOpen::Rpc(Request::Join(request(tls_exporter)))).await?;
        let _ = send.finish();
        Ok::<_, TransportError>(
            read_frame::<_, Response>(&mut recv, JOIN_RESPONSE_BYTES_MAX).await?,
        )
    };
    let result = timeout(deadline, exchange).await;
    close(&quic).await;
    match result.map_err(|_| TransportError::timeout("join", deadline))?? {
        Response::Join(grant) => Ok(JoinAnswer::Granted(grant)),
        Response::Redirect { leader_addr } => Ok(JoinAnswer::Redirect(leader_addr)),
        Response::Error { message, retryable } => {
            Err(TransportError::Remote { message, retryable })
        }
        other => {
            Err(TransportError::UnexpectedResponse { expected: "Join", got: other.kind().into() })
        }
    }
}
