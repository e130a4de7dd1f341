//! Which databases of this process are nodes.
//!
//! Keyed by the full path SQLite gives the main database file (every connection to one
//! file gets the same string from `xFullPathname`). An entry lives while any file of that
//! database is open or a node holds it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};

use super::write_turns::WriteTurns;
use super::Replicator;

/// What all open files of one database share.
pub struct SharedDb {
    path: PathBuf,
    replicator: RwLock<Option<Arc<dyn Replicator>>>,
    turns: Arc<WriteTurns>,
}

impl SharedDb {
    /// The node replicating this database, if any.
    pub fn replicator(&self) -> Option<Arc<dyn Replicator>> {
        self.replicator.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The line of this process's connections waiting for the WAL write lock.
    pub fn turns(&self) -> &Arc<WriteTurns> {
        &self.turns
    }

    /// The database's full path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

static REGISTRY: Mutex<Option<HashMap<PathBuf, Weak<SharedDb>>>> = Mutex::new(None);

/// The shared state of the database at `path`, created on first use.
pub fn shared(path: &Path) -> Arc<SharedDb> {
    let mut registry = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
    let map = registry.get_or_insert_with(HashMap::new);
    if let Some(existing) = map.get(path).and_then(Weak::upgrade) {
        return existing;
    }
    map.retain(|_, weak| weak.strong_count() > 0);
    let created = Arc::new(SharedDb {
        path: path.to_owned(),
        replicator: RwLock::new(None),
        turns: Arc::default(),
    });
    map.insert(path.to_owned(), Arc::downgrade(&created));
    created
}

/// Makes the database at `path` replicated by `replicator`; returns the shared entry, which
/// the node keeps so the attachment outlives the connections.
pub fn attach(path: &Path, replicator: Arc<dyn Replicator>) -> Arc<SharedDb> {
    let db = shared(path);
    *db.replicator.write().unwrap_or_else(PoisonError::into_inner) = Some(replicator);
    db
}

/// Ends replication of `db` (the node stopped): its files behave like plain SQLite again.
pub fn detach(db: &SharedDb) {
    *db.replicator.write().unwrap_or_else(PoisonError::into_inner) = None;
}
