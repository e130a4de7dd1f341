//! Test helpers: running the real `sqlite3` shell, writing synthetic WALs, and a wal-index
//! over a real `-shm` file through positioned reads and writes (safe code, single process:
//! good enough while no other process has the file open).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use super::checksum::WordOrder;
use super::file::WalFile;
use super::format::{FrameHeader, PageSize, Salts, WalHeader};
use super::index::header::IndexHeader;
use super::index::{IndexRegion, SharedIndex, REGION_BYTES};
use super::scan::WalScan;

/// Runs `script` through `/usr/bin/sqlite3 -bail db`; panics with stderr on any failure.
pub fn sqlite(db: &Path, script: &str) -> String {
    let mut child = Command::new("/usr/bin/sqlite3")
        .arg("-bail")
        .arg(db)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the sqlite3 shell is installed");
    child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.is_empty(), "sqlite3 failed: {stderr}");
    String::from_utf8(out.stdout).unwrap()
}

/// Opens (creating) a file for reading and writing.
pub fn open_rw(path: &Path) -> File {
    OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path).unwrap()
}

/// Writes a little-endian-checksum WAL with 512-byte pages, one frame per
/// `(page_number, commit_size, fill_byte)`, and returns it opened.
pub fn wal_from_frames(path: &Path, frames: &[(u32, u32, u8)]) -> File {
    let order = WordOrder::Little;
    let salts = Salts { salt1: 0x1111, salt2: 0x2222 };
    let header = WalHeader::new(order, PageSize::new(512).unwrap(), 0, salts);
    let mut bytes = header.encode().to_vec();
    let mut running = header.checksum;
    for (page_number, commit, fill) in frames {
        let page = vec![*fill; 512];
        let frame = FrameHeader::seal(order, running, *page_number, *commit, salts, &page);
        running = frame.checksum;
        bytes.extend_from_slice(&frame.encode());
        bytes.extend_from_slice(&page);
    }
    std::fs::write(path, &bytes).unwrap();
    open_rw(path)
}

/// A wal-index kept in a real `-shm` file.
pub struct FileIndex {
    file: Arc<File>,
    locks: Mutex<[bool; 8]>,
}

impl FileIndex {
    /// Opens (creating) the `-shm` file at `path`.
    pub fn open(path: &Path) -> Self {
        FileIndex { file: Arc::new(open_rw(path)), locks: Mutex::new([false; 8]) }
    }
}

/// One region of a [`FileIndex`].
pub struct FileRegion {
    file: Arc<File>,
    base: u64,
}

impl FileRegion {
    fn read<const N: usize>(&self, byte_offset: usize) -> [u8; N] {
        let mut buf = [0u8; N];
        self.file.read_exact_at(&mut buf, self.base + byte_offset as u64).unwrap();
        buf
    }

    fn write(&self, byte_offset: usize, bytes: &[u8]) {
        self.file.write_all_at(bytes, self.base + byte_offset as u64).unwrap();
    }
}

impl IndexRegion for FileRegion {
    fn load_u32(&self, byte_offset: usize) -> u32 {
        u32::from_ne_bytes(self.read(byte_offset))
    }
    fn store_u32(&self, byte_offset: usize, value: u32) {
        self.write(byte_offset, &value.to_ne_bytes());
    }
    fn load_u16(&self, byte_offset: usize) -> u16 {
        u16::from_ne_bytes(self.read(byte_offset))
    }
    fn store_u16(&self, byte_offset: usize, value: u16) {
        self.write(byte_offset, &value.to_ne_bytes());
    }
}

impl SharedIndex for FileIndex {
    type Region = FileRegion;

    fn region(&self, n: usize) -> std::io::Result<FileRegion> {
        let end = ((n + 1) * REGION_BYTES) as u64;
        if self.file.metadata()?.len() < end {
            self.file.set_len(end)?;
        }
        Ok(FileRegion { file: self.file.clone(), base: (n * REGION_BYTES) as u64 })
    }

    fn barrier(&self) {}

    fn try_lock_exclusive(&self, first_slot: usize, count: usize) -> std::io::Result<bool> {
        let mut locks = self.locks.lock().unwrap();
        let slots = &mut locks[first_slot..first_slot + count];
        if slots.iter().any(|held| *held) {
            return Ok(false);
        }
        slots.fill(true);
        Ok(true)
    }

    fn unlock_exclusive(&self, first_slot: usize, count: usize) -> std::io::Result<()> {
        self.locks.lock().unwrap()[first_slot..first_slot + count].fill(false);
        Ok(())
    }
}

/// The wal-index header SQLite holds right after commit frame `frame_number` of `wal`
/// (`IndexHeader::default()` for frame 0: an empty WAL).
pub fn index_header_after(wal: &File, found: &WalScan, frame_number: u32) -> IndexHeader {
    if frame_number == 0 {
        return IndexHeader::default();
    }
    let wal_header = found.header.unwrap();
    let mut head = [0u8; 24];
    let at = wal_header.page_size.frame_offset(frame_number);
    WalFile::read_exact_at(wal, &mut head, at).unwrap();
    let frame = FrameHeader::decode(&head);
    IndexHeader {
        is_init: true,
        big_endian_checksum: wal_header.order.is_big(),
        page_size: wal_header.page_size.bytes(),
        max_frame: frame_number,
        db_size_pages: frame.db_size_pages,
        frame_checksum: frame.checksum,
        salts: wal_header.salts,
        ..IndexHeader::default()
    }
}
