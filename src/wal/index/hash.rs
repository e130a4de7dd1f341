//! The wal-index hash tables: for each frame, its page number, and a hash from page number to
//! frame, so readers find the latest frame of a page without scanning the WAL.
//!
//! Layout (<https://www.sqlite.org/walformat.html#hash_tables>): region 0 holds frames
//! 1..=4062 (its page-number array starts after the 136-byte header block), region n > 0 holds
//! 4096 frames; the array is followed at byte 16384 by 8192 u16 slots. A page hashes to
//! `(page * 383) & 8191`, collisions probe linearly, and a slot holds the frame's 1-based
//! position within its region. Invariants kept, as SQLite's writer keeps them: a region is
//! zeroed when it receives its first frame, and entries past the committed `mxFrame` (left by
//! a writer that died before committing) are erased before a new frame goes in.

use super::header::HEADER_BLOCK_BYTES;
use super::{IndexRegion, SharedIndex, REGION_BYTES};
use crate::wal::WalError;

/// Frames indexed by region 0.
pub const FRAMES_IN_REGION0: u32 = 4096 - (HEADER_BLOCK_BYTES / 4) as u32;
/// Frames indexed by each later region.
pub const FRAMES_PER_REGION: u32 = 4096;
/// Hash slots per region.
pub const SLOTS: usize = 8192;
/// Byte offset of the hash slots in every region.
pub const SLOTS_OFFSET: usize = 4096 * 4;

/// The region that indexes 1-based `frame_number`.
pub fn region_of_frame(frame_number: u32) -> usize {
    assert!(frame_number >= 1, "frame numbers are 1-based");
    let shifted = u64::from(frame_number) + u64::from(FRAMES_PER_REGION - FRAMES_IN_REGION0) - 1;
    (shifted / u64::from(FRAMES_PER_REGION)) as usize
}

/// The frame number just before region `n`'s first frame (SQLite's `iZero`).
fn frame_base(n: usize) -> u32 {
    if n == 0 {
        0
    } else {
        FRAMES_IN_REGION0 + (n as u32 - 1) * FRAMES_PER_REGION
    }
}

/// Byte offset of the page number of the frame at 1-based position `slot_value` in region `n`.
fn page_number_offset(n: usize, slot_value: u32) -> usize {
    let start = if n == 0 { HEADER_BLOCK_BYTES } else { 0 };
    start + (slot_value as usize - 1) * 4
}

fn slot_offset(key: usize) -> usize {
    SLOTS_OFFSET + key * 2
}

fn hash_key(page_number: u32) -> usize {
    (page_number.wrapping_mul(383) as usize) & (SLOTS - 1)
}

/// Records that frame `frame_number` holds `page_number`. `committed_max_frame` is the
/// wal-index `mxFrame` before the transaction being written: stale entries past it are erased.
pub fn append<S: SharedIndex>(
    shared: &S,
    frame_number: u32,
    page_number: u32,
    committed_max_frame: u32,
) -> Result<(), WalError> {
    let n = region_of_frame(frame_number);
    let region = shared.region(n)?;
    let slot_value = frame_number - frame_base(n);
    if slot_value == 1 {
        // A region's first frame: whatever an earlier WAL generation left here is garbage.
        let start = page_number_offset(n, 1);
        for offset in (start..REGION_BYTES).step_by(4) {
            region.store_u32(offset, 0);
        }
    }
    if region.load_u32(page_number_offset(n, slot_value)) != 0 {
        cleanup(shared, committed_max_frame)?;
    }
    let mut key = hash_key(page_number);
    // A region holds at most `slot_value - 1` entries before this one, so a longer probe
    // chain can only mean corruption (and would otherwise never end on a full table).
    let mut probes_left = slot_value;
    while region.load_u16(slot_offset(key)) != 0 {
        if probes_left == 0 {
            return Err(WalError::IndexCorrupt { frame_number });
        }
        probes_left -= 1;
        key = (key + 1) & (SLOTS - 1);
    }
    region.store_u32(page_number_offset(n, slot_value), page_number);
    region.store_u16(slot_offset(key), slot_value as u16);
    Ok(())
}

/// Erases every entry past `max_frame` in the region holding `max_frame` (later regions are
/// zeroed when they get their first frame).
pub fn cleanup<S: SharedIndex>(shared: &S, max_frame: u32) -> Result<(), WalError> {
    if max_frame == 0 {
        return Ok(());
    }
    let n = region_of_frame(max_frame);
    let region = shared.region(n)?;
    let limit = max_frame - frame_base(n);
    for key in 0..SLOTS {
        if u32::from(region.load_u16(slot_offset(key))) > limit {
            region.store_u16(slot_offset(key), 0);
        }
    }
    for offset in (page_number_offset(n, limit + 1)..SLOTS_OFFSET).step_by(4) {
        region.store_u32(offset, 0);
    }
    Ok(())
}

/// The latest frame at or below `max_frame` that holds `page_number`, as a reader finds it.
pub fn lookup<S: SharedIndex>(
    shared: &S,
    page_number: u32,
    max_frame: u32,
) -> Result<Option<u32>, WalError> {
    if max_frame == 0 {
        return Ok(None);
    }
    for n in (0..=region_of_frame(max_frame)).rev() {
        let region = shared.region(n)?;
        let base = frame_base(n);
        let mut key = hash_key(page_number);
        let mut found = None;
        for _ in 0..SLOTS {
            let slot_value = u32::from(region.load_u16(slot_offset(key)));
            if slot_value == 0 {
                break;
            }
            let frame = base + slot_value;
            let stored = region.load_u32(page_number_offset(n, slot_value));
            if frame <= max_frame && stored == page_number {
                found = Some(frame);
            }
            key = (key + 1) & (SLOTS - 1);
        }
        if found.is_some() {
            return Ok(found);
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::index::memory::MemoryIndex;

    fn filled(frames: u32, page_of: impl Fn(u32) -> u32) -> MemoryIndex {
        let index = MemoryIndex::new();
        for frame in 1..=frames {
            append(&index, frame, page_of(frame), frame - 1).unwrap();
        }
        index
    }

    // Goal: region boundaries fall where SQLite puts them (4062, then every 4096).
    #[test]
    fn region_boundaries() {
        assert_eq!(FRAMES_IN_REGION0, 4062);
        assert_eq!(region_of_frame(1), 0);
        assert_eq!(region_of_frame(4062), 0);
        assert_eq!(region_of_frame(4063), 1);
        assert_eq!(region_of_frame(4062 + 4096), 1);
        assert_eq!(region_of_frame(4062 + 4097), 2);
        assert_eq!(page_number_offset(0, 1), 136);
        assert_eq!(page_number_offset(0, 4062), SLOTS_OFFSET - 4);
    }

    // Goal: lookup finds the latest frame of a page, bounded by max_frame, across regions.
    #[test]
    fn lookup_latest_frame() {
        let index = filled(9000, |frame| frame % 10 + 1);
        assert_eq!(lookup(&index, 3, 9000).unwrap(), Some(8992));
        assert_eq!(lookup(&index, 3, 8991).unwrap(), Some(8982));
        assert_eq!(lookup(&index, 3, 100).unwrap(), Some(92));
        assert_eq!(lookup(&index, 11, 9000).unwrap(), None);
        assert_eq!(lookup(&index, 3, 0).unwrap(), None);
    }

    // Goal: the raw layout is SQLite's: page number at 136 + 4*(i-1), slot at 16384 + 2*key.
    #[test]
    fn raw_layout() {
        let index = filled(2, |frame| frame + 4);
        let region0 = index.region(0).unwrap();
        assert_eq!(region0.load_u32(136), 5);
        assert_eq!(region0.load_u32(140), 6);
        assert_eq!(region0.load_u16(SLOTS_OFFSET + 2 * ((5 * 383) & 8191)), 1);
        assert_eq!(region0.load_u16(SLOTS_OFFSET + 2 * ((6 * 383) & 8191)), 2);
    }

    // Goal: entries a dead writer left past mxFrame are erased before new frames go in.
    #[test]
    fn stale_entries_are_cleaned() {
        // Frames 1..=10 indexed, but only 1..=5 were ever committed.
        let index = filled(10, |frame| 100 + frame);
        append(&index, 6, 7, 5).unwrap();
        let region0 = index.region(0).unwrap();
        let used = (0..SLOTS).filter(|k| region0.load_u16(slot_offset(*k)) != 0).count();
        assert_eq!(used, 6);
        assert_eq!(region0.load_u32(page_number_offset(0, 7)), 0);
        assert_eq!(lookup(&index, 108, 10).unwrap(), None);
        assert_eq!(lookup(&index, 7, 6).unwrap(), Some(6));
        assert_eq!(lookup(&index, 105, 6).unwrap(), Some(5));
    }

    // Goal: a region's first frame zeroes leftovers of an older WAL generation.
    #[test]
    fn new_region_is_zeroed() {
        let index = filled(4070, |frame| frame);
        // A restart: frame 1 again, with different pages; old entries must vanish.
        append(&index, 1, 77, 0).unwrap();
        assert_eq!(lookup(&index, 2, 1).unwrap(), None);
        assert_eq!(lookup(&index, 77, 1).unwrap(), Some(1));
        let region0 = index.region(0).unwrap();
        assert_eq!(region0.load_u32(page_number_offset(0, 2)), 0);
    }

    // Goal: a hash table with more used slots than frames is reported corrupt, not looped on.
    #[test]
    fn corrupt_table_is_detected() {
        let index = MemoryIndex::new();
        append(&index, 1, 1, 0).unwrap();
        let region0 = index.region(0).unwrap();
        for key in 0..SLOTS {
            region0.store_u16(slot_offset(key), 1);
        }
        let err = append(&index, 2, 9, 1).unwrap_err();
        assert!(matches!(err, WalError::IndexCorrupt { frame_number: 2 }));
    }
}
