//! Raft: the replicated log of page sets (openraft behind this one module tree).

pub mod network;
pub mod types;
