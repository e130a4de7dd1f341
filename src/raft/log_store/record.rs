//! One log record on disk: `body length u32 LE | crc32 u32 LE | body`, where the crc covers
//! the length bytes and the body, and the body is one rmp-serde encoded Raft entry.
//!
//! Invariants: a record is accepted only if its length is within [`RECORD_BODY_BYTES_MAX`], it
//! lies wholly inside the file, and its checksum matches; the length is checked before any
//! allocation.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use bytes::Bytes;

use super::LogError;
use crate::raft::shared::Chunks;

/// Bytes before a record's body.
pub(crate) const RECORD_HEADER_BYTES: u64 = 8;

/// How every body begins: an entry encoded by `rmp_serde::to_vec_named` is a map of two
/// fields whose first key is `log_id` (`0x82`, then the 6-character string). Used to find the
/// records after a damaged one whose length cannot be trusted; a test pins it.
pub(crate) const ENTRY_BODY_PREFIX: [u8; 8] = [0x82, 0xa6, b'l', b'o', b'g', b'_', b'i', b'd'];

/// Largest record body: one Raft entry, i.e. one SQLite transaction's page images. A larger
/// transaction cannot be replicated (append refuses it); a larger length read from disk is
/// corruption. 1 GiB keeps a single allocation sane while allowing very large transactions.
pub const RECORD_BODY_BYTES_MAX: u32 = 1 << 30;

/// What is found at an offset of a segment.
#[derive(Debug)]
pub(crate) enum Slot {
    /// A complete, checksummed record; `body` is its payload.
    Record { body: Vec<u8> },
    /// The file ends exactly here.
    End,
    /// Something that is not a valid record. `next` is where the following record would start
    /// if this one's length field is believable (used to tell a torn tail from a corrupt middle).
    Bad { reason: &'static str, next: Option<u64> },
}

/// Records are written through a buffer of about this many bytes: a batch of small entries
/// is one write, and a large entry is streamed into the file rather than copied whole.
const WRITE_BATCH_BYTES: usize = 1 << 20;

/// One record ready to be written: its header and its body's chunks (page images by
/// reference, see [`shared`]).
#[derive(Debug)]
pub(crate) struct Record {
    header: [u8; RECORD_HEADER_BYTES as usize],
    body: Chunks,
}

impl Record {
    /// The record of `body`, refused if it exceeds [`RECORD_BODY_BYTES_MAX`].
    pub(crate) fn new(body: Chunks) -> io::Result<Record> {
        let len = u32::try_from(body.len())
            .ok()
            .filter(|l| *l <= RECORD_BODY_BYTES_MAX)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "entry of {} bytes exceeds the {RECORD_BODY_BYTES_MAX}-byte record bound",
                        body.len()
                    ),
                )
            })?;
        let mut header = [0u8; RECORD_HEADER_BYTES as usize];
        header[..4].copy_from_slice(&len.to_le_bytes());
        header[4..].copy_from_slice(&checksum(len, body.iter()).to_le_bytes());
        Ok(Record { header, body })
    }

    /// Length of the body.
    pub(crate) fn body_len(&self) -> u32 {
        u32::from_le_bytes([self.header[0], self.header[1], self.header[2], self.header[3]])
    }

    /// Bytes the record takes in the file.
    pub(crate) fn bytes(&self) -> u64 {
        RECORD_HEADER_BYTES + u64::from(self.body_len())
    }
}

/// Writes `records` one after the other into `file` from `offset`; returns the end offset.
/// Page images are copied only into the bounded write buffer.
pub(crate) fn write_at(file: &File, offset: u64, records: &[Record]) -> io::Result<u64> {
    let total: u64 = records.iter().map(Record::bytes).sum();
    let mut out = StagedWriter {
        file,
        offset,
        buf: Vec::with_capacity(
            usize::try_from(total).unwrap_or(usize::MAX).min(WRITE_BATCH_BYTES),
        ),
    };
    for record in records {
        out.put(&record.header)?;
        for chunk in record.body.iter() {
            out.put(chunk)?;
        }
    }
    out.flush()?;
    Ok(out.offset)
}

/// Sequential writes into a file through a bounded buffer.
struct StagedWriter<'a> {
    file: &'a File,
    /// Where the buffer's first byte goes.
    offset: u64,
    buf: Vec<u8>,
}

impl StagedWriter<'_> {
    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.buf.len() + bytes.len() > WRITE_BATCH_BYTES {
            self.flush()?;
        }
        if bytes.len() >= WRITE_BATCH_BYTES {
            self.file.write_all_at(bytes, self.offset)?;
            self.offset += bytes.len() as u64;
        } else {
            self.buf.extend_from_slice(bytes);
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.file.write_all_at(&self.buf, self.offset)?;
            self.offset += self.buf.len() as u64;
            self.buf.clear();
        }
        Ok(())
    }
}

/// Read the slot at `offset` of `file`, whose valid length is `file_len`.
pub(crate) fn read_slot(file: &File, offset: u64, file_len: u64) -> io::Result<Slot> {
    if offset == file_len {
        return Ok(Slot::End);
    }
    if offset + RECORD_HEADER_BYTES > file_len {
        return Ok(Slot::Bad { reason: "truncated header", next: None });
    }
    let mut header = [0u8; RECORD_HEADER_BYTES as usize];
    file.read_exact_at(&mut header, offset)?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    let end = offset + RECORD_HEADER_BYTES + u64::from(len);
    if len == 0 || len > RECORD_BODY_BYTES_MAX {
        return Ok(Slot::Bad { reason: "implausible length", next: None });
    }
    if end > file_len {
        return Ok(Slot::Bad { reason: "truncated body", next: None });
    }
    let mut body = vec![0u8; len as usize];
    file.read_exact_at(&mut body, offset + RECORD_HEADER_BYTES)?;
    if checksum(len, [&body]) != crc {
        return Ok(Slot::Bad { reason: "checksum mismatch", next: Some(end) });
    }
    Ok(Slot::Record { body })
}

/// Read the record that the index says is at `offset` of segment `segment` with body length
/// `len`. The body is a view of the one buffer read, so that decoding can slice page images
/// out of it.
pub(crate) fn read_indexed(
    file: &File,
    segment: u64,
    offset: u64,
    len: u32,
) -> Result<Bytes, LogError> {
    let mut buf = vec![0u8; RECORD_HEADER_BYTES as usize + len as usize];
    file.read_exact_at(&mut buf, offset).map_err(LogError::Read)?;
    let stored_len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]);
    let crc = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
    let body = Bytes::from(buf).slice(RECORD_HEADER_BYTES as usize..);
    if stored_len != len || checksum(len, [&body]) != crc {
        return Err(LogError::RecordChanged { segment, offset });
    }
    Ok(body)
}

/// The record checksum: crc32 of the length, then of the body, which may come in chunks.
fn checksum(len: u32, body: impl IntoIterator<Item = impl AsRef<[u8]>>) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&len.to_le_bytes());
    for chunk in body {
        h.update(chunk.as_ref());
    }
    h.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::page_data::PageData;
    use crate::raft::shared;

    // Goal: a written record reads back; a flipped body byte is a checksum mismatch.
    #[test]
    fn write_read_and_detect_flip() {
        let f = tempfile::tempfile().unwrap();
        let record = Record::new(shared::encode("abc").unwrap()).unwrap();
        let n = write_at(&f, 0, &[record]).unwrap();
        let mut buf = vec![0u8; n as usize];
        f.read_exact_at(&mut buf, 0).unwrap();
        assert!(
            matches!(read_slot(&f, 0, n).unwrap(), Slot::Record { body } if body == b"\xa3abc")
        );
        assert_eq!(&read_indexed(&f, 0, 0, 4).unwrap()[..], b"\xa3abc");
        assert!(matches!(read_slot(&f, n, n).unwrap(), Slot::End));
        buf[9] ^= 1;
        f.write_all_at(&buf, 0).unwrap();
        assert!(matches!(
            read_indexed(&f, 0, 0, 4),
            Err(LogError::RecordChanged { segment: 0, offset: 0 })
        ));
        assert!(
            matches!(read_slot(&f, 0, n).unwrap(), Slot::Bad { next: Some(end), .. } if end == n)
        );
    }

    // Goal: records larger than the write buffer, with chunks of every size around it, are
    // written in order and read back whole; a body cut short is a torn tail, not a record.
    #[test]
    fn large_records_stream_through_the_buffer() {
        let f = tempfile::tempfile().unwrap();
        let pages: Vec<PageData> =
            [4096, WRITE_BATCH_BYTES - 3, WRITE_BATCH_BYTES, 3 * WRITE_BATCH_BYTES + 1, 300]
                .iter()
                .enumerate()
                .map(|(i, len)| PageData::from(vec![i as u8 + 1; *len]))
                .collect();
        let records = vec![
            Record::new(shared::encode(&pages).unwrap()).unwrap(),
            Record::new(shared::encode("small").unwrap()).unwrap(),
        ];
        let expected: Vec<Vec<u8>> = vec![
            rmp_serde::to_vec_named(&pages).unwrap(),
            rmp_serde::to_vec_named("small").unwrap(),
        ];
        let end = write_at(&f, 100, &records).unwrap();
        assert_eq!(end, 100 + records.iter().map(Record::bytes).sum::<u64>());
        let first = read_indexed(&f, 0, 100, records[0].body_len()).unwrap();
        assert_eq!(&first[..], &expected[0][..]);
        let second_at = 100 + records[0].bytes();
        assert!(
            matches!(read_slot(&f, second_at, end).unwrap(), Slot::Record { body } if body == expected[1])
        );
        assert!(matches!(
            read_slot(&f, 100, second_at - 1).unwrap(),
            Slot::Bad { reason: "truncated body", .. }
        ));
    }
}
