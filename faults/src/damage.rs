//! Damage to a stopped node's state files: the torn tail a crash in the middle of a Raft log
//! append leaves, and flipped bytes inside a checksummed state file, as a bad disk would.
//!
//! The on-disk formats are the core's (read from its sources, only the framing is used here):
//! the Raft log is `<state dir>/log/<seq as 16 hex digits>.seg` segment files, each a run of
//! records `body length u32 LE | crc32 u32 LE | body` (`src/raft/log_store/record.rs`); the
//! small state files `log/vote`, `log/purged`, `applied` and `snapshots/current` are
//! `magic (4) | length u32 LE | crc32 u32 LE | body`, checksummed as a whole
//! (`src/raft/small_file.rs`). Both are verified by the node when it starts.
//!
//! Invariants: only files of a node whose process is gone are touched; a torn tail changes
//! nothing before the newest segment's last record, and that record only when the caller
//! allows it; a corruption changes bytes inside one
//! record that is followed by another (never the last one, which a torn tail could explain) or
//! inside one small file, and never leaves them unchanged.

use std::fs::OpenOptions;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::Rng;

/// Bytes before a log record's body: length and checksum.
const RECORD_HEADER_BYTES: usize = 8;
/// Most garbage bytes a torn tail appends (a partial header and some of a body).
const GARBAGE_BYTES_MAX: usize = 256;
/// The small state files, relative to the state directory.
const SMALL_FILES: [&str; 4] = ["log/vote", "log/purged", "applied", "snapshots/current"];

/// What a damage did, for the nemesis log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damage {
    pub file: PathBuf,
    /// The first byte changed (or where the file was cut).
    pub offset: u64,
    pub description: String,
}

/// The log's segment files, oldest first.
pub fn segments(state_dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let dir = state_dir.join("log");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("list {}", dir.display()))? {
        let path = entry?.path();
        let is_segment = path.extension().is_some_and(|ext| ext == "seg")
            && path.file_stem().and_then(|stem| stem.to_str()).is_some_and(|stem| stem.len() == 16);
        if is_segment {
            found.push(path);
        }
    }
    // Sixteen hex digits sort by name as by number.
    found.sort();
    Ok(found)
}

/// The byte ranges of the whole records at the start of `bytes` (by their length fields; the
/// checksums are not verified), stopping at the first that does not fit.
pub fn records(bytes: &[u8]) -> Vec<Range<usize>> {
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(header) = bytes.get(at..at + RECORD_HEADER_BYTES) {
        let body = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let end = at + RECORD_HEADER_BYTES + body;
        if body == 0 || end > bytes.len() {
            break;
        }
        found.push(at..end);
        at = end;
    }
    found
}

/// Leaves the newest log segment as a crash in the middle of an append would: a record that
/// was being appended cut short (a prefix of a copy of the last record: its real header and part
/// of its body), or random bytes; and, if `may_cut_last`, possibly the last record itself cut at
/// a random byte inside it.
///
/// Cutting the last record is only what a crash does if that record was never synced, so was
/// never acknowledged to anyone nor applied: the caller says so (the log of a leader cut off
/// from everyone, whose last entries no one else received). A follower's last record was
/// acknowledged once synced: losing it is losing durable data, not a crash.
pub fn tear_tail(state_dir: &Path, rng: &mut StdRng, may_cut_last: bool) -> anyhow::Result<Damage> {
    let Some(newest) = segments(state_dir)?.pop() else {
        bail!("{} has no log segment", state_dir.display())
    };
    let bytes = std::fs::read(&newest).with_context(|| format!("read {}", newest.display()))?;
    let last = records(&bytes).pop();
    let cut = may_cut_last && last.is_some() && rng.random_bool(2.0 / 3.0);
    let append = !cut || rng.random_bool(0.5);
    let mut kept = bytes.len();
    let mut description = Vec::new();
    if let (true, Some(last)) = (cut, &last) {
        // Strictly inside: at least one byte of the record goes and at least one stays.
        kept = rng.random_range(last.start + 1..last.end);
        description.push(format!(
            "cut the last record ({} bytes at {}) after {} bytes",
            last.len(),
            last.start,
            kept - last.start
        ));
    }
    let mut tail = Vec::new();
    if append {
        match (&last, rng.random_bool(0.5)) {
            (Some(last), true) => {
                tail = bytes[last.start..rng.random_range(last.start + 1..last.end)].to_vec();
                description.push(format!(
                    "appended the first {} bytes of a copy of the last record ({} bytes)",
                    tail.len(),
                    last.len()
                ));
            }
            _ => {
                tail = vec![0u8; rng.random_range(1..=GARBAGE_BYTES_MAX)];
                rng.fill(&mut tail[..]);
                description.push(format!("appended {} random bytes", tail.len()));
            }
        }
    }
    let file = OpenOptions::new()
        .write(true)
        .open(&newest)
        .with_context(|| format!("open {}", newest.display()))?;
    file.set_len(kept as u64)?;
    file.write_all_at(&tail, kept as u64)?;
    file.sync_all()?;
    Ok(Damage { file: newest, offset: kept as u64, description: description.join(", ") })
}

/// Flips bytes inside a checksummed state file: a log record that another record follows (its
/// length, checksum or body), or one of the small state files. The node must refuse to start.
pub fn corrupt(state_dir: &Path, rng: &mut StdRng) -> anyhow::Result<Damage> {
    let small: Vec<PathBuf> =
        SMALL_FILES.iter().map(|name| state_dir.join(name)).filter(|path| path.is_file()).collect();
    let middle = middle_records(state_dir)?;
    let use_log = !middle.is_empty() && (small.is_empty() || rng.random_bool(0.5));
    let (file, range, what) = if use_log {
        let (file, record) =
            middle.choose(rng).cloned().ok_or_else(|| anyhow::anyhow!("no record"))?;
        // Which part of the record: a damaged length hides where the next record starts.
        let (part, range) = match rng.random_range(0..3) {
            0 => ("length", record.start..record.start + 4),
            1 => ("checksum", record.start + 4..record.start + RECORD_HEADER_BYTES),
            _ => ("body", record.start + RECORD_HEADER_BYTES..record.end),
        };
        (
            file,
            range,
            format!(
                "the {part} of a log record followed by others ({} bytes at {})",
                record.len(),
                record.start
            ),
        )
    } else {
        let Some(file) = small.choose(rng).cloned() else {
            bail!("{} has no state file to damage", state_dir.display())
        };
        let length = std::fs::metadata(&file)?.len() as usize;
        (file, 0..length, "a small state file".to_owned())
    };
    if range.is_empty() {
        bail!("{}: nothing to damage", file.display());
    }
    let offset = rng.random_range(range.clone());
    let count = rng.random_range(1..=4).min(range.end - offset);
    let handle = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&file)
        .with_context(|| format!("open {}", file.display()))?;
    let mut bytes = vec![0u8; count];
    handle.read_exact_at(&mut bytes, offset as u64)?;
    for byte in &mut bytes {
        // A non-zero mask always changes the byte.
        *byte ^= rng.random_range(1..=u8::MAX);
    }
    handle.write_all_at(&bytes, offset as u64)?;
    handle.sync_all()?;
    let description = format!("flipped {count} byte(s) at offset {offset} of {what}");
    Ok(Damage { file, offset: offset as u64, description })
}

/// Every log record another record follows: all records of sealed segments, and all but the
/// last of the newest one (whose last record, damaged, looks like a torn tail).
fn middle_records(state_dir: &Path) -> anyhow::Result<Vec<(PathBuf, Range<usize>)>> {
    let segments = segments(state_dir)?;
    let mut found = Vec::new();
    for (index, segment) in segments.iter().enumerate() {
        let bytes =
            std::fs::read(segment).with_context(|| format!("read {}", segment.display()))?;
        let mut records = records(&bytes);
        if index + 1 == segments.len() {
            records.pop();
        }
        found.extend(records.into_iter().map(|record| (segment.clone(), record)));
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// A record as the log store frames it (the checksum is not checked here, so any value).
    fn record(body: &[u8]) -> Vec<u8> {
        let mut bytes = (body.len() as u32).to_le_bytes().to_vec();
        bytes.extend_from_slice(&[0xab; 4]);
        bytes.extend_from_slice(body);
        bytes
    }

    fn state_dir_with(segments: &[Vec<u8>]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("log")).unwrap();
        for (seq, bytes) in segments.iter().enumerate() {
            std::fs::write(dir.path().join(format!("log/{seq:016x}.seg")), bytes).unwrap();
        }
        dir
    }

    #[test]
    fn records_are_framed_by_their_lengths() {
        let mut bytes = record(b"first");
        bytes.extend(record(b"second!"));
        bytes.extend([9, 0, 0, 0, 1]);
        assert_eq!(records(&bytes), vec![0..13, 13..28]);
    }

    #[test]
    fn a_torn_tail_damages_only_the_last_record_or_after_it() {
        let mut intact = record(b"one");
        intact.extend(record(&[7u8; 40]));
        let last_start = record(b"one").len();
        let (mut cuts, mut copies, mut garbage) = (0, 0, 0);
        for seed in 0..64 {
            let may_cut_last = seed % 2 == 0;
            let dir = state_dir_with(&[record(b"sealed"), intact.clone()]);
            let damage =
                tear_tail(dir.path(), &mut StdRng::seed_from_u64(seed), may_cut_last).unwrap();
            assert!(
                damage.file.ends_with("0000000000000001.seg"),
                "the newest segment: {damage:?}"
            );
            let torn = std::fs::read(&damage.file).unwrap();
            assert_ne!(torn, intact, "{damage:?}");
            assert_eq!(
                torn[..last_start],
                intact[..last_start],
                "records before the last one untouched: {damage:?}"
            );
            assert_eq!(records(&torn).first(), Some(&(0..last_start)));
            let last_cut = torn.len() < intact.len() || torn[..intact.len()] != intact[..];
            if last_cut {
                assert!(may_cut_last, "the last record is cut only when allowed: {damage:?}");
                assert!(
                    damage.offset > last_start as u64 && damage.offset < intact.len() as u64,
                    "{damage:?}"
                );
                cuts += 1;
            } else {
                assert_eq!(
                    records(&torn),
                    records(&intact),
                    "what is appended is never a whole record: {damage:?}"
                );
            }
            if damage.description.contains("copy") {
                copies += 1;
                let appended = &torn[damage.offset as usize..];
                assert_eq!(
                    appended,
                    &intact[last_start..last_start + appended.len()],
                    "{damage:?}"
                );
            }
            if damage.description.contains("random") {
                garbage += 1;
            }
            let sealed = std::fs::read(dir.path().join("log/0000000000000000.seg")).unwrap();
            assert_eq!(sealed, record(b"sealed"));
        }
        assert!(
            cuts > 0 && copies > 0 && garbage > 0,
            "every kind of tear: {cuts} cuts, {copies} partial copies, {garbage} random"
        );
    }

    #[test]
    fn a_corruption_changes_a_middle_record_or_a_small_file() {
        let mut newest = record(b"middle one");
        newest.extend(record(b"the last"));
        let (mut in_log, mut in_small) = (0, 0);
        for seed in 0..64 {
            let dir = state_dir_with(&[record(b"sealed"), newest.clone()]);
            std::fs::write(dir.path().join("applied"), b"DQSF-small-file").unwrap();
            let damage = corrupt(dir.path(), &mut StdRng::seed_from_u64(seed)).unwrap();
            let after = std::fs::read(&damage.file).unwrap();
            if damage.file.ends_with("applied") {
                in_small += 1;
                assert_ne!(after, b"DQSF-small-file", "{damage:?}");
                continue;
            }
            in_log += 1;
            let before = if damage.file.ends_with("0000000000000000.seg") {
                record(b"sealed")
            } else {
                newest.clone()
            };
            assert_ne!(after, before, "{damage:?}");
            assert_eq!(after.len(), before.len());
            let last = records(&newest).pop().unwrap();
            if damage.file.ends_with("0000000000000001.seg") {
                assert_eq!(
                    after[last.clone()],
                    before[last],
                    "the newest segment's last record is never damaged: {damage:?}"
                );
            }
        }
        assert!(in_log > 0 && in_small > 0, "{in_log} log records, {in_small} small files damaged");
    }
}
