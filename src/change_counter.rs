//! `ChangeCounter`: a generation counter with a condition variable, the one way threads
//! wait for "something changed" without polling (the store's activity, the HTTP threads'
//! exits). A waiter reads the generation, checks its condition, and waits for the
//! generation to move; a change bumped in between is never lost.

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// A counter of changes that threads can wait on.
#[derive(Default)]
pub struct ChangeCounter {
    generation: Mutex<u64>,
    changed: Condvar,
}

impl ChangeCounter {
    /// The current generation, to pass to [`ChangeCounter::wait_past`].
    pub fn generation(&self) -> u64 {
        *self.generation.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Moves the generation and wakes every waiter.
    pub fn bump(&self) {
        let mut g = self.generation.lock().unwrap_or_else(|e| e.into_inner());
        *g = g.wrapping_add(1);
        self.changed.notify_all();
    }

    /// Waits until the generation differs from `seen` or `timeout` passes. Returns whether
    /// it moved.
    pub fn wait_past(&self, seen: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut g = self.generation.lock().unwrap_or_else(|e| e.into_inner());
        while *g == seen {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            g = self
                .changed
                .wait_timeout(g, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }

    /// Waits until `done()` holds, checking it again at every change, or until `deadline`.
    /// Returns whether it holds.
    pub fn wait_until(&self, deadline: Instant, mut done: impl FnMut() -> bool) -> bool {
        loop {
            let seen = self.generation();
            if done() {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            self.wait_past(seen, left);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    #[test]
    fn a_wait_ends_at_the_change_that_makes_its_condition_true() {
        let counter = Arc::new(ChangeCounter::default());
        let flag = Arc::new(AtomicBool::new(false));
        let setter = {
            let (counter, flag) = (counter.clone(), flag.clone());
            std::thread::spawn(move || {
                counter.bump(); // a change that does not make it true
                flag.store(true, Ordering::SeqCst);
                counter.bump();
            })
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        assert!(counter.wait_until(deadline, || flag.load(Ordering::SeqCst)));
        setter.join().unwrap();
        // Past its deadline, a condition that never holds is reported as such.
        assert!(!counter.wait_until(Instant::now(), || false));
    }
}
