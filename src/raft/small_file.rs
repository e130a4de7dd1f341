//! Small state files (vote, purge point, applied state, snapshot pointer) replaced atomically,
//! and the one way this crate creates files and directories of a node's state: private to the
//! user running the node.
//!
//! Format: `magic (4) | body length u32 LE | crc32 u32 LE of (length || body) | body (rmp-serde)`.
//! Invariants:
//! - a reader sees either the old or the new complete value, never a mix, because [`replace`]
//!   writes a fresh temp file `<name>.tmp-<16 hex>` beside the target and renames it over the
//!   target; a value survives a crash once `replace` returns (file and directory fsynced);
//! - a file that fails its checksum is reported as corrupt, never read as a default;
//! - every directory is created [`PRIVATE_DIR_MODE`] and every file [`PRIVATE_FILE_MODE`],
//!   set at creation rather than left to the umask: the state holds the whole database and
//!   the cluster's keys;
//! - a state file opened for writing is never reached through a symbolic link (`O_NOFOLLOW`),
//!   so a link planted in the directory cannot redirect a write to another file.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::Fault;
use crate::state_layout::{LEGACY_TEMP_SUFFIX, TEMP_INFIX};

/// Marks a small state file of this crate (guards against reading some other file by mistake).
const MAGIC: [u8; 4] = *b"DQSF";
/// Bytes before the body: magic, length, crc.
const HEADER_BYTES: usize = 12;
/// Largest body we accept: a vote or a membership is far smaller; a bigger length means
/// corruption, so it is refused before allocating.
pub(crate) const SMALL_FILE_BODY_BYTES_MAX: usize = 1 << 20;
/// Mode of every directory of a node's state: only its owner may list, enter or change it.
pub const PRIVATE_DIR_MODE: u32 = 0o700;
/// Mode of every file of a node's state: only its owner may read or write it.
pub const PRIVATE_FILE_MODE: u32 = 0o600;
/// Hex digits of the random part of a temp file's name: 64 bits, so two writers never pick
/// the same name by chance.
const TEMP_SUFFIX_HEX_DIGITS: usize = 16;

/// Why a small state file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum SmallFileError {
    /// The file system failed.
    #[error("{}", path.display())]
    Io { path: PathBuf, source: io::Error },
    /// The file exists but is not a complete value written by this crate.
    #[error("{}: corrupt state file: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
}

impl SmallFileError {
    /// What kind of failure this is (see `crate::error`).
    pub fn fault(&self) -> Fault {
        match self {
            SmallFileError::Io { source, .. } => Fault::of_io(source, Fault::Io),
            SmallFileError::Corrupt { .. } => Fault::Corrupt,
        }
    }

    pub(crate) fn io_kind(&self) -> io::ErrorKind {
        match self {
            SmallFileError::Io { source, .. } => source.kind(),
            SmallFileError::Corrupt { .. } => io::ErrorKind::InvalidData,
        }
    }
}

/// For callers that speak `io::Error`: the `SmallFileError` travels inside it.
impl From<SmallFileError> for io::Error {
    fn from(e: SmallFileError) -> Self {
        io::Error::new(e.io_kind(), e)
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SmallFileError + '_ {
    move |source| SmallFileError::Io { path: path.to_path_buf(), source }
}

fn corrupt(path: &Path, reason: impl Into<String>) -> SmallFileError {
    SmallFileError::Corrupt { path: path.to_path_buf(), reason: reason.into() }
}

/// The bytes `write` stores for `value` (header and body), for callers that overwrite a
/// file in place instead (`read` ignores anything after the value).
pub(crate) fn encode<T: Serialize>(path: &Path, value: &T) -> Result<Vec<u8>, SmallFileError> {
    let body = rmp_serde::to_vec_named(value).map_err(|e| corrupt(path, format!("encode: {e}")))?;
    if body.len() > SMALL_FILE_BODY_BYTES_MAX {
        return Err(corrupt(path, format!("value of {} bytes exceeds the bound", body.len())));
    }
    let len = u32::try_from(body.len()).map_err(|_| corrupt(path, "length overflows u32"))?;
    let mut bytes = Vec::with_capacity(HEADER_BYTES + body.len());
    bytes.extend_from_slice(&MAGIC);
    bytes.extend_from_slice(&len.to_le_bytes());
    bytes.extend_from_slice(&checksum(len, &body).to_le_bytes());
    bytes.extend_from_slice(&body);
    Ok(bytes)
}

/// Replace the value stored at `path` with `value`.
pub(crate) fn write<T: Serialize>(path: &Path, value: &T) -> Result<(), SmallFileError> {
    replace(path, &encode(path, value)?)
}

/// Replaces the content of the file at `path` with `bytes`, atomically and durably: this is
/// the one writer of keys and state files (node.json, vote, applied state, snapshot pointer,
/// and the TLS keys and certificates: `transport::tls` should call it too).
///
/// How: a new temp file `<name>.tmp-<16 hex>` in the same directory, created with
/// `O_CREAT | O_EXCL | O_NOFOLLOW` and mode [`PRIVATE_FILE_MODE`] (so no existing file or
/// symbolic link is ever opened, and nobody else can read the secret in between); write;
/// fsync; rename over `path`; fsync the directory. A crash leaves the old or the new content,
/// never a mix. If `path` is a symbolic link, the link itself is replaced by a regular file and
/// the file it pointed to is left alone. On failure the temp file is removed and `path` keeps
/// its old content; a temp file left by a crash is removed by [`remove_temp_files`].
pub fn replace(path: &Path, bytes: &[u8]) -> Result<(), SmallFileError> {
    let tmp = temp_path(path);
    let written =
        write_new(&tmp, bytes).and_then(|()| fs::rename(&tmp, path).map_err(io_err(path)));
    if let Err(error) = written {
        match fs::remove_file(&tmp) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                tracing::warn!(path = %tmp.display(), error = %e, "cannot remove a temp file");
            }
            _ => {}
        }
        return Err(error);
    }
    sync_parent_dir(path).map_err(io_err(path))
}

/// Creates the file at `path` (which must not exist) private, writes `bytes` and fsyncs it.
fn write_new(path: &Path, bytes: &[u8]) -> Result<(), SmallFileError> {
    let mut file =
        private_file_options().write(true).create_new(true).open(path).map_err(io_err(path))?;
    file.write_all(bytes).map_err(io_err(path))?;
    file.sync_all().map_err(io_err(path))
}

/// Options for opening a file of a node's state for writing: a file created through them gets
/// mode [`PRIVATE_FILE_MODE`] whatever the umask, and a symbolic link at the path is refused
/// (`O_NOFOLLOW`: the open fails with `ELOOP`) instead of followed. The caller adds the access
/// (`read`, `write`) and creation (`create`, `create_new`) it needs.
pub fn private_file_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.mode(PRIVATE_FILE_MODE).custom_flags(libc::O_NOFOLLOW);
    options
}

/// Creates the directory `dir` and any missing parent with mode [`PRIVATE_DIR_MODE`] whatever
/// the umask; an existing directory is left as it is (`StateDir` checks the node's own).
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(PRIVATE_DIR_MODE).create(dir)
}

/// Removes the partial files in `dir` that a crash can leave: temp files of [`replace`]
/// (`*.tmp-<16 hex>`) and fixed-name temp files (`*.tmp`). Returns how many it removed.
/// Call it only while no writer can be running in `dir` (the node's start-up, with the owner
/// lock held), as it would remove a write in flight.
pub fn remove_temp_files(dir: &Path) -> io::Result<usize> {
    let mut removed = 0;
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        if name.to_str().is_some_and(is_temp_name) {
            match fs::remove_file(dir.join(&name)) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    if removed > 0 {
        tracing::info!(dir = %dir.display(), removed, "removed partial files left by a crash");
        sync_dir(dir)?;
    }
    Ok(removed)
}

/// Whether `name` is the name of a temp file (see [`remove_temp_files`]).
fn is_temp_name(name: &str) -> bool {
    if name.ends_with(LEGACY_TEMP_SUFFIX) {
        return true;
    }
    name.rfind(TEMP_INFIX).is_some_and(|at| {
        let suffix = &name[at + TEMP_INFIX.len()..];
        suffix.len() == TEMP_SUFFIX_HEX_DIGITS && suffix.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

/// Read the value stored at `path`; `None` if there is no such file.
pub(crate) fn read<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, SmallFileError> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(path)(e)),
    };
    let mut header = [0u8; HEADER_BYTES];
    file.read_exact(&mut header).map_err(|e| corrupt(path, format!("short header: {e}")))?;
    if header[0..4] != MAGIC {
        return Err(corrupt(path, "bad magic"));
    }
    let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    let crc = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
    let len_usize = usize::try_from(len).map_err(|_| corrupt(path, "length overflows usize"))?;
    if len_usize > SMALL_FILE_BODY_BYTES_MAX {
        return Err(corrupt(path, format!("length {len} exceeds the bound")));
    }
    let mut body = vec![0u8; len_usize];
    file.read_exact(&mut body).map_err(|e| corrupt(path, format!("short body: {e}")))?;
    if checksum(len, &body) != crc {
        return Err(corrupt(path, "checksum mismatch"));
    }
    let value = rmp_serde::from_slice(&body).map_err(|e| corrupt(path, format!("decode: {e}")))?;
    Ok(Some(value))
}

fn checksum(len: u32, body: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&len.to_le_bytes());
    h.update(body);
    h.finalize()
}

/// A fresh temp file name beside `path`: `<name>.tmp-<16 hex>`. Random rather than fixed, so
/// that a stale or planted file of a known name is never reused.
pub(crate) fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(format!(
        "{TEMP_INFIX}{:0width$x}",
        rand::random::<u64>(),
        width = TEMP_SUFFIX_HEX_DIGITS
    ));
    path.with_file_name(name)
}

/// fsync the directory holding `path`, so that a create, rename or unlink in it is durable.
pub(crate) fn sync_parent_dir(path: &Path) -> io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    sync_dir(dir)
}

/// fsync a directory, so that entries created, renamed or removed in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: a written value reads back; a missing file reads as None.
    #[test]
    fn round_trip_and_missing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("v");
        assert_eq!(read::<u64>(&p).unwrap(), None);
        write(&p, &42u64).unwrap();
        assert_eq!(read::<u64>(&p).unwrap(), Some(42));
    }

    // Goal: a flipped byte is reported as corruption, not read as a value.
    #[test]
    fn flipped_byte_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("v");
        write(&p, &"hello".to_string()).unwrap();
        let mut bytes = fs::read(&p).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        fs::write(&p, bytes).unwrap();
        assert!(matches!(read::<String>(&p), Err(SmallFileError::Corrupt { .. })));
    }

    fn mode_of(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        fs::symlink_metadata(path).unwrap().permissions().mode() & 0o777
    }

    // Goal: what this module creates is private whatever the umask: files 0600, directories
    // 0700 (under the usual umask 022 the defaults would be 0644 and 0755).
    #[test]
    fn created_files_and_dirs_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("a/b");
        create_private_dir(&sub).unwrap();
        assert_eq!(mode_of(&dir.path().join("a")), PRIVATE_DIR_MODE);
        assert_eq!(mode_of(&sub), PRIVATE_DIR_MODE);
        let p = sub.join("v");
        write(&p, &7u64).unwrap();
        assert_eq!(mode_of(&p), PRIVATE_FILE_MODE);
        let q = sub.join("w");
        private_file_options().write(true).create(true).open(&q).unwrap();
        assert_eq!(mode_of(&q), PRIVATE_FILE_MODE);
    }

    // Goal: `replace` never writes through a symbolic link: a link at the target is replaced by
    // a regular file and the file it pointed to keeps its content; a link at a temp path is
    // never opened (the open uses O_EXCL | O_NOFOLLOW), nor is its target written.
    #[test]
    fn replace_does_not_follow_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, b"precious").unwrap();
        let target = dir.path().join("key.pem");
        std::os::unix::fs::symlink(&victim, &target).unwrap();
        replace(&target, b"secret").unwrap();
        assert!(fs::symlink_metadata(&target).unwrap().file_type().is_file());
        assert_eq!(fs::read(&target).unwrap(), b"secret");
        assert_eq!(mode_of(&target), PRIVATE_FILE_MODE);
        assert_eq!(fs::read(&victim).unwrap(), b"precious");

        // A link planted at a temp name: opening it the way `replace` does fails.
        let planted = temp_path(&target);
        std::os::unix::fs::symlink(&victim, &planted).unwrap();
        let error = write_new(&planted, b"secret").unwrap_err();
        assert!(
            matches!(error, SmallFileError::Io { ref source, .. } if source.kind() == io::ErrorKind::AlreadyExists),
            "{error}"
        );
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
        // Nor does a writer that opens an existing file follow a link.
        let error = private_file_options().write(true).open(&planted).unwrap_err();
        assert_eq!(error.raw_os_error(), Some(libc::ELOOP), "{error}");
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
    }

    // Goal: a failed replace leaves the old content and no temp file behind.
    #[test]
    fn failed_replace_keeps_the_old_content() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("v");
        write(&p, &1u64).unwrap();
        // The rename fails: a non-empty directory cannot be replaced by a file. The target
        // here is such a directory, so use it to fail the last step and check the cleanup.
        let blocked = dir.path().join("blocked");
        fs::create_dir(&blocked).unwrap();
        fs::write(blocked.join("inside"), b"x").unwrap();
        assert!(replace(&blocked, b"new").is_err());
        assert!(blocked.join("inside").exists());
        // The write itself fails: the directory is gone.
        assert!(replace(&dir.path().join("missing/v"), b"new").is_err());
        assert_eq!(read::<u64>(&p).unwrap(), Some(1));
        let names: Vec<_> =
            fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 2, "no temp file left: {names:?}");
    }

    // Goal: temp files left by a crash are recognised and removed; state files are kept.
    #[test]
    fn temp_files_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let keep = ["vote", "applied", "snap-1-00000000000000aa.db", "node.json", "x.tmp-123"];
        let stale = [
            temp_path(&dir.path().join("vote")),
            dir.path().join("vote.tmp"),
            dir.path().join("import.tmp"),
        ];
        for name in keep {
            fs::write(dir.path().join(name), b"x").unwrap();
        }
        for path in &stale {
            fs::write(path, b"x").unwrap();
        }
        assert_eq!(remove_temp_files(dir.path()).unwrap(), stale.len());
        for name in keep {
            assert!(dir.path().join(name).exists(), "{name} kept");
        }
        assert!(stale.iter().all(|p| !p.exists()));
    }
}
