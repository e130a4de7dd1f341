//! `ha_restore`: rebuilds an empty database from an archive. The image is built beside the
//! database (`archive::restore`) and imported the way a follower installs a snapshot, as one
//! WAL transaction, so the result is an ordinary WAL-mode SQLite database from which
//! `ha_init` can start a new cluster.

use std::path::Path;
use std::time::Duration;

use super::database::ReplicatedDb;
use super::runtime::wait;
use super::state_dir::StateDir;
use crate::archive::restore::{build_image, RestoreRequest};
use crate::archive::ArchiveError;
use crate::error::{Error, Fault};
use crate::raft::state_machine::Database;

/// Bound on a whole restore (each request to the store has its own, shorter deadline).
const RESTORE_DEADLINE: Duration = Duration::from_secs(24 * 3600);

/// Restores `db` as `request` asks; returns the log index restored.
pub(super) fn restore(db: &Path, request: &RestoreRequest) -> Result<u64, Error> {
    let not_empty = |why: String| Error::from(ArchiveError::NotEmpty(why));
    let state_dir = StateDir::of(db);
    if state_dir.root().exists() {
        return Err(not_empty(format!(
            "{} has a state directory ({}): it is, or was, a node",
            db.display(),
            state_dir.root().display()
        )));
    }
    let replicated = ReplicatedDb::open(db)?;
    let objects = replicated.with_reader(|c| c.query_text("SELECT count(*) FROM sqlite_schema"))?;
    if objects.as_deref() != Some("0") {
        return Err(not_empty(format!(
            "{} already holds {} schema objects",
            db.display(),
            objects.unwrap_or_default()
        )));
    }
    let (owned_request, owned_db) = (request.clone(), db.to_path_buf());
    let image = wait(
        async move { build_image(&owned_request, &owned_db).await.map_err(Error::from) },
        RESTORE_DEADLINE,
        "restoring from the archive",
    )?;
    let imported = replicated.import_image(&image.path);
    let _ = std::fs::remove_file(&image.path);
    imported.map_err(|e| Error::io(Fault::Write, "importing the restored image", e))?;
    tracing::info!(db = %db.display(), index = image.index, "restored from the archive");
    Ok(image.index)
}
