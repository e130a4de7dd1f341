//! Writing credentials to disk atomically.
//!
//! Invariants: a credential file is either absent, its old content, or its full new content,
//! even across a crash (temp file, fsync, rename, fsync of the directory); the temp file is
//! created owner-only from the start (no window where a key is world-readable) and never
//! through a symlink planted in its place.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::error::TrustError;
use super::ids::random_bytes;

/// Mode of every credential file: owner read/write only. Certificates are not secret, but one
/// mode for all keeps the rule simple.
const CREDENTIAL_FILE_MODE: u32 = 0o600;

/// Replaces `dir/name` with `contents`, atomically and durably.
pub(crate) fn write_atomic(dir: &Path, name: &str, contents: &[u8]) -> Result<(), TrustError> {
    let suffix = data_encoding::HEXLOWER.encode(&random_bytes::<8>()?);
    let temp = dir.join(format!(".{name}.{suffix}.tmp"));
    let written = (|| -> io::Result<()> {
        // create_new is O_CREAT|O_EXCL: fails on any existing entry, symlinks included;
        // O_NOFOLLOW states the same intent explicitly.
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(CREDENTIAL_FILE_MODE)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&temp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&temp, dir.join(name))?;
        // The rename is durable only once the directory entry is.
        fs::File::open(dir)?.sync_all()
    })();
    if written.is_err() {
        // Best effort: the original error is what matters.
        let _ = fs::remove_file(&temp);
    }
    Ok(written?)
}

/// Reads `dir/name`, or `None` if it does not exist.
pub(crate) fn read_optional(dir: &Path, name: &str) -> Result<Option<String>, TrustError> {
    match fs::read_to_string(dir.join(name)) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}
