//! Reading a WAL from its start as SQLite's recovery does: the valid prefix ends at the last
//! commit frame before the first frame whose salts or checksum break. Also the start-up
//! repairs built on it: cutting a WAL after a frame, and rebuilding a wal-index from a scan.
//!
//! Invariant: nothing past the valid prefix is ever trusted; allocation is bounded by the
//! file's size (one page buffer, and one page number per valid frame).

use super::checksum::Checksum;
use super::file::WalFile;
use super::format::{verify_frame, PageSize, WalHeader, FRAME_HEADER_BYTES, WAL_HEADER_BYTES};
use super::index::header::{reset_checkpoint_info, write_header, IndexHeader, READ_MARK_UNUSED};
use super::index::{hash, IndexRegion, SharedIndex};
use super::WalError;

/// The valid committed prefix of a WAL file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WalScan {
    /// The WAL header, when the file has a valid one (otherwise the WAL counts as empty).
    pub header: Option<WalHeader>,
    /// The last valid commit frame (0: no committed frame).
    pub last_commit_frame: u32,
    /// Database size in pages recorded by that commit frame (0 when none).
    pub db_size_pages: u32,
    /// Running checksum after the last commit frame (the header's when there is none).
    pub checksum: Checksum,
    /// Page number of each frame 1..=`last_commit_frame`, in frame order.
    pub page_numbers: Vec<u32>,
    /// Every valid commit frame, ascending (transaction boundaries).
    pub commit_frames: Vec<u32>,
}

/// Scans `file` from its start. I/O errors are errors; a bad header or frame just ends the
/// valid prefix, as in SQLite.
pub fn scan<F: WalFile>(file: &F) -> Result<WalScan, WalError> {
    let file_bytes = file.size_bytes()?;
    if file_bytes < WAL_HEADER_BYTES as u64 {
        return Ok(WalScan::default());
    }
    let mut header_bytes = [0u8; WAL_HEADER_BYTES];
    file.read_exact_at(&mut header_bytes, 0)?;
    let Ok(header) = WalHeader::decode(&header_bytes) else {
        return Ok(WalScan::default());
    };
    let page_size = header.page_size;
    let frames_in_file = (file_bytes - WAL_HEADER_BYTES as u64) / page_size.frame_bytes();
    let frames_in_file = u32::try_from(frames_in_file).unwrap_or(u32::MAX);
    let mut result =
        WalScan { header: Some(header), checksum: header.checksum, ..WalScan::default() };
    let mut pending_pages = Vec::new();
    let mut running = header.checksum;
    let mut buffer = vec![0u8; page_size.frame_bytes() as usize];
    for frame_number in 1..=frames_in_file {
        file.read_exact_at(&mut buffer, page_size.frame_offset(frame_number))?;
        let (head, page) = buffer.split_at(FRAME_HEADER_BYTES);
        let head: &[u8; FRAME_HEADER_BYTES] = head.try_into().expect("split at the header size");
        let Ok(frame) = verify_frame(header.order, running, header.salts, frame_number, head, page)
        else {
            break;
        };
        running = frame.checksum;
        pending_pages.push(frame.page_number);
        if frame.is_commit() {
            result.page_numbers.append(&mut pending_pages);
            result.last_commit_frame = frame_number;
            result.commit_frames.push(frame_number);
            result.db_size_pages = frame.db_size_pages;
            result.checksum = running;
        }
    }
    Ok(result)
}

/// Cuts `file` right after frame `frame_number` (0: to nothing at all), dropping a torn or
/// rolled-back tail so that no later recovery can resurrect it. Only safe while no SQLite
/// connection has the WAL open, or when `frame_number` is at least the wal-index `mxFrame`.
pub fn truncate_after<F: WalFile>(
    file: &F,
    page_size: PageSize,
    frame_number: u32,
) -> Result<(), WalError> {
    let size_bytes = if frame_number == 0 {
        0
    } else {
        page_size.frame_offset(frame_number) + page_size.frame_bytes()
    };
    if file.size_bytes()? > size_bytes {
        file.truncate(size_bytes)?;
    }
    Ok(())
}

/// Rebuilds the wal-index from `scan`, as SQLite's recovery would: hash tables for every
/// committed frame, a fresh header, and checkpoint info saying nothing is backfilled. The
/// caller has exclusive use of the wal-index (no SQLite connection on it: start-up or tests).
pub fn rebuild_index<S: SharedIndex>(shared: &S, scan: &WalScan) -> Result<IndexHeader, WalError> {
    let region0 = shared.region(0)?;
    for (position, page_number) in scan.page_numbers.iter().enumerate() {
        let frame_number = position as u32 + 1;
        hash::append(shared, frame_number, *page_number, frame_number - 1)?;
    }
    let mut header = IndexHeader { is_init: true, ..IndexHeader::default() };
    header.change_counter = region0.load_u32(8).wrapping_add(1);
    if let Some(wal_header) = &scan.header {
        header.big_endian_checksum = wal_header.order.is_big();
        header.page_size = wal_header.page_size.bytes();
        header.salts = wal_header.salts;
    }
    header.max_frame = scan.last_commit_frame;
    header.db_size_pages = scan.db_size_pages;
    header.frame_checksum = scan.checksum;
    write_header(shared, &region0, &header);
    let read_mark_1 = if header.max_frame > 0 { header.max_frame } else { READ_MARK_UNUSED };
    reset_checkpoint_info(&region0, header.max_frame, read_mark_1);
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::index::header::read_header;
    use crate::wal::index::memory::MemoryIndex;

    fn write_wal(path: &std::path::Path, frames: &[(u32, u32)]) -> std::fs::File {
        let frames: Vec<(u32, u32, u8)> = frames.iter().map(|(p, c)| (*p, *c, *p as u8)).collect();
        crate::wal::testutil::wal_from_frames(path, &frames)
    }

    // Goal: the valid prefix ends at the last commit; an uncommitted tail is not counted.
    #[test]
    fn prefix_ends_at_last_commit() {
        let dir = tempfile::tempdir().unwrap();
        let file = write_wal(&dir.path().join("w"), &[(1, 0), (2, 2), (3, 0), (1, 3), (2, 0)]);
        let result = scan(&file).unwrap();
        assert_eq!(result.last_commit_frame, 4);
        assert_eq!(result.db_size_pages, 3);
        assert_eq!(result.page_numbers, vec![1, 2, 3, 1]);
        assert_eq!(result.commit_frames, vec![2, 4]);
    }

    // Goal: a corrupt frame ends the prefix before it, even if later frames commit.
    #[test]
    fn corruption_stops_the_scan() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w");
        let file = write_wal(&path, &[(1, 1), (2, 2), (3, 3)]);
        let page_size = PageSize::new(512).unwrap();
        WalFile::write_all_at(&file, &[0xee], page_size.frame_offset(2) + 100).unwrap();
        let result = scan(&file).unwrap();
        assert_eq!(result.last_commit_frame, 1);
        assert_eq!(result.page_numbers, vec![1]);
    }

    // Goal: empty, short or headerless files scan as an empty WAL.
    #[test]
    fn empty_and_garbage_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w");
        for content in [&b""[..], &[7u8; 31][..], &[7u8; 2000][..]] {
            std::fs::write(&path, content).unwrap();
            let file = std::fs::File::open(&path).unwrap();
            assert_eq!(scan(&file).unwrap(), WalScan::default());
        }
    }

    // Goal: truncate_after keeps exactly frames 1..=N and drops the torn tail.
    #[test]
    fn truncate_keeps_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let file = write_wal(&dir.path().join("w"), &[(1, 1), (2, 0), (3, 0)]);
        WalFile::write_all_at(&file, &[1, 2, 3], file.size_bytes().unwrap()).unwrap();
        let page_size = PageSize::new(512).unwrap();
        truncate_after(&file, page_size, 1).unwrap();
        assert_eq!(file.size_bytes().unwrap(), 32 + 536);
        assert_eq!(scan(&file).unwrap().last_commit_frame, 1);
        truncate_after(&file, page_size, 0).unwrap();
        assert_eq!(file.size_bytes().unwrap(), 0);
    }

    // Goal: a rebuilt index has SQLite's header and finds every committed page.
    #[test]
    fn rebuild_index_from_scan() {
        let dir = tempfile::tempdir().unwrap();
        let file = write_wal(&dir.path().join("w"), &[(1, 0), (2, 2), (1, 2), (5, 0)]);
        let result = scan(&file).unwrap();
        let index = MemoryIndex::new();
        let header = rebuild_index(&index, &result).unwrap();
        let region0 = index.region(0).unwrap();
        assert_eq!(read_header(&index, &region0).unwrap(), header);
        assert_eq!((header.max_frame, header.db_size_pages, header.page_size), (3, 2, 512));
        assert_eq!(hash::lookup(&index, 1, 3).unwrap(), Some(3));
        assert_eq!(hash::lookup(&index, 5, 3).unwrap(), None);
    }
}
