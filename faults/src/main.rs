//! The fault-injection suite: starts a cluster of real node processes behind a UDP proxy,
//! runs workloads while a seeded nemesis injects faults, then heals, converges and checks every
//! invariant. See docs/FAULTS.md.

#![deny(unsafe_code)]

mod linearizability;
mod proxy;

/// A node's Raft id, as `ha_status()` reports it.
pub type NodeId = u64;

fn main() {}
