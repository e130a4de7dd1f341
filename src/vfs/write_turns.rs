//! Fair turns at the WAL write lock among this process's connections to one database.
//!
//! On a node a commit holds the write lock for a Raft round trip (about a millisecond), so the
//! lock is busy nearly all the time when several connections write. SQLite's answer to a busy
//! lock is its busy handler: release everything, sleep 1, 2, 5 ... 100 ms, try again. The
//! connection that just committed asks again at once and wins; the sleepers keep losing until
//! their busy timeout runs out and `SQLITE_BUSY` reaches the application.
//!
//! So a connection refused the lock joins a line, and its busy handler's sleep (our VFS's
//! `xSleep`) ends as soon as the lock is released, instead of after the full delay. Only the
//! connection at the head of the line may then take the lock; the others are refused without
//! trying. The refused connection must not simply wait for the lock inside `xShmLock`: its
//! read snapshot predates the commit it waited for, and SQLite would refuse it anyway
//! (`SQLITE_BUSY_SNAPSHOT`). Going through the busy handler makes SQLite take a fresh one.
//!
//! A connection whose application gave up (no busy handler, or its timeout ran out) leaves a
//! stale place in line: a place counts only while its connection sleeps in `xSleep` or asked
//! for the lock within the last [`PRESENT_FOR`].

use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long after its last request a connection that is not sleeping keeps its place: far
/// longer than SQLite takes from a refusal to its busy handler's sleep, far shorter than
/// anyone should wait for a connection that left.
const PRESENT_FOR: Duration = Duration::from_millis(5);

/// One connection's identity in the lines of every database.
pub type Ticket = u64;

static NEXT_TICKET: AtomicU64 = AtomicU64::new(1);

/// A ticket for a newly opened connection.
pub fn new_ticket() -> Ticket {
    NEXT_TICKET.fetch_add(1, Ordering::Relaxed)
}

struct Place {
    ticket: Ticket,
    last_request: Instant,
    sleeping: bool,
    /// The line's release count when this connection was last refused: a release after it
    /// means the lock may be free, so the head must not sleep through it (it may have been
    /// released between the refusal and the sleep).
    refused_after: u64,
    /// Signalled when this place heads the line as the lock is released: only the connection
    /// whose turn it is wakes, not every sleeper.
    wake: Arc<Condvar>,
}

impl Place {
    fn present(&self, now: Instant) -> bool {
        self.sleeping || now.duration_since(self.last_request) < PRESENT_FOR
    }
}

#[derive(Default)]
struct Line {
    places: VecDeque<Place>,
    /// Releases of the lock so far.
    releases: u64,
}

impl Line {
    /// Drops heads whose connection left (see [`PRESENT_FOR`]), except `keep`'s place.
    fn skip_absent_heads(&mut self, keep: Option<Ticket>, now: Instant) {
        while self
            .places
            .front()
            .is_some_and(|head| Some(head.ticket) != keep && !head.present(now))
        {
            self.places.pop_front();
        }
    }

    /// `ticket`'s place, if it has one.
    fn place(&mut self, ticket: Ticket) -> Option<&mut Place> {
        self.places.iter_mut().find(|place| place.ticket == ticket)
    }

    fn heads(&self, ticket: Ticket) -> bool {
        self.places.front().is_some_and(|head| head.ticket == ticket)
    }
}

/// The line of one database.
#[derive(Default)]
pub struct WriteTurns {
    line: Mutex<Line>,
}

impl WriteTurns {
    fn line(&self) -> std::sync::MutexGuard<'_, Line> {
        self.line.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// May `ticket` try to take the lock now? Yes if no one present waits before it.
    pub fn may_try(&self, ticket: Ticket) -> bool {
        let now = Instant::now();
        let mut line = self.line();
        line.skip_absent_heads(Some(ticket), now);
        match line.place(ticket) {
            Some(place) => place.last_request = now,
            None => return line.places.is_empty(),
        }
        line.heads(ticket)
    }

    /// `ticket` was refused: it keeps (or takes) a place in line, and this thread's next
    /// `xSleep` waits for the lock's release.
    pub fn wait_in_line(self: &Arc<Self>, ticket: Ticket) {
        let now = Instant::now();
        let mut line = self.line();
        let releases = line.releases;
        match line.place(ticket) {
            Some(place) => {
                place.last_request = now;
                place.refused_after = releases;
            }
            None => line.places.push_back(Place {
                ticket,
                last_request: now,
                sleeping: false,
                refused_after: releases,
                wake: Arc::default(),
            }),
        }
        drop(line);
        WAITING.with(|waiting| *waiting.borrow_mut() = Some((ticket, Arc::clone(self))));
    }

    /// `ticket` took the lock: it leaves the line.
    pub fn took_lock(&self, ticket: Ticket) {
        self.line().places.retain(|place| place.ticket != ticket);
        WAITING.with(|waiting| *waiting.borrow_mut() = None);
    }

    /// The lock was released: the head of the line stops sleeping.
    pub fn released(&self) {
        let mut line = self.line();
        line.releases += 1;
        line.skip_absent_heads(None, Instant::now());
        if let Some(head) = line.places.front() {
            head.wake.notify_one();
        }
    }

    /// Sleeps at most `max`, less if the lock is released while `ticket` heads the line (or
    /// was released since `ticket` was refused).
    fn sleep(&self, ticket: Ticket, max: Duration) {
        let until = Instant::now() + max;
        let mut line = self.line();
        let Some(place) = line.place(ticket) else {
            drop(line);
            std::thread::sleep(max);
            return;
        };
        place.sleeping = true;
        let (wake, refused_after) = (Arc::clone(&place.wake), place.refused_after);
        loop {
            let now = Instant::now();
            if now >= until || (line.heads(ticket) && line.releases != refused_after) {
                break;
            }
            let (guard, _) =
                wake.wait_timeout(line, until - now).unwrap_or_else(PoisonError::into_inner);
            line = guard;
        }
        let releases = line.releases;
        if let Some(place) = line.place(ticket) {
            place.sleeping = false;
            place.last_request = Instant::now();
            place.refused_after = releases;
        }
    }
}

thread_local! {
    /// The ticket this thread's connection waits with, and the line it waits in, if it was
    /// just refused the lock.
    static WAITING: RefCell<Option<(Ticket, Arc<WriteTurns>)>> = const { RefCell::new(None) };
}

/// `xSleep` from SQLite's busy handler: if this thread's connection waits in a line, sleep
/// until its turn (at most `max`) and return true; false to sleep as usual.
pub fn sleep_in_line(max: Duration) -> bool {
    let Some((ticket, turns)) = WAITING.with(|waiting| waiting.borrow().clone()) else {
        return false;
    };
    turns.sleep(ticket, max);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_head_of_the_line_goes_first_and_absent_heads_are_skipped() {
        let turns = Arc::new(WriteTurns::default());
        let (a, b, c) = (new_ticket(), new_ticket(), new_ticket());
        assert!(turns.may_try(a), "an empty line lets anyone try");
        turns.wait_in_line(b);
        turns.wait_in_line(c);
        assert!(!turns.may_try(a), "a newcomer waits behind b");
        assert!(!turns.may_try(c), "c waits behind b");
        assert!(turns.may_try(b));
        turns.took_lock(b);
        assert!(turns.may_try(c), "c heads the line now");
        std::thread::sleep(PRESENT_FOR * 2);
        assert!(turns.may_try(a), "c left without sleeping or asking again: skipped");
    }

    #[test]
    fn a_sleeper_wakes_when_the_lock_is_released_and_it_heads_the_line() {
        let turns = Arc::new(WriteTurns::default());
        let ticket = new_ticket();
        let sleeper = {
            let turns = Arc::clone(&turns);
            std::thread::spawn(move || {
                turns.wait_in_line(ticket);
                let started = Instant::now();
                assert!(sleep_in_line(Duration::from_secs(5)));
                started.elapsed()
            })
        };
        // Release until the sleeper is woken (it may not be asleep yet at the first release).
        for _ in 0..100 {
            std::thread::sleep(Duration::from_millis(20));
            turns.released();
            if sleeper.is_finished() {
                break;
            }
        }
        let slept = sleeper.join().expect("sleeper thread");
        assert!(
            slept < Duration::from_secs(1),
            "woken by the release, not the 5 s timeout: {slept:?}"
        );
        assert!(turns.may_try(ticket), "still at the head after waking");
    }

    #[test]
    fn a_release_between_the_refusal_and_the_sleep_is_not_slept_through() {
        let turns = Arc::new(WriteTurns::default());
        let ticket = new_ticket();
        turns.wait_in_line(ticket);
        turns.released();
        let started = Instant::now();
        assert!(sleep_in_line(Duration::from_secs(5)));
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "slept {:?} with the lock free",
            started.elapsed()
        );
    }

    #[test]
    fn a_release_wakes_only_the_head_of_the_line() {
        let turns = Arc::new(WriteTurns::default());
        let sleeper = |ticket: Ticket| {
            let turns = Arc::clone(&turns);
            std::thread::spawn(move || {
                turns.wait_in_line(ticket);
                sleep_in_line(Duration::from_secs(2));
            })
        };
        let (head, second) = (new_ticket(), new_ticket());
        let head_thread = sleeper(head);
        std::thread::sleep(Duration::from_millis(50));
        let second_thread = sleeper(second);
        std::thread::sleep(Duration::from_millis(50));
        turns.released();
        head_thread.join().expect("head thread");
        std::thread::sleep(Duration::from_millis(200));
        assert!(!second_thread.is_finished(), "the second in line kept sleeping");
        turns.took_lock(head);
        turns.released();
        second_thread.join().expect("second thread");
    }

    #[test]
    fn without_a_place_in_line_sleep_is_left_to_the_wrapped_vfs() {
        std::thread::spawn(|| assert!(!sleep_in_line(Duration::from_millis(1))))
            .join()
            .expect("thread");
    }
}
