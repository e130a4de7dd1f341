//! The one error type of the WAL layer. Every variant says what was wrong and where, so a
//! caller can tell bad input (a malformed page set, a corrupt file) from a busy lock or an I/O
//! failure.

use std::io;

use crate::error::Fault;

/// What went wrong while reading or writing a WAL or its wal-index.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// The WAL file or the shared memory could not be read or written.
    #[error("WAL I/O")]
    Io(#[from] io::Error),

    /// A page size that SQLite cannot use (not a power of two in 512..=65536).
    #[error("invalid page size {page_size}")]
    InvalidPageSize {
        /// The offending value.
        page_size: u32,
    },

    /// The WAL header's magic number is neither of SQLite's two.
    #[error("bad WAL magic {magic:#x}")]
    BadMagic {
        /// The value found.
        magic: u32,
    },

    /// The WAL header names a format version other than 3007000.
    #[error("unsupported WAL version {version}")]
    BadVersion {
        /// The value found.
        version: u32,
    },

    /// The WAL header's checksum does not match its content.
    #[error("WAL header checksum mismatch")]
    HeaderChecksum,

    /// The WAL file ends before a frame or header that must be there.
    #[error("WAL file too short: need {needed_bytes} bytes, have {file_bytes}")]
    ShortFile {
        /// Bytes the read needed the file to have.
        needed_bytes: u64,
        /// Bytes the file has.
        file_bytes: u64,
    },

    /// A frame's salts differ from the WAL header's: it belongs to an older WAL generation.
    #[error("frame {frame_number}: salt mismatch")]
    FrameSalt {
        /// 1-based frame number.
        frame_number: u32,
    },

    /// A frame's cumulative checksum does not chain from the previous frame.
    #[error("frame {frame_number}: checksum mismatch")]
    FrameChecksum {
        /// 1-based frame number.
        frame_number: u32,
    },

    /// A frame names page 0, which does not exist.
    #[error("frame {frame_number}: page number 0")]
    FramePageZero {
        /// 1-based frame number.
        frame_number: u32,
    },

    /// The requested frame range is empty or reversed.
    #[error("bad frame range: after frame {frame_before} up to commit frame {commit_frame}")]
    FrameRange {
        /// Last frame before the transaction (wal-index mxFrame).
        frame_before: u32,
        /// The frame said to commit the transaction.
        commit_frame: u32,
    },

    /// A frame inside a transaction carries a commit mark, or the last one does not.
    #[error("frame {frame_number}: commit mark out of place")]
    CommitMark {
        /// 1-based frame number.
        frame_number: u32,
    },

    /// The wal-index header is not usable (copies differ, uninitialised or bad checksum):
    /// someone must run recovery (open a read transaction) first.
    #[error("wal-index header invalid: {reason}")]
    IndexHeader {
        /// Which check failed.
        reason: &'static str,
    },

    /// The wal-index hash tables are inconsistent (a probe chain longer than possible).
    #[error("wal-index corrupt at frame {frame_number}")]
    IndexCorrupt {
        /// The frame being inserted or looked up.
        frame_number: u32,
    },

    /// The page set's page size differs from the one the non-empty WAL already uses.
    #[error("page size {page_set_page_size} differs from the WAL's {wal_page_size}")]
    PageSizeMismatch {
        /// Page size of the frames already in the WAL.
        wal_page_size: u32,
        /// Page size of the page set.
        page_set_page_size: u32,
    },

    /// A page image whose length is not the page size.
    #[error("page {page_number}: {length_bytes} bytes, page size is {page_size}")]
    PageLength {
        /// The page.
        page_number: u32,
        /// Its length.
        length_bytes: usize,
        /// The page set's page size.
        page_size: u32,
    },

    /// Pages not strictly ascending (unsorted or duplicated), or page number 0.
    #[error("page {page_number} out of order, duplicated or zero")]
    PageOrder {
        /// The first offending page number.
        page_number: u32,
    },

    /// A page lies past the database size the transaction commits.
    #[error("page {page_number} beyond database size {db_size_pages}")]
    PageBeyondSize {
        /// The page.
        page_number: u32,
        /// The commit's database size in pages.
        db_size_pages: u32,
    },

    /// A page set with no pages or a database size of zero: nothing SQLite would commit.
    #[error("empty page set")]
    EmptyPageSet,

    /// The WAL would pass SQLite's frame-count limit (u32 frame numbers).
    #[error("WAL frame count would overflow")]
    TooManyFrames,

    /// The WAL write lock stayed taken until the deadline.
    #[error("WAL write lock busy")]
    WriteLockBusy,
}

impl WalError {
    /// What kind of failure this is (see `crate::error`): a frame, header or wal-index that
    /// fails its checks is corruption; a page set that breaks the format was built by this
    /// crate, so it is a bug.
    pub fn fault(&self) -> Fault {
        match self {
            WalError::Io(e) => Fault::of_io(e, Fault::Io),
            WalError::InvalidPageSize { .. }
            | WalError::BadMagic { .. }
            | WalError::BadVersion { .. }
            | WalError::HeaderChecksum
            | WalError::FrameSalt { .. }
            | WalError::FrameChecksum { .. }
            | WalError::FramePageZero { .. }
            | WalError::CommitMark { .. }
            | WalError::IndexCorrupt { .. } => Fault::Corrupt,
            // Shared memory caught mid-rewrite, or awaiting SQLite's recovery: try again.
            WalError::IndexHeader { .. } => Fault::Busy,
            WalError::ShortFile { .. } => Fault::ShortRead,
            WalError::FrameRange { .. }
            | WalError::PageSizeMismatch { .. }
            | WalError::PageLength { .. }
            | WalError::PageOrder { .. }
            | WalError::PageBeyondSize { .. }
            | WalError::EmptyPageSet => Fault::Internal,
            WalError::TooManyFrames => Fault::Full,
            WalError::WriteLockBusy => Fault::Busy,
        }
    }
}
