//! Continuous archive of the Raft log to an object store (S3 or a directory), and restore.

pub mod store;
