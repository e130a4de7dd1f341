//! Small state files (vote, purge point, applied state, snapshot pointer) replaced atomically.
//!
//! Format: `magic (4) | body length u32 LE | crc32 u32 LE of (length || body) | body (rmp-serde)`.
//! Invariants: a reader sees either the old or the new complete value, never a mix, because
//! a value is written to `<name>.tmp` and renamed over `<name>`; a value survives a crash
//! once `write` returns (file and directory fsynced).
//! A file that fails its checksum is reported as corrupt, never read as a default.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Marks a small state file of this crate (guards against reading some other file by mistake).
const MAGIC: [u8; 4] = *b"DQSF";
/// Bytes before the body: magic, length, crc.
const HEADER_BYTES: usize = 12;
/// Largest body we accept: a vote or a membership is far smaller; a bigger length means
/// corruption, so it is refused before allocating.
pub(crate) const SMALL_FILE_BODY_BYTES_MAX: usize = 1 << 20;

/// Why a small state file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum SmallFileError {
    /// The file system failed.
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    /// The file exists but is not a complete value written by this crate.
    #[error("{path}: corrupt state file: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

impl From<SmallFileError> for io::Error {
    fn from(e: SmallFileError) -> Self {
        let kind = match &e {
            SmallFileError::Io { source, .. } => source.kind(),
            SmallFileError::Corrupt { .. } => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, e.to_string())
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SmallFileError + '_ {
    move |source| SmallFileError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn corrupt(path: &Path, reason: impl Into<String>) -> SmallFileError {
    SmallFileError::Corrupt {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// The bytes `write` stores for `value` (header and body), for callers that overwrite a
/// file in place instead (`read` ignores anything after the value).
pub(crate) fn encode<T: Serialize>(path: &Path, value: &T) -> Result<Vec<u8>, SmallFileError> {
    let body = rmp_serde::to_vec_named(value).map_err(|e| corrupt(path, format!("encode: {e}")))?;
    if body.len() > SMALL_FILE_BODY_BYTES_MAX {
        return Err(corrupt(
            path,
            format!("value of {} bytes exceeds the bound", body.len()),
        ));
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
pub(crate) fn write<T: Serialize>(
    path: &Path,
    value: &T,
) -> Result<(), SmallFileError> {
    replace(path, &encode(path, value)?)
}

/// Replace the content of `path` with `bytes` so that a crash leaves the old or the new
/// content, never a mix: temp file, fsync, rename, fsync of the directory.
pub(crate) fn replace(path: &Path, bytes: &[u8]) -> Result<(), SmallFileError> {
    let tmp = tmp_path(path);
    let mut file = File::create(&tmp).map_err(io_err(&tmp))?;
    file.write_all(bytes).map_err(io_err(&tmp))?;
    file.sync_all().map_err(io_err(&tmp))?;
    drop(file);
    fs::rename(&tmp, path).map_err(io_err(path))?;
    sync_parent_dir(path).map_err(io_err(path))?;
    Ok(())
}

/// Read the value stored at `path`; `None` if there is no such file.
pub(crate) fn read<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, SmallFileError> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(path)(e)),
    };
    let mut header = [0u8; HEADER_BYTES];
    file.read_exact(&mut header)
        .map_err(|e| corrupt(path, format!("short header: {e}")))?;
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
    file.read_exact(&mut body)
        .map_err(|e| corrupt(path, format!("short body: {e}")))?;
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

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".tmp");
    path.with_file_name(name)
}

/// fsync the directory holding `path`, so that a create, rename or unlink in it is durable.
pub(crate) fn sync_parent_dir(path: &Path) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
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
        assert!(matches!(
            read::<String>(&p),
            Err(SmallFileError::Corrupt { .. })
        ));
    }
}
