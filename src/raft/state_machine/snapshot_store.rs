//! Snapshot files in `<state_dir>/snapshots/`.
//!
//! A snapshot file is the SQLite database image, then the replicated state besides the
//! database as of the image ([`SnapshotExtras`]: the trust registry and the archive setting;
//! rmp-serde), then a fixed [`TRAILER_BYTES`]-byte trailer: `magic "DQVFIMG4" | last log
//! index u64 LE (u64::MAX: none) | last_write_index u64 LE | crc32 u32 LE of the image |
//! registry length u32 LE | crc32 u32 LE of the registry | crc32 u32 LE of the preceding 36
//! bytes`. The image's
//! checksum is checked before an image is installed, so a snapshot damaged on disk or on its
//! way is refused, never imported as wrong data. The trailer makes the file self-describing, so the network layer moves one opaque file and `last_write_index`
//! and the trust registry (part of the replicated state, but not of openraft's `SnapshotMeta`)
//! travel with it.
//!
//! `current` (a small fsynced file) names the current snapshot file and holds its meta. Files:
//! `snap-<index>-<nonce>.db` (ours), `incoming-*.db` (written by the network layer, moved in by
//! install), `import.tmp` (the trailer-less copy handed to `Database::import_image`).
//! Invariants: `current` only ever names a complete, fsynced file; at most one `snap-*` file
//! survives `open` and `adopt` (the current one); partial files (`incoming-*`, `import.tmp`,
//! temp files of `small_file::replace`) do not survive `open`, nor a failed build or install.
//! Every file here is created 0600 and opened for writing without following symbolic links
//! (`small_file::private_file_options`): an image is the whole database.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::database::Database;
use super::error::SmError;
use crate::raft::alias::{SnapshotMetaT, SnapshotT};
use crate::raft::small_file::{self, private_file_options, sync_dir};
use crate::raft::types::{LogIndex, SnapshotImage};
use crate::trust::registry::Registry;

pub use crate::state_layout::SNAPSHOT_DIR;
use crate::state_layout::{
    CURRENT_SNAPSHOT_FILE as CURRENT_FILE, INCOMING_SNAPSHOT_PREFIX as INCOMING_PREFIX,
    OWN_SNAPSHOT_PREFIX as OWN_PREFIX, SNAPSHOT_IMPORT_FILE as IMPORT_FILE,
};
/// Bytes of the trailer at the end of every snapshot file.
pub const TRAILER_BYTES: u64 = 40;
const TRAILER_MAGIC: [u8; 8] = *b"DQVFIMG4";
/// The format before the archive setting: the blob after the image is the registry alone.
/// Still read, so snapshots taken by the previous version install.
const TRAILER_MAGIC_REGISTRY_ONLY: [u8; 8] = *b"DQVFIMG3";
/// Largest registry accepted from a snapshot file (checked before allocating); the registry's
/// own bounds keep it far smaller.
const REGISTRY_BYTES_MAX: u32 = 16 << 20;

/// The replicated state a snapshot carries besides the database image and openraft's meta.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotExtras {
    /// The trust registry.
    pub registry: Registry,
    /// The continuous archive's setting (None: off).
    #[serde(default)]
    pub archive: Option<crate::archive::setting::ArchiveSetting>,
    /// How far that archive is known to hold every entry (0: not known).
    #[serde(default)]
    pub archived_index: LogIndex,
}

/// The current snapshot as recorded in `current`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct CurrentSnapshot {
    pub(crate) meta: SnapshotMetaT,
    pub(crate) last_write_index: LogIndex,
    /// File name inside the snapshot directory.
    pub(crate) file: String,
}

impl CurrentSnapshot {
    pub(crate) fn to_snapshot(&self, dir: &Path) -> SnapshotT {
        SnapshotT {
            meta: self.meta.clone(),
            snapshot: SnapshotImage { path: dir.join(&self.file) },
        }
    }
}

/// What a snapshot file's trailer says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageTrailer {
    /// Index of the last entry the image contains (None: no entry).
    pub last_log_index: Option<LogIndex>,
    /// The state machine's `last_write_index` as of the image.
    pub last_write_index: LogIndex,
    /// crc32 of the image (the file without its registry and trailer).
    pub image_crc: u32,
    /// Bytes of the encoded registry between the image and the trailer.
    pub registry_len: u32,
    /// crc32 of the encoded registry.
    pub registry_crc: u32,
    /// Whether the blob after the image is the registry alone (a `DQVFIMG3` file).
    pub registry_only: bool,
}

impl ImageTrailer {
    fn encode(&self) -> [u8; TRAILER_BYTES as usize] {
        let mut b = [0u8; TRAILER_BYTES as usize];
        let magic = if self.registry_only { TRAILER_MAGIC_REGISTRY_ONLY } else { TRAILER_MAGIC };
        b[0..8].copy_from_slice(&magic);
        b[8..16].copy_from_slice(&self.last_log_index.unwrap_or(u64::MAX).to_le_bytes());
        b[16..24].copy_from_slice(&self.last_write_index.to_le_bytes());
        b[24..28].copy_from_slice(&self.image_crc.to_le_bytes());
        b[28..32].copy_from_slice(&self.registry_len.to_le_bytes());
        b[32..36].copy_from_slice(&self.registry_crc.to_le_bytes());
        let crc = crc32fast::hash(&b[0..36]);
        b[36..40].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Read and verify the trailer of the snapshot file at `path`; returns it and the image
    /// length (the registry follows the image).
    pub fn read(path: &Path) -> Result<(ImageTrailer, u64), SmError> {
        ImageTrailer::read_open(path, &File::open(path)?)
    }

    /// As [`ImageTrailer::read`], from `file` already open (`path` names it in errors).
    pub fn read_open(path: &Path, file: &File) -> Result<(ImageTrailer, u64), SmError> {
        let bad = |reason: &str| SmError::BadImage {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        };
        let len = file.metadata()?.len();
        let trailer_at =
            len.checked_sub(TRAILER_BYTES).ok_or_else(|| bad("shorter than its trailer"))?;
        let mut b = [0u8; TRAILER_BYTES as usize];
        file.read_exact_at(&mut b, trailer_at)?;
        let word = |r: std::ops::Range<usize>| {
            b[r].iter().rev().fold(0u64, |acc, x| (acc << 8) | u64::from(*x))
        };
        let registry_only = b[0..8] == TRAILER_MAGIC_REGISTRY_ONLY;
        if b[0..8] != TRAILER_MAGIC && !registry_only {
            return Err(bad("corrupt: no snapshot trailer (or one of another format)"));
        }
        if word(36..40) != u64::from(crc32fast::hash(&b[0..36])) {
            return Err(bad("corrupt: trailer checksum mismatch"));
        }
        let last = word(8..16);
        let trailer = ImageTrailer {
            last_log_index: (last != u64::MAX).then_some(last),
            last_write_index: word(16..24),
            image_crc: u32::try_from(word(24..28)).unwrap_or(0),
            registry_len: u32::try_from(word(28..32)).unwrap_or(u32::MAX),
            registry_crc: u32::try_from(word(32..36)).unwrap_or(0),
            registry_only,
        };
        if trailer.registry_len > REGISTRY_BYTES_MAX {
            return Err(bad("corrupt: registry length out of bounds"));
        }
        let image_len = trailer_at
            .checked_sub(u64::from(trailer.registry_len))
            .ok_or_else(|| bad("corrupt: shorter than its registry"))?;
        Ok((trailer, image_len))
    }

    /// Reads and checks the replicated state stored after the image of the file at `path`.
    fn read_registry(&self, path: &Path, image_len: u64) -> Result<SnapshotExtras, SmError> {
        let bad = |reason: &str| SmError::BadImage {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        };
        let mut bytes = vec![0u8; self.registry_len as usize];
        File::open(path)?.read_exact_at(&mut bytes, image_len)?;
        if crc32fast::hash(&bytes) != self.registry_crc {
            return Err(bad("corrupt: registry checksum mismatch"));
        }
        let decoded = if self.registry_only {
            rmp_serde::from_slice(&bytes)
                .map(|registry| SnapshotExtras { registry, ..Default::default() })
        } else {
            rmp_serde::from_slice(&bytes)
        };
        decoded.map_err(|_| bad("corrupt: registry does not decode"))
    }

    /// Checks the image of the snapshot file at `path` against this trailer's checksum.
    fn verify_image(&self, path: &Path, image_len: u64) -> Result<(), SmError> {
        if image_crc(path, image_len)? != self.image_crc {
            return Err(SmError::BadImage {
                path: path.to_path_buf(),
                reason: "corrupt: image checksum mismatch (damaged on disk or in transfer)"
                    .to_string(),
            });
        }
        Ok(())
    }
}

/// crc32 of the first `len` bytes of the file at `path`.
fn image_crc(path: &Path, len: u64) -> io::Result<u32> {
    let mut input = File::open(path)?.take(len);
    let mut hasher = crc32fast::Hasher::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        match input.read(&mut buffer)? {
            0 => break,
            n => hasher.update(&buffer[..n]),
        }
    }
    Ok(hasher.finalize())
}

fn dir_of(state_dir: &Path) -> PathBuf {
    state_dir.join(SNAPSHOT_DIR)
}

/// Open the snapshot directory: create it (0700), read `current`, delete partial files and
/// leftovers: other `snap-*` files, `import.tmp`, temp files, and `incoming-*` files (a
/// transfer cut by a crash). Call only at start-up, with the owner lock held and before the
/// node takes requests, as it would delete a transfer or a write in flight.
pub(crate) fn open(state_dir: &Path) -> Result<Option<CurrentSnapshot>, SmError> {
    let dir = dir_of(state_dir);
    small_file::create_private_dir(&dir)?;
    small_file::remove_temp_files(&dir)?;
    let current: Option<CurrentSnapshot> = small_file::read(&dir.join(CURRENT_FILE))?;
    for ent in fs::read_dir(&dir)? {
        let name = ent?.file_name().to_string_lossy().into_owned();
        let is_current = current.as_ref().is_some_and(|c| c.file == name);
        if (name.starts_with(OWN_PREFIX) && !is_current)
            || name.starts_with(INCOMING_PREFIX)
            || name == IMPORT_FILE
        {
            remove_if_exists(&dir.join(&name))?;
        }
    }
    Ok(current)
}

/// The current snapshot of the node whose state directory is `state_dir`, opened: its file
/// (held open, so a newer snapshot replacing it cannot pull it away mid-read), the image's
/// length and what its trailer says. None when the node has no snapshot yet.
pub fn open_current(state_dir: &Path) -> Result<Option<(File, u64, ImageTrailer)>, SmError> {
    let dir = dir_of(state_dir);
    // A new snapshot may replace the file between reading `current` and opening it: then the
    // next read of `current` names the new one.
    for _ in 0..3 {
        let Some(current) = small_file::read::<CurrentSnapshot>(&dir.join(CURRENT_FILE))? else {
            return Ok(None);
        };
        let path = dir.join(&current.file);
        let file = match File::open(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            other => other?,
        };
        let (trailer, image_len) = ImageTrailer::read_open(&path, &file)?;
        return Ok(Some((file, image_len, trailer)));
    }
    Err(SmError::from(io::Error::other("the current snapshot kept changing while being opened")))
}

/// Removes the `incoming-*` files of transfers cut short (at shutdown, once the transport has
/// stopped, so no transfer is still writing one). Returns how many were removed.
pub fn remove_incoming(state_dir: &Path) -> io::Result<usize> {
    let mut removed = 0;
    for ent in fs::read_dir(dir_of(state_dir))? {
        let name = ent?.file_name();
        if name.to_string_lossy().starts_with(INCOMING_PREFIX) {
            remove_if_exists(&dir_of(state_dir).join(&name))?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Remove the file at `path`; a missing file is not an error.
fn remove_if_exists(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// On failure of a step that made the partial file at `path`, remove it (best effort: a file
/// left behind is removed by the next `open`) and pass the step's error on.
fn removing_on_error<T, E>(path: &Path, result: Result<T, E>) -> Result<T, E> {
    if result.is_err() {
        if let Err(e) = remove_if_exists(path) {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove a partial snapshot file");
        }
    }
    result
}

fn new_file_name(last_log_index: Option<LogIndex>) -> String {
    let index = last_log_index.map_or_else(|| "none".to_string(), |i| format!("{i:020}"));
    crate::state_layout::own_snapshot_name(&index)
}

/// Export the database into a new snapshot file and make it current.
pub(crate) fn build<D: Database>(
    state_dir: &Path,
    db: &D,
    meta: SnapshotMetaT,
    (last_write_index, registry): (LogIndex, &SnapshotExtras),
    prev: Option<&CurrentSnapshot>,
) -> Result<CurrentSnapshot, SmError> {
    let dir = dir_of(state_dir);
    let last_log_index = meta.last_log_id.as_ref().map(|l| l.index);
    let file = new_file_name(last_log_index);
    let path = dir.join(&file);
    removing_on_error(&path, write_image(db, &path, last_log_index, (last_write_index, registry)))?;
    adopt(&dir, CurrentSnapshot { meta, last_write_index, file }, prev)
}

/// Export the database into a new file at `path` and append the registry and the trailer,
/// durably.
fn write_image<D: Database>(
    db: &D,
    path: &Path,
    last_log_index: Option<LogIndex>,
    (last_write_index, registry): (LogIndex, &SnapshotExtras),
) -> Result<(), SmError> {
    // Created empty and private first: SQLite then opens it as an empty database rather than
    // creating it with its default mode 0644, and gives its WAL and shm files the same mode.
    drop(private_file_options().write(true).create_new(true).open(path)?);
    db.export_image(path)?;
    let image_len = fs::metadata(path)?.len();
    let registry = rmp_serde::to_vec_named(registry).map_err(io::Error::other)?;
    let registry_len = u32::try_from(registry.len()).ok().filter(|len| *len <= REGISTRY_BYTES_MAX);
    let registry_len = registry_len
        .ok_or_else(|| io::Error::other("the trust registry is too large for a snapshot"))?;
    let trailer = ImageTrailer {
        last_log_index,
        last_write_index,
        image_crc: image_crc(path, image_len)?,
        registry_len,
        registry_crc: crc32fast::hash(&registry),
        registry_only: false,
    };
    let mut f = private_file_options().append(true).open(path)?;
    f.write_all(&registry)?;
    f.write_all(&trailer.encode())?;
    f.sync_all()?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))?;
    Ok(())
}

/// Make `next` the current snapshot durably, then delete the previous file.
fn adopt(
    dir: &Path,
    next: CurrentSnapshot,
    prev: Option<&CurrentSnapshot>,
) -> Result<CurrentSnapshot, SmError> {
    small_file::write(&dir.join(CURRENT_FILE), &next)?;
    if let Some(prev) = prev.filter(|p| p.file != next.file) {
        match fs::remove_file(dir.join(&prev.file)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
    }
    Ok(next)
}

/// Install the snapshot file at `src` described by `meta`: check its trailer against `meta`, move
/// it into place (rename if it is in our directory, else copy) and make it current, then import
/// it into the database. Returns the new current snapshot and the replicated state it carries. `current` is written before the import, so a crash in between is
/// repaired at start-up by openraft re-installing the current snapshot.
pub(crate) fn install<D: Database>(
    state_dir: &Path,
    db: &D,
    meta: SnapshotMetaT,
    src: &Path,
    prev: Option<&CurrentSnapshot>,
) -> Result<(CurrentSnapshot, SnapshotExtras), SmError> {
    let dir = dir_of(state_dir);
    let (trailer, image_len) = ImageTrailer::read(src)?;
    trailer.verify_image(src, image_len)?;
    let registry = trailer.read_registry(src, image_len)?;
    let meta_index = meta.last_log_id.as_ref().map(|l| l.index);
    if trailer.last_log_index != meta_index {
        let reason = format!(
            "trailer says last index {:?}, meta says {:?}",
            trailer.last_log_index, meta_index
        );
        return Err(SmError::BadImage { path: src.to_path_buf(), reason });
    }
    let already_current = prev.is_some_and(|p| dir.join(&p.file) == src);
    let file = match (already_current, prev) {
        (true, Some(p)) => p.file.clone(),
        _ => place(&dir, src, trailer.last_log_index)?,
    };
    let next = adopt(
        &dir,
        CurrentSnapshot { meta, last_write_index: trailer.last_write_index, file },
        prev,
    )?;
    let import = dir.join(IMPORT_FILE);
    let imported = copy_prefix(&dir.join(&next.file), &import, image_len)
        .map_err(SmError::from)
        .and_then(|()| db.import_image(&import).map_err(SmError::from));
    removing_on_error(&import, imported)?;
    fs::remove_file(&import)?;
    Ok((next, registry))
}

/// Bring `src` into the snapshot directory under a new name, durably.
fn place(dir: &Path, src: &Path, last_log_index: Option<LogIndex>) -> Result<String, SmError> {
    let file = new_file_name(last_log_index);
    let dst = dir.join(&file);
    if src.parent() == Some(dir) {
        fs::rename(src, &dst)?;
    } else {
        let len = fs::metadata(src)?.len();
        removing_on_error(&dst, copy_prefix(src, &dst, len))?;
    }
    sync_dir(dir)?;
    Ok(file)
}

/// Copy the first `len` bytes of `src` to a new private file `dst` (replacing any file there),
/// durably.
fn copy_prefix(src: &Path, dst: &Path, len: u64) -> io::Result<()> {
    let mut input = File::open(src)?.take(len);
    remove_if_exists(dst)?;
    let mut output = private_file_options().write(true).create_new(true).open(dst)?;
    let copied = io::copy(&mut input, &mut output)?;
    if copied != len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "snapshot image shorter than expected",
        ));
    }
    output.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: a trailer round-trips and a flipped trailer byte is refused.
    #[test]
    fn trailer_round_trip_and_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("img");
        let registry = rmp_serde::to_vec_named(&SnapshotExtras::default()).unwrap();
        let t = ImageTrailer {
            last_log_index: Some(7),
            last_write_index: 5,
            image_crc: crc32fast::hash(b"sqlite image"),
            registry_len: registry.len() as u32,
            registry_crc: crc32fast::hash(&registry),
            registry_only: false,
        };
        let mut bytes = b"sqlite image".to_vec();
        bytes.extend_from_slice(&registry);
        bytes.extend_from_slice(&t.encode());
        fs::write(&p, &bytes).unwrap();
        assert_eq!(ImageTrailer::read(&p).unwrap(), (t, 12));
        t.verify_image(&p, 12).expect("an intact image");
        assert_eq!(t.read_registry(&p, 12).unwrap(), SnapshotExtras::default());
        bytes[3] ^= 1;
        fs::write(&p, &bytes).unwrap();
        assert_eq!(ImageTrailer::read(&p).unwrap(), (t, 12), "the trailer is intact");
        let refused = t.verify_image(&p, 12).expect_err("a damaged image");
        assert!(refused.to_string().contains("corrupt: image checksum mismatch"), "{refused}");
        let n = bytes.len();
        bytes[n - 20] ^= 1;
        fs::write(&p, &bytes).unwrap();
        assert!(matches!(ImageTrailer::read(&p), Err(SmError::BadImage { .. })));
    }

    // Goal: an install whose import fails leaves no `import.tmp` behind (the copy holds the
    // whole database).
    #[test]
    fn failed_import_leaves_no_import_copy() {
        use crate::raft::state_machine::fake_db::FakeDb;
        let state = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let dir = dir_of(state.path());
        assert!(open(state.path()).unwrap().is_none());
        // A valid trailer over an image the database cannot import.
        let image = b"not an image".to_vec();
        let registry = rmp_serde::to_vec_named(&SnapshotExtras::default()).unwrap();
        let trailer = ImageTrailer {
            last_log_index: None,
            last_write_index: 0,
            image_crc: crc32fast::hash(&image),
            registry_len: registry.len() as u32,
            registry_crc: crc32fast::hash(&registry),
            registry_only: false,
        };
        let src = outside.path().join("incoming.db");
        fs::write(&src, [image, registry, trailer.encode().to_vec()].concat()).unwrap();
        let meta = SnapshotMetaT { last_log_id: None, last_membership: Default::default() };
        let db = FakeDb::default();
        assert!(install(state.path(), &db, meta, &src, None).is_err());
        assert!(!dir.join(IMPORT_FILE).exists());
    }

    // Goal: at shutdown, the partial files of cut transfers go, and nothing else does.
    #[test]
    fn remove_incoming_removes_only_partial_transfers() {
        let state = tempfile::tempdir().unwrap();
        let dir = dir_of(state.path());
        assert!(open(state.path()).unwrap().is_none());
        for name in ["incoming-1.db", "incoming-2.db", "snap-1-2.db", CURRENT_FILE] {
            fs::write(dir.join(name), b"x").unwrap();
        }
        assert_eq!(remove_incoming(state.path()).unwrap(), 2);
        let mut left: Vec<String> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, [CURRENT_FILE, "snap-1-2.db"]);
    }
}
