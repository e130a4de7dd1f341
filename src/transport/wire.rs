//! What travels on a stream, and how it is framed.
//!
//! Frame: a 4-byte big-endian length `n`, then `n` bytes of MessagePack (rmp-serde, structs as
//! maps with field names). `n` is checked against the reader's bound *before* any buffer is
//! allocated, so a peer cannot make us allocate more than that bound; decoding never panics and
//! every failure is a [`FrameError`].
//!
//! Page images are not copied on either side: a frame is written as the encoder's chunks with
//! the images by reference, and a received frame, read whole into one buffer, is decoded with
//! its images as slices of that buffer (see [`shared`]). A node thus holds a replicated
//! transaction once, not once per copy made on the way.
//!
//! A stream opens with one [`StreamOpen`] frame:
//! - `Rpc(request)`: the server answers with one [`Response`] frame and finishes the stream.
//! - `Snapshot(header)`: the client then sends [`SnapshotFrame::Chunk`] frames of at most
//!   [`SNAPSHOT_CHUNK_BYTES`](crate::transport::limits::SNAPSHOT_CHUNK_BYTES) with the image
//!   file's bytes in order, then one [`SnapshotFrame::End`] with the total size and CRC-32;
//!   the server answers with one [`Response`] (`Snapshot` or `Error`).
//! - `AppendStream`: the client then sends `AppendEntriesRequest` frames as Raft produces them,
//!   without waiting for answers; the server answers each with one [`AppendReply`] frame, in
//!   order, until the client finishes its side. One stream carries a whole replication
//!   session, so a commit neither opens a stream nor waits behind the previous request's
//!   answer (openraft's pipelined replication).

use std::collections::BTreeMap;

use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, StreamAppendResult,
    TransferLeaderRequest, TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::type_config::alias::{SnapshotMetaOf, VoteOf};
use std::future::Future;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::raft::shared;
use crate::raft::types::{Member, NodeId, TypeConfig};
use crate::transport::limits::FRAME_BYTES_MAX;
use crate::trust::token::JoinProof;
use crate::trust::{ClusterId, Role, TokenId};

/// Bytes of the length prefix.
const PREFIX_BYTES: usize = 4;

/// Why a frame could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The frame is longer than the bound in force (sender or receiver side).
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Announced (or encoded) length.
        len: u64,
        /// The bound.
        max: u32,
    },
    /// The stream ended before a frame began (the peer sent nothing more).
    #[error("stream ended before a frame")]
    Ended,
    /// The stream ended inside a frame.
    #[error("stream ended inside a frame")]
    Truncated,
    /// The bytes are not a valid message of the expected type.
    #[error("cannot decode message")]
    Decode(#[from] rmp_serde::decode::Error),
    /// The message could not be encoded.
    #[error("cannot encode message")]
    Encode(#[from] rmp_serde::encode::Error),
    /// Reading or writing the stream failed.
    #[error("stream I/O")]
    Io(#[from] std::io::Error),
}

/// A request from one member to another (or from a joining node).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Request {
    /// Raft log replication and heartbeats.
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    /// Raft election.
    Vote(VoteRequest<TypeConfig>),
    /// Raft pre-vote (asks whether a vote would be granted, changes nothing).
    PreVote(VoteRequest<TypeConfig>),
    /// The leader hands leadership to the receiver.
    TransferLeader(TransferLeaderRequest<TypeConfig>),
    /// A node without credentials asks to join with a token; the only request accepted from
    /// an unauthenticated peer.
    Join(JoinRequest),
    /// Cluster administration, defined by the node layer.
    Admin(AdminRequest),
}

/// Administration requests. The node layer owns their meaning and adds variants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdminRequest {
    /// Make a node that was given an id by `Join`, and is now running, a voting member
    /// (answered once it is one, or with an error).
    AddMember {
        /// The id `Join` assigned.
        node_id: NodeId,
        /// The address members reach it at.
        addr: String,
        /// Keep it a non-voting member (a read replica that does not count for quorum).
        #[serde(default)]
        learner: bool,
    },
    /// Remove a member from the cluster.
    Remove {
        /// The member to remove.
        node_id: NodeId,
    },
    /// Report what the receiver knows of the cluster.
    Status,
    /// Hand leadership to this voter (answered once it leads, or with an error).
    Transfer {
        /// The voter to lead next.
        node_id: NodeId,
    },
    /// The leader's linearizable read position: the index a node must have applied for a
    /// read to see everything committed before this request (Raft's read-index).
    ReadIndex,
    /// Issue a join token (voters only; carried out by the leader).
    IssueToken {
        /// The role the token grants.
        role: Role,
        /// Seconds until it expires.
        ttl_s: u64,
        /// How many joins it admits.
        uses: u32,
        /// Addresses written into the token for the joiner to try.
        seeds: Vec<String>,
    },
    /// The cluster CA's signing key, for a voter that does not hold it yet (voters only).
    FetchCaKey,
    /// A new certificate for the caller (named by its current one), for this public key.
    Renew {
        /// The caller's new public key (SubjectPublicKeyInfo, DER).
        #[serde(with = "serde_bytes")]
        public_key_der: Vec<u8>,
    },
    /// Start, change or stop (None) the continuous archive (voters only; carried out by the
    /// leader, through Raft). The setting may hold the store's credentials: this travels only
    /// between members, over their authenticated connection.
    SetArchive {
        /// The new setting.
        setting: Option<crate::archive::setting::ArchiveSetting>,
    },
    /// Entries `first..=last` of the receiver's own log, as archive records, for an uploading
    /// leader whose log lacks them (it installed a snapshot). Voters only; answered by the
    /// receiver itself, never forwarded.
    ArchiveRecords {
        /// The first entry wanted.
        first: u64,
        /// The last entry wanted (the answer may stop earlier, at its size bound).
        last: u64,
    },
}

/// Answers to [`AdminRequest`]s.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdminResponse {
    /// The request was carried out.
    Done,
    /// Answer to `ReadIndex`.
    ReadIndex {
        /// Log index to wait for.
        index: u64,
    },
    /// Answer to `IssueToken`: the token's text (a secret).
    Token(Secret),
    /// Answer to `FetchCaKey`: the CA key, PEM (a secret).
    CaKey(Secret),
    /// Answer to `Renew`: the caller's new certificate, PEM.
    Certificate(String),
    /// Answer to `ArchiveRecords`: `count` records from `first` on, encoded as in an archive
    /// segment's body (docs/ARCHIVE.md).
    ArchiveRecords {
        /// The index of the first record.
        first: u64,
        /// How many records `raw` holds.
        count: u64,
        /// The records.
        #[serde(with = "serde_bytes")]
        raw: Vec<u8>,
    },
    /// The receiver's view of the cluster.
    Status {
        /// The receiver's id.
        node_id: NodeId,
        /// The leader it knows of, if any.
        leader: Option<NodeId>,
        /// The current members.
        members: BTreeMap<NodeId, Member>,
    },
}

/// A text that must never be logged (a join token, a private key): its `Debug` hides it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// A joining node's request: which token it holds, proven without sending its secret, and
/// the public key the leader is to certify.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinRequest {
    /// The token's id (public).
    pub token_id: TokenId,
    /// The role asked for (the token must allow it).
    pub role: Role,
    /// `host:port` at which members will reach the new node.
    pub addr: String,
    /// The joiner's own public key (SubjectPublicKeyInfo, DER); its private key never leaves it.
    #[serde(with = "serde_bytes")]
    pub public_key_der: Vec<u8>,
    /// Signature by the token's key over this TLS session's exporter, the key, role and address.
    pub proof: JoinProof,
}

/// What a joining node receives: everything it needs to become a member, no secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinGrant {
    /// The id assigned to the new node (allocated through Raft).
    pub node_id: NodeId,
    /// The cluster's id, as in every member certificate.
    pub cluster_id: ClusterId,
    /// The cluster CA certificate, PEM (public).
    pub ca_cert_pem: String,
    /// The new node's certificate, signed by the CA, for the key it sent.
    pub cert_pem: String,
    /// The members, as the leader knows them.
    pub members: BTreeMap<NodeId, Member>,
}

/// Answers; each request kind has its own, and any request may be answered with `Error`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Response {
    /// Answer to `AppendEntries`.
    AppendEntries(AppendEntriesResponse<TypeConfig>),
    /// Answer to `Vote`.
    Vote(VoteResponse<TypeConfig>),
    /// Answer to `PreVote`.
    PreVote(VoteResponse<TypeConfig>),
    /// Answer to `TransferLeader`.
    TransferLeader(TransferLeaderResponse<TypeConfig>),
    /// Answer to `Join`.
    Join(JoinGrant),
    /// Answer to `Join` on a member that does not lead: ask the leader, at this address.
    Redirect {
        /// The leader's address.
        leader_addr: String,
    },
    /// The caller's certificate was revoked (it was removed from the cluster): nothing it
    /// asks will be answered again.
    Revoked {
        /// The caller's node id.
        node_id: NodeId,
    },
    /// Answer to `Admin`.
    Admin(AdminResponse),
    /// Answer to a snapshot stream, once the image is installed.
    Snapshot(SnapshotResponse<TypeConfig>),
    /// The request could not be handled.
    Error {
        /// Why.
        message: String,
        /// Whether sending the same request again may succeed.
        retryable: bool,
    },
}

impl Response {
    /// The variant's name, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Response::AppendEntries(_) => "AppendEntries",
            Response::Vote(_) => "Vote",
            Response::PreVote(_) => "PreVote",
            Response::TransferLeader(_) => "TransferLeader",
            Response::Join(_) => "Join",
            Response::Redirect { .. } => "Redirect",
            Response::Revoked { .. } => "Revoked",
            Response::Admin(_) => "Admin",
            Response::Snapshot(_) => "Snapshot",
            Response::Error { .. } => "Error",
        }
    }
}

/// The first frame of every stream: says what the stream carries.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum StreamOpen {
    /// One request, one response.
    Rpc(Request),
    /// A snapshot transfer (see the module docs).
    Snapshot(SnapshotHeader),
    /// A pipelined stream of AppendEntries requests (see the module docs).
    AppendStream,
}

/// The server's answer to one request of an `AppendStream`, in request order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum AppendReply {
    /// Raft's verdict: the log id now matched, or why the entries were refused.
    Appended(StreamAppendResult<TypeConfig>),
    /// The node could not take the request (stopping, or not started); the stream ends.
    Failed {
        /// Why.
        message: String,
    },
}

/// Opens a snapshot transfer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnapshotHeader {
    /// The sending leader's vote.
    pub vote: VoteOf<TypeConfig>,
    /// What the image contains.
    pub meta: SnapshotMetaOf<TypeConfig>,
    /// Size of the image file in bytes.
    pub size_bytes: u64,
}

/// The frames after a [`SnapshotHeader`].
#[derive(Clone, Serialize, Deserialize)]
pub enum SnapshotFrame {
    /// The next bytes of the image.
    Chunk(#[serde(with = "serde_bytes")] Vec<u8>),
    /// The image is complete.
    End {
        /// Total bytes sent; must equal the header's size.
        size_bytes: u64,
        /// CRC-32 (IEEE) of all bytes sent.
        crc32: u32,
    },
}

impl std::fmt::Debug for SnapshotFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SnapshotFrame::Chunk(data) => write!(f, "Chunk({} bytes)", data.len()),
            SnapshotFrame::End { size_bytes, crc32 } => {
                write!(f, "End({size_bytes} bytes, crc {crc32:08x})")
            }
        }
    }
}

/// Bodies up to this size are sent as one chunk with their prefix (one small copy); larger
/// ones as the encoder's chunks, page images by reference.
const SINGLE_CHUNK_BYTES_MAX: usize = 64 << 10;

/// Encodes `msg` as one frame (prefix included), refusing frames over [`FRAME_BYTES_MAX`].
/// The frame is a list of chunks: page images are not copied (see [`shared`]).
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<Bytes>, FrameError> {
    let body = shared::encode(msg)?;
    let len = u32::try_from(body.len())
        .ok()
        .filter(|len| *len <= FRAME_BYTES_MAX)
        .ok_or(FrameError::TooLarge { len: body.len() as u64, max: FRAME_BYTES_MAX })?;
    if body.len() <= SINGLE_CHUNK_BYTES_MAX {
        let mut buf = Vec::with_capacity(PREFIX_BYTES + body.len());
        buf.extend_from_slice(&len.to_be_bytes());
        for chunk in body.iter() {
            buf.extend_from_slice(chunk);
        }
        return Ok(vec![Bytes::from(buf)]);
    }
    let mut chunks = body.into_vec();
    chunks.insert(0, Bytes::copy_from_slice(&len.to_be_bytes()));
    Ok(chunks)
}

/// Decodes one complete frame held in `buf` (prefix included), accepting at most `max` bytes
/// of body. Trailing bytes after the frame are an error.
pub fn decode<T: DeserializeOwned>(buf: &[u8], max: u32) -> Result<T, FrameError> {
    let prefix: [u8; PREFIX_BYTES] =
        buf.get(..PREFIX_BYTES).and_then(|p| p.try_into().ok()).ok_or(FrameError::Truncated)?;
    let len = u32::from_be_bytes(prefix);
    check_len(len, max)?;
    let body = &buf[PREFIX_BYTES..];
    let announced = len as usize;
    if body.len() < announced {
        return Err(FrameError::Truncated);
    }
    if body.len() > announced {
        return Err(FrameError::TooLarge { len: body.len() as u64, max: len });
    }
    Ok(rmp_serde::from_slice(body)?)
}

fn check_len(len: u32, max: u32) -> Result<(), FrameError> {
    if len > max {
        return Err(FrameError::TooLarge { len: u64::from(len), max });
    }
    Ok(())
}

/// Where frames are written.
pub trait FrameSink {
    /// Writes `chunks` in order, all of them.
    fn write_chunks(
        &mut self,
        chunks: &mut [Bytes],
    ) -> impl Future<Output = std::io::Result<()>> + Send;
}

impl FrameSink for quinn::SendStream {
    // QUIC keeps the chunks themselves until the peer acknowledges them (within its bounded
    // send window), so a page image goes to the network without being copied.
    async fn write_chunks(&mut self, chunks: &mut [Bytes]) -> std::io::Result<()> {
        Ok(self.write_all_chunks(chunks).await?)
    }
}

/// Writes `msg` as one frame.
pub async fn write_frame<W, T>(writer: &mut W, msg: &T) -> Result<(), FrameError>
where
    W: FrameSink,
    T: Serialize,
{
    let mut chunks = encode(msg)?;
    writer.write_chunks(&mut chunks).await?;
    Ok(())
}

/// Reads one frame of at most `max` body bytes and decodes it.
pub async fn read_frame<R, T>(reader: &mut R, max: u32) -> Result<T, FrameError>
where
    R: AsyncRead + Unpin,
    T: DeserializeOwned,
{
    let mut prefix = [0u8; PREFIX_BYTES];
    let first = reader.read(&mut prefix).await?;
    if first == 0 {
        return Err(FrameError::Ended);
    }
    read_exact(reader, &mut prefix[first..]).await?;
    let len = u32::from_be_bytes(prefix);
    // The bound is checked before the buffer exists: this is the allocation guard.
    check_len(len, max)?;
    let mut body = vec![0u8; len as usize];
    read_exact(reader, &mut body).await?;
    // Page images become slices of this buffer rather than copies of it.
    Ok(shared::decode(&Bytes::from(body))?)
}

async fn read_exact<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut [u8],
) -> Result<(), FrameError> {
    match reader.read_exact(buf).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(FrameError::Truncated),
        Err(e) => Err(FrameError::Io(e)),
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;
    use crate::transport::limits::UNAUTHENTICATED_FRAME_BYTES_MAX;

    impl FrameSink for tokio::io::DuplexStream {
        async fn write_chunks(&mut self, chunks: &mut [Bytes]) -> std::io::Result<()> {
            for chunk in chunks {
                self.write_all(chunk).await?;
            }
            Ok(())
        }
    }

    fn flat(chunks: Vec<Bytes>) -> Vec<u8> {
        chunks.concat()
    }

    fn status() -> Response {
        let mut members = BTreeMap::new();
        members.insert(1, Member { addr: "127.0.0.1:7001".into() });
        Response::Admin(AdminResponse::Status { node_id: 1, leader: Some(1), members })
    }

    // Goal: requests and responses survive encode/decode unchanged, in memory and on a stream.
    #[tokio::test]
    async fn round_trip_in_memory_and_on_a_stream() {
        let join = JoinRequest {
            token_id: crate::trust::TokenId(9),
            role: Role::Learner,
            addr: "10.0.0.2:7000".into(),
            public_key_der: vec![1, 2, 3],
            proof: JoinProof([5; 64]),
        };
        let req = StreamOpen::Rpc(Request::Join(join.clone()));
        let back: StreamOpen = decode(&flat(encode(&req).unwrap()), FRAME_BYTES_MAX).unwrap();
        assert!(matches!(back, StreamOpen::Rpc(Request::Join(ref got)) if *got == join));

        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        write_frame(&mut a, &status()).await.unwrap();
        write_frame(&mut a, &SnapshotFrame::Chunk(vec![7u8; 3000])).await.unwrap();
        let got: Response = read_frame(&mut b, FRAME_BYTES_MAX).await.unwrap();
        assert!(
            matches!(got, Response::Admin(ref s) if matches!(status(), Response::Admin(ref t) if t == s))
        );
        let chunk: SnapshotFrame = read_frame(&mut b, FRAME_BYTES_MAX).await.unwrap();
        assert!(matches!(chunk, SnapshotFrame::Chunk(ref d) if d == &vec![7u8; 3000]));
        drop(a);
        assert!(matches!(
            read_frame::<_, Response>(&mut b, FRAME_BYTES_MAX).await,
            Err(FrameError::Ended)
        ));
    }

    // Goal: a length prefix over the bound is refused before reading (or allocating) the body.
    #[tokio::test]
    async fn oversize_prefix_is_refused_before_allocation() {
        let (mut a, mut b) = tokio::io::duplex(64);
        // Announce 4 GiB - 1 and send no body: a reader that allocated or waited would hang/OOM.
        a.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
        let err =
            read_frame::<_, Request>(&mut b, UNAUTHENTICATED_FRAME_BYTES_MAX).await.unwrap_err();
        assert!(
            matches!(err, FrameError::TooLarge { len, max } if len == u64::from(u32::MAX) && max == UNAUTHENTICATED_FRAME_BYTES_MAX)
        );
        // The same frame within the general bound but over the anonymous one is also refused.
        let big = flat(encode(&SnapshotFrame::Chunk(vec![0u8; 100_000])).unwrap());
        assert!(matches!(
            decode::<SnapshotFrame>(&big, UNAUTHENTICATED_FRAME_BYTES_MAX),
            Err(FrameError::TooLarge { .. })
        ));
    }

    // Goal: an encoder refuses to produce a frame the receiver would refuse.
    #[test]
    fn encoder_refuses_oversize_message() {
        let huge = SnapshotFrame::Chunk(vec![0u8; FRAME_BYTES_MAX as usize + 1]);
        assert!(matches!(encode(&huge), Err(FrameError::TooLarge { .. })));
    }

    // Goal: garbage, truncated and trailing bytes give typed errors, never a panic.
    #[tokio::test]
    async fn garbage_and_truncation_are_typed_errors() {
        let mut garbage = 5u32.to_be_bytes().to_vec();
        garbage.extend_from_slice(&[0xc1, 0xff, 0x00, 0x13, 0x37]); // 0xc1 is never valid msgpack
        assert!(matches!(decode::<Request>(&garbage, FRAME_BYTES_MAX), Err(FrameError::Decode(_))));

        let good = flat(encode(&Request::Admin(AdminRequest::Status)).unwrap());
        assert!(matches!(
            decode::<Request>(&good[..good.len() - 1], FRAME_BYTES_MAX),
            Err(FrameError::Truncated)
        ));
        assert!(matches!(
            decode::<Request>(&good[..2], FRAME_BYTES_MAX),
            Err(FrameError::Truncated)
        ));
        let mut long = good.clone();
        long.push(0);
        assert!(matches!(
            decode::<Request>(&long, FRAME_BYTES_MAX),
            Err(FrameError::TooLarge { .. })
        ));
        // A valid message of the wrong type is a decode error too.
        assert!(matches!(
            decode::<SnapshotFrame>(&good, FRAME_BYTES_MAX),
            Err(FrameError::Decode(_))
        ));

        let (mut a, mut b) = tokio::io::duplex(64);
        a.write_all(&good[..good.len() - 2]).await.unwrap();
        drop(a);
        assert!(matches!(
            read_frame::<_, Request>(&mut b, FRAME_BYTES_MAX).await,
            Err(FrameError::Truncated)
        ));

        // Every prefix of a valid frame, and a few bit flips, decode to an error or a value, no panic.
        for cut in 0..good.len() {
            let _ = decode::<Request>(&good[..cut], FRAME_BYTES_MAX);
        }
        for i in PREFIX_BYTES..good.len() {
            let mut flipped = good.clone();
            flipped[i] ^= 0xff;
            let _ = decode::<Request>(&flipped, FRAME_BYTES_MAX);
        }
    }
}

#[cfg(test)]
#[path = "wire_properties.rs"]
mod properties;
