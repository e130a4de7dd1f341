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

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: the message kept for `ha_last_error()` is the whole chain of causes, and a new
    // write transaction forgets it.
    #[test]
    fn keeps_the_chain_of_causes() {
        let cause = crate::raft::log_store::LogError::RecordChanged { segment: 3, offset: 64 };
        record(&Error::OutcomeUnknown {
            what: "the cluster dropped the proposed entry".into(),
            cause: Some(Box::new(cause)),
        });
        let message = message().expect("a message");
        assert!(
            message.starts_with("commit outcome unknown: the cluster dropped the proposed entry")
                && message.ends_with(
                    ": raft log segment 3: the record at offset 64 changed on disk (checksum mismatch)"
                ),
            "{message}"
        );
        clear();
        assert_eq!(super::message(), None);
    }
}
