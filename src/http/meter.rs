//! How a transfer moves: a request's body as the route reads it from the network, then the
//! answer as the HTTP library writes it. The readers count bytes into the request's
//! `Meter` and fail once it is cut off; the connection guard judges every running meter a
//! few times a second (`judge`) against the minimum rate, measured over each read timeout,
//! and the total deadline, cuts it off and shuts its connection down (which ends a read or
//! a write blocked on the client).

use std::io::{Error, ErrorKind};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::limits::Limits;

/// Why a transfer was cut off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// It moved fewer bytes in a read timeout than the minimum rate asks.
    TooSlow,
    /// It ran past the transfer timeout.
    TooLong,
}

/// One request's transfer: running while a body is read or an answer written, paused in
/// between (the route's own work is not the client's).
#[derive(Default)]
pub struct Meter {
    bytes: AtomicU64,
    /// 0 while not cut off, else 1 + the `Cut`.
    cut: AtomicU8,
    phase: Mutex<Option<Phase>>,
}

/// A running phase (a body, an answer): when it started, and the window being measured.
#[derive(Clone, Copy)]
struct Phase {
    started: Instant,
    window_started: Instant,
    window_bytes: u64,
}

impl Meter {
    /// Starts a phase, unless one runs.
    pub fn start(&self) {
        let mut phase = self.phase.lock().unwrap_or_else(|e| e.into_inner());
        if phase.is_none() {
            let now = Instant::now();
            *phase = Some(Phase {
                started: now,
                window_started: now,
                window_bytes: self.bytes.load(Ordering::Relaxed),
            });
        }
    }

    /// Ends the running phase: the time until the next is not counted.
    pub fn stop(&self) {
        *self.phase.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    pub fn count(&self, bytes: usize) {
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Bytes moved so far, in every phase.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    pub fn cut(&self) -> Option<Cut> {
        match self.cut.load(Ordering::Relaxed) {
            1 => Some(Cut::TooSlow),
            2 => Some(Cut::TooLong),
            _ => None,
        }
    }

    /// The error a reader fails with once the transfer was cut off (TimedOut: a body's
    /// route answers 408).
    pub fn check(&self, limits: &Limits) -> std::io::Result<()> {
        match self.cut() {
            None => Ok(()),
            Some(Cut::TooSlow) => Err(Error::new(
                ErrorKind::TimedOut,
                format!(
                    "it moved slower than the minimum of {} bytes per second (--min-transfer-rate)",
                    limits.min_transfer_rate
                ),
            )),
            Some(Cut::TooLong) => Err(Error::new(
                ErrorKind::TimedOut,
                format!(
                    "it took longer than {} s (--transfer-timeout-secs)",
                    limits.transfer_timeout.as_secs()
                ),
            )),
        }
    }

    /// The guard's judgement at `now`: whether the running phase must be cut off (then it
    /// is, and stays so). A phase is measured in windows of one read timeout, each of which
    /// must move `Limits::min_bytes_per_window`; the first window of an answer may count
    /// what the socket's buffers took at once, the next ones count what the client read.
    pub fn judge(&self, now: Instant, limits: &Limits) -> Option<Cut> {
        if self.cut().is_some() {
            return None;
        }
        let mut guard = self.phase.lock().unwrap_or_else(|e| e.into_inner());
        let phase = guard.as_mut()?;
        let cut = if now.duration_since(phase.started) > limits.transfer_timeout {
            Some(Cut::TooLong)
        } else if now.duration_since(phase.window_started) >= window(limits) {
            let bytes = self.bytes.load(Ordering::Relaxed);
            if bytes - phase.window_bytes < limits.min_bytes_per_window() {
                Some(Cut::TooSlow)
            } else {
                phase.window_started = now;
                phase.window_bytes = bytes;
                None
            }
        } else {
            None
        };
        if let Some(cut) = cut {
            let code = match cut {
                Cut::TooSlow => 1,
                Cut::TooLong => 2,
            };
            self.cut.store(code, Ordering::Relaxed);
            *guard = None;
        }
        cut
    }
}

/// The window over which the minimum rate is measured: the read timeout.
fn window(limits: &Limits) -> Duration {
    limits.read_timeout
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn limits() -> Limits {
        Limits::of(&Config {
            read_timeout: Duration::from_secs(1),
            min_transfer_rate: 100,
            transfer_timeout: Duration::from_secs(10),
            ..Config::default()
        })
    }

    #[test]
    fn a_transfer_under_the_rate_in_a_window_is_cut_off() {
        let (meter, limits) = (Meter::default(), limits());
        meter.start();
        let t0 = Instant::now();
        assert_eq!(meter.judge(t0 + Duration::from_millis(500), &limits), None);
        meter.count(150);
        assert_eq!(meter.judge(t0 + Duration::from_millis(1100), &limits), None);
        meter.count(99);
        assert_eq!(
            meter.judge(t0 + Duration::from_millis(2200), &limits),
            Some(Cut::TooSlow)
        );
        assert!(meter.check(&limits).is_err());
        // Judged once.
        assert_eq!(meter.judge(t0 + Duration::from_secs(3), &limits), None);
    }

    #[test]
    fn a_transfer_past_its_deadline_is_cut_off_and_a_paused_one_is_not_judged() {
        let (meter, limits) = (Meter::default(), limits());
        let t0 = Instant::now();
        assert_eq!(meter.judge(t0 + Duration::from_secs(60), &limits), None);
        meter.start();
        for s in 1..=10 {
            meter.count(1000);
            assert_eq!(meter.judge(t0 + Duration::from_secs(s), &limits), None);
        }
        meter.count(1000);
        assert_eq!(
            meter.judge(t0 + Duration::from_millis(10_500), &limits),
            Some(Cut::TooLong)
        );
    }
}
