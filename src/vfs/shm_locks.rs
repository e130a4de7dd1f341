//! The wal-index locks one connection holds, so that its requests for the WAL write lock can
//! be told apart. SQLite begins a write transaction only inside a read transaction, so a
//! request made while holding a read lock is a write transaction; wal-index recovery and
//! checkpoints ask for the write lock holding no read lock, and must be let through on every
//! node. (walformat: slot 0 is the write lock, 1 the checkpoint lock, 2 recovery, 3-7 the
//! read locks.)

use std::ffi::c_int;

use crate::ffi::sys::{
    SQLITE_SHM_EXCLUSIVE, SQLITE_SHM_LOCK, SQLITE_SHM_SHARED, SQLITE_SHM_UNLOCK,
};

/// Slot of the WAL write lock.
const WRITE_LOCK_SLOT: usize = 0;
/// First and one-past-last slots of the read locks.
const READ_LOCK_SLOTS: std::ops::Range<usize> = 3..8;

/// What a lock request is, as far as replication cares.
#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    /// The WAL write lock, for a write transaction.
    BeginWrite,
    /// Anything else.
    Other,
}

/// Shared locks held by one connection's handle on the wal-index.
#[derive(Debug, Default)]
pub struct ShmLocks {
    /// Bit `i` set: slot `i` is held shared.
    shared: u8,
}

impl ShmLocks {
    /// Classifies a request about to be made.
    pub fn classify(&self, slot: usize, flags: c_int) -> Request {
        let holds_read_lock = READ_LOCK_SLOTS.clone().any(|read| self.shared & (1 << read) != 0);
        if slot == WRITE_LOCK_SLOT
            && flags == SQLITE_SHM_LOCK | SQLITE_SHM_EXCLUSIVE
            && holds_read_lock
        {
            Request::BeginWrite
        } else {
            Request::Other
        }
    }

    /// Records a request the wrapped VFS granted.
    pub fn granted(&mut self, slot: usize, count: usize, flags: c_int) {
        if flags & SQLITE_SHM_SHARED == 0 {
            return;
        }
        let bits = (slot..slot.saturating_add(count))
            .filter(|s| *s < 8)
            .fold(0u8, |bits, s| bits | (1 << s));
        if flags & SQLITE_SHM_LOCK != 0 {
            self.shared |= bits;
        } else if flags & SQLITE_SHM_UNLOCK != 0 {
            self.shared &= !bits;
        }
    }
}

/// Does this request release the WAL write lock?
pub fn releases_write_lock(slot: usize, flags: c_int) -> bool {
    slot == WRITE_LOCK_SLOT && flags == SQLITE_SHM_UNLOCK | SQLITE_SHM_EXCLUSIVE
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCK_SHARED: c_int = SQLITE_SHM_LOCK | SQLITE_SHM_SHARED;
    const UNLOCK_SHARED: c_int = SQLITE_SHM_UNLOCK | SQLITE_SHM_SHARED;
    const LOCK_EXCLUSIVE: c_int = SQLITE_SHM_LOCK | SQLITE_SHM_EXCLUSIVE;

    #[test]
    fn the_write_lock_inside_a_read_transaction_begins_a_write() {
        let mut locks = ShmLocks::default();
        assert_eq!(
            locks.classify(0, LOCK_EXCLUSIVE),
            Request::Other,
            "recovery or checkpoint: no read lock"
        );
        locks.granted(4, 1, LOCK_SHARED);
        assert_eq!(locks.classify(0, LOCK_EXCLUSIVE), Request::BeginWrite);
        assert_eq!(locks.classify(1, LOCK_EXCLUSIVE), Request::Other, "the checkpoint lock");
        assert_eq!(
            locks.classify(0, SQLITE_SHM_UNLOCK | SQLITE_SHM_EXCLUSIVE),
            Request::Other,
            "an unlock"
        );
        locks.granted(4, 1, UNLOCK_SHARED);
        assert_eq!(locks.classify(0, LOCK_EXCLUSIVE), Request::Other, "the read transaction ended");
    }

    #[test]
    fn read_lock_zero_counts_and_other_shared_slots_do_not() {
        let mut locks = ShmLocks::default();
        locks.granted(1, 1, LOCK_SHARED);
        assert_eq!(locks.classify(0, LOCK_EXCLUSIVE), Request::Other);
        locks.granted(3, 1, LOCK_SHARED);
        assert_eq!(locks.classify(0, LOCK_EXCLUSIVE), Request::BeginWrite);
        locks.granted(3, 5, LOCK_EXCLUSIVE);
        locks.granted(0, 8, UNLOCK_SHARED);
        assert_eq!(locks.classify(0, LOCK_EXCLUSIVE), Request::Other);
    }
}
