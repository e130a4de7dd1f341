//! QUIC transport between cluster members.
//!
//! - [`tls`]: the rustls/quinn configurations, built from [`trust`](crate::trust)'s CA and
//!   node identities.
//! - [`wire`]: the messages and their length-prefixed MessagePack framing.
//! - [`endpoint`]: one UDP socket per node, serving requests and making calls.
//! - [`client`] / [`server`]: the calling and answering halves of an endpoint.
//! - [`append_stream`]: the two halves of a pipelined AppendEntries stream, on the calling side.
//! - `snapshot`: streaming a snapshot image file to a peer and back into a file.
//! - [`progress`]: the snapshot transfers in flight, for `ha_status()`.
//! - [`limits`]: every size and wait bound of this module tree.
//!
//! Invariants: every RPC other than `Join` is answered only for a peer that presented a
//! certificate of the cluster CA; every read is bounded in size before allocation and every
//! wait has a deadline (an append stream may sit idle between requests: the connection's idle
//! timeout ends it if its peer is gone).

pub mod append_stream;
pub mod client;
pub mod endpoint;
pub mod error;
pub mod limits;
pub mod progress;
pub mod server;
mod snapshot;
pub mod tls;
pub mod wire;

pub use client::Client;
pub use endpoint::{join, Endpoint, JoinAnswer};
pub use error::TransportError;
pub use server::{BoxFuture, Caller, RpcHandler};

#[cfg(test)]
mod tests;
