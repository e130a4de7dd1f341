//! Segment files of the Raft log: `<log dir>/<seq as 16 hex digits>.seg`, each a sequence of
//! records (see `record.rs`), appended to only while it is the newest segment.
//!
//! Invariants: sequence numbers only grow; records in a segment are in ascending log order and
//! every record in segment `n` precedes every record in segment `n + 1`; only the newest segment
//! may end in a torn record (older ones were fsynced before the next was created).

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::error::LogError;
use super::record::{self, Slot};
use crate::raft::small_file::{private_file_options, sync_dir};
use crate::state_layout::SEGMENT_SUFFIX as SUFFIX;

/// A new segment is started once the newest one has reached this size, so that purging can
/// delete whole files and a scan at start-up reads bounded files.
pub const SEGMENT_BYTES_MAX: u64 = 64 << 20;

/// An open segment file.
#[derive(Debug)]
pub(crate) struct Segment {
    pub(crate) seq: u64,
    pub(crate) path: PathBuf,
    /// Shared with readers, so that a file deleted by purge stays readable by a read in flight.
    pub(crate) file: Arc<File>,
    /// Bytes of valid records; appends go here.
    pub(crate) len: u64,
}

pub(crate) fn path_of(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:016x}{SUFFIX}"))
}

/// Sequence numbers of the segments in `dir`, ascending. Other files are ignored.
pub(crate) fn list(dir: &Path) -> io::Result<Vec<u64>> {
    let mut seqs = Vec::new();
    for ent in fs::read_dir(dir)? {
        let name = ent?.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(SUFFIX)) else {
            continue;
        };
        if stem.len() == 16 {
            if let Ok(seq) = u64::from_str_radix(stem, 16) {
                seqs.push(seq);
            }
        }
    }
    seqs.sort_unstable();
    Ok(seqs)
}

/// Open an existing segment for reading and writing (never through a symbolic link).
pub(crate) fn open(dir: &Path, seq: u64) -> io::Result<Segment> {
    let path = path_of(dir, seq);
    let file = private_file_options().read(true).write(true).open(&path)?;
    let len = file.metadata()?.len();
    Ok(Segment { seq, path, file: Arc::new(file), len })
}

/// Create a new, empty segment, durably (the directory entry is fsynced), readable only by its
/// owner (it holds the database's pages).
pub(crate) fn create(dir: &Path, seq: u64) -> io::Result<Segment> {
    let path = path_of(dir, seq);
    let file = private_file_options().read(true).write(true).create_new(true).open(&path)?;
    sync_dir(dir)?;
    Ok(Segment { seq, path, file: Arc::new(file), len: 0 })
}

/// Verify every record of `seg`, calling `visit(offset, body_len, body)` for each valid one, and
/// return the length of the valid prefix.
///
/// A bad record is a torn tail (the crash hit an append that was never acknowledged) only if it
/// is in the newest segment and no valid record follows it; then the valid prefix ends at it.
/// Otherwise it is corruption of acknowledged data and an error. When the bad record's length
/// is believable, the next record is where it says; when not (a damaged length field), the
/// rest of the segment is searched for an intact record.
pub(crate) fn scan(
    seg: &Segment,
    is_newest: bool,
    mut visit: impl FnMut(u64, u32, Vec<u8>) -> Result<(), LogError>,
) -> Result<u64, LogError> {
    let mut offset = 0u64;
    loop {
        match record::read_slot(&seg.file, offset, seg.len).map_err(LogError::Read)? {
            Slot::End => return Ok(offset),
            Slot::Record { body } => {
                let len = u32::try_from(body.len())
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                visit(offset, len, body)?;
                offset += record::RECORD_HEADER_BYTES + u64::from(len);
            }
            Slot::Bad { reason, next } => {
                let followed_by_record = match next {
                    Some(next) => {
                        let slot = record::read_slot(&seg.file, next, seg.len);
                        matches!(slot.map_err(LogError::Read)?, Slot::Record { .. })
                    }
                    None => false,
                } || (is_newest && record_after(seg, offset)?.is_some());
                if is_newest && !followed_by_record {
                    tracing::warn!(path = %seg.path.display(), offset, reason, "cutting torn tail of the raft log");
                    return Ok(offset);
                }
                return Err(LogError::Corrupt { path: seg.path.clone(), offset, reason });
            }
        }
    }
}

/// Where the first intact record that starts after `offset` is, if any: a body that begins as
/// every entry does ([`record::ENTRY_BODY_PREFIX`]) preceded by a header whose length and
/// checksum hold. Reads the rest of the segment once, in bounded chunks; only called on a bad
/// record of the newest segment, at start-up.
fn record_after(seg: &Segment, offset: u64) -> io::Result<Option<u64>> {
    const CHUNK_BYTES: u64 = 1 << 20;
    let prefix = &record::ENTRY_BODY_PREFIX;
    let overlap = prefix.len() as u64 - 1;
    // The earliest body of a record starting after `offset`.
    let mut from = offset + 1 + record::RECORD_HEADER_BYTES;
    let mut chunk = Vec::new();
    while from + prefix.len() as u64 <= seg.len {
        // Each chunk holds the windows starting in [from, from + CHUNK_BYTES).
        let len = (seg.len - from).min(CHUNK_BYTES + overlap);
        chunk.resize(len as usize, 0);
        seg.file.read_exact_at(&mut chunk, from)?;
        for (at, window) in chunk.windows(prefix.len()).enumerate() {
            if window != prefix {
                continue;
            }
            let start = from + at as u64 - record::RECORD_HEADER_BYTES;
            if let Slot::Record { .. } = record::read_slot(&seg.file, start, seg.len)? {
                return Ok(Some(start));
            }
        }
        from += CHUNK_BYTES;
    }
    Ok(None)
}

/// Cut `seg` to `len` bytes durably.
pub(crate) fn truncate(seg: &mut Segment, len: u64) -> io::Result<()> {
    seg.file.set_len(len)?;
    seg.file.sync_all()?;
    seg.len = len;
    Ok(())
}
