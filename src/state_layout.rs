//! The layout of a node's state directory: the name of every file and directory in it.
//!
//! ```text
//! app.db-ha/                       STATE_DIR_SUFFIX, beside the database file
//!   owner.lock                     OWNER_LOCK_FILE: held by the process running the node (vfs::owner)
//!   node.json                      IDENTITY_FILE: id, address, role (node::state_dir)
//!   applied, applied.hint          APPLIED_FILE, APPLIED_HINT_FILE (raft::state_machine)
//!   tls/                           TLS_DIR (trust::certs)
//!     cluster-ca.pem, cluster-ca-key.pem, node.pem, node-key.pem
//!   log/                           LOG_DIR (raft::log_store)
//!     vote, purged, <seq:016x>.seg
//!   snapshots/                     SNAPSHOT_DIR (raft::state_machine)
//!     current, snap-<index>-<16 hex>.db, incoming-<16 hex>.db, import.tmp
//!   <any name>.tmp-<16 hex>        a temp file of an atomic replace (raft::small_file)
//! ```
//!
//! Why a leaf module of its own: the files belong to several layers (the VFS's owner lock,
//! the Raft log and state machine, the trust module's credentials, the node's identity), and
//! the lower layers must not depend on `node/`. So the names live here, where every layer can
//! take them without depending on another; each layer still owns what its files contain.
//! `node::state_dir::StateDir` builds the paths of the whole directory from these names.

use std::path::{Path, PathBuf};

/// Suffix of a node's state directory, beside the database file (`app.db` → `app.db-ha`).
pub const STATE_DIR_SUFFIX: &str = "-ha";
/// The owner lock, held by the one process that runs the node of a database.
pub const OWNER_LOCK_FILE: &str = "owner.lock";
/// The node's identity (id, address, role).
pub const IDENTITY_FILE: &str = "node.json";
/// Base name of the probe file that tells which user creating a file makes its owner.
pub const UID_PROBE_NAME: &str = ".uid-probe";
/// The state machine's applied state.
pub const APPLIED_FILE: &str = "applied";
/// The applied-state hint, rewritten in place after each apply.
pub const APPLIED_HINT_FILE: &str = "applied.hint";

/// The directory of the node's credentials.
pub const TLS_DIR: &str = "tls";
/// The cluster CA's certificate, in [`TLS_DIR`].
pub const CA_CERT_FILE: &str = "cluster-ca.pem";
/// The cluster CA's private key (voters only), in [`TLS_DIR`].
pub const CA_KEY_FILE: &str = "cluster-ca-key.pem";
/// This node's certificate, in [`TLS_DIR`].
pub const NODE_CERT_FILE: &str = "node.pem";
/// This node's private key, in [`TLS_DIR`].
pub const NODE_KEY_FILE: &str = "node-key.pem";

/// The directory of the Raft log.
pub const LOG_DIR: &str = "log";
/// The last vote, in [`LOG_DIR`].
pub const VOTE_FILE: &str = "vote";
/// The purge point, in [`LOG_DIR`].
pub const PURGED_FILE: &str = "purged";
/// Suffix of a log segment file, in [`LOG_DIR`] (the stem is its sequence number in hex).
pub const SEGMENT_SUFFIX: &str = ".seg";

/// The directory of snapshots.
pub const SNAPSHOT_DIR: &str = "snapshots";
/// The pointer to the current snapshot, in [`SNAPSHOT_DIR`].
pub const CURRENT_SNAPSHOT_FILE: &str = "current";
/// The copy a snapshot import writes before it is renamed, in [`SNAPSHOT_DIR`].
pub const SNAPSHOT_IMPORT_FILE: &str = "import.tmp";
/// Prefix of a snapshot this node built, in [`SNAPSHOT_DIR`].
pub const OWN_SNAPSHOT_PREFIX: &str = "snap-";
/// Prefix of a snapshot being received from the leader, in [`SNAPSHOT_DIR`].
pub const INCOMING_SNAPSHOT_PREFIX: &str = "incoming-";

/// Temp files of an atomic replace are named `<target name>` + this + random hex digits.
pub const TEMP_INFIX: &str = ".tmp-";
/// Suffix of the fixed-name temp files of earlier versions (`vote.tmp`) and of the snapshot
/// import copy: partial files as well.
pub const LEGACY_TEMP_SUFFIX: &str = ".tmp";

/// The state directory of the database at `db`.
pub fn state_dir_of(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(STATE_DIR_SUFFIX);
    PathBuf::from(name)
}

/// A fresh name for a snapshot being received into [`SNAPSHOT_DIR`].
pub fn incoming_snapshot_name() -> String {
    format!("{INCOMING_SNAPSHOT_PREFIX}{:016x}.db", rand::random::<u64>())
}

/// A fresh name for a snapshot this node builds of the state up to log index `index`.
pub fn own_snapshot_name(index: &str) -> String {
    format!("{OWN_SNAPSHOT_PREFIX}{index}-{:016x}.db", rand::random::<u64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: the state directory sits beside the database, named by the suffix.
    #[test]
    fn state_dir_is_beside_the_database() {
        assert_eq!(state_dir_of(Path::new("/data/app.db")), Path::new("/data/app.db-ha"));
    }

    // Goal: generated snapshot names carry the prefixes the cleanup recognises them by.
    #[test]
    fn generated_names_carry_their_prefix() {
        assert!(incoming_snapshot_name().starts_with(INCOMING_SNAPSHOT_PREFIX));
        let own = own_snapshot_name("00000000000000000007");
        assert!(own.starts_with("snap-00000000000000000007-") && own.ends_with(".db"), "{own}");
        assert_ne!(incoming_snapshot_name(), incoming_snapshot_name());
    }
}
