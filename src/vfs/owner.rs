//! One owner per database: the process that runs a database's node holds an exclusive lock
//! on `<database>-ha/owner.lock`. Other processes may open the database through `ha` and
//! read, but their writes are refused, so nothing is ever written around the node.
//!
//! The lock is `flock`, on its own file: taking or testing it never touches the POSIX locks
//! SQLite holds on the database itself. The file is created 0600 and never opened through a
//! symbolic link, like every file of the state directory (`raft::small_file`).

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::error::{Error, Fault};
use crate::raft::small_file::private_file_options;

use crate::state_layout::{state_dir_of, OWNER_LOCK_FILE};

fn lock_path(db: &Path) -> PathBuf {
    state_dir_of(db).join(OWNER_LOCK_FILE)
}

/// The exclusive claim of one process on a database's node, held while the node runs.
pub struct OwnerLock {
    _file: File,
}

impl OwnerLock {
    /// Takes the lock (the state directory must exist), or says that another process has it.
    pub fn acquire(db: &Path) -> Result<OwnerLock, Error> {
        let path = lock_path(db);
        let file = private_file_options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(Fault::Open, format!("opening {}", path.display()), e))?;
        match file.try_lock() {
            Ok(()) => Ok(OwnerLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => {
                Err(Error::OwnedElsewhere(path.display().to_string()))
            }
            Err(std::fs::TryLockError::Error(e)) => {
                Err(Error::io(Fault::Lock, format!("locking {}", path.display()), e))
            }
        }
    }
}

/// `Err(OwnedElsewhere)` if another process runs the node of the database at `db`.
pub fn check_not_owned_elsewhere(db: &Path) -> Result<(), Error> {
    let path = lock_path(db);
    let Ok(file) = private_file_options().write(true).open(&path) else { return Ok(()) };
    match file.try_lock() {
        Err(std::fs::TryLockError::WouldBlock) => {
            Err(Error::OwnedElsewhere(path.display().to_string()))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_lock_is_exclusive_and_visible() {
        // Goal: a second claim fails while the first is held, and others can see it held.
        let tmp = tempfile::tempdir().unwrap();
        let db = tmp.path().join("app.db");
        std::fs::create_dir_all(state_dir_of(&db)).unwrap();
        assert!(check_not_owned_elsewhere(&db).is_ok(), "no lock file yet");
        let first = OwnerLock::acquire(&db).unwrap();
        assert!(matches!(OwnerLock::acquire(&db), Err(Error::OwnedElsewhere(_))));
        assert!(matches!(check_not_owned_elsewhere(&db), Err(Error::OwnedElsewhere(_))));
        drop(first);
        assert!(check_not_owned_elsewhere(&db).is_ok());
        assert!(OwnerLock::acquire(&db).is_ok());
    }

    #[test]
    fn owner_lock_file_is_private() {
        // Goal: owner.lock is created 0600 whatever the umask, and a symbolic link planted in
        // its place is not followed (the lock fails instead of creating the link's target).
        use std::os::unix::fs::MetadataExt;
        let tmp = tempfile::tempdir().unwrap();
        let db = tmp.path().join("app.db");
        std::fs::create_dir_all(state_dir_of(&db)).unwrap();
        drop(OwnerLock::acquire(&db).unwrap());
        assert_eq!(std::fs::metadata(lock_path(&db)).unwrap().mode() & 0o777, 0o600);
        let other = tmp.path().join("other.db");
        std::fs::create_dir_all(state_dir_of(&other)).unwrap();
        let target = tmp.path().join("target");
        std::os::unix::fs::symlink(&target, lock_path(&other)).unwrap();
        assert!(OwnerLock::acquire(&other).is_err());
        assert!(!target.exists());
    }
}
