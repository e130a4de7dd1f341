//! The node's own handles on its database's files, opened through the wrapped VFS (never
//! `std::fs`, see `ffi::file`), and their adapters to the `wal` module's traits.

use std::io;
use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, SqliteCode};
use crate::ffi::file::{Code, HostFilename, OwnedFile, RawFile, ShmRegion, Which};
use crate::ffi::sys::{SQLITE_SHM_EXCLUSIVE, SQLITE_SHM_LOCK, SQLITE_SHM_UNLOCK};
use crate::ffi::vfs::inner_vfs;
use crate::wal::file::WalFile;
use crate::wal::index::{IndexRegion, SharedIndex};

/// The database file (for its wal-index) and its WAL, opened by the node.
pub struct DbFiles {
    /// The database file; its shared memory is the wal-index.
    pub db: OwnedFile,
    /// The write-ahead log.
    pub wal: OwnedFile,
}

impl DbFiles {
    /// Opens both files of the database at `path`.
    pub fn open(path: &Path) -> Result<DbFiles, Error> {
        let name = Arc::new(HostFilename::new(path).map_err(|c| code_error("naming", path, c))?);
        let db = OwnedFile::open(inner_vfs(), Arc::clone(&name), Which::Database)
            .map_err(|c| code_error("opening", path, c))?;
        let wal = OwnedFile::open(inner_vfs(), name, Which::Wal)
            .map_err(|c| code_error("opening the WAL of", path, c))?;
        // The VFS attaches a file to the shared memory on its first map; wal-index locks
        // taken before that fail.
        db.shm_region(0, true).map_err(|c| code_error("mapping the wal-index of", path, c))?;
        Ok(DbFiles { db, wal })
    }

    /// The wal-index, through the database handle.
    pub fn index(&self) -> Index<'_> {
        Index { file: &self.db }
    }

    /// The WAL, as the `wal` module reads and writes it.
    pub fn wal(&self) -> Wal<'_> {
        Wal { file: &self.wal }
    }
}

fn code_error(what: &str, path: &Path, code: Code) -> Error {
    Error::Sqlite { code: code.0, message: format!("{what} {}", path.display()) }
}

fn io_error(code: Code) -> io::Error {
    io::Error::other(SqliteCode { what: "the WAL or wal-index", code: code.0 })
}

/// A WAL file seen through any raw handle (the node's, or the committing connection's).
pub struct Wal<'a> {
    /// The handle.
    pub file: &'a RawFile,
}

impl WalFile for Wal<'_> {
    fn read_exact_at(&self, buf: &mut [u8], offset_bytes: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, offset_bytes).map_err(io_error)
    }
    fn write_all_at(&self, buf: &[u8], offset_bytes: u64) -> io::Result<()> {
        self.file.write_all_at(buf, offset_bytes).map_err(io_error)
    }
    fn size_bytes(&self) -> io::Result<u64> {
        self.file.size().map_err(io_error)
    }
    fn truncate(&self, size_bytes: u64) -> io::Result<()> {
        self.file.truncate(size_bytes).map_err(io_error)
    }
    fn sync(&self) -> io::Result<()> {
        self.file.sync().map_err(io_error)
    }
}

/// The wal-index of a database, through the node's handle on the database file.
pub struct Index<'a> {
    file: &'a RawFile,
}

impl IndexRegion for ShmRegion {
    fn load_u32(&self, byte_offset: usize) -> u32 {
        ShmRegion::load_u32(self, byte_offset)
    }
    fn store_u32(&self, byte_offset: usize, value: u32) {
        ShmRegion::store_u32(self, byte_offset, value)
    }
    fn load_u16(&self, byte_offset: usize) -> u16 {
        ShmRegion::load_u16(self, byte_offset)
    }
    fn store_u16(&self, byte_offset: usize, value: u16) {
        ShmRegion::store_u16(self, byte_offset, value)
    }
}

impl SharedIndex for Index<'_> {
    type Region = ShmRegion;

    fn region(&self, n: usize) -> io::Result<ShmRegion> {
        self.file
            .shm_region(n, true)
            .map_err(io_error)?
            .ok_or_else(|| io::Error::other(format!("wal-index region {n} could not be mapped")))
    }

    fn barrier(&self) {
        self.file.shm_barrier();
    }

    fn try_lock_exclusive(&self, first_slot: usize, count: usize) -> io::Result<bool> {
        self.file
            .shm_lock(first_slot, count, SQLITE_SHM_LOCK | SQLITE_SHM_EXCLUSIVE)
            .map_err(io_error)
    }

    fn unlock_exclusive(&self, first_slot: usize, count: usize) -> io::Result<()> {
        self.file
            .shm_lock(first_slot, count, SQLITE_SHM_UNLOCK | SQLITE_SHM_EXCLUSIVE)
            .map(|_| ())
            .map_err(io_error)
    }
}
