//! A line for the WAL write lock among this process's connections to one node's database.
//!
//! A node's commit holds SQLite's WAL write lock for a whole Raft round trip. SQLite's own
//! answer to a busy lock is its busy handler, which sleeps 1, 2, 5 ... 100 ms between tries:
//! the connection that just committed takes the lock straight back while the others sleep,
//! so they starve and, past their busy timeout, fail with `SQLITE_BUSY`. Instead, while a
//! commit is being replicated, a connection that finds the lock taken waits here in
//! first-come order and tries again the moment the lock is released.
//!
//! Only that case waits: a lock held by a transaction that is not committing (an open
//! `BEGIN IMMEDIATE`, say) gets SQLite's usual immediate `SQLITE_BUSY`, since it may be held
//! for as long as the application likes (even by the waiting thread itself). Every wait is
//! bounded by [`WAIT_MAX`].

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Longest wait in line: past the longest commit deadline, the holder is not coming back
/// soon and SQLite's busy handling takes over.
const WAIT_MAX: Duration = Duration::from_secs(15);

#[derive(Default)]
struct Line {
    /// Waiters, first come first; the front one may try the lock.
    waiting: VecDeque<u64>,
    next_waiter: u64,
    /// Counts releases of the write lock, so a waiter can tell one happened since it looked.
    releases: u64,
    /// The lock's holder is replicating a commit (set at its commit, cleared at its release).
    committing: bool,
}

/// The line of one database.
#[derive(Default)]
pub struct WriteQueue {
    line: Mutex<Line>,
    changed: Condvar,
}

impl WriteQueue {
    /// The holder of the write lock starts replicating its commit.
    pub fn committing(&self) {
        self.lock().committing = true;
    }

    /// The write lock was released.
    pub fn released(&self) {
        let mut line = self.lock();
        line.committing = false;
        line.releases += 1;
        self.changed.notify_all();
    }

    /// Takes the write lock with `try_lock` (true: taken), waiting in line while a commit
    /// holds it. Returns false when the lock stays taken (SQLite then reports busy).
    pub fn acquire<E>(&self, mut try_lock: impl FnMut() -> Result<bool, E>) -> Result<bool, E> {
        let mut line = self.lock();
        if line.waiting.is_empty() {
            let releases = line.releases;
            drop(line);
            if try_lock()? {
                return Ok(true);
            }
            line = self.lock();
            if !line.committing && line.releases == releases {
                return Ok(false);
            }
        }
        let me = line.next_waiter;
        line.next_waiter += 1;
        line.waiting.push_back(me);
        let deadline = Instant::now() + WAIT_MAX;
        loop {
            let now = Instant::now();
            if now >= deadline {
                self.leave(&mut line, me);
                return Ok(false);
            }
            if line.waiting.front() != Some(&me) {
                line = self.changed.wait_timeout(line, deadline - now).unwrap_or_else(PoisonError::into_inner).0;
                continue;
            }
            let releases = line.releases;
            drop(line);
            let taken = try_lock();
            line = self.lock();
            match taken {
                Ok(false) if line.committing || line.releases != releases => {
                    if line.releases == releases {
                        line = self.changed.wait_timeout(line, deadline - now).unwrap_or_else(PoisonError::into_inner).0;
                    }
                }
                outcome => {
                    self.leave(&mut line, me);
                    return outcome;
                }
            }
        }
    }

    fn leave(&self, line: &mut Line, me: u64) {
        line.waiting.retain(|waiter| *waiter != me);
        self.changed.notify_all();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Line> {
        self.line.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    #[test]
    fn a_lock_held_outside_a_commit_is_busy_at_once() {
        // Goal: an open transaction's lock gets SQLite's usual immediate busy, no wait.
        let queue = WriteQueue::default();
        let started = Instant::now();
        assert_eq!(queue.acquire(|| Ok::<_, ()>(false)), Ok(false));
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn waiters_get_the_lock_when_a_commit_releases_it() {
        // Goal: while a commit holds the lock, others wait and take it at its release.
        let queue = Arc::new(WriteQueue::default());
        let held = Arc::new(AtomicBool::new(true));
        queue.committing();
        let waiter = {
            let (queue, held) = (Arc::clone(&queue), Arc::clone(&held));
            std::thread::spawn(move || queue.acquire(|| Ok::<_, ()>(!held.swap(true, Ordering::SeqCst))))
        };
        std::thread::sleep(Duration::from_millis(50));
        held.store(false, Ordering::SeqCst);
        queue.released();
        assert_eq!(waiter.join().unwrap(), Ok(true));
    }
}
