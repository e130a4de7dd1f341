//! A gate the workloads' writes pass, which the nemesis can close for a moment: it waits until
//! no write is in flight, so that the next transaction on the leader is its own (a node commits
//! one transaction at a time: the WAL write lock is held while the commit is replicated).
//!
//! Invariant: once [`WriteGate::hold`] returned true, no write is in flight and none starts
//! until [`WriteGate::release`]. Writers announce themselves before looking at the gate, and
//! the holder closes the gate before counting writers (both sequentially consistent), so a
//! writer and the holder cannot both miss each other.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Pause between looks at the gate.
const POLL: Duration = Duration::from_millis(2);
/// Longest a writer waits at a closed gate (the holder releases it within a second).
const WAIT_MAX: Duration = Duration::from_secs(10);

#[derive(Default)]
pub struct WriteGate {
    held: AtomicBool,
    in_flight: AtomicUsize,
}

/// A write in flight; the gate counts it until dropped.
pub struct Pass<'a> {
    gate: &'a WriteGate,
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        self.gate.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl WriteGate {
    /// Waits while the gate is held (at most [`WAIT_MAX`]), then counts a write in flight.
    pub fn enter(&self) -> Pass<'_> {
        let started = Instant::now();
        loop {
            self.in_flight.fetch_add(1, Ordering::SeqCst);
            if !self.held.load(Ordering::SeqCst) || started.elapsed() > WAIT_MAX {
                return Pass { gate: self };
            }
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            std::thread::sleep(POLL);
        }
    }

    /// Closes the gate and waits until no write is in flight, at most `deadline`; false (and
    /// the gate open again) if writes were still in flight then.
    pub fn hold(&self, deadline: Duration) -> bool {
        self.held.store(true, Ordering::SeqCst);
        let started = Instant::now();
        while self.in_flight.load(Ordering::SeqCst) > 0 {
            if started.elapsed() > deadline {
                self.release();
                return false;
            }
            std::thread::sleep(POLL);
        }
        true
    }

    pub fn release(&self) {
        self.held.store(false, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_held_gate_waits_for_writes_in_flight_and_stops_new_ones() {
        let gate = Arc::new(WriteGate::default());
        let pass = gate.enter();
        assert!(!gate.hold(Duration::from_millis(50)), "a write is in flight");
        drop(pass);
        assert!(gate.hold(Duration::from_millis(50)));
        let entered = Arc::new(AtomicBool::new(false));
        let writer = {
            let (gate, entered) = (Arc::clone(&gate), Arc::clone(&entered));
            std::thread::spawn(move || {
                let _pass = gate.enter();
                entered.store(true, Ordering::SeqCst);
            })
        };
        std::thread::sleep(Duration::from_millis(100));
        assert!(!entered.load(Ordering::SeqCst), "no write starts while the gate is held");
        gate.release();
        writer.join().unwrap();
        assert!(entered.load(Ordering::SeqCst));
    }
}
