//! Raft: the replicated log of page sets (openraft behind this one module tree).
//!
//! - [`types`]: what an entry carries and the openraft type configuration.
//! - [`page_data`], [`shared`]: page images held once and shared, encoded and decoded
//!   without copying them.
//! - [`log_store`]: the durable, checksummed log.
//! - [`state_machine`]: applies committed page sets to the database; snapshots.
//! - [`network`]: openraft's network over our QUIC transport.
//! - [`bounds`]: the terms and indexes a peer may send, checked before openraft sees them.

pub mod alias;
pub mod bounds;
pub mod log_store;
pub mod network;
pub mod page_data;
pub mod shared;
pub mod small_file;
pub mod state_machine;
pub mod storage_cause;
pub mod types;

#[cfg(test)]
mod storage_suite;
