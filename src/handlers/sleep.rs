//! `sleep`: waits `seconds` (decimal, 0 to its maximum), reporting progress and stopping
//! early when cancelled. For demos, tests and benchmarks; `seconds=0` is a no-op task. The
//! maximum is a setting (`--max-sleep-secs`), given when the kind is built, so a few tasks
//! cannot hold every worker for a day.

use std::time::{Duration, Instant};

use crate::config::{DEFAULT_MAX_SLEEP_SECS, MAX_MAX_SLEEP_SECS};
use crate::kind::{Handler, Param, TaskContext, TaskError};
use crate::task::Params;

/// The longest stretch between two looks at progress and cancellation.
const TICK: Duration = Duration::from_millis(50);

const PARAMS: [Param; 1] = [Param::new(
    "seconds",
    32,
    "how long to sleep, a decimal number of seconds (default 0)",
)];

/// The `sleep` kind, with the longest sleep it accepts.
pub struct Sleep {
    max_secs: u64,
}

impl Sleep {
    /// A `sleep` that accepts at most `max_secs` seconds.
    pub fn new(max_secs: u64) -> Sleep {
        Sleep { max_secs }
    }

    fn seconds(&self, params: &Params) -> Result<f64, String> {
        seconds(params, self.max_secs)
    }
}

/// The param `seconds`, from 0 to `max`.
fn seconds(params: &Params, max: u64) -> Result<f64, String> {
    match params.get("seconds") {
        None => Ok(0.0),
        Some(text) => match text.trim().parse::<f64>() {
            Ok(s) if s.is_finite() && (0.0..=max as f64).contains(&s) => Ok(s),
            _ => Err(format!(
                "The param seconds must be a number from 0 to {max} (--max-sleep-secs), not {text:?}."
            )),
        },
    }
}

impl Default for Sleep {
    fn default() -> Sleep {
        Sleep::new(DEFAULT_MAX_SLEEP_SECS)
    }
}

impl Handler for Sleep {
    fn kind(&self) -> &'static str {
        "sleep"
    }

    fn params(&self) -> &[Param] {
        &PARAMS
    }

    fn validate(&self, params: &Params, _has_input: bool) -> Result<(), String> {
        self.seconds(params).map(|_| ())
    }

    fn run(&self, ctx: &mut TaskContext<'_>) -> Result<String, TaskError> {
        // A task runs as it was accepted, even if the maximum was lowered since: the
        // maximum is for what clients may submit (a task over it can be deleted).
        let seconds = seconds(ctx.params(), MAX_MAX_SLEEP_SECS).map_err(TaskError::Permanent)?;
        if seconds == 0.0 {
            return Ok(String::new());
        }
        ctx.log(format!("Sleeping {seconds} s"));
        let total = Duration::from_secs_f64(seconds);
        let started = Instant::now();
        loop {
            let elapsed = started.elapsed();
            if elapsed >= total {
                break;
            }
            ctx.set_percent((elapsed.as_secs_f64() / seconds * 100.0) as u8);
            ctx.checkpoint()?;
            std::thread::sleep(TICK.min(total - elapsed));
        }
        Ok(format!("Slept {seconds} s."))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seconds(max: u64, value: &str) -> Result<f64, String> {
        Sleep::new(max).seconds(&[("seconds".to_string(), value.to_string())].into())
    }

    #[test]
    fn a_sleep_up_to_the_maximum_is_accepted_and_past_it_refused_naming_it() {
        assert_eq!(seconds(10, "10"), Ok(10.0));
        assert_eq!(seconds(10, " 0.5 "), Ok(0.5));
        assert_eq!(
            seconds(10, "10.001").unwrap_err(),
            "The param seconds must be a number from 0 to 10 (--max-sleep-secs), not \"10.001\"."
        );
        for bad in ["-1", "NaN", "inf", "1e9", "x", ""] {
            assert!(seconds(10, bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(Sleep::default().max_secs, DEFAULT_MAX_SLEEP_SECS);
    }
}
