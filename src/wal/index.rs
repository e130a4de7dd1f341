//! The wal-index (the `-shm` file): how this crate reaches it, and its layout constants.
//!
//! The memory is shared with other processes and mapped by the VFS (over `xShmMap`), so it
//! is reached only through [`SharedIndex`] and [`IndexRegion`]; values are native-endian, as
//! SQLite keeps them. Layout (<https://www.sqlite.org/walformat.html#the_wal_index_file_format>):
//! regions of 32 KiB; region 0 starts with two copies of the 48-byte header and the 40-byte
//! checkpoint info ([`header`]), and every region ends with a page-number array and a hash
//! table ([`hash`]). Lock slots are numbered as SQLite numbers them.

pub mod hash;
pub mod header;
pub mod memory;

use std::io;

/// Bytes in one wal-index region.
pub const REGION_BYTES: usize = 32_768;

/// Lock slot of the WAL write lock (one writer at a time).
pub const WRITE_LOCK: usize = 0;
/// Lock slot of the checkpointer.
pub const CKPT_LOCK: usize = 1;
/// Lock slot held while rebuilding the wal-index from the WAL.
pub const RECOVER_LOCK: usize = 2;
/// Number of reader slots (read marks).
pub const READER_COUNT: usize = 5;

/// Lock slot of reader `i` (0..5).
pub const fn read_lock(i: usize) -> usize {
    assert!(i < READER_COUNT, "SQLite has five read marks");
    3 + i
}

/// One mapped 32 KiB region of the wal-index. Offsets are bytes from the region start,
/// aligned to the value's size and below [`REGION_BYTES`]; implementations may panic on a
/// misaligned or out-of-range offset (a bug here, never input). Values are native-endian;
/// implementations use volatile or atomic access because other processes write concurrently.
pub trait IndexRegion {
    /// Reads the u32 at `byte_offset`.
    fn load_u32(&self, byte_offset: usize) -> u32;
    /// Writes the u32 at `byte_offset`.
    fn store_u32(&self, byte_offset: usize, value: u32);
    /// Reads the u16 at `byte_offset`.
    fn load_u16(&self, byte_offset: usize) -> u16;
    /// Writes the u16 at `byte_offset`.
    fn store_u16(&self, byte_offset: usize, value: u16);
}

/// The shared wal-index: its regions, its locks and a memory barrier.
pub trait SharedIndex {
    /// A handle on one mapped region.
    type Region: IndexRegion;
    /// Maps region `n`, extending the shared memory when it is not there yet (new regions
    /// read as zeros).
    fn region(&self, n: usize) -> io::Result<Self::Region>;
    /// A full memory barrier between this process's stores and other processes' loads.
    fn barrier(&self);
    /// Tries to take lock slots `first_slot..first_slot + count` exclusively, without
    /// waiting. `Ok(false)` means another connection holds one of them.
    fn try_lock_exclusive(&self, first_slot: usize, count: usize) -> io::Result<bool>;
    /// Releases slots taken by [`SharedIndex::try_lock_exclusive`].
    fn unlock_exclusive(&self, first_slot: usize, count: usize) -> io::Result<()>;
}
