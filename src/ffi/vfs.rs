//! The `ha` VFS as SQLite sees it: the `sqlite3_vfs` table, its registration over the default
//! VFS, and its trampolines (the files' methods are in [`super::io_methods`]). Each trampoline
//! checks its pointers, runs inside `catch_unwind`, and either passes the call straight to the
//! wrapped (default) VFS or hands it to the safe logic in [`crate::vfs`].

use std::ffi::{c_char, c_int, c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::NonNull;
use std::sync::OnceLock;

use super::file::RawFile;
use super::io_methods::{close_inner, methods_for, FileSlot, INNER_OFFSET};
use super::sys::*;
use crate::vfs::{FileKind, HaFile};

/// The name applications pass as `?vfs=ha`.
pub const VFS_NAME: &CStr = c"ha";

struct Registered {
    ours: NonNull<sqlite3_vfs>,
    inner: NonNull<sqlite3_vfs>,
}
// SAFETY: both VFS objects live for the whole process and SQLite's VFS calls are thread-safe.
unsafe impl Send for Registered {}
// SAFETY: as above; we never mutate either after registration.
unsafe impl Sync for Registered {}

static REGISTERED: OnceLock<Registered> = OnceLock::new();

/// The wrapped VFS (the host's default at load time), for files the node opens itself.
pub fn inner_vfs() -> NonNull<sqlite3_vfs> {
    REGISTERED.get().expect("the VFS is registered at load, before any node exists").inner
}

/// True if `vfs` is our `ha` VFS.
pub fn is_ours(vfs: *const sqlite3_vfs) -> bool {
    REGISTERED.get().is_some_and(|r| std::ptr::eq(r.ours.as_ptr(), vfs))
}

/// Registers `ha` (once per process) over the current default VFS; `make_default` also
/// makes it the default for connections that name no VFS.
pub fn register(make_default: bool) -> Result<(), String> {
    let registered = match REGISTERED.get() {
        Some(registered) => registered,
        None => {
            // SAFETY: NULL asks for the default VFS.
            let inner = NonNull::new(unsafe { sqlite3_vfs_find(std::ptr::null()) })
                .ok_or("the host SQLite has no default VFS")?;
            let ours = NonNull::from(Box::leak(Box::new(new_vfs(inner))));
            // SAFETY: `ours` is a fully initialised VFS that lives forever.
            let rc = unsafe { sqlite3_vfs_register(ours.as_ptr(), 0) };
            if rc != SQLITE_OK {
                return Err(format!("could not register the ha VFS (SQLite error {rc})"));
            }
            REGISTERED.get_or_init(|| Registered { ours, inner })
        }
    };
    if make_default {
        // SAFETY: re-registering a registered VFS only moves it to the default position.
        let rc = unsafe { sqlite3_vfs_register(registered.ours.as_ptr(), 1) };
        if rc != SQLITE_OK {
            return Err(format!("could not make ha the default VFS (SQLite error {rc})"));
        }
    }
    Ok(())
}

fn new_vfs(inner: NonNull<sqlite3_vfs>) -> sqlite3_vfs {
    // SAFETY: the default VFS is valid for the process lifetime.
    let inner_ref = unsafe { inner.as_ref() };
    let inner_size = usize::try_from(inner_ref.szOsFile).unwrap_or(0);
    sqlite3_vfs {
        // As many methods as the wrapped VFS has (3 on unix), up to the ones we know: SQLite
        // calls a method of version N only when iVersion >= N, so a shim must not claim less
        // (the system-call methods would vanish) nor more (we could not forward them).
        iVersion: inner_ref.iVersion.clamp(1, VFS_VERSION_MAX),
        szOsFile: c_int::try_from(INNER_OFFSET + inner_size).unwrap_or(c_int::MAX),
        mxPathname: inner_ref.mxPathname,
        pNext: std::ptr::null_mut(),
        zName: VFS_NAME.as_ptr(),
        pAppData: inner.as_ptr().cast(),
        xOpen: Some(x_open),
        xDelete: Some(x_delete),
        xAccess: Some(x_access),
        xFullPathname: Some(x_full_pathname),
        xDlOpen: Some(x_dl_open),
        xDlError: Some(x_dl_error),
        xDlSym: Some(x_dl_sym),
        xDlClose: Some(x_dl_close),
        xRandomness: Some(x_randomness),
        xSleep: Some(x_sleep),
        xCurrentTime: Some(x_current_time),
        xGetLastError: Some(x_get_last_error),
        xCurrentTimeInt64: Some(x_current_time_int64),
        xSetSystemCall: Some(x_set_system_call),
        xGetSystemCall: Some(x_get_system_call),
        xNextSystemCall: Some(x_next_system_call),
    }
}

/// The newest `sqlite3_vfs` version whose methods we forward (3: the system-call methods).
const VFS_VERSION_MAX: c_int = 3;

/// What `xDlSym` returns: C's `void (*)(void)`, which bindgen writes with `xDlSym`'s own
/// parameters. We only pass the pointer on, never call it, so the spelling does not matter.
type DlSymbol = Option<unsafe extern "C" fn(*mut sqlite3_vfs, *mut c_void, *const c_char)>;

/// Runs `f`, turning a panic into `on_panic` so no unwind crosses into C.
pub(super) fn guarded(on_panic: c_int, f: impl FnOnce() -> c_int) -> c_int {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(on_panic)
}

/// The wrapped VFS of a call on ours.
///
/// # Safety
/// `vfs` must be our registered VFS.
unsafe fn inner_of(vfs: *mut sqlite3_vfs) -> *mut sqlite3_vfs {
    // SAFETY: pAppData was set to the wrapped VFS at registration.
    unsafe { (*vfs).pAppData.cast() }
}

/// A method of ours that calls the wrapped VFS's, or answers `$on_missing` when the wrapped
/// VFS lacks it: its version is below `$since` (the field is not even in its struct) or the
/// method is NULL.
macro_rules! delegate_vfs {
    (@since) => { 1 };
    (@since $since:literal) => { $since };
    ($name:ident, $field:ident $(since $since:literal)?, ($($arg:ident: $ty:ty),*) -> $ret:ty, $on_missing:expr) => {
        // xDlError and xDlClose return nothing: their `$on_missing` is `()`.
        #[allow(clippy::unused_unit)]
        unsafe extern "C" fn $name(vfs: *mut sqlite3_vfs, $($arg: $ty),*) -> $ret {
            // SAFETY: SQLite calls us with our own VFS; the wrapped one is valid.
            let inner = unsafe { inner_of(vfs) };
            // SAFETY: as above; iVersion is in every version's struct.
            if unsafe { (*inner).iVersion } < delegate_vfs!(@since $($since)?) {
                return $on_missing;
            }
            // SAFETY: as above; the wrapped VFS's version has this field.
            match unsafe { (*inner).$field } {
                // SAFETY: same arguments, wrapped VFS pointer.
                Some(f) => unsafe { f(inner, $($arg),*) },
                None => $on_missing,
            }
        }
    };
}

delegate_vfs!(x_delete, xDelete, (name: *const c_char, sync_dir: c_int) -> c_int, SQLITE_IOERR);
delegate_vfs!(x_access, xAccess, (name: *const c_char, flags: c_int, out: *mut c_int) -> c_int, SQLITE_IOERR);
delegate_vfs!(x_full_pathname, xFullPathname, (name: *const c_char, n: c_int, out: *mut c_char) -> c_int, SQLITE_IOERR);
delegate_vfs!(x_dl_open, xDlOpen, (name: *const c_char) -> *mut c_void, std::ptr::null_mut());
delegate_vfs!(x_dl_error, xDlError, (n: c_int, out: *mut c_char) -> (), ());
delegate_vfs!(x_dl_sym, xDlSym, (h: *mut c_void, sym: *const c_char) -> DlSymbol, None);
delegate_vfs!(x_dl_close, xDlClose, (h: *mut c_void) -> (), ());
delegate_vfs!(x_randomness, xRandomness, (n: c_int, out: *mut c_char) -> c_int, 0);
delegate_vfs!(x_sleep_wrapped, xSleep, (micros: c_int) -> c_int, 0);

/// `xSleep`, called by SQLite's busy handler: a connection waiting its turn at a node's WAL
/// write lock wakes when the lock is released (see `vfs::write_turns`); any other sleep is
/// the wrapped VFS's.
unsafe extern "C" fn x_sleep(vfs: *mut sqlite3_vfs, micros: c_int) -> c_int {
    let max = std::time::Duration::from_micros(u64::try_from(micros).unwrap_or(0));
    if catch_unwind(|| crate::vfs::sleep_in_line(max)).unwrap_or(false) {
        return micros;
    }
    // SAFETY: SQLite calls us with our own VFS; same arguments passed on.
    unsafe { x_sleep_wrapped(vfs, micros) }
}
delegate_vfs!(x_current_time, xCurrentTime, (out: *mut f64) -> c_int, SQLITE_ERROR);
delegate_vfs!(x_get_last_error, xGetLastError, (n: c_int, out: *mut c_char) -> c_int, 0);
delegate_vfs!(x_current_time_int64, xCurrentTimeInt64 since 2, (out: *mut sqlite3_int64) -> c_int, SQLITE_ERROR);
// The system calls are the wrapped VFS's: a harness that swaps `open` or `pread` through `ha`
// changes them for the files `ha` opens too, since those are the wrapped VFS's files.
delegate_vfs!(x_set_system_call, xSetSystemCall since 3, (name: *const c_char, call: sqlite3_syscall_ptr) -> c_int, SQLITE_NOTFOUND);
delegate_vfs!(x_get_system_call, xGetSystemCall since 3, (name: *const c_char) -> sqlite3_syscall_ptr, None);
delegate_vfs!(x_next_system_call, xNextSystemCall since 3, (name: *const c_char) -> *const c_char, std::ptr::null());

unsafe extern "C" fn x_open(
    vfs: *mut sqlite3_vfs,
    name: *const c_char,
    file: *mut sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    guarded(SQLITE_CANTOPEN, || {
        if file.is_null() {
            return SQLITE_MISUSE;
        }
        // SAFETY: SQLite allocated szOsFile bytes at `file` for us; nothing is open yet.
        let slot = file.cast::<FileSlot>();
        // SAFETY: as above: base and logic are ours to initialise.
        unsafe {
            (*slot).base.pMethods = std::ptr::null();
            (*slot).logic = std::ptr::null_mut();
        }
        // SAFETY: the wrapped file lives right after our slot (see module doc).
        let inner_file = unsafe { file.cast::<u8>().add(INNER_OFFSET).cast::<sqlite3_file>() };
        // SAFETY: our VFS; its wrapped VFS is valid.
        let inner = unsafe { inner_of(vfs) };
        // SAFETY: as above.
        let Some(open) = (unsafe { (*inner).xOpen }) else { return SQLITE_CANTOPEN };
        // SAFETY: same arguments, with the wrapped VFS and its file area.
        let rc = unsafe { open(inner, name, inner_file, flags, out_flags) };
        // SAFETY: the wrapped VFS set or left NULL its pMethods.
        let inner_methods = unsafe { (*inner_file).pMethods };
        if inner_methods.is_null() {
            return if rc == SQLITE_OK { SQLITE_CANTOPEN } else { rc };
        }
        // SAFETY: non-null pMethods: the wrapped file is open (or needs closing).
        let raw = unsafe { RawFile::from_ptr(NonNull::new_unchecked(inner_file)) };
        if rc != SQLITE_OK {
            // SAFETY: as above; close the half-open wrapped file ourselves since SQLite
            // will see our NULL pMethods and not call xClose.
            unsafe { close_inner(&raw) };
            return rc;
        }
        // SAFETY: `name` is NULL or a NUL-terminated string valid during the call.
        let path = (!name.is_null())
            .then(|| unsafe { CStr::from_ptr(name) }.to_string_lossy().into_owned());
        let logic = Box::into_raw(Box::new(HaFile::open(path, FileKind::from_flags(flags), raw)));
        // SAFETY: initialising our slot; from now on SQLite calls our methods.
        unsafe {
            (*slot).logic = logic;
            (*slot).base.pMethods = methods_for(inner_methods);
        }
        SQLITE_OK
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

    /// The VFS pointer the fake system-call methods were last called with.
    static CALLED_WITH: AtomicPtr<sqlite3_vfs> = AtomicPtr::new(std::ptr::null_mut());
    /// The system call last handed to the fake `xSetSystemCall`.
    static SET_TO: AtomicUsize = AtomicUsize::new(0);

    unsafe extern "C" fn replacement_call() {}

    unsafe extern "C" fn fake_set(
        vfs: *mut sqlite3_vfs,
        _name: *const c_char,
        call: sqlite3_syscall_ptr,
    ) -> c_int {
        CALLED_WITH.store(vfs, Ordering::SeqCst);
        SET_TO.store(call.map_or(0, |f| f as usize), Ordering::SeqCst);
        SQLITE_OK
    }

    unsafe extern "C" fn fake_get(
        vfs: *mut sqlite3_vfs,
        _name: *const c_char,
    ) -> sqlite3_syscall_ptr {
        CALLED_WITH.store(vfs, Ordering::SeqCst);
        Some(replacement_call)
    }

    unsafe extern "C" fn fake_next(vfs: *mut sqlite3_vfs, _name: *const c_char) -> *const c_char {
        CALLED_WITH.store(vfs, Ordering::SeqCst);
        c"open".as_ptr()
    }

    unsafe extern "C" fn must_not_be_called(
        _vfs: *mut sqlite3_vfs,
        _name: *const c_char,
    ) -> sqlite3_syscall_ptr {
        panic!("a method beyond the wrapped VFS's version was called");
    }

    /// A wrapped VFS of `version` with fake system-call methods (present in the struct even
    /// for a lower version, to catch a read past what the version allows).
    fn fake_inner(version: c_int) -> &'static mut sqlite3_vfs {
        // SAFETY: every field is an integer, a raw pointer or an Option of a function
        // pointer, for which zero is valid.
        let vfs: &'static mut sqlite3_vfs = Box::leak(Box::new(unsafe { std::mem::zeroed() }));
        vfs.iVersion = version;
        vfs.szOsFile = 64;
        vfs.xSetSystemCall = Some(fake_set);
        vfs.xGetSystemCall = Some(if version >= 3 { fake_get } else { must_not_be_called });
        vfs.xNextSystemCall = Some(fake_next);
        vfs
    }

    #[test]
    fn ha_takes_the_wrapped_version_and_forwards_the_system_calls() {
        // Goal: over a version-3 VFS (unix), `ha` is version 3 and its system-call methods
        // reach the wrapped VFS, called with the wrapped VFS's pointer, not ours.
        let inner = fake_inner(3);
        let inner_ptr: *mut sqlite3_vfs = inner;
        let mut ours = new_vfs(NonNull::new(inner_ptr).expect("non-null"));
        assert_eq!(ours.iVersion, 3);
        let ours_ptr: *mut sqlite3_vfs = &mut ours;

        let next = ours.xNextSystemCall.expect("xNextSystemCall");
        // SAFETY: our VFS over the fake; the fake ignores the name.
        let first = unsafe { next(ours_ptr, std::ptr::null()) };
        // SAFETY: the fake returns a static C string.
        assert_eq!(unsafe { CStr::from_ptr(first) }, c"open");
        assert_eq!(CALLED_WITH.swap(std::ptr::null_mut(), Ordering::SeqCst), inner_ptr);

        let get = ours.xGetSystemCall.expect("xGetSystemCall");
        // SAFETY: as above.
        let call = unsafe { get(ours_ptr, c"open".as_ptr()) };
        assert_eq!(call.map(|f| f as usize), Some(replacement_call as *const () as usize));
        assert_eq!(CALLED_WITH.swap(std::ptr::null_mut(), Ordering::SeqCst), inner_ptr);

        let set = ours.xSetSystemCall.expect("xSetSystemCall");
        // SAFETY: as above.
        let rc = unsafe { set(ours_ptr, c"open".as_ptr(), Some(replacement_call)) };
        assert_eq!(rc, SQLITE_OK);
        assert_eq!(CALLED_WITH.swap(std::ptr::null_mut(), Ordering::SeqCst), inner_ptr);
        assert_eq!(SET_TO.load(Ordering::SeqCst), replacement_call as *const () as usize);
    }

    #[test]
    fn over_an_older_vfs_ha_claims_and_reads_no_more_than_it_has() {
        // Goal: over a version-1 VFS, `ha` is version 1, and a call of a newer method (which
        // SQLite would not make) answers "not there" without reading the wrapped struct past
        // its version.
        let inner = fake_inner(1);
        let mut ours = new_vfs(NonNull::from(inner));
        assert_eq!(ours.iVersion, 1);
        let ours_ptr: *mut sqlite3_vfs = &mut ours;
        let get = ours.xGetSystemCall.expect("the field is set; iVersion hides it");
        // SAFETY: our VFS over the fake; the forwarder checks the version first.
        assert!(unsafe { get(ours_ptr, c"open".as_ptr()) }.is_none());
        let mut now: sqlite3_int64 = 0;
        let time = ours.xCurrentTimeInt64.expect("set");
        // SAFETY: as above; the fake has no xCurrentTimeInt64 (NULL) and version 1.
        assert_eq!(unsafe { time(ours_ptr, &mut now) }, SQLITE_ERROR);
    }
}
