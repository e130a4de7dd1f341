//! The wal-index header block at the start of region 0: two copies of the 48-byte
//! `WalIndexHdr` followed by the 40-byte `WalCkptInfo`.
//!
//! Invariants kept (the rules SQLite's readers rely on,
//! <https://www.sqlite.org/walformat.html#the_wal_index_header>): a writer stores copy 1, then a
//! barrier, then copy 0; a reader loads copy 0, a barrier, copy 1, and trusts them only if
//! they are equal, initialised and their native-order checksum over the first 40 bytes holds.
//! Salts are kept as the raw bytes of the WAL header, so they compare with frames byte-wise.

use super::{read_lock, IndexRegion, SharedIndex, READER_COUNT};
use crate::wal::checksum::{Checksum, WordOrder};
use crate::wal::format::Salts;
use crate::wal::WalError;

/// Bytes in one copy of the header.
pub const HEADER_BYTES: usize = 48;
/// Bytes of the header block: two header copies plus the checkpoint info.
pub const HEADER_BLOCK_BYTES: usize = 136;
/// The wal-index format version.
pub const INDEX_VERSION: u32 = 3_007_000;
/// A read mark that no reader uses.
pub const READ_MARK_UNUSED: u32 = 0xffff_ffff;

const BACKFILL_OFFSET: usize = 96;
const READ_MARK_OFFSET: usize = 100;
const BACKFILL_ATTEMPTED_OFFSET: usize = 128;

/// One copy of the wal-index header, decoded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IndexHeader {
    /// Counts committed transactions; readers use it to notice change.
    pub change_counter: u32,
    /// Whether the header has ever been written (0 means: run recovery).
    pub is_init: bool,
    /// Checksum word order of the WAL's frames.
    pub big_endian_checksum: bool,
    /// Page size of the WAL (0 while no WAL has been written).
    pub page_size: u32,
    /// Last valid committed frame (`mxFrame`); 0 = the WAL is empty.
    pub max_frame: u32,
    /// Database size in pages after the last commit.
    pub db_size_pages: u32,
    /// Running checksum after frame `max_frame`.
    pub frame_checksum: Checksum,
    /// The WAL header's salts.
    pub salts: Salts,
}

impl IndexHeader {
    /// The checksum word order of the frames this header describes.
    pub fn order(&self) -> WordOrder {
        if self.big_endian_checksum {
            WordOrder::Big
        } else {
            WordOrder::Little
        }
    }

    /// The 48 bytes in native order, with `iVersion` set and the header checksum computed.
    pub fn encode(&self) -> [u8; HEADER_BYTES] {
        let mut out = [0u8; HEADER_BYTES];
        let mut put = |at: usize, bytes: &[u8]| out[at..at + bytes.len()].copy_from_slice(bytes);
        put(0, &INDEX_VERSION.to_ne_bytes());
        put(8, &self.change_counter.to_ne_bytes());
        put(12, &[u8::from(self.is_init), u8::from(self.big_endian_checksum)]);
        // 65536 does not fit a u16: SQLite folds its bit 16 into bit 0.
        let encoded_size = (self.page_size & 0xff00) | (self.page_size >> 16);
        put(14, &(encoded_size as u16).to_ne_bytes());
        put(16, &self.max_frame.to_ne_bytes());
        put(20, &self.db_size_pages.to_ne_bytes());
        put(24, &self.frame_checksum.0[0].to_ne_bytes());
        put(28, &self.frame_checksum.0[1].to_ne_bytes());
        put(32, &self.salts.salt1.to_be_bytes());
        put(36, &self.salts.salt2.to_be_bytes());
        let sum = Checksum::default().extend(WordOrder::native(), &out[..40]);
        out[40..44].copy_from_slice(&sum.0[0].to_ne_bytes());
        out[44..48].copy_from_slice(&sum.0[1].to_ne_bytes());
        out
    }

    /// Parses 48 native bytes; `None` when the checksum does not hold.
    pub fn decode(bytes: &[u8; HEADER_BYTES]) -> Option<Self> {
        let ne = |at: usize| {
            u32::from_ne_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        let be = |at: usize| {
            u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        let sum = Checksum::default().extend(WordOrder::native(), &bytes[..40]);
        if sum != Checksum([ne(40), ne(44)]) {
            return None;
        }
        let encoded_size = u32::from(u16::from_ne_bytes([bytes[14], bytes[15]]));
        Some(IndexHeader {
            change_counter: ne(8),
            is_init: bytes[12] != 0,
            big_endian_checksum: bytes[13] != 0,
            page_size: (encoded_size & 0xfe00) + ((encoded_size & 1) << 16),
            max_frame: ne(16),
            db_size_pages: ne(20),
            frame_checksum: Checksum([ne(24), ne(28)]),
            salts: Salts { salt1: be(32), salt2: be(36) },
        })
    }
}

fn load_copy<R: IndexRegion>(region0: &R, copy: usize) -> [u8; HEADER_BYTES] {
    let mut out = [0u8; HEADER_BYTES];
    for (i, word) in out.chunks_exact_mut(4).enumerate() {
        word.copy_from_slice(&region0.load_u32(copy * HEADER_BYTES + i * 4).to_ne_bytes());
    }
    out
}

fn store_copy<R: IndexRegion>(region0: &R, copy: usize, bytes: &[u8; HEADER_BYTES]) {
    for (i, word) in bytes.chunks_exact(4).enumerate() {
        let value = u32::from_ne_bytes([word[0], word[1], word[2], word[3]]);
        region0.store_u32(copy * HEADER_BYTES + i * 4, value);
    }
}

/// Reads the header as a SQLite reader does, or says why it cannot be trusted.
pub fn read_header<S: SharedIndex>(
    shared: &S,
    region0: &S::Region,
) -> Result<IndexHeader, WalError> {
    let first = load_copy(region0, 0);
    shared.barrier();
    let second = load_copy(region0, 1);
    if first != second {
        return Err(WalError::IndexHeader { reason: "the two copies differ" });
    }
    let header =
        IndexHeader::decode(&first).ok_or(WalError::IndexHeader { reason: "checksum mismatch" })?;
    if !header.is_init {
        return Err(WalError::IndexHeader { reason: "not initialised" });
    }
    Ok(header)
}

/// Publishes `header` as a SQLite writer does (copy 1, barrier, copy 0), marking it
/// initialised. The caller holds the write lock (or recovers under every lock).
pub fn write_header<S: SharedIndex>(shared: &S, region0: &S::Region, header: &IndexHeader) {
    let bytes = IndexHeader { is_init: true, ..*header }.encode();
    store_copy(region0, 1, &bytes);
    shared.barrier();
    store_copy(region0, 0, &bytes);
}

/// `nBackfill`: how many frames a checkpoint has copied into the database.
pub fn backfill<R: IndexRegion>(region0: &R) -> u32 {
    region0.load_u32(BACKFILL_OFFSET)
}

/// `aReadMark[i]`.
pub fn read_mark<R: IndexRegion>(region0: &R, i: usize) -> u32 {
    assert!(i < READER_COUNT, "SQLite has five read marks");
    region0.load_u32(READ_MARK_OFFSET + 4 * i)
}

/// Resets the checkpoint info to "nothing backfilled", as a WAL restart (`backfill_attempted`
/// 0, `read_mark_1` 0) or a recovery (`mxFrame`, `mxFrame` or unused) does: reader 0 always
/// reads the database file alone, reader 1 gets `read_mark_1`, readers 2..5 are unused.
pub fn reset_checkpoint_info<R: IndexRegion>(
    region0: &R,
    backfill_attempted: u32,
    read_mark_1: u32,
) {
    region0.store_u32(BACKFILL_OFFSET, 0);
    region0.store_u32(BACKFILL_ATTEMPTED_OFFSET, backfill_attempted);
    region0.store_u32(READ_MARK_OFFSET, 0);
    region0.store_u32(READ_MARK_OFFSET + 4, read_mark_1);
    for i in 2..READER_COUNT {
        region0.store_u32(READ_MARK_OFFSET + 4 * i, READ_MARK_UNUSED);
    }
}

/// Lock slots a restart must hold exclusively: every reader that may use WAL frames.
pub const fn restart_lock_range() -> (usize, usize) {
    (read_lock(1), READER_COUNT - 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::index::memory::MemoryIndex;

    fn sample() -> IndexHeader {
        IndexHeader {
            change_counter: 3,
            is_init: true,
            big_endian_checksum: false,
            page_size: 4096,
            max_frame: 12,
            db_size_pages: 7,
            frame_checksum: Checksum([0x1234, 0x5678]),
            salts: Salts { salt1: 0x0a0b_0c0d, salt2: 42 },
        }
    }

    // Goal: a header written then read returns the same values, both copies equal.
    #[test]
    fn round_trip_through_shared_memory() {
        let index = MemoryIndex::new();
        let region0 = index.region(0).unwrap();
        write_header(&index, &region0, &sample());
        assert_eq!(read_header(&index, &region0).unwrap(), sample());
        let bytes = index.to_bytes();
        assert_eq!(bytes[..48], bytes[48..96]);
        // Salts are stored as raw big-endian bytes, like SQLite's memcpy from the WAL header.
        assert_eq!(&bytes[32..36], &[0x0a, 0x0b, 0x0c, 0x0d]);
    }

    // Goal: 65536 survives the u16 encoding (stored as 1), 512 too.
    #[test]
    fn page_size_encoding() {
        for size in [512u32, 32_768, 65_536] {
            let header = IndexHeader { page_size: size, ..sample() };
            let bytes = header.encode();
            let stored = u16::from_ne_bytes([bytes[14], bytes[15]]);
            if size == 65_536 {
                assert_eq!(stored, 1);
            }
            assert_eq!(IndexHeader::decode(&bytes).unwrap().page_size, size);
        }
    }

    // Goal: readers refuse differing copies, a bad checksum and an uninitialised header.
    #[test]
    fn reader_refusals() {
        let index = MemoryIndex::new();
        let region0 = index.region(0).unwrap();
        assert!(matches!(read_header(&index, &region0), Err(WalError::IndexHeader { .. })));
        write_header(&index, &region0, &sample());
        region0.store_u32(16, 13); // copy 0's mxFrame only: a torn write
        let err = read_header(&index, &region0).unwrap_err();
        assert!(matches!(err, WalError::IndexHeader { reason: "the two copies differ" }));
        region0.store_u32(48 + 16, 13); // both copies now agree, but the checksum is stale
        let err = read_header(&index, &region0).unwrap_err();
        assert!(matches!(err, WalError::IndexHeader { reason: "checksum mismatch" }));
    }

    // Goal: a restart's checkpoint info matches SQLite's (backfill 0, marks 0 / unused).
    #[test]
    fn reset_checkpoint() {
        let index = MemoryIndex::new();
        let region0 = index.region(0).unwrap();
        region0.store_u32(96, 50);
        region0.store_u32(128, 50);
        reset_checkpoint_info(&region0, 0, 0);
        assert_eq!(backfill(&region0), 0);
        assert_eq!(region0.load_u32(128), 0);
        assert_eq!(read_mark(&region0, 1), 0);
        assert_eq!(read_mark(&region0, 4), READ_MARK_UNUSED);
        assert_eq!(restart_lock_range(), (4, 4));
    }
}
