//! The on-disk WAL format: the 32-byte file header, the 24-byte frame header, where frame N
//! lives, and how a frame is sealed (checksummed) and verified.
//!
//! All header fields are big-endian on disk. A frame is valid when its salts equal the
//! header's and its checksum continues the running checksum over (frame header bytes 0..8,
//! page data); a frame with a non-zero "database size" field commits a transaction.
//! Reference: <https://www.sqlite.org/fileformat2.html#walformat>.

use super::checksum::{Checksum, WordOrder};
use super::WalError;

/// Bytes in the WAL file header.
pub const WAL_HEADER_BYTES: usize = 32;
/// Bytes in a frame header.
pub const FRAME_HEADER_BYTES: usize = 24;
/// The only WAL format version SQLite writes.
pub const WAL_VERSION: u32 = 3_007_000;
/// Byte offset of the page size in the WAL header.
pub const WAL_HEADER_PAGE_SIZE_OFFSET: usize = 8;
/// Bytes of the WAL header its checksum covers (the checksum follows them).
pub const WAL_HEADER_CHECKSUMMED_BYTES: usize = 24;
/// Byte offset of the "database size after commit" field in a frame header (non-zero on a
/// commit frame).
pub const FRAME_DB_SIZE_OFFSET: usize = 4;
/// Byte offset of salt-1 in a frame header.
pub const FRAME_SALT1_OFFSET: usize = 8;
/// Bytes of a frame header its checksum covers (page number and database size).
pub const FRAME_CHECKSUMMED_HEADER_BYTES: usize = 8;

/// A page size SQLite accepts: a power of two in 512..=65536.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageSize(u32);

impl PageSize {
    /// Checks `page_size_bytes`.
    pub fn new(page_size_bytes: u32) -> Result<Self, WalError> {
        if page_size_bytes.is_power_of_two() && (512..=65_536).contains(&page_size_bytes) {
            Ok(PageSize(page_size_bytes))
        } else {
            Err(WalError::InvalidPageSize { page_size: page_size_bytes })
        }
    }

    /// The size in bytes.
    pub fn bytes(self) -> u32 {
        self.0
    }

    /// The size in bytes, as a length.
    pub fn as_usize(self) -> usize {
        self.0 as usize
    }

    /// Bytes of one frame (header plus page).
    pub fn frame_bytes(self) -> u64 {
        FRAME_HEADER_BYTES as u64 + u64::from(self.0)
    }

    /// Byte offset of 1-based frame `frame_number` in the WAL file.
    pub fn frame_offset(self, frame_number: u32) -> u64 {
        assert!(frame_number >= 1, "frame numbers are 1-based");
        WAL_HEADER_BYTES as u64 + u64::from(frame_number - 1) * self.frame_bytes()
    }
}

/// Bytes of one frame (header plus page) for a page size read from a header, not yet checked.
pub fn frame_bytes(page_size_bytes: u32) -> u64 {
    FRAME_HEADER_BYTES as u64 + u64::from(page_size_bytes)
}

/// The 1-based number of the frame whose header starts at `offset_bytes`, if a frame header
/// starts there.
pub fn frame_number_at(page_size_bytes: u32, offset_bytes: u64) -> Option<u64> {
    let past_header = offset_bytes.checked_sub(WAL_HEADER_BYTES as u64)?;
    let frame_bytes = frame_bytes(page_size_bytes);
    past_header.is_multiple_of(frame_bytes).then(|| past_header / frame_bytes + 1)
}

/// The page size field of a WAL header, as written (not checked: see [`PageSize::new`]).
pub fn header_page_size(header: &[u8; WAL_HEADER_BYTES]) -> u32 {
    be_u32(header, WAL_HEADER_PAGE_SIZE_OFFSET)
}

/// Whether a frame header marks a commit frame (non-zero database size).
pub fn is_commit_frame(header: &[u8; FRAME_HEADER_BYTES]) -> bool {
    be_u32(header, FRAME_DB_SIZE_OFFSET) != 0
}

/// The two salts of a WAL generation, as the big-endian integers the file holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Salts {
    /// Incremented by one at each WAL restart.
    pub salt1: u32,
    /// Random at each WAL restart.
    pub salt2: u32,
}

fn be_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// The WAL file header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalHeader {
    /// Checksum word order (from the magic).
    pub order: WordOrder,
    /// Page size of every frame.
    pub page_size: PageSize,
    /// Checkpoint sequence number (informational; SQLite never checks it).
    pub checkpoint_seq: u32,
    /// Salts every valid frame repeats.
    pub salts: Salts,
    /// Checksum of the first 24 bytes; the first frame's checksum chains from it.
    pub checksum: Checksum,
}

impl WalHeader {
    /// A header for a new WAL generation, with its checksum computed.
    pub fn new(order: WordOrder, page_size: PageSize, checkpoint_seq: u32, salts: Salts) -> Self {
        let mut header =
            WalHeader { order, page_size, checkpoint_seq, salts, checksum: Checksum::default() };
        let bytes = header.encode();
        header.checksum = Checksum::default().extend(order, &bytes[..WAL_HEADER_CHECKSUMMED_BYTES]);
        header
    }

    /// The 32 bytes as they go to disk.
    pub fn encode(&self) -> [u8; WAL_HEADER_BYTES] {
        let words = [
            self.order.magic(),
            WAL_VERSION,
            self.page_size.bytes(),
            self.checkpoint_seq,
            self.salts.salt1,
            self.salts.salt2,
            self.checksum.0[0],
            self.checksum.0[1],
        ];
        let mut out = [0u8; WAL_HEADER_BYTES];
        for (slot, word) in out.chunks_exact_mut(4).zip(words) {
            slot.copy_from_slice(&word.to_be_bytes());
        }
        out
    }

    /// Parses and verifies a header read from disk.
    pub fn decode(bytes: &[u8; WAL_HEADER_BYTES]) -> Result<Self, WalError> {
        let magic = be_u32(bytes, 0);
        let order = WordOrder::from_magic(magic).ok_or(WalError::BadMagic { magic })?;
        let version = be_u32(bytes, 4);
        if version != WAL_VERSION {
            return Err(WalError::BadVersion { version });
        }
        let page_size = PageSize::new(be_u32(bytes, WAL_HEADER_PAGE_SIZE_OFFSET))?;
        let checksum = Checksum([be_u32(bytes, 24), be_u32(bytes, 28)]);
        if Checksum::default().extend(order, &bytes[..WAL_HEADER_CHECKSUMMED_BYTES]) != checksum {
            return Err(WalError::HeaderChecksum);
        }
        let salts = Salts { salt1: be_u32(bytes, 16), salt2: be_u32(bytes, 20) };
        Ok(WalHeader { order, page_size, checkpoint_seq: be_u32(bytes, 12), salts, checksum })
    }
}

/// A frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// The database page this frame holds.
    pub page_number: u32,
    /// Database size in pages after the transaction, on commit frames; 0 otherwise.
    pub db_size_pages: u32,
    /// Copies of the WAL header's salts.
    pub salts: Salts,
    /// Running checksum up to and including this frame.
    pub checksum: Checksum,
}

impl FrameHeader {
    /// Seals a frame: computes its checksum continuing `running` over its first 8 header
    /// bytes and `page` (whose length must be the page size).
    pub fn seal(
        order: WordOrder,
        running: Checksum,
        page_number: u32,
        db_size_pages: u32,
        salts: Salts,
        page: &[u8],
    ) -> Self {
        let mut head = [0u8; FRAME_CHECKSUMMED_HEADER_BYTES];
        head[..FRAME_DB_SIZE_OFFSET].copy_from_slice(&page_number.to_be_bytes());
        head[FRAME_DB_SIZE_OFFSET..].copy_from_slice(&db_size_pages.to_be_bytes());
        let checksum = running.extend(order, &head).extend(order, page);
        FrameHeader { page_number, db_size_pages, salts, checksum }
    }

    /// Whether this frame commits a transaction.
    pub fn is_commit(&self) -> bool {
        self.db_size_pages != 0
    }

    /// The 24 bytes as they go to disk.
    pub fn encode(&self) -> [u8; FRAME_HEADER_BYTES] {
        let words = [
            self.page_number,
            self.db_size_pages,
            self.salts.salt1,
            self.salts.salt2,
            self.checksum.0[0],
            self.checksum.0[1],
        ];
        let mut out = [0u8; FRAME_HEADER_BYTES];
        for (slot, word) in out.chunks_exact_mut(4).zip(words) {
            slot.copy_from_slice(&word.to_be_bytes());
        }
        out
    }

    /// Parses 24 bytes without judging them (see [`verify_frame`]).
    pub fn decode(bytes: &[u8; FRAME_HEADER_BYTES]) -> Self {
        FrameHeader {
            page_number: be_u32(bytes, 0),
            db_size_pages: be_u32(bytes, FRAME_DB_SIZE_OFFSET),
            salts: Salts {
                salt1: be_u32(bytes, FRAME_SALT1_OFFSET),
                salt2: be_u32(bytes, FRAME_SALT1_OFFSET + 4),
            },
            checksum: Checksum([be_u32(bytes, 16), be_u32(bytes, 20)]),
        }
    }
}

/// Checks what identifies frame `frame_number` as part of the current WAL generation: salts
/// equal, page number non-zero. Returns the parsed header.
pub fn check_frame_identity(
    salts: Salts,
    frame_number: u32,
    header_bytes: &[u8; FRAME_HEADER_BYTES],
) -> Result<FrameHeader, WalError> {
    let header = FrameHeader::decode(header_bytes);
    if header.salts != salts {
        return Err(WalError::FrameSalt { frame_number });
    }
    if header.page_number == 0 {
        return Err(WalError::FramePageZero { frame_number });
    }
    Ok(header)
}

/// Verifies frame `frame_number` the way SQLite's recovery does: salts equal, page number
/// non-zero, checksum continuing `running`. Returns the parsed header, whose checksum is the
/// new running checksum.
pub fn verify_frame(
    order: WordOrder,
    running: Checksum,
    salts: Salts,
    frame_number: u32,
    header_bytes: &[u8; FRAME_HEADER_BYTES],
    page: &[u8],
) -> Result<FrameHeader, WalError> {
    let header = check_frame_identity(salts, frame_number, header_bytes)?;
    let expected =
        running.extend(order, &header_bytes[..FRAME_CHECKSUMMED_HEADER_BYTES]).extend(order, page);
    if expected != header.checksum {
        return Err(WalError::FrameChecksum { frame_number });
    }
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(fill: u8, size: usize) -> Vec<u8> {
        (0..size).map(|i| fill ^ (i as u8)).collect()
    }

    // Goal: a WAL header encodes and decodes to itself, big-endian on disk.
    #[test]
    fn wal_header_round_trip() {
        let salts = Salts { salt1: 0x0102_0304, salt2: 0xa0b0_c0d0 };
        let header = WalHeader::new(WordOrder::Little, PageSize::new(4096).unwrap(), 7, salts);
        let bytes = header.encode();
        assert_eq!(&bytes[..4], &[0x37, 0x7f, 0x06, 0x82]);
        assert_eq!(&bytes[16..20], &[1, 2, 3, 4]);
        assert_eq!(WalHeader::decode(&bytes).unwrap(), header);
    }

    // Goal: corrupt headers are refused with the matching error.
    #[test]
    fn wal_header_rejects_bad_input() {
        let header =
            WalHeader::new(WordOrder::Big, PageSize::new(1024).unwrap(), 0, Salts::default());
        let mut bytes = header.encode();
        bytes[20] ^= 1;
        assert!(matches!(WalHeader::decode(&bytes), Err(WalError::HeaderChecksum)));
        let mut bytes = header.encode();
        bytes[3] = 0x84;
        assert!(matches!(WalHeader::decode(&bytes), Err(WalError::BadMagic { .. })));
        let mut bytes = header.encode();
        bytes[7] ^= 1;
        assert!(matches!(WalHeader::decode(&bytes), Err(WalError::BadVersion { .. })));
        let mut bytes = header.encode();
        bytes[10] = 0x03;
        assert!(matches!(WalHeader::decode(&bytes), Err(WalError::InvalidPageSize { .. })));
    }

    // Goal: page sizes outside SQLite's set are refused; 65536 is allowed.
    #[test]
    fn page_size_bounds() {
        for bad in [0, 256, 1000, 131_072] {
            assert!(PageSize::new(bad).is_err(), "{bad}");
        }
        for good in [512, 4096, 65_536] {
            assert!(PageSize::new(good).is_ok(), "{good}");
        }
        let size = PageSize::new(1024).unwrap();
        assert_eq!(size.frame_offset(1), 32);
        assert_eq!(size.frame_offset(3), 32 + 2 * 1048);
    }

    // Goal: a sealed frame verifies; a changed byte, wrong salt or page 0 do not.
    #[test]
    fn frame_seal_and_verify() {
        let order = WordOrder::Little;
        let salts = Salts { salt1: 9, salt2: 10 };
        let running = Checksum([3, 4]);
        let data = page(0x5a, 512);
        let header = FrameHeader::seal(order, running, 2, 5, salts, &data);
        let bytes = header.encode();
        let parsed = verify_frame(order, running, salts, 1, &bytes, &data).unwrap();
        assert_eq!(parsed, header);
        assert!(parsed.is_commit());

        let mut bad_data = data.clone();
        bad_data[100] ^= 1;
        let err = verify_frame(order, running, salts, 1, &bytes, &bad_data);
        assert!(matches!(err, Err(WalError::FrameChecksum { frame_number: 1 })));
        let other = Salts { salt1: 9, salt2: 11 };
        let err = verify_frame(order, running, other, 1, &bytes, &data);
        assert!(matches!(err, Err(WalError::FrameSalt { .. })));
        let zero = FrameHeader::seal(order, running, 0, 0, salts, &data).encode();
        let err = verify_frame(order, running, salts, 4, &zero, &data);
        assert!(matches!(err, Err(WalError::FramePageZero { frame_number: 4 })));
    }
}
