//! `sleep`: waits `seconds` (decimal, 0 to 86400), reporting progress and stopping early
//! when cancelled. For demos, tests and benchmarks; `seconds=0` is a no-op task.

use std::time::{Duration, Instant};

use crate::kind::{Handler, TaskContext, TaskError};
use crate::task::Params;

pub const MAX_SECONDS: f64 = 86_400.0;
/// The longest stretch between two looks at progress and cancellation.
const TICK: Duration = Duration::from_millis(50);

pub struct Sleep;

fn seconds(params: &Params) -> Result<f64, String> {
    match params.get("seconds") {
        None => Ok(0.0),
        Some(text) => match text.trim().parse::<f64>() {
            Ok(s) if s.is_finite() && (0.0..=MAX_SECONDS).contains(&s) => Ok(s),
            _ => Err(format!(
                "The param seconds must be a number from 0 to 86400, not {text:?}."
            )),
        },
    }
}

impl Handler for Sleep {
    fn kind(&self) -> &'static str {
        "sleep"
    }

    fn validate(&self, params: &Params, _has_input: bool) -> Result<(), String> {
        seconds(params).map(|_| ())
    }

    fn run(&self, ctx: &mut TaskContext<'_>) -> Result<String, TaskError> {
        let seconds = seconds(ctx.params()).map_err(TaskError::Permanent)?;
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
