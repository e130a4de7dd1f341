//! A cluster node: one replicated database, its Raft instance and its QUIC endpoint.
//! (Being built: this version only reports that clustering is not ready.)

use std::path::Path;

use crate::error::Error;
use crate::raft::types::NodeId;

/// `ha_init`.
pub fn init(_db: &Path, _addr: &str) -> Result<NodeId, Error> {
    Err(Error::Raft("not implemented yet".into()))
}
/// `ha_join`.
pub fn join(_db: &Path, _addr: &str, _peer: &str) -> Result<NodeId, Error> {
    Err(Error::Raft("not implemented yet".into()))
}
/// `ha_status`.
pub fn status(_db: &Path) -> Result<serde_json::Value, Error> {
    Err(Error::NotANode)
}
/// `ha_leave`.
pub fn leave(_db: &Path) -> Result<(), Error> {
    Err(Error::NotANode)
}
/// `ha_remove`.
pub fn remove(_db: &Path, _id: NodeId) -> Result<(), Error> {
    Err(Error::NotANode)
}
