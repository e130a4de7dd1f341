//! Raft: the replicated log of page sets (openraft behind this one module tree).

pub mod alias;
pub mod log_store;
pub mod small_file;
pub mod state_machine;
pub mod types;

#[cfg(test)]
mod storage_suite;
