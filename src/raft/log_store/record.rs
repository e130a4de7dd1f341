//! One log record on disk: `body length u32 LE | crc32 u32 LE | body`, where the crc covers
//! the length bytes and the body, and the body is one rmp-serde encoded Raft entry.
//!
//! Invariants: a record is accepted only if its length is within [`RECORD_BODY_BYTES_MAX`], it
//! lies wholly inside the file, and its checksum matches; the length is checked before any
//! allocation.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

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
    Bad {
        reason: &'static str,
        next: Option<u64>,
    },
}

/// Append the record for `body` to `out`.
pub(crate) fn encode_into(out: &mut Vec<u8>, body: &[u8]) -> io::Result<()> {
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
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&checksum(len, body).to_le_bytes());
    out.extend_from_slice(body);
    Ok(())
}

/// Read the slot at `offset` of `file`, whose valid length is `file_len`.
pub(crate) fn read_slot(file: &File, offset: u64, file_len: u64) -> io::Result<Slot> {
    if offset == file_len {
        return Ok(Slot::End);
    }
    if offset + RECORD_HEADER_BYTES > file_len {
        return Ok(Slot::Bad {
            reason: "truncated header",
            next: None,
        });
    }
    let mut header = [0u8; RECORD_HEADER_BYTES as usize];
    file.read_exact_at(&mut header, offset)?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    let end = offset + RECORD_HEADER_BYTES + u64::from(len);
    if len == 0 || len > RECORD_BODY_BYTES_MAX {
        return Ok(Slot::Bad {
            reason: "implausible length",
            next: None,
        });
    }
    if end > file_len {
        return Ok(Slot::Bad {
            reason: "truncated body",
            next: None,
        });
    }
    let mut body = vec![0u8; len as usize];
    file.read_exact_at(&mut body, offset + RECORD_HEADER_BYTES)?;
    if checksum(len, &body) != crc {
        return Ok(Slot::Bad {
            reason: "checksum mismatch",
            next: Some(end),
        });
    }
    Ok(Slot::Record { body })
}

/// Read the record that the index says is at `offset` with body length `len`.
pub(crate) fn read_indexed(file: &File, offset: u64, len: u32) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; RECORD_HEADER_BYTES as usize + len as usize];
    file.read_exact_at(&mut buf, offset)?;
    let stored_len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]);
    let crc = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
    let body = buf.split_off(RECORD_HEADER_BYTES as usize);
    if stored_len != len || checksum(len, &body) != crc {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("log record at offset {offset} changed on disk (checksum mismatch)"),
        ));
    }
    Ok(body)
}

fn checksum(len: u32, body: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&len.to_le_bytes());
    h.update(body);
    h.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    // Goal: an encoded record reads back; a flipped body byte is a checksum mismatch.
    #[test]
    fn encode_read_and_detect_flip() {
        let mut f = tempfile::tempfile().unwrap();
        let mut buf = Vec::new();
        encode_into(&mut buf, b"abc").unwrap();
        f.write_all(&buf).unwrap();
        let n = buf.len() as u64;
        assert!(matches!(read_slot(&f, 0, n).unwrap(), Slot::Record { body } if body == b"abc"));
        assert!(matches!(read_slot(&f, n, n).unwrap(), Slot::End));
        buf[9] ^= 1;
        f.write_all_at(&buf, 0).unwrap();
        assert!(
            matches!(read_slot(&f, 0, n).unwrap(), Slot::Bad { next: Some(end), .. } if end == n)
        );
    }
}
