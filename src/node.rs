//! A cluster node: one replicated database, its Raft instance and its QUIC endpoint.
//!
//! Nodes are kept per database path in this process, so every connection to one file
//! shares one node, and several files may each be a node (a whole cluster in one process).
//! The public functions here are what the `ha_*` SQL functions call.

mod admission;
mod archiving;
mod commit;
mod compaction;
pub mod database;
mod files;
mod lifecycle;
mod membership;
mod options;
mod renewal;
mod restoring;
mod rpc;
pub mod runtime;
pub mod state_dir;
mod status;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::error::Error;
use crate::raft::types::NodeId;

pub use lifecycle::Node;
pub use options::{Role, StartOptions, TokenOptions, LOG_BYTES_MAX_DEFAULT};

/// How long `ha_init` and a resume wait for the node to be ready.
pub const START_DEADLINE: Duration = Duration::from_secs(15);
/// How long `ha_join` waits to become a voter holding the cluster's data.
pub const JOIN_DEADLINE: Duration = Duration::from_secs(60);
/// How long a commit waits for the cluster before its outcome is reported unknown (plus
/// time in proportion to its size, see `commit.rs`).
pub const COMMIT_DEADLINE: Duration = Duration::from_secs(10);
/// How long admin calls (status of others, remove, leave) wait.
pub const ADMIN_DEADLINE: Duration = Duration::from_secs(15);

static NODES: Mutex<Option<HashMap<PathBuf, Arc<Node>>>> = Mutex::new(None);

fn running(db: &Path) -> Option<Arc<Node>> {
    NODES
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
        .and_then(|nodes| nodes.get(db).cloned())
}

fn remember(db: &Path, node: Arc<Node>) {
    NODES
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get_or_insert_with(HashMap::new)
        .insert(db.to_owned(), node);
}

fn forget(db: &Path) -> Option<Arc<Node>> {
    NODES.lock().unwrap_or_else(PoisonError::into_inner).as_mut().and_then(|nodes| nodes.remove(db))
}

/// Serialises starts and stops, so two connections cannot start one database twice.
static STARTING: Mutex<()> = Mutex::new(());

/// `ha_init(addr [, options])`: makes `db` node 1 of a new cluster, or resumes its node.
pub fn init(db: &Path, addr: &str, options: &StartOptions) -> Result<NodeId, Error> {
    let _starting = STARTING.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(node) = running(db) {
        return node.same_address(addr).map(|()| node.id());
    }
    let node = lifecycle::init_or_resume(db, addr, options)?;
    let id = node.id();
    remember(db, node);
    Ok(id)
}

/// `ha_join(addr, peer [, options])`: makes `db` a node of the cluster `peer` belongs to, or
/// resumes it.
pub fn join(db: &Path, addr: &str, peer: &str, options: &StartOptions) -> Result<NodeId, Error> {
    let _starting = STARTING.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(node) = running(db) {
        return node.same_address(addr).map(|()| node.id());
    }
    let node = lifecycle::join_or_resume(db, addr, peer, options)?;
    let id = node.id();
    remember(db, node);
    Ok(id)
}

/// `ha_token([options])`: a join token, issued by the leader through this node (a voter).
pub fn token(db: &Path, options: TokenOptions) -> Result<String, Error> {
    let node = running(db).ok_or(Error::NotANode)?;
    membership::issue_token(&node, options)
}

/// `ha_status()`.
pub fn status(db: &Path) -> Result<serde_json::Value, Error> {
    match running(db) {
        Some(node) => Ok(status::of(&node)),
        None => Err(Error::NotANode),
    }
}

/// `ha_leave()`: this node leaves the cluster, then stops.
pub fn leave(db: &Path) -> Result<(), Error> {
    let _starting = STARTING.lock().unwrap_or_else(PoisonError::into_inner);
    let node = running(db).ok_or(Error::NotANode)?;
    membership::leave(&node)?;
    if let Some(node) = forget(db) {
        node.stop("left the cluster");
    }
    Ok(())
}

/// `ha_barrier()`: returns the log index this node has applied up to, at least the
/// cluster's commit index at the time of the call. A removed node has no cluster to catch up
/// with, and says so.
pub fn barrier(db: &Path) -> Result<u64, Error> {
    let node = running(db).ok_or(Error::NotANode)?;
    if node.is_removed() {
        return Err(Error::Removed { node_id: node.id() });
    }
    membership::barrier(&node)
}

/// `ha_remove(node_id)`: removes another member (from any member).
pub fn remove(db: &Path, id: NodeId) -> Result<(), Error> {
    let node = running(db).ok_or(Error::NotANode)?;
    if id == node.id() {
        return Err(Error::InvalidArgument(format!(
            "node {id} is this node: use ha_leave() to remove the node you are connected to"
        )));
    }
    membership::remove(&node, id)
}

/// `ha_archive(url [, options])` / `ha_archive(NULL)`: starts, changes or stops the cluster's
/// continuous archive (from a voter; carried out by the leader, replicated through Raft).
pub fn archive(
    db: &Path,
    setting: Option<crate::archive::setting::ArchiveSetting>,
) -> Result<(), Error> {
    let node = running(db).ok_or(Error::NotANode)?;
    membership::set_archive(&node, setting)
}

/// `ha_restore(url [, options])`: rebuilds the empty database `db`, which must not be a node,
/// from an archive; returns the log index restored.
pub fn restore(db: &Path, request: &crate::archive::restore::RestoreRequest) -> Result<u64, Error> {
    let _starting = STARTING.lock().unwrap_or_else(PoisonError::into_inner);
    if running(db).is_some() {
        return Err(crate::archive::ArchiveError::NotEmpty(format!(
            "{} is a running node",
            db.display()
        ))
        .into());
    }
    restoring::restore(db, request)
}

/// `ha_transfer(node_id)`: hands leadership to voter `id` (from any member); returns once
/// `id` leads.
pub fn transfer(db: &Path, id: NodeId) -> Result<(), Error> {
    let node = running(db).ok_or(Error::NotANode)?;
    membership::transfer(&node, id)
}
