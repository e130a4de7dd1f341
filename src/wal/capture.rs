//! Leader side: turning the frames SQLite just wrote for one transaction into a [`PageSet`].
//!
//! A transaction occupies frames `mxFrame + 1 ..= commit` of the WAL, where `mxFrame` is the
//! wal-index header's value before it. Those frames may include spilled pages (commit field
//! 0), pages written twice (the later frame wins) and padding copies of the commit frame
//! (repeated commit marks with the same page and size). Invariants: every frame must carry
//! the current WAL generation's salts; reads never go past the file's end; pages past the
//! committed database size are dropped (they are dead).
//!
//! Checksums are not verified here: when a transaction overwrote one of its own frames,
//! SQLite writes the frames after it with zero salts and checksums, and fills them in only
//! once the commit frame is written, that is after we capture. The frames were written by SQLite in this process a
//! moment ago, under the write lock we are called with.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::checksum::Checksum;
use super::file::WalFile;
use super::format::{
    check_frame_identity, FrameHeader, PageSize, Salts, WalHeader, FRAME_HEADER_BYTES,
    WAL_HEADER_BYTES,
};
use super::index::header::IndexHeader;
use super::WalError;
use crate::raft::types::{Page, PageData, PageSet};

/// The WAL generation the transaction's frames belong to.
struct ChainStart {
    page_size: PageSize,
    salts: Salts,
}

/// With `mxFrame` 0 the transaction wrote a fresh WAL header (its salts may not be in the
/// wal-index yet), so the file's header is the authority; otherwise the wal-index header is.
fn chain_start<F: WalFile>(file: &F, before: &IndexHeader) -> Result<ChainStart, WalError> {
    if before.max_frame == 0 {
        let file_bytes = file.size_bytes()?;
        if file_bytes < WAL_HEADER_BYTES as u64 {
            return Err(WalError::ShortFile { needed_bytes: WAL_HEADER_BYTES as u64, file_bytes });
        }
        let mut bytes = [0u8; WAL_HEADER_BYTES];
        file.read_exact_at(&mut bytes, 0)?;
        let header = WalHeader::decode(&bytes)?;
        return Ok(ChainStart { page_size: header.page_size, salts: header.salts });
    }
    Ok(ChainStart { page_size: PageSize::new(before.page_size)?, salts: before.salts })
}

/// Reads frames `before.max_frame + 1 ..= commit_frame` of `file` and returns the page set
/// they commit. `commit_header` replaces the 24 header bytes of `commit_frame` when the
/// caller holds them in memory (its page data is still read from the file).
pub fn capture_transaction<F: WalFile>(
    file: &F,
    before: &IndexHeader,
    commit_frame: u32,
    commit_header: Option<&[u8; FRAME_HEADER_BYTES]>,
) -> Result<PageSet, WalError> {
    let frame_before = before.max_frame;
    if commit_frame <= frame_before {
        return Err(WalError::FrameRange { frame_before, commit_frame });
    }
    let start = chain_start(file, before)?;
    let page_size = start.page_size;
    let needed_bytes = page_size.frame_offset(commit_frame) + page_size.frame_bytes();
    let file_bytes = file.size_bytes()?;
    if file_bytes < needed_bytes {
        return Err(WalError::ShortFile { needed_bytes, file_bytes });
    }
    let mut images: BTreeMap<u32, PageData> = BTreeMap::new();
    let mut first_commit: Option<FrameHeader> = None;
    for frame_number in frame_before + 1..=commit_frame {
        // Each frame is read into a buffer of its own that becomes the page image as it is
        // (header and all), so the transaction's pages are in memory once, from here to the
        // Raft log and the network.
        let mut buffer = vec![0u8; page_size.frame_bytes() as usize];
        file.read_exact_at(&mut buffer, page_size.frame_offset(frame_number))?;
        let mut head: [u8; FRAME_HEADER_BYTES] =
            buffer[..FRAME_HEADER_BYTES].try_into().expect("slice of header size");
        if let (true, Some(bytes)) = (frame_number == commit_frame, commit_header) {
            head = *bytes;
        }
        let frame = match FrameHeader::decode(&head) {
            // After an in-place overwrite SQLite writes the later frames of the transaction
            // with zero salts and checksum, and fills them in once the commit frame is out.
            frame
                if frame.salts == Salts::default()
                    && frame.checksum == Checksum([0, 0])
                    && frame.page_number != 0 =>
            {
                frame
            }
            _ => check_frame_identity(start.salts, frame_number, &head)?,
        };
        check_commit_mark(&frame, first_commit.as_ref(), frame_number, commit_frame)?;
        if frame.is_commit() && first_commit.is_none() {
            first_commit = Some(frame);
        }
        images.insert(
            frame.page_number,
            PageData::from(Bytes::from(buffer).slice(FRAME_HEADER_BYTES..)),
        );
    }
    let db_size_pages = first_commit.map_or(0, |f| f.db_size_pages);
    let pages = images
        .into_iter()
        .filter(|(number, _)| *number <= db_size_pages)
        .map(|(number, data)| Page { number, data })
        .collect();
    Ok(PageSet { page_size: page_size.bytes(), db_size_pages, pages })
}

/// Only the last frame, and padding copies of the first commit frame before it, may carry
/// a commit mark; the last frame must.
fn check_commit_mark(
    frame: &FrameHeader,
    first_commit: Option<&FrameHeader>,
    frame_number: u32,
    commit_frame: u32,
) -> Result<(), WalError> {
    let ok = match first_commit {
        None => frame.is_commit() || frame_number != commit_frame,
        Some(first) => {
            frame.page_number == first.page_number && frame.db_size_pages == first.db_size_pages
        }
    };
    if ok {
        Ok(())
    } else {
        Err(WalError::CommitMark { frame_number })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::format::FrameHeader;
    use crate::wal::scan::scan;
    use crate::wal::testutil::{index_header_after, open_rw, sqlite, wal_from_frames};

    fn empty_before() -> IndexHeader {
        IndexHeader::default()
    }

    // Goal: the last image of each page wins, pages come out sorted, size from the commit.
    #[test]
    fn last_image_wins() {
        let dir = tempfile::tempdir().unwrap();
        let frames = [(3, 0, 0xa), (1, 0, 0xb), (3, 0, 0xc), (2, 3, 0xd)];
        let file = wal_from_frames(&dir.path().join("w"), &frames);
        let set = capture_transaction(&file, &empty_before(), 4, None).unwrap();
        assert_eq!(set.db_size_pages, 3);
        let got: Vec<(u32, u8)> = set.pages.iter().map(|p| (p.number, p.data[0])).collect();
        assert_eq!(got, vec![(1, 0xb), (2, 0xd), (3, 0xc)]);
    }

    // Goal: a second transaction chains from the first commit's checksum and salts.
    #[test]
    fn second_transaction_from_index_header() {
        let dir = tempfile::tempdir().unwrap();
        let frames = [(1, 1, 1), (1, 0, 2), (2, 2, 3)];
        let file = wal_from_frames(&dir.path().join("w"), &frames);
        let first = scan(&file).unwrap();
        let mut head = [0u8; 24];
        file.read_exact_at(&mut head, 32).unwrap();
        let wal_header = first.header.unwrap();
        let before = IndexHeader {
            is_init: true,
            big_endian_checksum: wal_header.order.is_big(),
            page_size: 512,
            max_frame: 1,
            db_size_pages: 1,
            frame_checksum: FrameHeader::decode(&head).checksum,
            salts: wal_header.salts,
            ..IndexHeader::default()
        };
        let set = capture_transaction(&file, &before, 3, None).unwrap();
        assert_eq!(set.pages.iter().map(|p| p.number).collect::<Vec<_>>(), vec![1, 2]);
        let wrong = IndexHeader {
            salts: Salts { salt1: before.salts.salt1 ^ 1, ..before.salts },
            ..before
        };
        let err = capture_transaction(&file, &wrong, 3, None).unwrap_err();
        assert!(matches!(err, WalError::FrameSalt { frame_number: 2 }));
    }

    // Goal: bad ranges, short files, misplaced commit marks and bad overrides are typed errors.
    #[test]
    fn bad_inputs() {
        let dir = tempfile::tempdir().unwrap();
        let file = wal_from_frames(&dir.path().join("w"), &[(1, 0, 1), (2, 2, 2), (3, 3, 3)]);
        let err = capture_transaction(&file, &empty_before(), 0, None).unwrap_err();
        assert!(matches!(err, WalError::FrameRange { .. }));
        let err = capture_transaction(&file, &empty_before(), 4, None).unwrap_err();
        assert!(matches!(err, WalError::ShortFile { .. }));
        let err = capture_transaction(&file, &empty_before(), 3, None).unwrap_err();
        assert!(matches!(err, WalError::CommitMark { frame_number: 3 }));
        let err = capture_transaction(&file, &empty_before(), 1, None).unwrap_err();
        assert!(matches!(err, WalError::CommitMark { frame_number: 1 }));
        let mut head = [0u8; 24];
        file.read_exact_at(&mut head, 32 + 536).unwrap();
        assert!(capture_transaction(&file, &empty_before(), 2, Some(&head)).is_ok());
        head[8] ^= 1;
        let err = capture_transaction(&file, &empty_before(), 2, Some(&head)).unwrap_err();
        assert!(matches!(err, WalError::FrameSalt { frame_number: 2 }));
        std::fs::write(dir.path().join("g"), [0u8; 600]).unwrap();
        let garbage = open_rw(&dir.path().join("g"));
        let err = capture_transaction(&garbage, &empty_before(), 1, None).unwrap_err();
        assert!(matches!(err, WalError::BadMagic { .. }));
    }

    // Goal: padding copies of the commit frame are accepted (SQLite pads to sector size).
    #[test]
    fn commit_padding_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let file = wal_from_frames(&dir.path().join("w"), &[(1, 0, 1), (2, 2, 2), (2, 2, 2)]);
        let set = capture_transaction(&file, &empty_before(), 3, None).unwrap();
        assert_eq!(set.pages.len(), 2);
    }

    // Goal (real SQLite): the pages captured from the shell's last transaction are exactly the
    // database file's pages after SQLite checkpointed it, and the size matches page_count.
    #[test]
    fn capture_matches_sqlite_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("a.db");
        sqlite(&db, "PRAGMA page_size=1024; PRAGMA journal_mode=WAL; CREATE TABLE t(x);");
        sqlite(
            &db,
            ".filectrl persist_wal 1\nPRAGMA wal_autocheckpoint=0;\n\
             INSERT INTO t SELECT randomblob(300) FROM (WITH RECURSIVE c(i) AS \
             (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i<50) SELECT i FROM c);\n\
             UPDATE t SET x = zeroblob(10) WHERE rowid % 7 = 0;\n",
        );
        let wal = open_rw(&dir.path().join("a.db-wal"));
        let found = scan(&wal).unwrap();
        assert_eq!(found.commit_frames.len(), 2, "two transactions in the WAL");
        let before = index_header_after(&wal, &found, found.commit_frames[0]);
        let set = capture_transaction(&wal, &before, found.last_commit_frame, None).unwrap();
        let db_bytes = std::fs::read(&db).unwrap();
        assert_eq!(set.page_size, 1024);
        assert_eq!(set.db_size_pages as usize * 1024, db_bytes.len());
        assert!(!set.pages.is_empty());
        for page in &set.pages {
            let at = (page.number as usize - 1) * 1024;
            assert!(
                page.data.as_slice() == &db_bytes[at..at + 1024],
                "page {} differs",
                page.number
            );
        }
    }
}
