//! The answering half of an endpoint: accepts connections and streams, enforces who may ask
//! what, and hands requests to the node layer's [`RpcHandler`].
//!
//! Invariants: a peer without a cluster certificate gets an answer only to `Join` (anything
//! else, snapshots included, is refused before the handler sees it) and can make us read at
//! most [`UNAUTHENTICATED_FRAME_BYTES_MAX`] bytes per stream. A peer with one is known by the
//! identity its certificate names ([`Caller::Member`]); the handler decides what that member
//! may ask, and sees a snapshot's header before a single image byte is read. Every wait
//! (handshake, request read, handler, response write) is bounded by a constant from
//! [`limits`](super::limits).

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use openraft::raft::{AppendEntriesRequest, SnapshotResponse};
use openraft::type_config::alias::{SnapshotMetaOf, VoteOf};
use quinn::{Connection, RecvStream, SendStream};
use rustls::pki_types::CertificateDer;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::timeout;

use crate::raft::types::{SnapshotImage, TypeConfig};
use crate::transport::error::TransportError;
use crate::transport::limits::{
    CONNECTIONS_MAX, FRAME_BYTES_MAX, HANDLER_TIMEOUT, HANDSHAKES_MAX, HANDSHAKE_QUEUE_MAX,
    HANDSHAKE_QUEUE_WAIT, REQUEST_READ_TIMEOUT, UNAUTHENTICATED_CONNECTIONS_MAX,
    UNAUTHENTICATED_CONNECTION_LIFETIME, UNAUTHENTICATED_FRAME_BYTES_MAX,
    UNAUTHENTICATED_HANDSHAKE_TIMEOUT,
};
use crate::transport::progress::SnapshotTransfers;
use crate::transport::snapshot;
use crate::transport::tls::join_exporter;
use crate::transport::wire::{
    read_frame, write_frame, AppendReply, FrameError, Request, Response, SnapshotHeader, StreamOpen,
};
use crate::trust::certs::{peer_identity, PeerIdentity};
use crate::trust::token::TLS_EXPORTER_BYTES;

/// A boxed, sendable future: what the handler returns.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Who is at the other end of a connection.
#[derive(Debug, Clone)]
pub enum Caller {
    /// No certificate: a node that wants to join. Its requests are proven against this TLS
    /// session's keying material (RFC 5705 exporter), so a proof cannot be replayed elsewhere.
    Anonymous {
        /// The session's exporter output for [`TLS_EXPORTER_LABEL`].
        tls_exporter: [u8; TLS_EXPORTER_BYTES],
    },
    /// A certificate of the cluster CA (checked by TLS), naming this member.
    Member(PeerIdentity),
}

/// What the node layer provides to answer requests.
pub trait RpcHandler: Send + Sync + 'static {
    /// Answers one request. An anonymous caller only ever gets here with `Join` (the server
    /// refuses every other request from unauthenticated peers before calling this).
    fn handle(&self, caller: &Caller, request: Request) -> BoxFuture<Response>;

    /// Answers a pipelined stream of AppendEntries requests from a member: one reply per
    /// request, in order (a `Failed` reply ends the stream).
    fn append_stream(
        &self,
        caller: &PeerIdentity,
        requests: BoxStream<'static, AppendEntriesRequest<TypeConfig>>,
    ) -> BoxStream<'static, AppendReply>;

    /// Whether `caller` may send the snapshot `header` announces: decided before any of the
    /// image is read. `Err` is the answer to send instead.
    fn accept_snapshot(
        &self,
        caller: &PeerIdentity,
        header: &SnapshotHeader,
    ) -> Result<(), Response>;

    /// Where to write an incoming snapshot image: a fresh file path in the state directory.
    /// The file is removed again if the transfer fails.
    fn incoming_snapshot_path(&self) -> PathBuf;

    /// Installs a completely received (size and CRC checked, fsynced) snapshot image.
    fn install_snapshot(
        &self,
        vote: VoteOf<TypeConfig>,
        meta: SnapshotMetaOf<TypeConfig>,
        image: SnapshotImage,
    ) -> BoxFuture<Result<SnapshotResponse<TypeConfig>, String>>;
}

/// Accepts connections until the endpoint is closed.
///
/// Before a peer is known: a source that has not yet proven it receives our packets gets a
/// QUIC Retry first (so a forged source address costs us one small packet, no state); then
/// it waits (one of at most [`HANDSHAKE_QUEUE_MAX`], for at most [`HANDSHAKE_QUEUE_WAIT`])
/// for one of [`HANDSHAKES_MAX`] handshake slots, which it holds until its handshake ends. A peer whose certificate
/// names a member is then served without further bounds; one without a certificate takes one
/// of [`UNAUTHENTICATED_CONNECTIONS_MAX`] slots (or is closed at once when none is free) and
/// holds it until its connection ends, at most [`UNAUTHENTICATED_CONNECTION_LIFETIME`].
pub(crate) async fn accept_loop(
    endpoint: quinn::Endpoint,
    handler: Arc<dyn RpcHandler>,
    transfers: SnapshotTransfers,
) {
    let slots = Slots {
        queue: Arc::new(Semaphore::new(HANDSHAKE_QUEUE_MAX)),
        handshakes: Arc::new(Semaphore::new(HANDSHAKES_MAX)),
        unauthenticated: Arc::new(Semaphore::new(UNAUTHENTICATED_CONNECTIONS_MAX)),
    };
    while let Some(incoming) = endpoint.accept().await {
        if endpoint.open_connections() >= CONNECTIONS_MAX {
            tracing::warn!(peer = %incoming.remote_address(), "too many connections, refusing");
            incoming.refuse();
            continue;
        }
        if !incoming.remote_address_validated() && incoming.may_retry() {
            if let Err(e) = incoming.retry() {
                tracing::debug!(error = %e, "cannot send a retry");
            }
            continue;
        }
        // Newcomers wait their turn for a handshake slot (first come, first served, bounded in
        // number and time) rather than being refused the moment the slots are full: during a
        // flood the slots free within milliseconds, and a member reconnecting then gets one in
        // its turn instead of losing every race to the flood and backing off.
        let Ok(queued) = Arc::clone(&slots.queue).try_acquire_owned() else {
            tracing::debug!(peer = %incoming.remote_address(), "too many connections waiting for a handshake, refusing");
            incoming.refuse();
            continue;
        };
        let (handler, transfers, slots) = (handler.clone(), transfers.clone(), slots.clone());
        tokio::spawn(async move {
            let handshake = match timeout(HANDSHAKE_QUEUE_WAIT, slots.handshakes.acquire_owned())
                .await
            {
                Ok(Ok(handshake)) => handshake,
                _ => {
                    tracing::debug!(peer = %incoming.remote_address(), "no handshake slot in time, refusing");
                    incoming.refuse();
                    return;
                }
            };
            drop(queued);
            serve_connection(incoming, handler, transfers, (handshake, slots.unauthenticated))
                .await;
        });
    }
    tracing::debug!("accept loop ended");
}

/// The bounds on connections whose peer is not known to be a member.
#[derive(Clone)]
struct Slots {
    queue: Arc<Semaphore>,
    handshakes: Arc<Semaphore>,
    unauthenticated: Arc<Semaphore>,
}

async fn serve_connection(
    incoming: quinn::Incoming,
    handler: Arc<dyn RpcHandler>,
    transfers: SnapshotTransfers,
    (handshake, unauthenticated): (OwnedSemaphorePermit, Arc<Semaphore>),
) {
    let peer = incoming.remote_address();
    let connecting = match incoming.accept() {
        Ok(connecting) => connecting,
        Err(e) => return tracing::debug!(%peer, error = %e, "incoming connection failed"),
    };
    let conn = match timeout(UNAUTHENTICATED_HANDSHAKE_TIMEOUT, connecting).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => return tracing::info!(%peer, error = %e, "handshake failed"),
        Err(_) => return tracing::info!(%peer, "handshake timed out"),
    };
    drop(handshake);
    let caller = match caller_of(&conn) {
        Ok(caller) => caller,
        Err(e) => {
            tracing::info!(%peer, error = %e, "refusing a connection whose certificate names no member");
            conn.close(CLOSE_CODE_REFUSED.into(), b"certificate names no member");
            return;
        }
    };
    tracing::debug!(%peer, ?caller, "connection accepted");
    if let Caller::Anonymous { .. } = caller {
        let Ok(slot) = unauthenticated.try_acquire_owned() else {
            tracing::debug!(%peer, "too many connections without a certificate, closing");
            conn.close(CLOSE_CODE_BUSY.into(), b"too many joiners at once; retry");
            return;
        };
        // One stream, one answer, within the lifetime; then the slot is free again. The peer
        // closes the connection once it has read the answer (closing it here could discard
        // the answer in flight), or the deadline does.
        let served = async {
            if let Ok((send, recv)) = conn.accept_bi().await {
                serve_stream(send, recv, caller, handler, (transfers, peer.to_string())).await;
            }
            conn.closed().await
        };
        if timeout(UNAUTHENTICATED_CONNECTION_LIFETIME, served).await.is_err() {
            tracing::info!(%peer, "a connection without a certificate outlived its deadline");
            conn.close(CLOSE_CODE_DONE.into(), b"one request per unauthenticated connection");
        }
        drop(slot);
        return;
    }
    loop {
        match conn.accept_bi().await {
            Ok((send, recv)) => {
                tokio::spawn(serve_stream(
                    send,
                    recv,
                    caller.clone(),
                    handler.clone(),
                    (transfers.clone(), peer.to_string()),
                ));
            }
            Err(e) => return tracing::debug!(%peer, error = %e, "connection closed"),
        }
    }
}

/// QUIC application error code of a connection without a certificate closed because all the
/// slots for such connections are taken.
const CLOSE_CODE_BUSY: u32 = 3;

/// QUIC application error code of an unauthenticated connection closed at its deadline.
const CLOSE_CODE_DONE: u32 = 2;

/// QUIC application error code of a connection refused after the handshake.
const CLOSE_CODE_REFUSED: u32 = 1;

/// Who the peer is: a member if it presented a certificate (the TLS layer has already checked
/// that it chains to the cluster CA, or failed the handshake), else an anonymous joiner.
fn caller_of(conn: &Connection) -> Result<Caller, TransportError> {
    let chain = conn
        .peer_identity()
        .and_then(|identity| identity.downcast::<Vec<CertificateDer<'static>>>().ok());
    match chain.as_deref().and_then(|chain| chain.first()) {
        Some(cert) => Ok(Caller::Member(peer_identity(cert.as_ref())?)),
        None => Ok(Caller::Anonymous { tls_exporter: join_exporter(conn)? }),
    }
}

async fn serve_stream(
    mut send: SendStream,
    mut recv: RecvStream,
    caller: Caller,
    handler: Arc<dyn RpcHandler>,
    (transfers, peer): (SnapshotTransfers, String),
) {
    let member = match &caller {
        Caller::Member(identity) => Some(identity),
        Caller::Anonymous { .. } => None,
    };
    let max = if member.is_some() { FRAME_BYTES_MAX } else { UNAUTHENTICATED_FRAME_BYTES_MAX };
    let open =
        match timeout(REQUEST_READ_TIMEOUT, read_frame::<_, StreamOpen>(&mut recv, max)).await {
            Ok(Ok(open)) => open,
            Ok(Err(e)) => {
                tracing::info!(error = %crate::error::Chain(&e), "bad request frame");
                let _ = recv.stop(0u32.into());
                return;
            }
            Err(_) => return tracing::info!("no request before the deadline"),
        };
    let response = match (open, member) {
        (StreamOpen::Rpc(request), _) => answer(&caller, request, handler.as_ref()).await,
        (StreamOpen::Snapshot(header), Some(member)) => match handler
            .accept_snapshot(member, &header)
        {
            Ok(()) => {
                snapshot::receive(header, &mut recv, handler.as_ref(), (&transfers, &peer)).await
            }
            Err(refusal) => {
                let _ = recv.stop(0u32.into());
                refusal
            }
        },
        (StreamOpen::AppendStream, Some(member)) => {
            return serve_append_stream(send, recv, member, handler.as_ref()).await
        }
        (StreamOpen::AppendStream, None) => {
            let replies = futures_util::stream::once(async {
                AppendReply::Failed { message: UNAUTHENTICATED.into() }
            });
            return write_replies(send, Box::pin(replies)).await;
        }
        (StreamOpen::Snapshot(_), None) => refuse_unauthenticated(),
    };
    match timeout(REQUEST_READ_TIMEOUT, write_frame(&mut send, &response)).await {
        Ok(Ok(())) => {
            // Data already written is still delivered after the stream handle is dropped.
            let _ = send.finish();
        }
        Ok(Err(e)) => tracing::debug!(error = %crate::error::Chain(&e), "cannot send response"),
        Err(_) => tracing::debug!("response not sent before the deadline"),
    }
}

/// Feeds the requests read from `recv` to the handler and writes its replies back in order.
/// The stream lives as long as the leader's replication session: there is no deadline between
/// requests (the connection's idle timeout catches a dead peer), only on each reply's write.
async fn serve_append_stream(
    send: SendStream,
    recv: RecvStream,
    caller: &PeerIdentity,
    handler: &dyn RpcHandler,
) {
    let requests = futures_util::stream::unfold(recv, |mut recv| async move {
        match read_frame::<_, AppendEntriesRequest<TypeConfig>>(&mut recv, FRAME_BYTES_MAX).await {
            Ok(request) => Some((request, recv)),
            Err(FrameError::Ended) => None,
            Err(e) => {
                // The requests already taken are still answered; the leader sees the stream end
                // early and opens another.
                tracing::info!(error = %crate::error::Chain(&e), "append stream: bad request frame, ending the stream");
                let _ = recv.stop(0u32.into());
                None
            }
        }
    });
    write_replies(send, handler.append_stream(caller, Box::pin(requests))).await;
}

/// Writes append-stream replies until the last one (or a `Failed` one), then ends the stream.
async fn write_replies(mut send: SendStream, mut replies: BoxStream<'static, AppendReply>) {
    while let Some(reply) = replies.next().await {
        let last = matches!(reply, AppendReply::Failed { .. });
        match timeout(REQUEST_READ_TIMEOUT, write_frame(&mut send, &reply)).await {
            Ok(Ok(())) if !last => {}
            Ok(Ok(())) => break,
            Ok(Err(e)) => return tracing::debug!(error = %e, "append stream: cannot send a reply"),
            Err(_) => return tracing::debug!("append stream: reply not sent before the deadline"),
        }
    }
    let _ = send.finish();
}

const UNAUTHENTICATED: &str = "peer has no cluster certificate: only Join is allowed";

fn refuse_unauthenticated() -> Response {
    Response::Error { message: UNAUTHENTICATED.into(), retryable: false }
}

async fn answer(caller: &Caller, request: Request, handler: &dyn RpcHandler) -> Response {
    if matches!(caller, Caller::Anonymous { .. }) && !matches!(request, Request::Join(_)) {
        return refuse_unauthenticated();
    }
    match timeout(HANDLER_TIMEOUT, handler.handle(caller, request)).await {
        Ok(response) => response,
        Err(_) => Response::Error { message: "handler timed out".into(), retryable: true },
    }
}
