//! Retention, the background service: removes finished tasks (and their files) older than
//! the retention age, so that a service nobody watches does not fill its disk with tasks
//! nobody reads. A thread of its own, started and stopped by the service: each pass finds
//! expired tasks on a reader and removes them a few at a time in short writes (see
//! `store::retention`), then it sleeps until the next pass or the stop.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::change_counter::ChangeCounter;
use crate::clock::format_ms;
use crate::store::Store;

/// Tasks removed per write: small, so that the writer's other work never waits long.
const BATCH: usize = 100;
/// The shortest and longest pause between two passes.
const MIN_INTERVAL: Duration = Duration::from_secs(1);
const MAX_INTERVAL: Duration = Duration::from_secs(3600);

/// The running retention thread.
pub(crate) struct Retention {
    stopping: Arc<AtomicBool>,
    wake: Arc<ChangeCounter>,
    thread: Option<JoinHandle<()>>,
}

impl Retention {
    /// Starts removing finished tasks older than `age`; None when `age` is zero (keep every
    /// task for ever).
    pub fn start(store: Store, age: Duration) -> std::io::Result<Option<Retention>> {
        if age.is_zero() {
            return Ok(None);
        }
        let stopping = Arc::new(AtomicBool::new(false));
        let wake = Arc::new(ChangeCounter::default());
        let thread = {
            let (stopping, wake) = (stopping.clone(), wake.clone());
            std::thread::Builder::new()
                .name("retention".into())
                .spawn(move || run(&store, age, &stopping, &wake))?
        };
        Ok(Some(Retention {
            stopping,
            wake,
            thread: Some(thread),
        }))
    }

    /// Stops the thread after the write it is making, if any.
    pub fn stop(mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.wake.bump();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A pass every 1/24 of the age (so a task outlives its age by at most 1/24 of it), within
/// [`MIN_INTERVAL`] and [`MAX_INTERVAL`].
fn interval(age: Duration) -> Duration {
    (age / 24).clamp(MIN_INTERVAL, MAX_INTERVAL)
}

fn run(store: &Store, age: Duration, stopping: &AtomicBool, wake: &ChangeCounter) {
    let age_ms = i64::try_from(age.as_millis()).unwrap_or(i64::MAX);
    while !stopping.load(Ordering::SeqCst) {
        let cutoff = format_ms(store.clock().now_ms().saturating_sub(age_ms));
        match pass(store, &cutoff, stopping) {
            Ok(0) => {}
            Ok(n) => log::info!("retention: removed {n} task(s) that ended before {cutoff}"),
            // A busy or full disk: the next pass tries again.
            Err(e) => log::warn!("retention: removing finished tasks failed: {e}"),
        }
        let next = Instant::now() + interval(age);
        wake.wait_until(next, || stopping.load(Ordering::SeqCst));
    }
}

/// Removes every task that ended before `cutoff`, a batch per write, until none is left or
/// the service stops. Returns how many it removed.
fn pass(store: &Store, cutoff: &str, stopping: &AtomicBool) -> crate::store::Result<usize> {
    let mut removed = 0;
    let mut after = 0;
    while !stopping.load(Ordering::SeqCst) {
        let (ids, next) = store.expired_tasks(cutoff, after, BATCH)?;
        if !ids.is_empty() {
            removed += store.remove_expired(ids, cutoff)?;
        }
        match next {
            Some(cursor) => after = cursor,
            None => break,
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_come_at_a_24th_of_the_age_within_bounds() {
        assert_eq!(interval(Duration::from_secs(2)), MIN_INTERVAL);
        assert_eq!(
            interval(Duration::from_secs(24 * 60)),
            Duration::from_secs(60)
        );
        assert_eq!(interval(Duration::from_secs(30 * 86_400)), MAX_INTERVAL);
    }
}
