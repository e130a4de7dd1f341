//! The node's state directory, `<database>-ha/`, beside the database file:
//!
//! ```text
//! <database>-ha/
//!   owner.lock     flock'ed by the process running the node (see `vfs::owner`)
//!   node.json      this node's identity: id, address, whether it has joined
//!   tls/           cluster CA and this node's certificate (PEM)
//!   log/           the Raft log (segments) and vote
//!   applied        the state machine's applied position
//!   snapshots/     the newest snapshot image and its metadata
//! ```

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::raft::types::NodeId;
use crate::vfs::owner::state_dir_of;

/// What `node.json` records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// This node's id.
    pub node_id: NodeId,
    /// The address it listens on.
    pub addr: String,
    /// The address other members reach it at, when not `addr` (NAT, a proxy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advertise: Option<String>,
    /// A non-voting member: it replicates but does not count for quorum.
    #[serde(default)]
    pub learner: bool,
    /// False between receiving an id from the cluster and becoming a member.
    pub joined: bool,
    /// The node left the cluster (`ha_leave`): the database is a plain one again.
    #[serde(default)]
    pub left: bool,
}

/// The state directory of one database.
#[derive(Clone, Debug)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// The state directory of the database at `db`.
    pub fn of(db: &Path) -> StateDir {
        StateDir { root: state_dir_of(db) }
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Creates the directory tree if missing.
    pub fn create(&self) -> Result<(), Error> {
        for dir in [self.root.clone(), self.tls(), self.log(), self.snapshots()] {
            fs::create_dir_all(&dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        }
        Ok(())
    }

    /// `tls/`.
    pub fn tls(&self) -> PathBuf {
        self.root.join("tls")
    }
    /// `log/`.
    pub fn log(&self) -> PathBuf {
        self.root.join("log")
    }
    /// `snapshots/`.
    pub fn snapshots(&self) -> PathBuf {
        self.root.join("snapshots")
    }

    /// Reads `node.json`; `Ok(None)` if this database was never a node.
    pub fn identity(&self) -> Result<Option<Identity>, Error> {
        let path = self.root.join("node.json");
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                Error::io(format!("{} is corrupt (fix or remove it)", path.display()), std::io::Error::other(e))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(format!("reading {}", path.display()), e)),
        }
    }

    /// Writes `node.json` durably (temp file, fsync, rename, fsync of the directory).
    pub fn save_identity(&self, identity: &Identity) -> Result<(), Error> {
        let bytes = serde_json::to_vec_pretty(identity).map_err(|e| Error::io("encoding node.json", std::io::Error::other(e)))?;
        crate::raft::small_file::replace(&self.root.join("node.json"), &bytes)
            .map_err(|e| Error::io("writing node.json", e.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_round_trips_and_missing_is_none() {
        // Goal: node.json is written durably and read back; absent means never a node.
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::of(&tmp.path().join("app.db"));
        assert_eq!(dir.identity().unwrap(), None);
        dir.create().unwrap();
        let identity = Identity {
            node_id: 3,
            addr: "127.0.0.1:7003".into(),
            advertise: Some("127.0.0.1:8003".into()),
            learner: true,
            joined: true,
            left: false,
        };
        dir.save_identity(&identity).unwrap();
        assert_eq!(dir.identity().unwrap(), Some(identity));
        assert!(dir.root().ends_with("app.db-ha"));
    }

    #[test]
    fn corrupt_identity_is_a_clear_error() {
        // Goal: a damaged node.json stops the node with the file named, never a guess.
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::of(&tmp.path().join("app.db"));
        dir.create().unwrap();
        fs::write(dir.root().join("node.json"), b"{not json").unwrap();
        let message = dir.identity().unwrap_err().to_string();
        assert!(message.contains("node.json is corrupt"), "{message}");
    }
}
