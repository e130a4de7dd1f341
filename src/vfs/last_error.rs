//! Why this thread's last write failed, in words. A VFS can hand SQLite only a result code,
//! so the full message (not the leader and who is, did not happen, outcome unknown and why)
//! is kept here, per thread like `errno`, for `ha_last_error()` to return. SQLite runs a
//! connection's statements on the calling thread, so this is the message of the caller's own
//! last failed write. The message is the error's chain of causes ("a: b: c"), so the real
//! cause (a refused certificate, a corrupt log record, the OS's reason) is in it.

use std::cell::RefCell;

use crate::error::Error;

thread_local! {
    static LAST_ERROR: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Remembers why a write failed on this thread.
pub fn record(error: &Error) {
    LAST_ERROR.with(|last| *last.borrow_mut() = Some(error.chain().to_string()));
}

/// Forgets the last failure: a new write transaction starts.
pub fn clear() {
    LAST_ERROR.with(|last| *last.borrow_mut() = None);
}

/// The message of this thread's last failed write since its last write transaction began.
pub fn message() -> Option<String> {
    LAST_ERROR.with(|last| last.borrow().clone())
}
