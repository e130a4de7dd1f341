//! Every size, count and wait of the transport, in one place.
//!
//! Invariant: no buffer is allocated, no queue grows and no wait starts in `transport` without
//! one of these bounds applying to it. Changing a value here is a protocol-visible decision
//! only for the frame and chunk sizes (a peer with a smaller frame bound refuses our frames).

use std::time::Duration;

/// Largest encoded message (after the length prefix) we send or accept from an authenticated
/// peer. An `AppendEntries` batch of page sets must fit: the node layer bounds transaction size
/// and openraft's `max_payload_entries` so that it does.
pub const FRAME_BYTES_MAX: u32 = 512 * 1024 * 1024;

/// Largest message accepted from a peer without a cluster certificate (only `Join` is allowed
/// then), so that an anonymous peer cannot make us allocate much.
pub const UNAUTHENTICATED_FRAME_BYTES_MAX: u32 = 64 * 1024;

/// Largest answer a joining node reads from the member it asked (a certificate and the
/// member list).
pub const JOIN_RESPONSE_BYTES_MAX: u32 = 1024 * 1024;

/// Largest UDP payload QUIC's path-MTU discovery may try (the most UDP allows). On loopback
/// and on jumbo-frame networks a large transaction then travels in a few thousand datagrams
/// instead of tens of thousands, each costing system calls, encryption setup and an ack on
/// both sides; where the path is smaller, discovery settles on what gets through (quinn
/// documents any bound as safe).
pub const UDP_PAYLOAD_BYTES_MAX: u16 = 65_527;

/// Kernel buffer asked for the endpoint's UDP socket, each direction. The default (208 KiB on
/// Linux) holds three of the large datagrams above: a large transaction arriving in a burst
/// overflowed it, and every datagram dropped there made QUIC retransmit and shrink its
/// congestion window. The kernel caps the request at `net.core.rmem_max` / `wmem_max`.
pub const SOCKET_BUFFER_BYTES: usize = 4 << 20;

/// Size of one snapshot chunk read from the image file and sent as one frame.
pub const SNAPSHOT_CHUNK_BYTES: usize = 1024 * 1024;

/// Largest snapshot image we accept (a bound on disk use by one transfer).
pub const SNAPSHOT_BYTES_MAX: u64 = 1024 * 1024 * 1024 * 1024;

/// Concurrent bi-directional streams a peer may open on one connection; quinn makes further
/// `open_bi` calls wait (bounded by the caller's deadline).
pub const STREAMS_PER_CONNECTION_MAX: u32 = 128;

/// Connections the endpoint holds at once, all states counted (handshaking, established,
/// draining after a close); past it, newcomers are refused. It is a backstop: the bounds below
/// are what keep strangers in check. It is large because every stranger closed for want of a
/// slot still drains for a few round trips, and a flood must not push members' reconnections
/// past it.
pub const CONNECTIONS_MAX: usize = 4096;

/// Handshakes in progress at once (whose peer is not known yet). Past it, newcomers are
/// refused until one ends; each lasts at most [`UNAUTHENTICATED_HANDSHAKE_TIMEOUT`].
pub const HANDSHAKES_MAX: usize = 64;

/// New connections waiting for a handshake slot at once; past it, newcomers are refused.
pub const HANDSHAKE_QUEUE_MAX: usize = 512;

/// How long a new connection waits for a handshake slot before it is refused.
pub const HANDSHAKE_QUEUE_WAIT: Duration = Duration::from_secs(2);

/// Established connections without a certificate (joiners) at once. Past it, a stranger's
/// connection is closed as soon as its handshake ends. Members' connections count against
/// neither bound, so a flood of strangers cannot hold members out for longer than a handshake
/// slot takes to free.
pub const UNAUTHENTICATED_CONNECTIONS_MAX: usize = 16;

/// Deadline of a handshake whose peer is not yet known (a member's handshake takes a round
/// trip or two; a stranger holding a slot longer is dropped).
pub const UNAUTHENTICATED_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(3);

/// How long a connection without a certificate may live: long enough for one `Join` (the
/// leader commits the admission through Raft before answering).
pub const UNAUTHENTICATED_CONNECTION_LIFETIME: Duration = Duration::from_secs(10);

/// Bytes one stream may have in flight towards us before its sender must wait (QUIC flow
/// control; quinn's default, set here so the bound is ours).
pub const STREAM_RECEIVE_WINDOW_BYTES: u32 = 1_250_000;

/// Bytes all streams of one connection together may have in flight towards us: the bound on
/// what one peer can make us buffer. (quinn's default is unbounded: 128 streams of
/// [`STREAM_RECEIVE_WINDOW_BYTES`] each, 160 MB.)
pub const CONNECTION_RECEIVE_WINDOW_BYTES: u32 = 16 * 1024 * 1024;

/// Bytes we keep unacknowledged towards one peer (quinn's default).
pub const SEND_WINDOW_BYTES: u64 = 10_000_000;

/// A connection with no traffic at all for this long is dropped by QUIC, and the next call
/// dials again. A peer that was killed and restarted on the same port never closes its old
/// connection (and cannot reset it), so this is how long the leader keeps talking into the
/// void before it reaches the new process: it bounds a restarted node's catch-up delay.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(2);

/// Keep-alive pings, well under [`IDLE_TIMEOUT`], keep a live but quiet connection open.
pub const KEEP_ALIVE_INTERVAL: Duration = Duration::from_millis(500);

/// Deadline of a QUIC handshake (both sides) and of resolving a peer's host name.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// First wait before reconnecting to a peer after a failed connection attempt.
pub const RECONNECT_BACKOFF_MIN: Duration = Duration::from_millis(50);

/// Longest wait between reconnection attempts (the backoff doubles up to this).
pub const RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(2);

/// How long the server waits for the first frame of a stream once the stream is open.
pub const REQUEST_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Upper bound on the handler's answer to one request (the caller's deadline is usually
/// shorter; this only frees the server task when the caller has gone).
pub const HANDLER_TIMEOUT: Duration = Duration::from_secs(60);

/// Longest pause between two snapshot chunks, on either side.
pub const SNAPSHOT_CHUNK_TIMEOUT: Duration = Duration::from_secs(30);

/// Upper bound on a whole snapshot transfer, installation included.
pub const SNAPSHOT_TRANSFER_TIMEOUT: Duration = Duration::from_secs(3600);

/// How long shutdown waits for peers to acknowledge the close of their connections.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(2);
