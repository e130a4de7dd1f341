//! The answering half of an endpoint: accepts connections and streams, enforces who may ask
//! what, and hands requests to the node layer's [`RpcHandler`].
//!
//! Invariants: a peer without a cluster certificate gets an answer only to `Join` (anything
//! else, snapshots included, is refused before the handler sees it) and can make us read at
//! most [`UNAUTHENTICATED_FRAME_BYTES_MAX`] bytes per stream. Every wait (handshake, request
//! read, handler, response write) is bounded by a constant from [`limits`](super::limits).

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
use tokio::time::timeout;

use crate::raft::types::{SnapshotImage, TypeConfig};
use crate::transport::limits::{
    CONNECTIONS_MAX, CONNECT_TIMEOUT, FRAME_BYTES_MAX, HANDLER_TIMEOUT, REQUEST_READ_TIMEOUT, UNAUTHENTICATED_FRAME_BYTES_MAX,
};
use crate::transport::progress::SnapshotTransfers;
use crate::transport::snapshot;
use crate::transport::wire::{read_frame, write_frame, AppendReply, FrameError, Request, Response, StreamOpen};

/// A boxed, sendable future: what the handler returns.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// What the node layer provides to answer requests.
pub trait RpcHandler: Send + Sync + 'static {
    /// Answers one request. `from_authenticated_peer` is false only for `Join` (the server
    /// refuses every other request from unauthenticated peers before calling this).
    fn handle(&self, from_authenticated_peer: bool, request: Request) -> BoxFuture<Response>;

    /// Answers a pipelined stream of AppendEntries requests: one reply per request, in order
    /// (a `Failed` reply ends the stream).
    fn append_stream(&self, requests: BoxStream<'static, AppendEntriesRequest<TypeConfig>>) -> BoxStream<'static, AppendReply>;

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
pub(crate) async fn accept_loop(endpoint: quinn::Endpoint, handler: Arc<dyn RpcHandler>, transfers: SnapshotTransfers) {
    while let Some(incoming) = endpoint.accept().await {
        if endpoint.open_connections() >= CONNECTIONS_MAX {
            tracing::warn!(peer = %incoming.remote_address(), "too many connections, refusing");
            incoming.refuse();
            continue;
        }
        tokio::spawn(serve_connection(incoming, handler.clone(), transfers.clone()));
    }
    tracing::debug!("accept loop ended");
}

async fn serve_connection(incoming: quinn::Incoming, handler: Arc<dyn RpcHandler>, transfers: SnapshotTransfers) {
    let peer = incoming.remote_address();
    let connecting = match incoming.accept() {
        Ok(connecting) => connecting,
        Err(e) => return tracing::debug!(%peer, error = %e, "incoming connection failed"),
    };
    let conn = match timeout(CONNECT_TIMEOUT, connecting).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => return tracing::info!(%peer, error = %e, "handshake failed"),
        Err(_) => return tracing::info!(%peer, "handshake timed out"),
    };
    let authenticated = is_authenticated(&conn);
    tracing::debug!(%peer, authenticated, "connection accepted");
    loop {
        match conn.accept_bi().await {
            Ok((send, recv)) => {
                tokio::spawn(serve_stream(send, recv, authenticated, handler.clone(), (transfers.clone(), peer.to_string())));
            }
            Err(e) => return tracing::debug!(%peer, error = %e, "connection closed"),
        }
    }
}

/// A peer is authenticated when it presented a certificate: the TLS layer has already checked
/// that any presented certificate chains to the cluster CA (or failed the handshake).
fn is_authenticated(conn: &Connection) -> bool {
    conn.peer_identity()
        .and_then(|identity| identity.downcast::<Vec<CertificateDer<'static>>>().ok())
        .is_some_and(|chain| !chain.is_empty())
}

async fn serve_stream(
    mut send: SendStream,
    mut recv: RecvStream,
    authenticated: bool,
    handler: Arc<dyn RpcHandler>,
    (transfers, peer): (SnapshotTransfers, String),
) {
    let max = if authenticated { FRAME_BYTES_MAX } else { UNAUTHENTICATED_FRAME_BYTES_MAX };
    let open = match timeout(REQUEST_READ_TIMEOUT, read_frame::<_, StreamOpen>(&mut recv, max)).await {
        Ok(Ok(open)) => open,
        Ok(Err(e)) => {
            tracing::info!(error = %e, "bad request frame");
            let _ = recv.stop(0u32.into());
            return;
        }
        Err(_) => return tracing::info!("no request before the deadline"),
    };
    let response = match open {
        StreamOpen::Rpc(request) => answer(authenticated, request, handler.as_ref()).await,
        StreamOpen::Snapshot(header) if authenticated => snapshot::receive(header, &mut recv, handler.as_ref(), (&transfers, &peer)).await,
        StreamOpen::AppendStream if authenticated => return serve_append_stream(send, recv, handler.as_ref()).await,
        StreamOpen::AppendStream => {
            let replies = futures_util::stream::once(async { AppendReply::Failed { message: UNAUTHENTICATED.into() } });
            return write_replies(send, Box::pin(replies)).await;
        }
        StreamOpen::Snapshot(_) => refuse_unauthenticated(),
    };
    match timeout(REQUEST_READ_TIMEOUT, write_frame(&mut send, &response)).await {
        Ok(Ok(())) => {
            // Data already written is still delivered after the stream handle is dropped.
            let _ = send.finish();
        }
        Ok(Err(e)) => tracing::debug!(error = %e, "cannot send response"),
        Err(_) => tracing::debug!("response not sent before the deadline"),
    }
}

/// Feeds the requests read from `recv` to the handler and writes its replies back in order.
/// The stream lives as long as the leader's replication session: there is no deadline between
/// requests (the connection's idle timeout catches a dead peer), only on each reply's write.
async fn serve_append_stream(send: SendStream, recv: RecvStream, handler: &dyn RpcHandler) {
    let requests = futures_util::stream::unfold(recv, |mut recv| async move {
        match read_frame::<_, AppendEntriesRequest<TypeConfig>>(&mut recv, FRAME_BYTES_MAX).await {
            Ok(request) => Some((request, recv)),
            Err(FrameError::Ended) => None,
            Err(e) => {
                // The requests already taken are still answered; the leader sees the stream end
                // early and opens another.
                tracing::info!(error = %e, "append stream: bad request frame, ending the stream");
                let _ = recv.stop(0u32.into());
                None
            }
        }
    });
    write_replies(send, handler.append_stream(Box::pin(requests))).await;
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

async fn answer(authenticated: bool, request: Request, handler: &dyn RpcHandler) -> Response {
    if !authenticated && !matches!(request, Request::Join { .. }) {
        return refuse_unauthenticated();
    }
    match timeout(HANDLER_TIMEOUT, handler.handle(authenticated, request)).await {
        Ok(response) => response,
        Err(_) => Response::Error { message: "handler timed out".into(), retryable: true },
    }
}
