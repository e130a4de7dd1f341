//! The fault-injection suite: starts a cluster of real node processes behind a UDP proxy,
//! runs workloads while a seeded nemesis injects faults, then heals, converges and checks every
//! invariant. See docs/FAULTS.md.

#![deny(unsafe_code)]

mod linearizability;

fn main() {}
