//! The clock: the one source of "now" for the store and the engine, owned by the service
//! and passed to both, so that anything time-dependent (due times, leases, idempotency
//! windows, timestamps) can be tested by moving a [`ManualClock`] instead of waiting.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Datelike, Timelike, Utc};

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    /// Now, as unix milliseconds.
    fn now_ms(&self) -> i64;

    /// Now, UTC, in the contract's format `YYYY-MM-DDTHH:MM:SS`.
    fn now_text(&self) -> String {
        format_ms(self.now_ms())
    }
}

/// The system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        Utc::now().timestamp_millis()
    }
}

/// A clock that moves only when told to: for tests of anything time-dependent.
#[derive(Debug)]
pub struct ManualClock {
    ms: AtomicI64,
}

impl ManualClock {
    /// A clock standing at `ms` (unix milliseconds).
    pub fn at(ms: i64) -> ManualClock {
        ManualClock {
            ms: AtomicI64::new(ms),
        }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let by = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.ms.fetch_add(by, Ordering::SeqCst);
    }

    /// Sets the clock to `ms`, back in time too (as a system clock can be stepped).
    pub fn set(&self, ms: i64) {
        self.ms.store(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.ms.load(Ordering::SeqCst)
    }
}

/// Unix milliseconds as `YYYY-MM-DDTHH:MM:SS`, UTC.
pub fn format_ms(ms: i64) -> String {
    format(DateTime::from_timestamp_millis(ms).unwrap_or_default())
}

/// A time as `YYYY-MM-DDTHH:MM:SS`.
pub(crate) fn format(at: DateTime<Utc>) -> String {
    // By hand rather than a strftime string, which is parsed anew on every call: this
    // runs several times per task on the writer's thread.
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        at.year(),
        at.month(),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_formatted_as_strftime_would() {
        use chrono::TimeZone;
        for secs in [0, 951_782_400, 1_764_115_199, 4_102_444_799] {
            let at = chrono::Utc.timestamp_opt(secs, 999_000_000).unwrap();
            assert_eq!(format(at), at.format("%Y-%m-%dT%H:%M:%S").to_string());
            assert_eq!(format_ms(at.timestamp_millis()), format(at));
        }
    }

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let clock = ManualClock::at(1_000);
        assert_eq!(clock.now_ms(), 1_000);
        clock.advance(Duration::from_secs(2));
        assert_eq!(clock.now_ms(), 3_000);
        assert_eq!(clock.now_text(), "1970-01-01T00:00:03");
    }
}
