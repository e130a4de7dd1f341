//! The host SQLite's API, as handed to our entry point.
//!
//! A loadable extension must not call `sqlite3_*` symbols directly: better-sqlite3 exports
//! none, and linking our own SQLite would give the process two. `libsqlite3-sys`'s
//! `loadable_extension` mode routes every call through the `sqlite3_api_routines` table the
//! host passes in; this module checks that table before handing it over:
//! - the host is at least [`MIN_SQLITE_VERSION`], read from the `libversion_number` slot
//!   (present in every SQLite that loads extensions) before anything newer is touched: a
//!   missing function would only be found when called, as a panic;
//! - every function the crate calls is present (not compiled out), so a gap is a load error
//!   naming it;
//! - the table is the first one we were given: one SQLite library per process (see
//!   [`install`]).

use std::ffi::{c_char, c_int, c_void};
use std::sync::OnceLock;

use super::sys::{rusqlite_extension_init2, sqlite3_api_routines, sqlite3_malloc};

/// Oldest SQLite we load into: newer than the 3.34.1 bindings of `libsqlite3-sys`, so every
/// function those bindings wrap exists in the host.
pub const MIN_SQLITE_VERSION_NUMBER: c_int = 3_037_000;
/// The same, for messages.
pub const MIN_SQLITE_VERSION: &str = "3.37.0";

/// The API functions the crate calls, checked present at load. A name here that is not a
/// field of `sqlite3_api_routines` does not compile.
macro_rules! required_functions {
    ($m:ident) => {
        $m!(
            auto_extension,
            backup_finish,
            backup_init,
            backup_step,
            busy_timeout,
            close,
            column_text,
            column_type,
            context_db_handle,
            create_filename,
            create_function_v2,
            db_filename,
            errmsg,
            exec,
            extended_errcode,
            extended_result_codes,
            file_control,
            filename_wal,
            finalize,
            free,
            free_filename,
            libversion_number,
            malloc,
            open_v2,
            prepare_v2,
            result_error,
            result_error_code,
            result_int64,
            result_null,
            result_text,
            step,
            user_data,
            value_bytes,
            value_double,
            value_int64,
            value_text,
            value_type,
            vfs_find,
            vfs_register
        )
    };
}

/// The first function of [`required_functions`] the table lacks.
///
/// # Safety
/// `table` must be the API table of a SQLite at least [`MIN_SQLITE_VERSION_NUMBER`].
unsafe fn first_missing(table: *const sqlite3_api_routines) -> Option<&'static str> {
    macro_rules! check {
        ($($name:ident),*) => {
            $(
                // SAFETY: a new enough host's table has every field of the 3.34.1 layout.
                if unsafe { (*table).$name }.is_none() {
                    return Some(stringify!($name));
                }
            )*
        };
    }
    required_functions!(check);
    None
}

/// What the first [`install`] in the process found.
struct Installed {
    /// Address of the table: one per SQLite library in the process.
    table: usize,
    outcome: Result<(), String>,
}

static INSTALLED: OnceLock<Installed> = OnceLock::new();

/// The host's `sqlite3_libversion_number()`, read from its table without going through
/// `libsqlite3-sys` (which is not set up yet).
///
/// # Safety
/// `table` must be a non-null API table passed to an extension entry point.
unsafe fn host_version(table: *const sqlite3_api_routines) -> Result<c_int, String> {
    // SAFETY: `libversion_number` predates every SQLite with loadable extensions, so the
    // field is inside any host's table.
    let libversion_number = unsafe { (*table).libversion_number }
        .ok_or("the host SQLite has no sqlite3_libversion_number")?;
    // SAFETY: the host's own function, no arguments.
    Ok(unsafe { libversion_number() })
}

/// Checks the host's API table and makes it the one every `sqlite3_*` call of the crate goes
/// through. Each SQLite library has one table; we serve one library per process, since our
/// VFS and functions live in the first one that loads us. A second library (say Python's
/// sqlite3 module and apsw in one process) is refused, not mixed: `libsqlite3-sys` keeps one
/// set of function pointers for the process, and the first library's VFS must keep calling
/// the first library.
///
/// # Safety
/// `table` must be null or the API table passed to an extension entry point.
pub unsafe fn install(table: *const sqlite3_api_routines) -> Result<(), String> {
    if table.is_null() {
        return Err("no SQLite API table was passed to the extension entry point".into());
    }
    // SAFETY: non-null table from an entry point (caller's contract).
    let version = unsafe { host_version(table) }?;
    if version < MIN_SQLITE_VERSION_NUMBER {
        return Err(format!(
            "dqlite-vfs needs SQLite {MIN_SQLITE_VERSION} or newer; this host has {}.{}.{}",
            version / 1_000_000,
            version / 1_000 % 1_000,
            version % 1_000
        ));
    }
    // SAFETY: the host is new enough for the 3.34.1 layout (checked just above).
    if let Some(name) = unsafe { first_missing(table) } {
        return Err(format!("the host SQLite lacks sqlite3_{name} (compiled out?)"));
    }
    // get_or_init: a second thread loading us at the same moment waits for the first's setup
    // instead of calling through a half-filled set of pointers.
    let installed = INSTALLED.get_or_init(|| {
        // SAFETY: a complete table of a host at least 3.37.0 (checked above); it lives as long
        // as the library it belongs to, which stays loaded for the process.
        let outcome = unsafe { rusqlite_extension_init2(table.cast_mut()) }
            .map_err(|error| format!("could not set up the SQLite API: {error}"));
        Installed { table: table as usize, outcome }
    });
    if installed.table != table as usize {
        return Err("this process already loaded dqlite-vfs into another SQLite library; \
                    load it into one SQLite library per process"
            .into());
    }
    installed.outcome.clone()
}

/// True once [`install`] succeeded: the `sqlite3_*` functions may be called.
pub fn installed() -> bool {
    INSTALLED.get().is_some_and(|installed| installed.outcome.is_ok())
}

/// Copies `text` into memory from the host's `sqlite3_malloc`, for SQLite to free with
/// `sqlite3_free` (error messages it hands back to the application). NULL if the API is not
/// installed or the allocation failed.
pub fn sqlite_string(text: &str) -> *mut c_char {
    if !installed() {
        return std::ptr::null_mut();
    }
    // SAFETY: installed, so sqlite3_malloc calls the host's allocator.
    copy_into(text, |len| unsafe { sqlite3_malloc(len) })
}

/// [`sqlite_string`] for a load error, allocated through `table`'s own `malloc` so that a host
/// we refused (too old, a function missing) still gets the reason. NULL if the table has no
/// `malloc` or the allocation failed.
///
/// # Safety
/// `table` must be null or the API table passed to an extension entry point.
pub unsafe fn load_error_string(table: *const sqlite3_api_routines, text: &str) -> *mut c_char {
    if table.is_null() {
        return std::ptr::null_mut();
    }
    // SAFETY: `malloc` predates every SQLite with loadable extensions: the field exists in any
    // host's table.
    let Some(malloc) = (unsafe { (*table).malloc }) else { return std::ptr::null_mut() };
    // SAFETY: the host's own allocator.
    copy_into(text, |len| unsafe { malloc(len) })
}

/// Copies `text` and a NUL into memory from `malloc`.
fn copy_into(text: &str, malloc: impl FnOnce(c_int) -> *mut c_void) -> *mut c_char {
    let bytes = text.as_bytes();
    let Ok(len) = c_int::try_from(bytes.len() + 1) else { return std::ptr::null_mut() };
    let ptr = malloc(len).cast::<u8>();
    if !ptr.is_null() {
        // SAFETY: ptr has len bytes; we write bytes.len() + 1.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), ptr, bytes.len());
            *ptr.add(bytes.len()) = 0;
        }
    }
    ptr.cast()
}

#[cfg(test)]
mod tests {
    use super::*;

    unsafe extern "C" fn old_version() -> c_int {
        3_030_001
    }

    unsafe extern "C" fn new_version() -> c_int {
        3_040_001
    }

    unsafe extern "C" fn any_function() {}

    fn empty_table() -> Box<sqlite3_api_routines> {
        // SAFETY: every field is an Option of a function pointer, for which zero is None.
        Box::new(unsafe { std::mem::zeroed() })
    }

    /// A table of a new enough SQLite whose every function is present (and harmless:
    /// install never calls them).
    fn fake_table() -> Box<sqlite3_api_routines> {
        type Slot = Option<unsafe extern "C" fn()>;
        let mut table = empty_table();
        let slots = std::mem::size_of::<sqlite3_api_routines>() / std::mem::size_of::<Slot>();
        let first = std::ptr::from_mut(&mut *table).cast::<Slot>();
        for i in 0..slots {
            // SAFETY: the table is a run of function-pointer fields, each the size of a
            // Slot; one function pointer stands in for all (never called here).
            unsafe { first.add(i).write(Some(any_function)) };
        }
        table.libversion_number = Some(new_version);
        table
    }

    #[test]
    fn hosts_older_than_the_minimum_are_refused_with_a_clear_message() {
        // Goal: loading into an old SQLite fails with the versions named, before any field
        // past `libversion_number` is read (they may not exist in an old host's table).
        let mut table = empty_table();
        table.libversion_number = Some(old_version);
        // SAFETY: the table is only read up to the version field for an old version.
        let error = unsafe { install(&*table) }.expect_err("an old host is refused");
        assert_eq!(error, "dqlite-vfs needs SQLite 3.37.0 or newer; this host has 3.30.1");
    }

    #[test]
    fn a_host_missing_a_function_is_refused_by_name() {
        // Goal: a host built without a function we call fails to load, naming it, instead
        // of panicking later when the function is called.
        let mut table = fake_table();
        table.backup_init = None;
        // SAFETY: install reads the fields, calls only libversion_number, and stops at the
        // missing function.
        let error = unsafe { install(&*table) }.expect_err("refused");
        assert_eq!(error, "the host SQLite lacks sqlite3_backup_init (compiled out?)");
    }

    #[test]
    fn a_second_sqlite_library_is_refused() {
        // Goal: two SQLite libraries in one process (stdlib sqlite3 and apsw) must not share
        // our API: the second load fails with a message, the first keeps working.
        // The first table stays allocated: its address is what later loads are compared with.
        let (first, second) = (Box::leak(fake_table()), fake_table());
        // SAFETY: fake tables whose functions install never calls (but libversion_number).
        unsafe { install(first) }.expect("the first library loads");
        // SAFETY: as above.
        unsafe { install(first) }.expect("the same library again is fine");
        assert!(installed());
        // SAFETY: as above.
        let error = unsafe { install(&*second) }.expect_err("a second library is refused");
        assert!(error.contains("another SQLite library"), "{error}");
    }

    #[test]
    fn a_missing_table_is_refused() {
        // Goal: a NULL API table is an error, not a crash.
        // SAFETY: install checks for NULL before reading.
        let error = unsafe { install(std::ptr::null()) }.expect_err("refused");
        assert!(error.contains("no SQLite API table"), "{error}");
    }
}
