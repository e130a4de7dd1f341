//! Safe handles on files of the host's default VFS (the one `ha` wraps).
//!
//! A [`RawFile`] is a view of an open `sqlite3_file`: either the one inside a file SQLite
//! opened through `ha` (SQLite owns its memory), or one we opened ourselves ([`OwnedFile`]).
//! The node must reach the database, WAL and shared memory only through such handles and
//! never through `std::fs`: closing any descriptor of a file drops every POSIX lock this
//! process holds on it, and the unix VFS is the one place that knows how to avoid that.

use std::ffi::{c_int, c_void, CString};
use std::ptr::NonNull;

use super::sys::*;

/// A SQLite result code returned by the underlying VFS, kept as is so it can be passed on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Code(pub c_int);

impl Code {
    fn check(rc: c_int) -> Result<(), Code> {
        if rc == SQLITE_OK {
            Ok(())
        } else {
            Err(Code(rc))
        }
    }
}

/// Largest single read or write we hand the wrapped VFS. SQLite itself never asks for more
/// than a page plus a frame header, and the unix VFS relies on that (it masks lengths to
/// 17 bits), so bigger buffers are cut into pieces of this size.
const IO_CHUNK_BYTES: usize = 64 * 1024;

/// An open file of the underlying VFS.
pub struct RawFile {
    file: NonNull<sqlite3_file>,
}

// SAFETY: the unix VFS's file methods may be called from any thread; callers serialise use
// of one handle (`&mut self` for state-changing calls, or a Mutex around it).
unsafe impl Send for RawFile {}
// SAFETY: the methods taking `&self` (read, write at offsets, shm access) are thread-safe in
// the unix VFS: pread/pwrite and shared-memory calls take their own mutexes.
unsafe impl Sync for RawFile {}

macro_rules! method {
    ($self:ident, $name:ident) => {{
        // SAFETY: `file` points to an open file whose pMethods is valid until closed.
        let methods = unsafe { &*(*$self.file.as_ptr()).pMethods };
        methods.$name.ok_or(Code(SQLITE_MISUSE))?
    }};
}

impl RawFile {
    /// # Safety
    /// `file` must be an open file (non-null `pMethods`) that outlives the handle.
    pub(crate) unsafe fn from_ptr(file: NonNull<sqlite3_file>) -> RawFile {
        RawFile { file }
    }

    pub(crate) fn as_ptr(&self) -> *mut sqlite3_file {
        self.file.as_ptr()
    }

    /// Reads exactly `buf.len()` bytes at `offset`; a short read is an error here.
    pub fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<(), Code> {
        let read = method!(self, xRead);
        for (i, chunk) in buf.chunks_mut(IO_CHUNK_BYTES).enumerate() {
            let len = c_int::try_from(chunk.len()).map_err(|_| Code(SQLITE_MISUSE))?;
            let at = i64::try_from(offset + (i * IO_CHUNK_BYTES) as u64)
                .map_err(|_| Code(SQLITE_MISUSE))?;
            // SAFETY: chunk is valid for len bytes; file is open.
            Code::check(unsafe { read(self.as_ptr(), chunk.as_mut_ptr().cast(), len, at) })?;
        }
        Ok(())
    }

    /// Writes all of `buf` at `offset`.
    pub fn write_all_at(&self, buf: &[u8], offset: u64) -> Result<(), Code> {
        let write = method!(self, xWrite);
        for (i, chunk) in buf.chunks(IO_CHUNK_BYTES).enumerate() {
            let len = c_int::try_from(chunk.len()).map_err(|_| Code(SQLITE_MISUSE))?;
            let at = i64::try_from(offset + (i * IO_CHUNK_BYTES) as u64)
                .map_err(|_| Code(SQLITE_MISUSE))?;
            // SAFETY: chunk is valid for len bytes; file is open.
            Code::check(unsafe { write(self.as_ptr(), chunk.as_ptr().cast(), len, at) })?;
        }
        Ok(())
    }

    /// Current size in bytes.
    pub fn size(&self) -> Result<u64, Code> {
        let file_size = method!(self, xFileSize);
        let mut size: i64 = 0;
        // SAFETY: `size` is a valid out-pointer.
        Code::check(unsafe { file_size(self.as_ptr(), &mut size) })?;
        u64::try_from(size).map_err(|_| Code(SQLITE_IOERR))
    }

    /// Truncates (or extends) the file to `size` bytes.
    pub fn truncate(&self, size: u64) -> Result<(), Code> {
        let truncate = method!(self, xTruncate);
        let size = i64::try_from(size).map_err(|_| Code(SQLITE_MISUSE))?;
        // SAFETY: file is open.
        Code::check(unsafe { truncate(self.as_ptr(), size) })
    }

    /// Flushes the file to stable storage (`SQLITE_SYNC_FULL`).
    pub fn sync(&self) -> Result<(), Code> {
        const SQLITE_SYNC_FULL: c_int = 0x3;
        let sync = method!(self, xSync);
        // SAFETY: file is open.
        Code::check(unsafe { sync(self.as_ptr(), SQLITE_SYNC_FULL) })
    }

    /// Maps 32 KiB region `n` of this database's wal-index, creating it if `extend`.
    /// `Ok(None)` when the region does not exist and `extend` is false.
    pub fn shm_region(&self, n: usize, extend: bool) -> Result<Option<ShmRegion>, Code> {
        let map = method!(self, xShmMap);
        let n = c_int::try_from(n).map_err(|_| Code(SQLITE_MISUSE))?;
        let mut ptr: *mut c_void = std::ptr::null_mut();
        // SAFETY: `ptr` is a valid out-pointer; SQLite's wal-index regions are 32 KiB.
        let rc = unsafe {
            map(self.as_ptr(), n, ShmRegion::SIZE as c_int, c_int::from(extend), &mut ptr)
        };
        // SQLITE_READONLY here means "mapped, but read-only": we never write through those.
        if rc != SQLITE_OK && rc & 0xff != SQLITE_READONLY {
            return Err(Code(rc));
        }
        Ok(NonNull::new(ptr.cast::<u8>()).map(|ptr| ShmRegion { ptr }))
    }

    /// Takes or releases `count` wal-index locks starting at `slot`; `Ok(false)` if busy.
    pub fn shm_lock(&self, slot: usize, count: usize, flags: c_int) -> Result<bool, Code> {
        let lock = method!(self, xShmLock);
        let slot = c_int::try_from(slot).map_err(|_| Code(SQLITE_MISUSE))?;
        let count = c_int::try_from(count).map_err(|_| Code(SQLITE_MISUSE))?;
        // SAFETY: file is open; the lock range is checked by the VFS.
        match unsafe { lock(self.as_ptr(), slot, count, flags) } {
            SQLITE_OK => Ok(true),
            SQLITE_BUSY => Ok(false),
            rc => Err(Code(rc)),
        }
    }

    /// A full memory barrier over the wal-index, as SQLite's writers use between the two
    /// header copies.
    pub fn shm_barrier(&self) {
        // SAFETY: pMethods is valid; xShmBarrier has no failure mode.
        let methods = unsafe { &*(*self.file.as_ptr()).pMethods };
        if let Some(barrier) = methods.xShmBarrier {
            // SAFETY: file is open.
            unsafe { barrier(self.as_ptr()) }
        } else {
            std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        }
    }
}

/// One mapped 32 KiB region of a wal-index, shared with other connections and processes.
/// All access is volatile: other processes change it under us, within SQLite's lock rules.
#[derive(Clone, Copy)]
pub struct ShmRegion {
    ptr: NonNull<u8>,
}

// SAFETY: the mapping is shared memory that stays mapped until the file that mapped it is
// unmapped or closed; access is volatile and every access is in bounds (checked).
unsafe impl Send for ShmRegion {}
// SAFETY: as above; there are no references into the region, only volatile copies.
unsafe impl Sync for ShmRegion {}

impl ShmRegion {
    /// Size of a wal-index region in bytes.
    pub const SIZE: usize = 32 * 1024;

    fn at<T>(&self, byte_offset: usize) -> *mut T {
        assert!(
            byte_offset.is_multiple_of(std::mem::align_of::<T>())
                && byte_offset + std::mem::size_of::<T>() <= Self::SIZE,
            "wal-index access out of bounds or misaligned: {byte_offset}"
        );
        // SAFETY: in bounds of the 32 KiB mapping (asserted above).
        unsafe { self.ptr.as_ptr().add(byte_offset).cast() }
    }

    /// Reads a native-endian u32.
    pub fn load_u32(&self, byte_offset: usize) -> u32 {
        // SAFETY: aligned and in bounds (see `at`); the mapping is live.
        unsafe { self.at::<u32>(byte_offset).read_volatile() }
    }

    /// Writes a native-endian u32.
    pub fn store_u32(&self, byte_offset: usize, value: u32) {
        // SAFETY: aligned and in bounds (see `at`); the mapping is live and writable.
        unsafe { self.at::<u32>(byte_offset).write_volatile(value) }
    }

    /// Reads a native-endian u16.
    pub fn load_u16(&self, byte_offset: usize) -> u16 {
        // SAFETY: aligned and in bounds (see `at`); the mapping is live.
        unsafe { self.at::<u16>(byte_offset).read_volatile() }
    }

    /// Writes a native-endian u16.
    pub fn store_u16(&self, byte_offset: usize, value: u16) {
        // SAFETY: aligned and in bounds (see `at`); the mapping is live and writable.
        unsafe { self.at::<u16>(byte_offset).write_volatile(value) }
    }
}

/// A file name in the form SQLite's VFSes expect (`sqlite3_create_filename`): the unix VFS
/// looks for URI parameters around the name, so a plain C string would be read past its end.
pub struct HostFilename {
    ptr: NonNull<std::ffi::c_char>,
}

// SAFETY: an immutable heap string owned by this value until drop.
unsafe impl Send for HostFilename {}
// SAFETY: as above; never mutated.
unsafe impl Sync for HostFilename {}

impl HostFilename {
    /// Builds the name of database `path` (with its `-journal` and `-wal` companions).
    pub fn new(path: &std::path::Path) -> Result<HostFilename, Code> {
        use std::os::unix::ffi::OsStrExt;
        let cstr = |suffix: &str| {
            let mut bytes = path.as_os_str().as_bytes().to_vec();
            bytes.extend_from_slice(suffix.as_bytes());
            CString::new(bytes).map_err(|_| Code(SQLITE_CANTOPEN))
        };
        let (db, journal, wal) = (cstr("")?, cstr("-journal")?, cstr("-wal")?);
        // SAFETY: three valid C strings; SQLite copies them into one allocation.
        let ptr = unsafe {
            sqlite3_create_filename(
                db.as_ptr(),
                journal.as_ptr(),
                wal.as_ptr(),
                0,
                std::ptr::null_mut(),
            )
        };
        NonNull::new(ptr).map(|ptr| HostFilename { ptr }).ok_or(Code(SQLITE_NOMEM))
    }

    fn database(&self) -> *const std::ffi::c_char {
        self.ptr.as_ptr()
    }

    fn wal(&self) -> *const std::ffi::c_char {
        // SAFETY: built by sqlite3_create_filename.
        unsafe { sqlite3_filename_wal(self.ptr.as_ptr()) }
    }
}

impl Drop for HostFilename {
    fn drop(&mut self) {
        // SAFETY: made by sqlite3_create_filename, freed once.
        unsafe { sqlite3_free_filename(self.ptr.as_ptr()) }
    }
}

/// Which file of a database to open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    /// The database file itself (it also gives access to the wal-index).
    Database,
    /// The write-ahead log.
    Wal,
}

/// A file we opened ourselves through the underlying VFS; closed on drop.
pub struct OwnedFile {
    raw: RawFile,
    // The sqlite3_file lives in this buffer (u64 for alignment); the VFS keeps its state
    // there, so it must not move while open: boxed, never reallocated.
    _storage: Box<[u64]>,
    // The VFS keeps a pointer to the name while the file is open.
    _name: std::sync::Arc<HostFilename>,
}

impl OwnedFile {
    /// Opens one file of database `name` (read-write, created if missing) through `vfs`.
    pub(crate) fn open(
        vfs: NonNull<sqlite3_vfs>,
        name: std::sync::Arc<HostFilename>,
        which: Which,
    ) -> Result<OwnedFile, Code> {
        // SAFETY: vfs is a registered VFS, valid for the process lifetime.
        let vfs_ref = unsafe { vfs.as_ref() };
        let size = usize::try_from(vfs_ref.szOsFile).map_err(|_| Code(SQLITE_MISUSE))?;
        let mut storage = vec![0u64; size.div_ceil(8).max(1)].into_boxed_slice();
        let file = storage.as_mut_ptr().cast::<sqlite3_file>();
        let open = vfs_ref.xOpen.ok_or(Code(SQLITE_MISUSE))?;
        let (zname, kind) = match which {
            Which::Database => (name.database(), SQLITE_OPEN_MAIN_DB),
            Which::Wal => (name.wal(), SQLITE_OPEN_WAL),
        };
        let flags = kind | SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
        let mut out_flags: c_int = 0;
        // SAFETY: `file` is szOsFile zeroed, aligned bytes; the name outlives the file
        // (kept in the returned value).
        let rc = unsafe { open(vfs.as_ptr(), zname, file, flags, &mut out_flags) };
        // SAFETY: `file` is the start of `storage`.
        let methods = unsafe { (*file).pMethods };
        if rc != SQLITE_OK {
            if !methods.is_null() {
                // SAFETY: a set pMethods means the VFS expects xClose even after failure.
                if let Some(close) = unsafe { (*methods).xClose } {
                    // SAFETY: as above.
                    unsafe { close(file) };
                }
            }
            return Err(Code(rc));
        }
        let file = NonNull::new(file).ok_or(Code(SQLITE_MISUSE))?;
        // SAFETY: opened successfully just above; storage is kept alive beside the handle.
        let raw = unsafe { RawFile::from_ptr(file) };
        Ok(OwnedFile { raw, _storage: storage, _name: name })
    }
}

impl std::ops::Deref for OwnedFile {
    type Target = RawFile;
    fn deref(&self) -> &RawFile {
        &self.raw
    }
}

impl Drop for OwnedFile {
    fn drop(&mut self) {
        let file = self.raw.as_ptr();
        // SAFETY: the file is open and is closed exactly once, here.
        unsafe {
            if let Some(close) = (*(*file).pMethods).xClose {
                close(file);
            }
        }
    }
}
