//! Writing credentials to disk atomically.
//!
//! Invariants: a credential file is either absent, its old content, or its full new content,
//! even across a crash (temp file, fsync, rename, fsync of the directory); the temp file is
//! created owner-only from the start (no window where a key is world-readable) and never
//! through a symlink planted in its place.

use std::fs;
use std::io;
use std::path::Path;

use super::error::TrustError;
use crate::raft::small_file;

/// Replaces `dir/name` with `contents`, atomically and durably, owner-only: the node's one
/// atomic writer ([`small_file::replace`]), whose temp files start-up also cleans.
pub(crate) fn write_atomic(dir: &Path, name: &str, contents: &[u8]) -> Result<(), TrustError> {
    small_file::replace(&dir.join(name), contents).map_err(io::Error::from)?;
    Ok(())
}

/// Reads `dir/name`, or `None` if it does not exist.
pub(crate) fn read_optional(dir: &Path, name: &str) -> Result<Option<String>, TrustError> {
    match fs::read_to_string(dir.join(name)) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}
