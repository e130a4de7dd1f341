//! The exported entry points SQLite calls when the library is loaded, and the per-connection
//! hook that gives every later connection the `ha_*` functions.

use std::ffi::{c_char, c_int};
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::ffi::sys::*;
use crate::ffi::{api, functions, vfs};

/// Set this environment variable to `1` before loading to make `ha` the default VFS, for
/// hosts that cannot pass `?vfs=ha` (e.g. better-sqlite3).
pub const DEFAULT_VFS_ENV: &str = "DQLITE_VFS_DEFAULT";

/// Set this environment variable (e.g. `dqlite_vfs=debug,openraft=info`) to log to stderr.
pub const LOG_ENV: &str = "DQLITE_VFS_LOG";

fn start_logging() {
    if let Ok(filter) = std::env::var(LOG_ENV) {
        // try_init: a host that already installed a subscriber keeps it.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .try_init();
    }
}

/// Entry point named after the library file (`libdqlite_vfs.so`).
///
/// # Safety
/// Called by SQLite with a valid connection, error out-pointer and API table.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_dqlitevfs_init(
    db: *mut sqlite3,
    error_out: *mut *mut c_char,
    api_table: *const sqlite3_api_routines,
) -> c_int {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the table SQLite passed to this entry point.
        unsafe { api::install(api_table) }?;
        start_logging();
        let make_default = std::env::var(DEFAULT_VFS_ENV).is_ok_and(|v| v == "1");
        vfs::register(make_default)?;
        // SAFETY: the connection SQLite is loading us into.
        unsafe { functions::register_all(db) }?;
        register_for_new_connections()
    }));
    match outcome {
        Ok(Ok(())) => SQLITE_OK_LOAD_PERMANENTLY,
        Ok(Err(message)) => {
            if !error_out.is_null() {
                // SAFETY: SQLite frees *error_out with sqlite3_free; the message is allocated
                // through the table's own malloc, which a refused (too old) host has too.
                unsafe {
                    *error_out =
                        api::load_error_string(api_table, &format!("dqlite-vfs: {message}"));
                }
            }
            SQLITE_ERROR
        }
        Err(_) => SQLITE_INTERNAL,
    }
}

/// The generic entry point name, for hosts that look for it.
///
/// # Safety
/// As for [`sqlite3_dqlitevfs_init`].
#[no_mangle]
pub unsafe extern "C" fn sqlite3_extension_init(
    db: *mut sqlite3,
    error_out: *mut *mut c_char,
    api_table: *const sqlite3_api_routines,
) -> c_int {
    // SAFETY: same contract.
    unsafe { sqlite3_dqlitevfs_init(db, error_out, api_table) }
}

/// SQL functions registered at load exist only on the loading connection; an auto-extension
/// adds them to every connection opened afterwards (the one with `?vfs=ha`).
fn register_for_new_connections() -> Result<(), String> {
    static REGISTERED: std::sync::OnceLock<c_int> = std::sync::OnceLock::new();
    let rc = *REGISTERED.get_or_init(|| {
        // SAFETY: the callback has the signature SQLite calls auto-extensions with; SQLite
        // stores it as a generic function pointer.
        let entry = unsafe {
            std::mem::transmute::<
                unsafe extern "C" fn(
                    *mut sqlite3,
                    *mut *mut c_char,
                    *const sqlite3_api_routines,
                ) -> c_int,
                unsafe extern "C" fn(),
            >(on_new_connection)
        };
        // SAFETY: plain registration of a static function.
        unsafe { sqlite3_auto_extension(Some(entry)) }
    });
    if rc == SQLITE_OK {
        Ok(())
    } else {
        Err(format!("could not register the per-connection hook (SQLite error {rc})"))
    }
}

unsafe extern "C" fn on_new_connection(
    db: *mut sqlite3,
    error_out: *mut *mut c_char,
    _api_table: *const sqlite3_api_routines,
) -> c_int {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: SQLite passes the new, open connection.
        unsafe { functions::register_all(db) }
    }));
    match outcome {
        Ok(Ok(())) => SQLITE_OK,
        Ok(Err(message)) => {
            if !error_out.is_null() {
                // SAFETY: SQLite frees *error_out with sqlite3_free.
                unsafe { *error_out = api::sqlite_string(&message) };
            }
            SQLITE_ERROR
        }
        Err(_) => SQLITE_INTERNAL,
    }
}
