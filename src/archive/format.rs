//! The archive's object format (version 1), documented for operators in docs/ARCHIVE.md.
//!
//! An archive holds two kinds of immutable objects, each a fixed [`HEADER_BYTES`]-byte header
//! followed by a zstd-compressed body:
//!
//! - a **base image** (`base/<index>-<at_ms>.dqa`): the whole SQLite database as of log index
//!   `index`;
//! - a **segment** (`seg/<first>-<last>-<at_ms>.dqa`): every committed entry from `first` to
//!   `last`, in order; each write transaction is its page set with its commit time.
//!
//! Names sort by index (zero-padded), so a listing alone tells what an archive covers and when
//! its newest transaction was committed. The header repeats what the name says and adds the
//! cluster, the body's raw length and checksums, so an object is self-describing and a damaged
//! or misplaced one is refused before anything is applied.
//!
//! Header (little-endian): `magic "DQVFARC1" | kind u8 (1 base, 2 segment) | version u8 (1) |
//! reserved u16 (0) | compression u32 (1: zstd) | cluster id [16] | first index u64 | last
//! index u64 | base: last_write_index, segment: record count u64 | at_ms u64 | raw body length
//! u64 | crc32 of the raw body u32 | crc32 of the 76 bytes before it u32`.
//!
//! Segment body: records, each `index u64 | at_ms u64 | kind u8` and, for a write (kind 1),
//! `base u64 | page_size u32 | db_size_pages u32 | page_count u32 | page numbers u32 × count |
//! page images page_size × count`. Other entries (kind 0: blank, membership, trust, archive
//! setting) keep the index sequence whole and carry nothing.

use thiserror::Error;

use crate::raft::types::{LogIndex, Page, PageData, PageSet};

/// Bytes of every object's header.
pub const HEADER_BYTES: usize = 80;
const MAGIC: [u8; 8] = *b"DQVFARC1";
/// The format version this code writes and reads.
pub const FORMAT_VERSION: u8 = 1;
const COMPRESSION_ZSTD: u32 = 1;
/// zstd level: fast enough to keep up with commits on one core, still a good ratio on pages.
pub const ZSTD_LEVEL: i32 = 3;
/// Largest raw segment body a restore accepts (one log record's body bound plus a batch), checked
/// before allocating.
pub const SEGMENT_RAW_BYTES_MAX: u64 = (1 << 30) + (64 << 20);
const PAGE_SIZE_MIN: u32 = 512;
const PAGE_SIZE_MAX: u32 = 65_536;

/// Which kind of object a header describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectKind {
    /// A whole database image.
    Base,
    /// A run of log entries.
    Segment,
}

/// An object's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Base image or segment.
    pub kind: ObjectKind,
    /// The cluster whose log this is.
    pub cluster_id: [u8; 16],
    /// Segment: its first entry's index. Base: the image's index.
    pub first: LogIndex,
    /// Segment: its last entry's index. Base: the image's index.
    pub last: LogIndex,
    /// Base: the state machine's `last_write_index` as of the image. Segment: its record count.
    pub extra: u64,
    /// Commit time (ms since the Unix epoch) of the newest write the object holds; for a base
    /// whose newest write's time is unknown, the time the image was taken (never earlier than
    /// the real one, so a restore by time never picks an image that is too new).
    pub at_ms: u64,
    /// Length of the uncompressed body.
    pub raw_len: u64,
    /// crc32 of the uncompressed body.
    pub raw_crc: u32,
}

/// Why an archive object was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum FormatError {
    /// The object is damaged or is not an archive object of this format.
    #[error("archive object {name} is damaged: {reason}")]
    Damaged {
        /// Object name.
        name: String,
        /// What check failed.
        reason: String,
    },
    /// The object belongs to another cluster's archive.
    #[error("archive object {name} belongs to cluster {found}, not {expected}")]
    ForeignCluster {
        /// Object name.
        name: String,
        /// The cluster the archive was expected to belong to.
        expected: String,
        /// The cluster the object names.
        found: String,
    },
}

fn damaged(name: &str, reason: impl Into<String>) -> FormatError {
    FormatError::Damaged { name: name.to_string(), reason: reason.into() }
}

impl Header {
    /// The header's bytes.
    pub fn encode(&self) -> [u8; HEADER_BYTES] {
        let mut b = [0u8; HEADER_BYTES];
        b[0..8].copy_from_slice(&MAGIC);
        b[8] = match self.kind {
            ObjectKind::Base => 1,
            ObjectKind::Segment => 2,
        };
        b[9] = FORMAT_VERSION;
        b[12..16].copy_from_slice(&COMPRESSION_ZSTD.to_le_bytes());
        b[16..32].copy_from_slice(&self.cluster_id);
        b[32..40].copy_from_slice(&self.first.to_le_bytes());
        b[40..48].copy_from_slice(&self.last.to_le_bytes());
        b[48..56].copy_from_slice(&self.extra.to_le_bytes());
        b[56..64].copy_from_slice(&self.at_ms.to_le_bytes());
        b[64..72].copy_from_slice(&self.raw_len.to_le_bytes());
        b[72..76].copy_from_slice(&self.raw_crc.to_le_bytes());
        let crc = crc32fast::hash(&b[0..76]);
        b[76..80].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Reads and checks the header at the start of `bytes` (object `name`, for errors).
    pub fn decode(name: &str, bytes: &[u8]) -> Result<Header, FormatError> {
        let b: &[u8; HEADER_BYTES] = bytes
            .get(..HEADER_BYTES)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| damaged(name, "shorter than its header"))?;
        if b[0..8] != MAGIC {
            return Err(damaged(name, "not a dqlite-vfs archive object (bad magic)"));
        }
        if u32_at(b, 76) != crc32fast::hash(&b[0..76]) {
            return Err(damaged(name, "header checksum mismatch"));
        }
        if b[9] != FORMAT_VERSION {
            return Err(damaged(
                name,
                format!("format version {} (this build reads {FORMAT_VERSION})", b[9]),
            ));
        }
        if u32_at(b, 12) != COMPRESSION_ZSTD {
            return Err(damaged(name, "unknown compression"));
        }
        let kind = match b[8] {
            1 => ObjectKind::Base,
            2 => ObjectKind::Segment,
            other => return Err(damaged(name, format!("unknown object kind {other}"))),
        };
        let header = Header {
            kind,
            cluster_id: b[16..32].try_into().expect("16 bytes"),
            first: u64_at(b, 32),
            last: u64_at(b, 40),
            extra: u64_at(b, 48),
            at_ms: u64_at(b, 56),
            raw_len: u64_at(b, 64),
            raw_crc: u32_at(b, 72),
        };
        if header.first > header.last {
            return Err(damaged(name, "first index after last"));
        }
        Ok(header)
    }

    /// Checks that the object belongs to `cluster_id`.
    pub fn check_cluster(&self, name: &str, cluster_id: &[u8; 16]) -> Result<(), FormatError> {
        if &self.cluster_id == cluster_id {
            return Ok(());
        }
        Err(FormatError::ForeignCluster {
            name: name.to_string(),
            expected: hex(cluster_id),
            found: hex(&self.cluster_id),
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

/// One archived log entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Its log index.
    pub index: LogIndex,
    /// Its commit time (ms since the Unix epoch, the leader's clock); 0 for non-writes.
    pub at_ms: u64,
    /// A write transaction, or None for entries that do not change the database.
    pub write: Option<ArchivedWrite>,
}

/// A write entry as archived: the page set and the base it was made on (a restore applies the
/// state machine's rule: only if `base` is the last applied write).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchivedWrite {
    /// Index of the write this one was built on.
    pub base: LogIndex,
    /// The pages.
    pub pages: PageSet,
}

/// Appends `record`'s encoding to `out`.
pub fn encode_record(record: &Record, out: &mut Vec<u8>) {
    out.extend_from_slice(&record.index.to_le_bytes());
    out.extend_from_slice(&record.at_ms.to_le_bytes());
    let Some(write) = &record.write else {
        out.push(0);
        return;
    };
    out.push(1);
    let pages = &write.pages;
    out.extend_from_slice(&write.base.to_le_bytes());
    out.extend_from_slice(&pages.page_size.to_le_bytes());
    out.extend_from_slice(&pages.db_size_pages.to_le_bytes());
    let count = u32::try_from(pages.pages.len()).expect("a page set has fewer than 2^32 pages");
    out.extend_from_slice(&count.to_le_bytes());
    for page in &pages.pages {
        out.extend_from_slice(&page.number.to_le_bytes());
    }
    for page in &pages.pages {
        out.extend_from_slice(&page.data);
    }
}

/// Decodes every record of a segment body, checking each field against the remaining length
/// before allocating, and the index sequence against the header.
pub fn decode_records(name: &str, header: &Header, raw: &[u8]) -> Result<Vec<Record>, FormatError> {
    let mut reader = Reader { name, bytes: raw, at: 0 };
    let mut records = Vec::new();
    let mut expected = header.first;
    while reader.at < raw.len() {
        let index = reader.u64()?;
        if index != expected || index > header.last {
            return Err(damaged(name, format!("record {index} where {expected} was expected")));
        }
        expected += 1;
        let at_ms = reader.u64()?;
        let write = match reader.u8()? {
            0 => None,
            1 => Some(reader.write()?),
            other => return Err(damaged(name, format!("unknown record kind {other}"))),
        };
        records.push(Record { index, at_ms, write });
    }
    if expected != header.last + 1 || records.len() as u64 != header.extra {
        return Err(damaged(name, "the records do not cover the header's range"));
    }
    Ok(records)
}

struct Reader<'a> {
    name: &'a str,
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, len: usize) -> Result<&[u8], FormatError> {
        let end = self.at.checked_add(len).filter(|end| *end <= self.bytes.len());
        let end = end.ok_or_else(|| damaged(self.name, "a record runs past the body's end"))?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn u8(&mut self) -> Result<u8, FormatError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, FormatError> {
        Ok(u32_at(self.take(4)?, 0))
    }

    fn u64(&mut self) -> Result<u64, FormatError> {
        Ok(u64_at(self.take(8)?, 0))
    }

    fn write(&mut self) -> Result<ArchivedWrite, FormatError> {
        let base = self.u64()?;
        let page_size = self.u32()?;
        if !(PAGE_SIZE_MIN..=PAGE_SIZE_MAX).contains(&page_size) || !page_size.is_power_of_two() {
            return Err(damaged(self.name, format!("page size {page_size}")));
        }
        let db_size_pages = self.u32()?;
        let count = self.u32()? as usize;
        // Bound the count by what the body can still hold before allocating for it.
        let per_page = 4 + page_size as usize;
        if count > (self.bytes.len() - self.at) / per_page {
            return Err(damaged(self.name, "a page count past the body's end"));
        }
        let mut numbers = Vec::with_capacity(count);
        for _ in 0..count {
            let number = self.u32()?;
            if number == 0 || numbers.last().is_some_and(|last| *last >= number) {
                return Err(damaged(self.name, "page numbers not ascending from 1"));
            }
            numbers.push(number);
        }
        let mut pages = Vec::with_capacity(count);
        for number in numbers {
            let data = PageData::from(self.take(page_size as usize)?.to_vec());
            pages.push(Page { number, data });
        }
        Ok(ArchivedWrite { base, pages: PageSet { page_size, db_size_pages, pages } })
    }
}

/// Name of the base image at `index`, whose newest write was committed at `at_ms`.
pub fn base_name(index: LogIndex, at_ms: u64) -> String {
    format!("base/{index:020}-{at_ms:013}.dqa")
}

/// Name of the segment of entries `first..=last`, whose newest write was committed at `at_ms`.
pub fn segment_name(first: LogIndex, last: LogIndex, at_ms: u64) -> String {
    format!("seg/{first:020}-{last:020}-{at_ms:013}.dqa")
}

/// What an object's name says (the header says it again, and wins).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Named {
    /// `base/<index>-<at_ms>.dqa`
    Base {
        /// The image's index.
        index: LogIndex,
        /// Its newest write's commit time.
        at_ms: u64,
    },
    /// `seg/<first>-<last>-<at_ms>.dqa`
    Segment {
        /// First entry.
        first: LogIndex,
        /// Last entry.
        last: LogIndex,
        /// Newest write's commit time (0: no write in it).
        at_ms: u64,
    },
}

/// Parses an object name; None for names that are not archive objects (ignored by listings).
pub fn parse_name(name: &str) -> Option<Named> {
    let numbers = |rest: &str| -> Option<Vec<u64>> {
        rest.strip_suffix(".dqa")?.split('-').map(|n| n.parse().ok()).collect()
    };
    if let Some(rest) = name.strip_prefix("base/") {
        if let [index, at_ms] = numbers(rest)?[..] {
            return Some(Named::Base { index, at_ms });
        }
    } else if let Some(rest) = name.strip_prefix("seg/") {
        if let [first, last, at_ms] = numbers(rest)?[..] {
            return (first <= last).then_some(Named::Segment { first, last, at_ms });
        }
    }
    None
}

/// Compresses `raw` into a complete object: header, then the zstd body.
pub fn seal(mut header: Header, raw: &[u8]) -> std::io::Result<Vec<u8>> {
    header.raw_len = raw.len() as u64;
    header.raw_crc = crc32fast::hash(raw);
    let mut out = header.encode().to_vec();
    let mut encoder = zstd::stream::write::Encoder::new(&mut out, ZSTD_LEVEL)?;
    encoder.include_checksum(true)?;
    std::io::Write::write_all(&mut encoder, raw)?;
    encoder.finish()?;
    Ok(out)
}

/// Opens a complete in-memory object: checks the header, decompresses the body (at most
/// `raw_max` bytes, the bound checked against the header before allocating) and its checksum.
pub fn open(name: &str, object: &[u8], raw_max: u64) -> Result<(Header, Vec<u8>), FormatError> {
    let header = Header::decode(name, object)?;
    if header.raw_len > raw_max {
        return Err(damaged(
            name,
            format!("a body of {} bytes (at most {raw_max})", header.raw_len),
        ));
    }
    let mut raw = Vec::with_capacity(header.raw_len as usize);
    let decoder = zstd::stream::read::Decoder::new(&object[HEADER_BYTES..])
        .map_err(|e| damaged(name, format!("zstd: {e}")))?;
    let mut limited = std::io::Read::take(decoder, header.raw_len + 1);
    std::io::Read::read_to_end(&mut limited, &mut raw)
        .map_err(|e| damaged(name, format!("zstd: {e}")))?;
    check_body(name, &header, raw.len() as u64, crc32fast::hash(&raw))?;
    Ok((header, raw))
}

/// Checks a decompressed body's length and checksum against its header.
pub fn check_body(name: &str, header: &Header, len: u64, crc: u32) -> Result<(), FormatError> {
    if len != header.raw_len {
        return Err(damaged(name, format!("body of {len} bytes, header says {}", header.raw_len)));
    }
    if crc != header.raw_crc {
        return Err(damaged(name, "body checksum mismatch"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page_set(numbers: &[u32], fill: u8) -> PageSet {
        PageSet {
            page_size: 512,
            db_size_pages: 9,
            pages: numbers
                .iter()
                .map(|n| Page { number: *n, data: PageData::from(vec![fill; 512]) })
                .collect(),
        }
    }

    fn segment(records: &[Record]) -> (Header, Vec<u8>) {
        let mut raw = Vec::new();
        records.iter().for_each(|r| encode_record(r, &mut raw));
        let header = Header {
            kind: ObjectKind::Segment,
            cluster_id: [7; 16],
            first: records[0].index,
            last: records[records.len() - 1].index,
            extra: records.len() as u64,
            at_ms: 1_000,
            raw_len: 0,
            raw_crc: 0,
        };
        (header, raw)
    }

    // Goal: records survive sealing and opening unchanged, writes and non-writes alike.
    #[test]
    fn a_segment_round_trips() {
        let records = vec![
            Record {
                index: 5,
                at_ms: 900,
                write: Some(ArchivedWrite { base: 3, pages: page_set(&[1, 4], 0xab) }),
            },
            Record { index: 6, at_ms: 0, write: None },
            Record {
                index: 7,
                at_ms: 1_000,
                write: Some(ArchivedWrite { base: 5, pages: page_set(&[2], 0xcd) }),
            },
        ];
        let (header, raw) = segment(&records);
        let object = seal(header, &raw).unwrap();
        let (opened, body) = open("seg/x", &object, SEGMENT_RAW_BYTES_MAX).unwrap();
        assert_eq!(opened.raw_len, raw.len() as u64);
        assert_eq!(decode_records("seg/x", &opened, &body).unwrap(), records);
    }

    // Goal: a flipped byte anywhere in an object is detected, never decoded into other pages.
    // (A few bits of zstd's frame header, such as the window size, do not change the content:
    // such a flip may decode to the very same records, which is not damage.)
    #[test]
    fn every_damaged_byte_is_detected() {
        let records = vec![Record {
            index: 1,
            at_ms: 5,
            write: Some(ArchivedWrite { base: 0, pages: page_set(&[1, 2, 3], 0x11) }),
        }];
        let (header, raw) = segment(&records);
        let object = seal(header, &raw).unwrap();
        for at in 0..object.len() {
            let mut bad = object.clone();
            bad[at] ^= 0x40;
            let result = open("seg/x", &bad, SEGMENT_RAW_BYTES_MAX)
                .and_then(|(h, body)| decode_records("seg/x", &h, &body));
            if let Ok(decoded) = result {
                assert_eq!(decoded, records, "a flip at byte {at} changed the records unnoticed");
                assert!(at >= HEADER_BYTES, "a flip in our header at {at} went unnoticed");
            }
        }
        let truncated = &object[..object.len() - 3];
        assert!(open("seg/x", truncated, SEGMENT_RAW_BYTES_MAX).is_err());
    }

    // Goal: hostile record fields are refused before allocating.
    #[test]
    fn hostile_records_are_refused() {
        let (header, mut raw) = segment(&[Record { index: 1, at_ms: 0, write: None }]);
        raw[16] = 1; // claims a write, but the body ends
        assert!(decode_records("s", &header, &raw).is_err());
        let mut raw = Vec::new();
        raw.extend_from_slice(&1u64.to_le_bytes());
        raw.extend_from_slice(&0u64.to_le_bytes());
        raw.push(1);
        raw.extend_from_slice(&0u64.to_le_bytes());
        raw.extend_from_slice(&4096u32.to_le_bytes());
        raw.extend_from_slice(&1u32.to_le_bytes());
        raw.extend_from_slice(&u32::MAX.to_le_bytes()); // 4 billion pages in a few bytes
        let error = decode_records("s", &header, &raw).unwrap_err();
        assert!(error.to_string().contains("page count past"), "{error}");
        let header = Header { raw_len: SEGMENT_RAW_BYTES_MAX + 1, ..header };
        let object = [header.encode().to_vec(), vec![0; 16]].concat();
        assert!(open("s", &object, SEGMENT_RAW_BYTES_MAX)
            .unwrap_err()
            .to_string()
            .contains("at most"));
    }

    // Goal: names sort by index and parse back; other names are ignored.
    #[test]
    fn names_parse_back() {
        assert_eq!(parse_name(&base_name(42, 7)), Some(Named::Base { index: 42, at_ms: 7 }));
        assert_eq!(
            parse_name(&segment_name(43, 50, 9)),
            Some(Named::Segment { first: 43, last: 50, at_ms: 9 })
        );
        assert!(segment_name(9, 9, 0) < segment_name(10, 10, 0));
        for other in ["base/x.dqa", "seg/1-2.dqa", "seg/3-2-0.dqa", "notes.txt", "base/1-2.tmp"] {
            assert_eq!(parse_name(other), None, "{other}");
        }
    }

    // Goal: an object of another cluster is refused by name.
    #[test]
    fn foreign_objects_are_refused() {
        let (header, _) = segment(&[Record { index: 1, at_ms: 0, write: None }]);
        let error = header.check_cluster("seg/x", &[8; 16]).unwrap_err();
        assert!(matches!(error, FormatError::ForeignCluster { .. }), "{error}");
    }
}
