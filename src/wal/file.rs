//! The WAL file as this module needs it: positioned reads and writes, size, truncate, sync.
//!
//! The VFS implements [`WalFile`] over the file handle SQLite opened; tests use the impl for
//! `std::fs::File`. Positioned calls keep no cursor, so one handle is safe to share.

use std::io;

/// A WAL file, addressed by absolute byte offsets.
pub trait WalFile {
    /// Fills `buf` from `offset_bytes`, or fails (short files are errors).
    fn read_exact_at(&self, buf: &mut [u8], offset_bytes: u64) -> io::Result<()>;
    /// Writes all of `buf` at `offset_bytes`, growing the file as needed.
    fn write_all_at(&self, buf: &[u8], offset_bytes: u64) -> io::Result<()>;
    /// Current size in bytes.
    fn size_bytes(&self) -> io::Result<u64>;
    /// Sets the size to `size_bytes` (cutting or zero-extending).
    fn truncate(&self, size_bytes: u64) -> io::Result<()>;
    /// Makes written data durable.
    fn sync(&self) -> io::Result<()>;
}

#[cfg(unix)]
impl WalFile for std::fs::File {
    fn read_exact_at(&self, buf: &mut [u8], offset_bytes: u64) -> io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(self, buf, offset_bytes)
    }

    fn write_all_at(&self, buf: &[u8], offset_bytes: u64) -> io::Result<()> {
        std::os::unix::fs::FileExt::write_all_at(self, buf, offset_bytes)
    }

    fn size_bytes(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }

    fn truncate(&self, size_bytes: u64) -> io::Result<()> {
        self.set_len(size_bytes)
    }

    fn sync(&self) -> io::Result<()> {
        self.sync_all()
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    // Goal: the std::fs::File impl reads back what it wrote at an offset, and truncates.
    #[test]
    fn file_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.path().join("w"))
            .unwrap();
        WalFile::write_all_at(&file, b"abcd", 10).unwrap();
        assert_eq!(file.size_bytes().unwrap(), 14);
        let mut buf = [0u8; 4];
        WalFile::read_exact_at(&file, &mut buf, 10).unwrap();
        assert_eq!(&buf, b"abcd");
        WalFile::truncate(&file, 12).unwrap();
        assert!(WalFile::read_exact_at(&file, &mut buf, 10).is_err());
        file.sync().unwrap();
    }
}
