//! The `ha_*` SQL functions as SQLite sees them: registration on a connection and one
//! trampoline that converts arguments, calls [`crate::sql`], and reports the result or the
//! error. No unwind crosses into SQLite.

use std::ffi::{c_int, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

use super::sys::*;
use crate::sql::{Caller, Function, SqlOutput, SqlValue};

/// Registers every `ha_*` function on `db`, keeping those it already has.
///
/// A connection has them already when it was opened after the first load (the auto-extension
/// in `ext.rs` registered them) or loaded us before. Registering again replaces a function,
/// which SQLite refuses with `SQLITE_BUSY` while any statement of the connection runs, and one
/// always runs when the load is `SELECT load_extension(...)`. SQLite answers `SQLITE_BUSY`
/// there only when a function of that name, arity and encoding exists, so that answer means
/// "present" and the load goes on; without a running statement the same call just replaces
/// the function with an identical one.
///
/// # Safety
/// `db` must be an open connection of the host SQLite whose API is installed.
pub unsafe fn register_all(db: *mut sqlite3) -> Result<(), String> {
    for function in Function::ALL {
        let name = CString::new(function.name()).map_err(|e| e.to_string())?;
        // The function id travels as the user-data pointer: no allocation to free.
        let user_data = *function as usize as *mut c_void;
        // SAFETY: db is open; name is a valid C string copied by SQLite; the callback has
        // the documented signature.
        let rc = unsafe {
            sqlite3_create_function_v2(
                db,
                name.as_ptr(),
                -1,
                SQLITE_UTF8 | SQLITE_DIRECTONLY,
                user_data,
                Some(call_function),
                None,
                None,
                None,
            )
        };
        if rc != SQLITE_OK && rc != SQLITE_BUSY {
            return Err(format!("could not register {} (SQLite error {rc})", function.name()));
        }
    }
    Ok(())
}

unsafe extern "C" fn call_function(
    ctx: *mut sqlite3_context,
    argc: c_int,
    argv: *mut *mut sqlite3_value,
) {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: SQLite passes a valid context and `argc` values for the call's duration.
        let (function, caller, args) = unsafe { read_call(ctx, argc, argv) }?;
        crate::sql::call(function, &caller, &args)
            .map_err(|error| (error.chain().to_string(), error.sqlite_code()))
    }));
    let outcome = outcome.unwrap_or_else(|_| {
        Err(("internal error in dqlite-vfs (panic caught)".into(), SQLITE_INTERNAL))
    });
    // SAFETY: ctx is valid until we return.
    unsafe { report(ctx, outcome) }
}

/// Reads which function was called, on which connection, with which arguments.
///
/// # Safety
/// As for `call_function`.
unsafe fn read_call(
    ctx: *mut sqlite3_context,
    argc: c_int,
    argv: *mut *mut sqlite3_value,
) -> Result<(Function, Caller, Vec<SqlValue>), (String, c_int)> {
    // SAFETY: the user data is the function id set at registration.
    let id = unsafe { sqlite3_user_data(ctx) } as usize;
    let function =
        Function::from_id(id).ok_or(("unknown ha function".to_string(), SQLITE_INTERNAL))?;
    let argc = usize::try_from(argc).unwrap_or(0);
    let mut args = Vec::with_capacity(argc);
    for i in 0..argc {
        // SAFETY: argv holds argc values.
        args.push(unsafe { read_value(*argv.add(i)) });
    }
    // SAFETY: ctx is valid; the connection is open during the call.
    let db = unsafe { sqlite3_context_db_handle(ctx) };
    // SAFETY: db is an open connection.
    let caller = unsafe { caller_of(db) };
    Ok((function, caller, args))
}

/// What a function needs to know about the connection that called it.
///
/// # Safety
/// `db` must be an open connection.
unsafe fn caller_of(db: *mut sqlite3) -> Caller {
    let mut vfs: *mut sqlite3_vfs = std::ptr::null_mut();
    // SAFETY: FCNTL_VFS_POINTER writes the main database's VFS into `vfs`.
    let rc = unsafe {
        sqlite3_file_control(db, c"main".as_ptr(), SQLITE_FCNTL_VFS_POINTER, (&raw mut vfs).cast())
    };
    let through_ha = rc == SQLITE_OK && super::vfs::is_ours(vfs);
    // SAFETY: db is open; the name is valid until the connection closes or detaches.
    let name = unsafe { sqlite3_db_filename(db, c"main".as_ptr()) };
    // SAFETY: NULL or a valid C string.
    let path =
        (!name.is_null()).then(|| unsafe { CStr::from_ptr(name) }.to_string_lossy().into_owned());
    Caller { main_db: path.filter(|p| !p.is_empty()).map(PathBuf::from), through_ha }
}

/// # Safety
/// `value` must be a valid protected value.
unsafe fn read_value(value: *mut sqlite3_value) -> SqlValue {
    // SAFETY: valid value, per the caller.
    unsafe {
        match sqlite3_value_type(value) {
            SQLITE_INTEGER => SqlValue::Integer(sqlite3_value_int64(value)),
            SQLITE_FLOAT => SqlValue::Real(sqlite3_value_double(value)),
            SQLITE_TEXT | SQLITE_BLOB => {
                let text = sqlite3_value_text(value);
                let len = usize::try_from(sqlite3_value_bytes(value)).unwrap_or(0);
                if text.is_null() {
                    SqlValue::Null
                } else {
                    let bytes = std::slice::from_raw_parts(text, len);
                    SqlValue::Text(String::from_utf8_lossy(bytes).into_owned())
                }
            }
            _ => SqlValue::Null,
        }
    }
}

/// # Safety
/// `ctx` must be the context of the running call.
unsafe fn report(ctx: *mut sqlite3_context, outcome: Result<SqlOutput, (String, c_int)>) {
    // SAFETY: ctx is valid; strings are copied by SQLite (TRANSIENT / explicit length).
    unsafe {
        match outcome {
            Ok(SqlOutput::Integer(i)) => sqlite3_result_int64(ctx, i),
            Ok(SqlOutput::Null) => sqlite3_result_null(ctx),
            Ok(SqlOutput::Text(text)) => match c_int::try_from(text.len()) {
                Ok(len) => sqlite3_result_text(ctx, text.as_ptr().cast(), len, SQLITE_TRANSIENT()),
                Err(_) => sqlite3_result_error_code(ctx, SQLITE_ERROR),
            },
            Err((message, code)) => {
                let len = c_int::try_from(message.len()).unwrap_or(0);
                sqlite3_result_error(ctx, message.as_ptr().cast(), len);
                sqlite3_result_error_code(ctx, code);
            }
        }
    }
}
