//! The node's state directory, `<database>-ha/`, beside the database file:
//!
//! ```text
//! <database>-ha/
//!   owner.lock     flock'ed by the process running the node (see `vfs::owner`)
//!   node.json      this node's identity: id, address, whether it has joined (checksummed)
//!   tls/           cluster CA and this node's certificate (PEM)
//!   log/           the Raft log (segments) and vote
//!   applied        the state machine's applied position
//!   snapshots/     the newest snapshot image and its metadata
//! ```
//!
//! Invariants:
//! - the directory and every directory under it are private to the user running the node:
//!   created 0700, and one that is open to group or others, owned by another user, or a
//!   symbolic link is refused at start ([`StateDir::create`]) with the fix in the message,
//!   never silently used or repaired: it holds the whole database and the cluster's keys;
//! - every file in it is created 0600 (`raft::small_file::private_file_options`) and state
//!   files are replaced atomically (`raft::small_file::replace`);
//! - `node.json` carries a crc32 of its identity, so a damaged file is refused ("node.json is
//!   corrupt") rather than starting the node under another id or address.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Fault};
use crate::raft::small_file::{self, private_file_options};
use crate::raft::types::NodeId;
use crate::state_layout::{
    state_dir_of, IDENTITY_FILE, LOG_DIR, SNAPSHOT_DIR, TLS_DIR, UID_PROBE_NAME,
};
/// Permission bits of group and others: none may be set on a state directory.
const GROUP_OTHER_BITS: u32 = 0o077;

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

/// `node.json` as stored: the identity and a crc32 of its canonical encoding.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredIdentity {
    identity: serde_json::Value,
    crc32: u32,
}

/// crc32 of the canonical encoding of an identity: compact JSON of the parsed value, so that
/// the check does not depend on the file's layout (indentation), only on its content.
fn identity_crc(value: &serde_json::Value) -> Result<u32, serde_json::Error> {
    Ok(crc32fast::hash(&serde_json::to_vec(value)?))
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

    /// Creates the directory tree if missing (every directory 0700), then checks that it is
    /// private to this process's user ([`StateDir::check_private`]). The root is checked
    /// before anything is created under it, so nothing is ever made through a planted link.
    pub fn create(&self) -> Result<(), Error> {
        // Only what is missing: whatever is there (a link, a file) is for the check to judge.
        let create = |dir: &Path| match fs::symlink_metadata(dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => small_file::create_private_dir(dir)
                .map_err(|e| Error::io(Fault::Open, format!("creating {}", dir.display()), e)),
            _ => Ok(()),
        };
        create(&self.root)?;
        let uid = self.check_root()?;
        for dir in self.subdirs() {
            create(&dir)?;
            check_dir(&self.root, &dir, uid)?;
        }
        Ok(())
    }

    /// Refuses a state directory (or a directory under it) that another local user could read
    /// or change: open to group or others, owned by another user than this process's, or a
    /// symbolic link. The error names the directory, what is wrong and the fix.
    pub fn check_private(&self) -> Result<(), Error> {
        let uid = self.check_root()?;
        for dir in self.subdirs() {
            match fs::symlink_metadata(&dir) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                _ => check_dir(&self.root, &dir, uid)?,
            }
        }
        Ok(())
    }

    /// Checks the root and returns the uid this process creates files with.
    fn check_root(&self) -> Result<u32, Error> {
        let meta = dir_metadata(&self.root, &self.root)?;
        let uid = match creating_uid(&self.root) {
            Ok(uid) => uid,
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                return Err(Error::InsecureStateDir {
                    dir: self.root.display().to_string(),
                    problem: format!(
                        "it is owned by uid {} and this process cannot create files in it",
                        meta.uid()
                    ),
                    fix: format!(
                        "run the node as uid {}, or chown -R <the node's user> {}",
                        meta.uid(),
                        self.root.display()
                    ),
                })
            }
            Err(e) => {
                let context = format!("creating a file in {}", self.root.display());
                return Err(Error::io(Fault::Open, context, e));
            }
        };
        check_dir(&self.root, &self.root, uid)?;
        Ok(uid)
    }

    /// Removes the partial files a crash can leave in the root and in `tls/` (temp files of
    /// `small_file::replace`); `log/` and `snapshots/` are cleaned by their stores when they
    /// open. Call only with the owner lock held, before the node starts writing.
    pub fn remove_partial_files(&self) -> Result<(), Error> {
        for dir in [self.root.clone(), self.tls()] {
            match small_file::remove_temp_files(&dir) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(Error::io(
                        Fault::Io,
                        format!("removing partial files in {}", dir.display()),
                        e,
                    ))
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn subdirs(&self) -> [PathBuf; 3] {
        [self.tls(), self.log(), self.snapshots()]
    }

    /// `tls/`.
    pub fn tls(&self) -> PathBuf {
        self.root.join(TLS_DIR)
    }
    /// `log/`.
    pub fn log(&self) -> PathBuf {
        self.root.join(LOG_DIR)
    }
    /// `snapshots/`.
    pub fn snapshots(&self) -> PathBuf {
        self.root.join(SNAPSHOT_DIR)
    }

    /// Reads `node.json` and verifies its checksum; `Ok(None)` if this database was never a
    /// node. A file of the layout before checksums (the bare identity) is still read, with a
    /// warning; it gains its checksum at its next write.
    pub fn identity(&self) -> Result<Option<Identity>, Error> {
        let path = self.root.join(IDENTITY_FILE);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(Fault::Read, format!("reading {}", path.display()), e)),
        };
        let corrupt = |reason: String| {
            Error::io(
                Fault::Corrupt,
                format!("{} is corrupt (fix or remove it)", path.display()),
                io::Error::new(io::ErrorKind::InvalidData, reason),
            )
        };
        let value: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
        let identity = if value.get("crc32").is_none() && value.get("node_id").is_some() {
            tracing::warn!(path = %path.display(), "node.json has no checksum (written by an older version)");
            value
        } else {
            let stored: StoredIdentity =
                serde_json::from_value(value).map_err(|e| corrupt(e.to_string()))?;
            let crc = identity_crc(&stored.identity).map_err(|e| corrupt(e.to_string()))?;
            if crc != stored.crc32 {
                return Err(corrupt(format!(
                    "checksum mismatch: stored {:#010x}, computed {crc:#010x}",
                    stored.crc32
                )));
            }
            stored.identity
        };
        serde_json::from_value(identity).map(Some).map_err(|e| corrupt(e.to_string()))
    }

    /// Writes `node.json` atomically and durably (`small_file::replace`), with the checksum.
    pub fn save_identity(&self, identity: &Identity) -> Result<(), Error> {
        let encoding =
            |e: serde_json::Error| Error::io(Fault::Internal, "encoding node.json", e.into());
        let value = serde_json::to_value(identity).map_err(encoding)?;
        let stored =
            StoredIdentity { crc32: identity_crc(&value).map_err(encoding)?, identity: value };
        let bytes = serde_json::to_vec_pretty(&stored).map_err(encoding)?;
        small_file::replace(&self.root.join(IDENTITY_FILE), &bytes)
            .map_err(|source| Error::StateFile { context: "writing node.json".into(), source })
    }

    /// Refuses an identity whose node id is not the one in this node's certificate
    /// (`cert_node_id`): `node.json` and `tls/` would then come from different nodes, and
    /// starting would make this node speak for another.
    pub fn check_node_id(&self, identity: &Identity, cert_node_id: NodeId) -> Result<(), Error> {
        if identity.node_id == cert_node_id {
            return Ok(());
        }
        Err(Error::Refused(format!(
            "{} says this is node {}, but this node's certificate in {} is for node {cert_node_id}: the files come from different nodes; restore the matching {IDENTITY_FILE} or tls/, or remove the node from the cluster (ha_remove), delete {} and ha_join afresh",
            self.root.join(IDENTITY_FILE).display(),
            identity.node_id,
            self.tls().display(),
            self.root.display(),
        )))
    }
}

/// The metadata of `dir` (not following a link), refused if it is not a directory or is open
/// to group or others. `root` is the state directory, for the fix.
fn dir_metadata(root: &Path, dir: &Path) -> Result<fs::Metadata, Error> {
    let meta = fs::symlink_metadata(dir)
        .map_err(|e| Error::io(Fault::Stat, format!("inspecting {}", dir.display()), e))?;
    let refuse = |problem: String, fix: String| Error::InsecureStateDir {
        dir: dir.display().to_string(),
        problem,
        fix,
    };
    if meta.file_type().is_symlink() {
        return Err(refuse(
            "it is a symbolic link: the state must be a directory of its own, private to the node's user".into(),
            format!("replace the link by the directory itself (rm {0}; mv <its target> {0}; chmod 700 {0})", dir.display()),
        ));
    }
    if !meta.is_dir() {
        return Err(refuse(
            "it is not a directory".into(),
            format!("move it away ({} is the node's state)", root.display()),
        ));
    }
    let mode = meta.mode() & 0o7777;
    if mode & GROUP_OTHER_BITS != 0 {
        return Err(refuse(
            format!("its mode is {mode:04o}, open to group or others, who could read the database and the cluster's keys from it"),
            format!("chmod 700 {}", dir.display()),
        ));
    }
    Ok(meta)
}

/// Checks `dir` as [`dir_metadata`] does, and that it is owned by `uid`.
fn check_dir(root: &Path, dir: &Path, uid: u32) -> Result<(), Error> {
    let meta = dir_metadata(root, dir)?;
    if meta.uid() != uid {
        return Err(Error::InsecureStateDir {
            dir: dir.display().to_string(),
            problem: format!(
                "it is owned by uid {}, but this process runs as uid {uid}",
                meta.uid()
            ),
            fix: format!(
                "run the node as uid {}, or chown -R {uid} {}",
                meta.uid(),
                root.display()
            ),
        });
    }
    Ok(())
}

/// The uid this process creates files with (its effective uid), found without `unsafe`
/// (`libc::geteuid` is a foreign call, and foreign calls live in `ffi/` only): the owner of a
/// file it has just created, private, in `dir`, then removed. Not the owner of `/proc/self`:
/// that is root in a process that changed its uid (it is no longer "dumpable"), the usual
/// case of a daemon dropping privileges. This is also exactly the owner the node's own files
/// get. Call only once `dir` is known to be closed to others (nothing is written into an open
/// directory).
fn creating_uid(dir: &Path) -> io::Result<u32> {
    let probe = small_file::temp_path(&dir.join(UID_PROBE_NAME));
    let file = private_file_options().write(true).create_new(true).open(&probe)?;
    let uid = file.metadata().map(|meta| meta.uid());
    drop(file);
    match fs::remove_file(&probe) {
        // Removed as a partial file by a starting owner in between: that is fine.
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    uid
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

    fn identity() -> Identity {
        Identity {
            node_id: 3,
            addr: "127.0.0.1:7003".into(),
            advertise: None,
            learner: false,
            joined: true,
            left: false,
        }
    }

    fn mode_of(path: &Path) -> u32 {
        fs::symlink_metadata(path).unwrap().mode() & 0o777
    }

    fn set_mode(path: &Path, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn created_tree_is_private() {
        // Goal: the state directory, its subdirectories and node.json are created 0700 / 0600
        // whatever the umask (the usual 022 would give 0755 / 0644), and pass the check.
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::of(&tmp.path().join("app.db"));
        dir.create().unwrap();
        dir.save_identity(&identity()).unwrap();
        for sub in [dir.root().to_owned(), dir.tls(), dir.log(), dir.snapshots()] {
            assert_eq!(mode_of(&sub), 0o700, "{}", sub.display());
        }
        assert_eq!(mode_of(&dir.root().join("node.json")), 0o600);
        dir.check_private().unwrap();
        let names: Vec<_> =
            fs::read_dir(dir.root()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 4, "the uid probe is gone: {names:?}");
    }

    #[test]
    fn open_state_dir_is_refused_with_the_fix() {
        // Goal: a state directory or subdirectory open to group or others (0755, 0770) is
        // refused at start, naming the directory, its mode and `chmod 700 <dir>`; nothing is
        // changed behind the user's back.
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::of(&tmp.path().join("app.db"));
        dir.create().unwrap();
        for (path, mode) in
            [(dir.root().to_owned(), 0o755), (dir.root().to_owned(), 0o770), (dir.log(), 0o750)]
        {
            set_mode(&path, mode);
            let error = dir.create().unwrap_err();
            assert!(matches!(error, Error::InsecureStateDir { .. }), "{error}");
            let message = error.to_string();
            assert!(message.contains(&format!("chmod 700 {}", path.display())), "{message}");
            assert!(message.contains(&format!("{mode:04o}")), "{message}");
            assert_eq!(mode_of(&path), mode, "left as it was");
            set_mode(&path, 0o700);
        }
        dir.create().unwrap();
    }

    #[test]
    fn symlinked_state_dir_is_refused() {
        // Goal: a state directory (or a subdirectory) that is a symbolic link is refused, even
        // to a private directory, and nothing is created through it.
        let tmp = tempfile::tempdir().unwrap();
        let elsewhere = tmp.path().join("elsewhere");
        small_file::create_private_dir(&elsewhere).unwrap();
        let dir = StateDir::of(&tmp.path().join("app.db"));
        std::os::unix::fs::symlink(&elsewhere, dir.root()).unwrap();
        let message = dir.create().unwrap_err().to_string();
        assert!(
            message.contains("symbolic link")
                && message.contains(&dir.root().display().to_string()),
            "{message}"
        );
        assert_eq!(fs::read_dir(&elsewhere).unwrap().count(), 0);

        let other = StateDir::of(&tmp.path().join("other.db"));
        fs::create_dir(other.root()).unwrap();
        set_mode(other.root(), 0o700);
        std::os::unix::fs::symlink(&elsewhere, other.log()).unwrap();
        let message = other.create().unwrap_err().to_string();
        assert!(
            message.contains("symbolic link")
                && message.contains(&other.log().display().to_string()),
            "{message}"
        );
    }

    #[test]
    fn state_dir_of_another_user_is_refused() {
        // Goal: a private state directory owned by another user is refused with its owner named.
        // Needs to give a directory away, which only root can: skipped otherwise.
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::of(&tmp.path().join("app.db"));
        dir.create().unwrap();
        if creating_uid(tmp.path()).unwrap() != 0 {
            return;
        }
        std::os::unix::fs::chown(dir.log(), Some(4242), None).unwrap();
        let message = dir.check_private().unwrap_err().to_string();
        assert!(
            message.contains("owned by uid 4242") && message.contains("chown -R 0"),
            "{message}"
        );
    }

    #[test]
    fn identity_is_checksummed() {
        // Goal: node.json carries a checksum: any flipped byte of the identity (here a digit of
        // the port, which would still parse) is refused as corrupt, never read as another node.
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::of(&tmp.path().join("app.db"));
        dir.create().unwrap();
        dir.save_identity(&identity()).unwrap();
        let path = dir.root().join("node.json");
        let good = fs::read(&path).unwrap();
        let at = good.windows(4).position(|w| w == b"7003").unwrap();
        let mut bad = good.clone();
        bad[at + 3] = b'4';
        fs::write(&path, &bad).unwrap();
        let message = dir.identity().unwrap_err().chain().to_string();
        assert!(
            message.contains("node.json is corrupt") && message.contains("checksum mismatch"),
            "{message}"
        );
        // Every single-bit flip is refused or read back unchanged (whitespace outside values).
        for i in 0..good.len() {
            let mut flipped = good.clone();
            flipped[i] ^= 0x04;
            fs::write(&path, &flipped).unwrap();
            match dir.identity() {
                Ok(read) => assert_eq!(read, Some(identity()), "byte {i}"),
                Err(e) => assert!(e.to_string().contains("node.json is corrupt"), "{e}"),
            }
        }
    }

    #[test]
    fn identity_without_checksum_is_still_read() {
        // Goal: a node.json written before checksums (the bare identity) still starts its node.
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::of(&tmp.path().join("app.db"));
        dir.create().unwrap();
        fs::write(dir.root().join("node.json"), serde_json::to_vec(&identity()).unwrap()).unwrap();
        assert_eq!(dir.identity().unwrap(), Some(identity()));
    }

    #[test]
    fn node_id_must_match_the_certificate() {
        // Goal: a node.json whose node id is not the certificate's is refused, naming both ids.
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::of(&tmp.path().join("app.db"));
        dir.check_node_id(&identity(), 3).unwrap();
        let message = dir.check_node_id(&identity(), 4).unwrap_err().to_string();
        assert!(
            message.contains("node 3")
                && message.contains("node 4")
                && message.contains("node.json"),
            "{message}"
        );
    }

    #[test]
    fn partial_files_are_removed() {
        // Goal: temp files a crash left in the root and tls/ go at start; state files stay.
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::of(&tmp.path().join("app.db"));
        dir.create().unwrap();
        dir.save_identity(&identity()).unwrap();
        let stale = [
            small_file::temp_path(&dir.root().join("node.json")),
            small_file::temp_path(&dir.tls().join("node.key")),
        ];
        for path in &stale {
            fs::write(path, b"partial").unwrap();
        }
        dir.remove_partial_files().unwrap();
        assert!(stale.iter().all(|p| !p.exists()));
        assert_eq!(dir.identity().unwrap(), Some(identity()));
    }
}
