//! The methods of a file opened through `ha` (`sqlite3_io_methods`): the table, of the wrapped
//! file's version, and its trampolines. Most pass the call to the wrapped file; writes, syncs,
//! shared-memory locks and file-controls go through the safe logic of [`crate::vfs::HaFile`]
//! (docs/ARCHITECTURE.md, "The wrapping VFS", says which and why).
//!
//! Memory layout of one of our files, allocated by SQLite (`szOsFile` bytes, set in
//! `vfs.rs`): `[ FileSlot { base, logic } | padding to 8 | the wrapped VFS's sqlite3_file ... ]`.

use std::ffi::{c_int, c_void};
use std::sync::OnceLock;

use super::file::{Code, RawFile};
use super::sys::*;
use super::vfs::guarded;
use crate::vfs::HaFile;

/// The start of one of our files: what SQLite sees (`base`), then our state.
#[repr(C)]
pub(super) struct FileSlot {
    pub(super) base: sqlite3_file,
    pub(super) logic: *mut HaFile,
}

/// Where the wrapped file starts inside ours.
pub(super) const INNER_OFFSET: usize = std::mem::size_of::<FileSlot>().next_multiple_of(8);

/// A safe method's outcome as SQLite's result code.
fn code(result: Result<(), Code>) -> c_int {
    match result {
        Ok(()) => SQLITE_OK,
        Err(Code(rc)) => rc,
    }
}

/// Closes a wrapped file directly.
///
/// # Safety
/// `raw` must be open and never used again.
pub(super) unsafe fn close_inner(raw: &RawFile) -> c_int {
    let file = raw.as_ptr();
    // SAFETY: open file with valid pMethods (caller's contract).
    match unsafe { (*(*file).pMethods).xClose } {
        // SAFETY: as above.
        Some(close) => unsafe { close(file) },
        None => SQLITE_OK,
    }
}

/// Our methods table, of the wrapped file's version (up to 3): we must not offer shared
/// memory (version 2) or memory mapping (version 3) the wrapped file lacks, nor hide them.
pub(super) fn methods_for(inner: *const sqlite3_io_methods) -> *const sqlite3_io_methods {
    static TABLES: [OnceLock<IoMethods>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    // SAFETY: a valid io_methods table of an open file.
    let version = unsafe { (*inner).iVersion }.clamp(1, 3);
    let index = usize::try_from(version - 1).unwrap_or(0);
    &TABLES[index].get_or_init(|| io_methods(version)).0
}

struct IoMethods(sqlite3_io_methods);
// SAFETY: a table of function pointers, never mutated after creation.
unsafe impl Send for IoMethods {}
// SAFETY: as above.
unsafe impl Sync for IoMethods {}

fn io_methods(version: c_int) -> IoMethods {
    let (v2, v3) = (version >= 2, version >= 3);
    IoMethods(sqlite3_io_methods {
        iVersion: version,
        xClose: Some(x_close),
        xRead: Some(x_read),
        xWrite: Some(x_write),
        xTruncate: Some(x_truncate),
        xSync: Some(x_sync),
        xFileSize: Some(x_file_size),
        xLock: Some(x_lock),
        xUnlock: Some(x_unlock),
        xCheckReservedLock: Some(x_check_reserved_lock),
        xFileControl: Some(x_file_control),
        xSectorSize: Some(x_sector_size),
        xDeviceCharacteristics: Some(x_device_characteristics),
        xShmMap: v2.then_some(x_shm_map as _),
        xShmLock: v2.then_some(x_shm_lock as _),
        xShmBarrier: v2.then_some(x_shm_barrier as _),
        xShmUnmap: v2.then_some(x_shm_unmap as _),
        xFetch: v3.then_some(x_fetch as _),
        xUnfetch: v3.then_some(x_unfetch as _),
    })
}

/// Our logic and the wrapped file of one of our files.
///
/// # Safety
/// `file` must be a file opened by `x_open` and not yet closed.
unsafe fn parts<'a>(file: *mut sqlite3_file) -> (&'a mut HaFile, *mut sqlite3_file) {
    let slot = file.cast::<FileSlot>();
    // SAFETY: x_open set `logic` to a live Box before setting pMethods; SQLite serialises
    // calls on one file, so this is the only reference while the call runs.
    let logic = unsafe { &mut *(*slot).logic };
    // SAFETY: see module doc.
    let inner = unsafe { file.cast::<u8>().add(INNER_OFFSET).cast::<sqlite3_file>() };
    (logic, inner)
}

macro_rules! delegate_file {
    ($name:ident, $field:ident, ($($arg:ident: $ty:ty),*) -> $ret:ty, $on_missing:expr) => {
        unsafe extern "C" fn $name(file: *mut sqlite3_file, $($arg: $ty),*) -> $ret {
            // SAFETY: SQLite calls io methods only on files our x_open opened.
            let (_, inner) = unsafe { parts(file) };
            // SAFETY: the wrapped file is open.
            match unsafe { (*(*inner).pMethods).$field } {
                // SAFETY: same arguments on the wrapped file.
                Some(f) => unsafe { f(inner, $($arg),*) },
                None => $on_missing,
            }
        }
    };
}

delegate_file!(x_read, xRead, (buf: *mut c_void, n: c_int, off: sqlite3_int64) -> c_int, SQLITE_IOERR);
delegate_file!(x_truncate, xTruncate, (size: sqlite3_int64) -> c_int, SQLITE_IOERR);
delegate_file!(x_file_size, xFileSize, (out: *mut sqlite3_int64) -> c_int, SQLITE_IOERR);
delegate_file!(x_lock, xLock, (level: c_int) -> c_int, SQLITE_IOERR);
delegate_file!(x_unlock, xUnlock, (level: c_int) -> c_int, SQLITE_IOERR);
delegate_file!(x_check_reserved_lock, xCheckReservedLock, (out: *mut c_int) -> c_int, SQLITE_IOERR);
delegate_file!(x_sector_size, xSectorSize, () -> c_int, 4096);
delegate_file!(x_device_characteristics, xDeviceCharacteristics, () -> c_int, 0);
delegate_file!(x_shm_map, xShmMap, (region: c_int, size: c_int, extend: c_int, out: *mut *mut c_void) -> c_int, SQLITE_IOERR);
delegate_file!(x_shm_barrier, xShmBarrier, () -> (), ());
delegate_file!(x_shm_unmap, xShmUnmap, (delete: c_int) -> c_int, SQLITE_OK);
delegate_file!(x_fetch, xFetch, (off: sqlite3_int64, n: c_int, out: *mut *mut c_void) -> c_int, SQLITE_OK);
delegate_file!(x_unfetch, xUnfetch, (off: sqlite3_int64, p: *mut c_void) -> c_int, SQLITE_OK);

unsafe extern "C" fn x_close(file: *mut sqlite3_file) -> c_int {
    guarded(SQLITE_IOERR, || {
        let slot = file.cast::<FileSlot>();
        // SAFETY: an open file of ours; after this call SQLite never touches it again.
        let logic = unsafe { Box::from_raw((*slot).logic) };
        // SAFETY: as above.
        unsafe { (*slot).logic = std::ptr::null_mut() };
        let raw = logic.into_raw();
        // SAFETY: the wrapped file is open and not used after this.
        unsafe { close_inner(&raw) }
    })
}

unsafe extern "C" fn x_write(
    file: *mut sqlite3_file,
    buf: *const c_void,
    n: c_int,
    off: sqlite3_int64,
) -> c_int {
    guarded(SQLITE_IOERR_WRITE, || {
        // SAFETY: an open file of ours.
        let (logic, _) = unsafe { parts(file) };
        let (Ok(len), Ok(offset)) = (usize::try_from(n), u64::try_from(off)) else {
            return SQLITE_MISUSE;
        };
        if buf.is_null() {
            return SQLITE_MISUSE;
        }
        // SAFETY: SQLite passes `n` readable bytes at `buf`.
        let data = unsafe { std::slice::from_raw_parts(buf.cast::<u8>(), len) };
        code(logic.write(data, offset))
    })
}

unsafe extern "C" fn x_sync(file: *mut sqlite3_file, flags: c_int) -> c_int {
    guarded(SQLITE_IOERR, || {
        // SAFETY: an open file of ours.
        let (logic, inner) = unsafe { parts(file) };
        if logic.skip_sync() {
            return SQLITE_OK;
        }
        // SAFETY: the wrapped file is open.
        match unsafe { (*(*inner).pMethods).xSync } {
            // SAFETY: same arguments on the wrapped file.
            Some(sync) => unsafe { sync(inner, flags) },
            None => SQLITE_IOERR,
        }
    })
}

unsafe extern "C" fn x_shm_lock(
    file: *mut sqlite3_file,
    offset: c_int,
    n: c_int,
    flags: c_int,
) -> c_int {
    guarded(SQLITE_IOERR, || {
        // SAFETY: an open file of ours.
        let (logic, _) = unsafe { parts(file) };
        let (Ok(slot), Ok(count)) = (usize::try_from(offset), usize::try_from(n)) else {
            return SQLITE_MISUSE;
        };
        code(logic.shm_lock(slot, count, flags))
    })
}

unsafe extern "C" fn x_file_control(file: *mut sqlite3_file, op: c_int, arg: *mut c_void) -> c_int {
    guarded(SQLITE_ERROR, || {
        // SAFETY: an open file of ours.
        let (logic, inner) = unsafe { parts(file) };
        // SAFETY: `inner` is the open wrapped file; `arg` is what SQLite passed with `op`.
        unsafe { super::file_control::file_control(logic, inner, op, arg) }
    })
}
