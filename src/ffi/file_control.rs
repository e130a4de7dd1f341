//! `xFileControl` of files opened through `ha`: which opcodes we answer ourselves, and the
//! passing on of every other one to the wrapped file.
//!
//! Handled here (docs/ARCHITECTURE.md, "The wrapping VFS", lists every opcode and why):
//! - `SQLITE_FCNTL_PRAGMA`: a `PRAGMA` that would stop a node's database replicating is refused
//!   ([`crate::vfs::HaFile::pragma`]); any other goes on to the wrapped file, then to SQLite.
//! - `SQLITE_FCNTL_VFSNAME`: the names of the VFS stack, ours first, `ha/unix`, as SQLite's own
//!   shims report theirs (https://www.sqlite.org/c3ref/c_fcntl_begin_atomic_write.html).
//!
//! Every other opcode is the wrapped file's: its result, and `SQLITE_NOTFOUND` when it does
//! not know it, go back unchanged.

use std::ffi::{c_char, c_int, c_void, CStr};

use super::api::sqlite_string;
use super::sys::*;
use crate::vfs::{HaFile, PragmaDecision};

/// Our name in the stack of VFS names.
const STACK_NAME: &str = "ha";

/// Answers `op` for one of our files.
///
/// # Safety
/// `inner` must be the open wrapped file of `logic`'s file; `arg` is what SQLite passed with
/// `op` (its type depends on `op`).
pub(super) unsafe fn file_control(
    logic: &mut HaFile,
    inner: *mut sqlite3_file,
    op: c_int,
    arg: *mut c_void,
) -> c_int {
    match op {
        SQLITE_FCNTL_PRAGMA if !arg.is_null() => {
            // SAFETY: for FCNTL_PRAGMA, arg is char*[3] (caller's contract).
            if let Some(refused) = unsafe { refuse_pragma(logic, arg.cast()) } {
                return refused;
            }
            // SAFETY: the wrapped file is open (caller's contract).
            unsafe { forward(inner, op, arg) }
        }
        // SAFETY: for FCNTL_VFSNAME, arg is a char** (caller's contract).
        SQLITE_FCNTL_VFSNAME if !arg.is_null() => unsafe { name_stack(inner, arg.cast()) },
        // SAFETY: the wrapped file is open (caller's contract).
        _ => unsafe { forward(inner, op, arg) },
    }
}

/// The wrapped file's answer to `op`.
///
/// # Safety
/// `inner` must be an open file; `arg` as SQLite passed it.
unsafe fn forward(inner: *mut sqlite3_file, op: c_int, arg: *mut c_void) -> c_int {
    // SAFETY: an open file has a valid pMethods (caller's contract).
    match unsafe { (*(*inner).pMethods).xFileControl } {
        // SAFETY: same arguments on the wrapped file.
        Some(file_control) => unsafe { file_control(inner, op, arg) },
        None => SQLITE_NOTFOUND,
    }
}

/// `SQLITE_FCNTL_PRAGMA`: `Some(SQLITE_ERROR)`, with the message in `args[0]`, when the
/// pragma is refused.
///
/// # Safety
/// `args` must be FCNTL_PRAGMA's `char*[3]`: error out, name, value or NULL.
unsafe fn refuse_pragma(logic: &mut HaFile, args: *mut *mut c_char) -> Option<c_int> {
    // SAFETY: as documented; name is NULL or a C string, value NULL or a C string.
    let (name, value) = unsafe { (*args.add(1), *args.add(2)) };
    if name.is_null() {
        return None;
    }
    // SAFETY: a C string valid during the call (above).
    let name = unsafe { CStr::from_ptr(name) }.to_string_lossy();
    // SAFETY: as above.
    let value = (!value.is_null()).then(|| unsafe { CStr::from_ptr(value) }.to_string_lossy());
    match logic.pragma(&name, value.as_deref()) {
        PragmaDecision::PassOn => None,
        PragmaDecision::Refuse(message) => {
            // SAFETY: args[0] receives a message SQLite frees with sqlite3_free.
            unsafe { *args = sqlite_string(&message) };
            Some(SQLITE_ERROR)
        }
    }
}

/// `SQLITE_FCNTL_VFSNAME`: asks the wrapped file for the names below us, then puts ours in
/// front (`ha/unix`; `ha` alone if the wrapped file does not answer). SQLite's contract: the
/// result is memory from `sqlite3_malloc` that the caller frees; a string the wrapped file
/// wrote is ours to free once copied.
///
/// # Safety
/// `inner` must be an open file; `out` a valid `char**` (its initial value is not read: the
/// caller sets it to NULL, and a VFS that answers overwrites it).
unsafe fn name_stack(inner: *mut sqlite3_file, out: *mut *mut c_char) -> c_int {
    // Set here, not trusted from the caller: so only a string the wrapped file wrote is freed.
    // SAFETY: valid out-pointer (caller's contract).
    unsafe { *out = std::ptr::null_mut() };
    // SAFETY: the wrapped file answers into the same out-pointer.
    let rc = unsafe { forward(inner, SQLITE_FCNTL_VFSNAME, out.cast()) };
    // SAFETY: NULL, or the string the wrapped file allocated for us.
    let below = unsafe { *out };
    let names = if rc == SQLITE_OK && !below.is_null() {
        // SAFETY: a NUL-terminated string from the wrapped VFS.
        let below_text = unsafe { CStr::from_ptr(below) }.to_string_lossy();
        format!("{STACK_NAME}/{below_text}")
    } else {
        STACK_NAME.to_owned()
    };
    if !below.is_null() {
        // SAFETY: allocated with sqlite3_malloc by the wrapped VFS, copied above, used no more.
        unsafe { sqlite3_free(below.cast()) };
    }
    let ours = sqlite_string(&names);
    // SAFETY: valid out-pointer.
    unsafe { *out = ours };
    if ours.is_null() {
        SQLITE_NOMEM
    } else {
        SQLITE_OK
    }
}
