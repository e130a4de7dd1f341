//! Streaming a snapshot image file over one QUIC stream, and back into a file.
//!
//! Neither side holds the image in memory: the sender reads and sends one chunk of
//! [`SNAPSHOT_CHUNK_BYTES`] at a time, the receiver writes each chunk to the file before
//! reading the next. The receiver installs the file only once its size matches the header and
//! the end marker and its CRC-32 matches the sender's, and after an fsync; otherwise it
//! removes the partial file.

use std::path::Path;

use tokio::fs::File;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

use crate::raft::types::SnapshotImage;
use crate::transport::error::TransportError;
use crate::transport::limits::{
    HANDLER_TIMEOUT, SNAPSHOT_BYTES_MAX, SNAPSHOT_CHUNK_BYTES, SNAPSHOT_CHUNK_TIMEOUT,
};
use crate::transport::progress::{Direction, SnapshotTransfers};
use crate::transport::server::RpcHandler;
use crate::transport::wire::{
    read_frame, write_frame, FrameSink, Response, SnapshotFrame, SnapshotHeader, StreamOpen,
};

/// Bound on one chunk frame: a chunk plus generous room for the encoding's overhead.
const CHUNK_FRAME_BYTES_MAX: u32 = SNAPSHOT_CHUNK_BYTES as u32 + 1024;

/// Sends the header, then the file at `path` in chunks, then the end marker. Each write must
/// make progress within [`SNAPSHOT_CHUNK_TIMEOUT`].
pub(crate) async fn send<W: FrameSink>(
    stream: &mut W,
    mut header: SnapshotHeader,
    path: &Path,
    progress: (&SnapshotTransfers, &str),
) -> Result<(), TransportError> {
    let mut file = File::open(path).await?;
    header.size_bytes = file.metadata().await?.len();
    let size_bytes = header.size_bytes;
    let transfer = progress.0.start(Direction::Sending, progress.1, size_bytes);
    write_bounded(stream, &StreamOpen::Snapshot(header)).await?;
    let mut crc = crc32fast::Hasher::new();
    let mut sent_bytes = 0u64;
    let mut buf = vec![0u8; SNAPSHOT_CHUNK_BYTES];
    loop {
        let n = file.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        crc.update(&buf[..n]);
        sent_bytes += n as u64;
        write_bounded(stream, &SnapshotFrame::Chunk(buf[..n].to_vec())).await?;
        transfer.advance(n as u64);
    }
    if sent_bytes != size_bytes {
        // The image changed while being sent: it is not the snapshot the header describes.
        return Err(TransportError::Snapshot(format!(
            "image changed while sending: {sent_bytes} != {size_bytes} bytes"
        )));
    }
    write_bounded(stream, &SnapshotFrame::End { size_bytes, crc32: crc.finalize() }).await?;
    transfer.finish();
    Ok(())
}

async fn write_bounded<W: FrameSink, T: serde::Serialize>(
    stream: &mut W,
    msg: &T,
) -> Result<(), TransportError> {
    timeout(SNAPSHOT_CHUNK_TIMEOUT, write_frame(stream, msg))
        .await
        .map_err(|_| TransportError::timeout("snapshot chunk send", SNAPSHOT_CHUNK_TIMEOUT))??;
    Ok(())
}

/// Receives the chunks following `header` into a fresh file and installs it; the result is
/// the response to send back.
pub(crate) async fn receive(
    header: SnapshotHeader,
    stream: &mut quinn::RecvStream,
    handler: &dyn RpcHandler,
    progress: (&SnapshotTransfers, &str),
) -> Response {
    let path = handler.incoming_snapshot_path();
    let SnapshotHeader { vote, meta, size_bytes } = header;
    let transfer = progress.0.start(Direction::Receiving, progress.1, size_bytes);
    if let Err(e) = receive_file(stream, size_bytes, &path, |n| transfer.advance(n)).await {
        tracing::warn!(error = %crate::error::Chain(&e), path = %path.display(), "snapshot transfer failed");
        if let Err(rm) = tokio::fs::remove_file(&path).await {
            tracing::debug!(error = %rm, "cannot remove partial snapshot");
        }
        return Response::Error { message: crate::error::Chain(&e).to_string(), retryable: true };
    }
    let install = handler.install_snapshot(vote, meta, SnapshotImage { path });
    match timeout(HANDLER_TIMEOUT, install).await {
        Ok(Ok(response)) => {
            transfer.finish();
            Response::Snapshot(response)
        }
        Ok(Err(message)) => Response::Error { message, retryable: true },
        Err(_) => {
            Response::Error { message: "snapshot installation timed out".into(), retryable: true }
        }
    }
}

async fn receive_file(
    stream: &mut quinn::RecvStream,
    size_bytes: u64,
    path: &Path,
    advance: impl Fn(u64),
) -> Result<(), TransportError> {
    if size_bytes > SNAPSHOT_BYTES_MAX {
        return Err(TransportError::Snapshot(format!(
            "image of {size_bytes} bytes exceeds {SNAPSHOT_BYTES_MAX}"
        )));
    }
    // Private and never through a link: the image is the whole database.
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(crate::raft::small_file::PRIVATE_FILE_MODE)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .await?;
    let mut crc = crc32fast::Hasher::new();
    let mut received_bytes = 0u64;
    loop {
        let frame = timeout(
            SNAPSHOT_CHUNK_TIMEOUT,
            read_frame::<_, SnapshotFrame>(stream, CHUNK_FRAME_BYTES_MAX),
        )
        .await
        .map_err(|_| TransportError::timeout("snapshot chunk receive", SNAPSHOT_CHUNK_TIMEOUT))??;
        match frame {
            SnapshotFrame::Chunk(data) => {
                received_bytes += data.len() as u64;
                if received_bytes > size_bytes {
                    return Err(TransportError::Snapshot("more bytes than announced".into()));
                }
                crc.update(&data);
                file.write_all(&data).await?;
                advance(data.len() as u64);
            }
            SnapshotFrame::End { size_bytes: end_size, crc32 } => {
                if end_size != size_bytes || received_bytes != size_bytes {
                    return Err(TransportError::Snapshot(format!(
                        "size mismatch: header {size_bytes}, end {end_size}, received {received_bytes}"
                    )));
                }
                if crc32 != crc.clone().finalize() {
                    return Err(TransportError::Snapshot("CRC-32 mismatch".into()));
                }
                break;
            }
        }
    }
    // The image is handed to the state machine as durable data.
    file.sync_all().await?;
    Ok(())
}
