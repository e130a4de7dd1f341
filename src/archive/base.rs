//! Base images in and out of the archive format, streamed: an image may be far larger than
//! memory should hold, so it is compressed from the snapshot file into a local object file,
//! and decompressed from a downloaded object into the image being restored, in 1 MiB steps.

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::error::ArchiveError;
use super::format::{self, Header, ObjectKind, HEADER_BYTES, ZSTD_LEVEL};
use crate::raft::small_file::private_file_options;

const STEP_BYTES: usize = 1 << 20;

/// Writes to `out` (created 0600, replacing nothing) the object of the first `image_len` bytes
/// of `image`, under `header` (its length and checksum are filled in). Returns the header.
pub fn seal_image(image: &File, image_len: u64, header: Header, out: &Path) -> io::Result<Header> {
    let mut file = private_file_options().write(true).create_new(true).open(out)?;
    file.write_all(&[0u8; HEADER_BYTES])?;
    let mut encoder = zstd::stream::write::Encoder::new(&mut file, ZSTD_LEVEL)?;
    encoder.include_checksum(true)?;
    let mut hasher = crc32fast::Hasher::new();
    let mut buffer = vec![0u8; STEP_BYTES];
    let mut at = 0u64;
    while at < image_len {
        let want = usize::try_from((image_len - at).min(STEP_BYTES as u64)).unwrap_or(STEP_BYTES);
        image.read_exact_at(&mut buffer[..want], at)?;
        hasher.update(&buffer[..want]);
        encoder.write_all(&buffer[..want])?;
        at += want as u64;
    }
    encoder.finish()?;
    let header = Header { raw_len: image_len, raw_crc: hasher.finalize(), ..header };
    file.write_all_at(&header.encode(), 0)?;
    file.sync_all()?;
    Ok(header)
}

/// Decompresses the base image object in the file `object` (named `name`) into a new file
/// `out`, checking its header (a base of `cluster_id`), length and checksum. On any damage the
/// error says so and `out` must be discarded by the caller.
pub fn open_image(
    object: &Path,
    name: &str,
    cluster_id: Option<&[u8; 16]>,
    out: &Path,
) -> Result<Header, ArchiveError> {
    let io = |what: &str| {
        let what = format!("{what} ({name})");
        move |e| ArchiveError::io(what, e)
    };
    let mut input =
        BufReader::new(File::open(object).map_err(io("opening a downloaded base image"))?);
    let mut head = [0u8; HEADER_BYTES];
    input.read_exact(&mut head).map_err(|_| format::FormatError::Damaged {
        name: name.to_string(),
        reason: "shorter than its header".into(),
    })?;
    let header = Header::decode(name, &head)?;
    if header.kind != ObjectKind::Base {
        return Err(format::FormatError::Damaged {
            name: name.to_string(),
            reason: "a segment where a base image was expected".into(),
        }
        .into());
    }
    if let Some(cluster_id) = cluster_id {
        header.check_cluster(name, cluster_id)?;
    }
    let damaged = |e: io::Error| format::FormatError::Damaged {
        name: name.to_string(),
        reason: format!("zstd: {e}"),
    };
    let decoder = zstd::stream::read::Decoder::with_buffer(input).map_err(damaged)?;
    let mut limited = decoder.take(header.raw_len + 1);
    let mut output = private_file_options()
        .write(true)
        .create_new(true)
        .open(out)
        .map_err(io("creating the restored image"))?;
    let mut hasher = crc32fast::Hasher::new();
    let mut buffer = vec![0u8; STEP_BYTES];
    let mut len = 0u64;
    loop {
        let n = limited.read(&mut buffer).map_err(damaged)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        output.write_all(&buffer[..n]).map_err(io("writing the restored image"))?;
        len += n as u64;
    }
    format::check_body(name, &header, len, hasher.finalize())?;
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: an image survives sealing and opening; a flipped byte in the object is refused.
    #[test]
    fn an_image_round_trips_and_damage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let image: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let image_path = dir.path().join("image");
        std::fs::write(&image_path, [image.clone(), b"trailer".to_vec()].concat()).unwrap();
        let header = Header {
            kind: ObjectKind::Base,
            cluster_id: [3; 16],
            first: 9,
            last: 9,
            extra: 7,
            at_ms: 1,
            raw_len: 0,
            raw_crc: 0,
        };
        let object = dir.path().join("object");
        let file = File::open(&image_path).unwrap();
        let sealed = seal_image(&file, image.len() as u64, header, &object).unwrap();
        assert_eq!(sealed.raw_len, image.len() as u64);
        let out = dir.path().join("out");
        let opened = open_image(&object, "base/x", Some(&[3; 16]), &out).unwrap();
        assert_eq!(opened, sealed);
        assert_eq!(std::fs::read(&out).unwrap(), image);
        let error = open_image(&object, "base/x", Some(&[4; 16]), &dir.path().join("o2"));
        assert!(matches!(error, Err(ArchiveError::Format(_))));
        let mut bytes = std::fs::read(&object).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x10;
        std::fs::write(&object, bytes).unwrap();
        let error = open_image(&object, "base/x", None, &dir.path().join("o3")).unwrap_err();
        assert!(error.to_string().contains("damaged"), "{error}");
    }
}
