//! The host SQLite's API, as handed to our entry point.
//!
//! A loadable extension must not call `sqlite3_*` symbols directly: better-sqlite3 exports
//! none, and linking our own SQLite would give the process two. Every call goes through the
//! `sqlite3_api_routines` table the host passes in. That table is append-only across SQLite
//! releases (sqlite3ext.h), so a function's slot number never changes; we read the slots we
//! need by number, after checking the host is new enough to have them all.

use std::ffi::{c_char, c_int, c_uchar, c_void};
use std::sync::OnceLock;

use super::sys::*;

/// Oldest SQLite we load into. Everything in [`Api`] exists there.
pub const MIN_SQLITE_VERSION_NUMBER: c_int = 3_037_000;
/// The same, for messages.
pub const MIN_SQLITE_VERSION: &str = "3.37.0";

/// `sqlite3_libversion_number`'s slot: it predates every version we could meet, so it is
/// safe to read before the version check.
const LIBVERSION_NUMBER_SLOT: usize = 67;

type Destructor = isize;
type RawFn = unsafe extern "C" fn();

macro_rules! host_api {
    ($( $name:ident @ $slot:literal : fn($($arg:ty),*) $(-> $ret:ty)?; )*) => {
        /// Function pointers copied out of the host's API table.
        #[allow(missing_docs)]
        pub struct Api {
            $( pub $name: unsafe extern "C" fn($($arg),*) $(-> $ret)?, )*
        }

        impl Api {
            /// Copies our functions out of `table`.
            ///
            /// # Safety
            /// `table` must be the API table SQLite passed to an extension entry point, of a
            /// SQLite at least [`MIN_SQLITE_VERSION_NUMBER`].
            unsafe fn copy_from(table: *const sqlite3_api_routines) -> Result<Api, String> {
                let slots = table.cast::<Option<RawFn>>();
                Ok(Api { $( $name: {
                    // SAFETY: the host's table has at least as many slots as the minimum
                    // version (checked by our caller) and each slot holds a function pointer
                    // (or NULL when compiled out, which we turn into an error).
                    let slot = unsafe { *slots.add($slot) };
                    let f = slot.ok_or_else(|| format!(
                        "the host SQLite lacks sqlite3_{} (compiled out?)", stringify!($name)))?;
                    // SAFETY: slot $slot holds this function in every SQLite release
                    // (sqlite3ext.h is append-only); the signature below is the documented one.
                    unsafe { std::mem::transmute::<RawFn, unsafe extern "C" fn($($arg),*) $(-> $ret)?>(f) }
                }, )* })
            }
        }
    };
}

host_api! {
    busy_timeout @ 14: fn(*mut sqlite3, c_int) -> c_int;
    close @ 16: fn(*mut sqlite3) -> c_int;
    column_count @ 22: fn(*mut sqlite3_stmt) -> c_int;
    column_int64 @ 29: fn(*mut sqlite3_stmt, c_int) -> i64;
    column_text @ 36: fn(*mut sqlite3_stmt, c_int) -> *const c_uchar;
    column_type @ 38: fn(*mut sqlite3_stmt, c_int) -> c_int;
    errmsg @ 53: fn(*mut sqlite3) -> *const c_char;
    exec @ 55: fn(*mut sqlite3, *const c_char, *mut c_void, *mut c_void, *mut *mut c_char) -> c_int;
    finalize @ 57: fn(*mut sqlite3_stmt) -> c_int;
    free @ 58: fn(*mut c_void);
    libversion @ 66: fn() -> *const c_char;
    libversion_number @ 67: fn() -> c_int;
    malloc @ 68: fn(c_int) -> *mut c_void;
    result_error @ 80: fn(*mut sqlite3_context, *const c_char, c_int);
    result_int64 @ 83: fn(*mut sqlite3_context, i64);
    result_null @ 84: fn(*mut sqlite3_context);
    result_text @ 85: fn(*mut sqlite3_context, *const c_char, c_int, Destructor);
    step @ 94: fn(*mut sqlite3_stmt) -> c_int;
    user_data @ 101: fn(*mut sqlite3_context) -> *mut c_void;
    value_bytes @ 103: fn(*mut sqlite3_value) -> c_int;
    value_double @ 105: fn(*mut sqlite3_value) -> f64;
    value_int64 @ 107: fn(*mut sqlite3_value) -> i64;
    value_text @ 109: fn(*mut sqlite3_value) -> *const c_uchar;
    value_type @ 113: fn(*mut sqlite3_value) -> c_int;
    prepare_v2 @ 116: fn(*mut sqlite3, *const c_char, c_int, *mut *mut sqlite3_stmt, *mut *const c_char) -> c_int;
    file_control @ 127: fn(*mut sqlite3, *const c_char, c_int, *mut c_void) -> c_int;
    open_v2 @ 135: fn(*const c_char, *mut *mut sqlite3, c_int, *const c_char) -> c_int;
    vfs_find @ 141: fn(*const c_char) -> *mut sqlite3_vfs;
    vfs_register @ 142: fn(*mut sqlite3_vfs, c_int) -> c_int;
    result_error_code @ 146: fn(*mut sqlite3_context, c_int);
    context_db_handle @ 149: fn(*mut sqlite3_context) -> *mut sqlite3;
    extended_result_codes @ 150: fn(*mut sqlite3, c_int) -> c_int;
    backup_finish @ 155: fn(*mut sqlite3_backup) -> c_int;
    backup_init @ 156: fn(*mut sqlite3, *const c_char, *mut sqlite3, *const c_char) -> *mut sqlite3_backup;
    backup_step @ 159: fn(*mut sqlite3_backup, c_int) -> c_int;
    create_function_v2 @ 162: fn(*mut sqlite3, *const c_char, c_int, c_int, *mut c_void, xFunc, xFunc, xFinal, xDestroy) -> c_int;
    extended_errcode @ 166: fn(*mut sqlite3) -> c_int;
    wal_autocheckpoint @ 173: fn(*mut sqlite3, c_int) -> c_int;
    db_filename @ 180: fn(*mut sqlite3, *const c_char) -> *const c_char;
    auto_extension @ 192: fn(Option<RawFn>) -> c_int;
    filename_database @ 246: fn(*const c_char) -> *const c_char;
    filename_wal @ 248: fn(*const c_char) -> *const c_char;
    create_filename @ 249: fn(*const c_char, *const c_char, *const c_char, c_int, *const *const c_char) -> *const c_char;
    free_filename @ 250: fn(*const c_char);
}

static API: OnceLock<Api> = OnceLock::new();
/// Address of the table `API` was copied from: one per SQLite library in the process.
static API_TABLE: OnceLock<usize> = OnceLock::new();

/// Remembers the host's API. Each SQLite library has one API table; we serve one library
/// per process, since our VFS and functions live in the first one that loads us. A second
/// library (say Python's sqlite3 module and apsw in one process) is refused, not mixed.
///
/// # Safety
/// `table` must be the non-null API table passed to an extension entry point.
pub unsafe fn install(table: *const sqlite3_api_routines) -> Result<&'static Api, String> {
    if table.is_null() {
        return Err("no SQLite API table was passed to the extension entry point".into());
    }
    // SAFETY: slot 67 (`libversion_number`) exists in every SQLite with loadable extensions.
    let version = unsafe {
        let slot = *table.cast::<Option<RawFn>>().add(LIBVERSION_NUMBER_SLOT);
        let f = slot.ok_or("the host SQLite has no sqlite3_libversion_number")?;
        std::mem::transmute::<RawFn, unsafe extern "C" fn() -> c_int>(f)()
    };
    if version < MIN_SQLITE_VERSION_NUMBER {
        return Err(format!(
            "dqlite-vfs needs SQLite {MIN_SQLITE_VERSION} or newer; this host has {}.{}.{}",
            version / 1_000_000,
            version / 1_000 % 1_000,
            version % 1_000
        ));
    }
    if let (Some(api), Some(first)) = (API.get(), API_TABLE.get()) {
        return if *first == table as usize {
            Ok(api)
        } else {
            Err("this process already loaded dqlite-vfs into another SQLite library; load it into one SQLite library per process".into())
        };
    }
    // SAFETY: the table is non-null and of a new enough SQLite (checked just above).
    let api = unsafe { Api::copy_from(table)? };
    let _ = API_TABLE.set(table as usize);
    Ok(API.get_or_init(|| api))
}

/// The host API. Only callable after a successful [`install`], which every path into this
/// crate from SQLite (entry point, VFS, functions) has gone through.
pub fn host() -> &'static Api {
    API.get().expect("the SQLite API is installed by the entry point before anything else runs")
}

/// The host API if installed (for error paths that may run before installation).
pub fn installed() -> Option<&'static Api> {
    API.get()
}

/// `SQLITE_TRANSIENT` as the destructor argument of `sqlite3_result_text`.
pub const TRANSIENT: Destructor = SQLITE_TRANSIENT;

#[cfg(test)]
mod tests {
    use super::*;

    unsafe extern "C" fn old_version() -> c_int {
        3_030_001
    }

    #[test]
    fn hosts_older_than_the_minimum_are_refused_with_a_clear_message() {
        // Goal: loading into an old SQLite fails with the versions named, before any slot
        // past `libversion_number` is read (they may not exist in an old host's table).
        let mut table = [None::<RawFn>; LIBVERSION_NUMBER_SLOT + 1];
        // SAFETY: a function pointer stored as the generic slot type, as SQLite stores it.
        table[LIBVERSION_NUMBER_SLOT] = Some(unsafe {
            std::mem::transmute::<unsafe extern "C" fn() -> c_int, RawFn>(old_version)
        });
        // SAFETY: the table is only read up to the version slot for an old version.
        let error =
            unsafe { install(table.as_ptr().cast()) }.err().expect("an old host is refused");
        assert_eq!(error, "dqlite-vfs needs SQLite 3.37.0 or newer; this host has 3.30.1");
    }

    unsafe extern "C" fn new_version() -> c_int {
        3_040_001
    }

    unsafe extern "C" fn any_function() {}

    /// A table of a new enough SQLite whose every other slot holds a harmless function.
    fn fake_table() -> Vec<Option<RawFn>> {
        let mut table = vec![Some(any_function as RawFn); 300];
        // SAFETY: a function pointer stored as the generic slot type, as SQLite stores it.
        table[LIBVERSION_NUMBER_SLOT] = Some(unsafe {
            std::mem::transmute::<unsafe extern "C" fn() -> c_int, RawFn>(new_version)
        });
        table
    }

    #[test]
    fn a_second_sqlite_library_is_refused() {
        // Goal: two SQLite libraries in one process (stdlib sqlite3 and apsw) must not share
        // our API: the second load fails with a message, the first keeps working.
        let (first, second) = (fake_table(), fake_table());
        // SAFETY: fake tables whose slots are never called by install.
        unsafe { install(first.as_ptr().cast()) }.expect("the first library loads");
        // SAFETY: as above.
        let again = unsafe { install(first.as_ptr().cast()) };
        assert!(again.is_ok(), "the same library again is fine");
        // SAFETY: as above.
        let error =
            unsafe { install(second.as_ptr().cast()) }.err().expect("a second library is refused");
        assert!(error.contains("another SQLite library"), "{error}");
    }

    #[test]
    fn a_missing_table_is_refused() {
        // Goal: a NULL API table is an error, not a crash.
        // SAFETY: install checks for NULL before reading.
        let error = unsafe { install(std::ptr::null()) }.err().expect("refused");
        assert!(error.contains("no SQLite API table"), "{error}");
    }
}
