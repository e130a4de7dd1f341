//! The calling side of an `AppendStream` (see [`wire`](super::wire)): a sender that writes
//! AppendEntries requests as they come and a receiver that reads the answers in order.
//!
//! The two halves are separate values so that a writer blocked by flow control never keeps
//! answers from being read, and the reverse.

use openraft::raft::AppendEntriesRequest;
use quinn::{RecvStream, SendStream};

use crate::raft::types::TypeConfig;
use crate::transport::error::TransportError;
use crate::transport::limits::FRAME_BYTES_MAX;
use crate::transport::wire::{read_frame, write_frame, AppendReply, FrameError};

/// Writes the requests of one append stream.
pub struct AppendSender {
    pub(crate) send: SendStream,
}

impl AppendSender {
    /// Sends one request; its answer comes through the paired [`AppendReceiver`].
    pub async fn send(
        &mut self,
        request: &AppendEntriesRequest<TypeConfig>,
    ) -> Result<(), TransportError> {
        write_frame(&mut self.send, request).await.map_err(TransportError::from)
    }

    /// Tells the server no more requests follow; it ends the stream after the last answer.
    pub fn finish(mut self) {
        // The stream may already be reset by the peer: its receiver reports that.
        let _ = self.send.finish();
    }
}

/// Reads the answers of one append stream, in request order.
pub struct AppendReceiver {
    pub(crate) recv: RecvStream,
}

impl AppendReceiver {
    /// The next answer, or `None` once the server has ended the stream.
    pub async fn next(&mut self) -> Result<Option<AppendReply>, TransportError> {
        match read_frame::<_, AppendReply>(&mut self.recv, FRAME_BYTES_MAX).await {
            Ok(reply) => Ok(Some(reply)),
            Err(FrameError::Ended) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}
