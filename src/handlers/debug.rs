//! The diagnostic kinds, registered only when the service is started with test kinds enabled
//! (`TASKBOX_TEST_KINDS=true`); never part of a normal install. Each misbehaves on purpose,
//! so that tests can show the engine survives it:
//!
//! - `debug.panic` panics: its task ends ERROR while the worker goes on.
//! - `debug.hang` never returns and never looks at cancellation (a handler stuck in an
//!   endless loop): a shutdown must still end within its grace period, marking the task
//!   interrupted, and a DELETE must still answer.

use std::time::Duration;

use crate::kind::{Handler, TaskContext, TaskError};
use crate::task::Params;

pub struct Panic;

impl Handler for Panic {
    fn kind(&self) -> &'static str {
        "debug.panic"
    }

    fn validate(&self, _params: &Params, _has_input: bool) -> Result<(), String> {
        Ok(())
    }

    fn run(&self, ctx: &mut TaskContext<'_>) -> Result<String, TaskError> {
        ctx.log("about to panic, as asked");
        panic!("debug.panic was asked to panic");
    }
}

/// How long `debug.hang` sleeps between two turns of its loop: it is stuck, but it burns
/// (next to) no CPU, so a test that leaves it hanging does not slow the machine.
const HANG_NAP: Duration = Duration::from_millis(200);

pub struct Hang;

impl Handler for Hang {
    fn kind(&self) -> &'static str {
        "debug.hang"
    }

    fn validate(&self, _params: &Params, _has_input: bool) -> Result<(), String> {
        Ok(())
    }

    fn run(&self, ctx: &mut TaskContext<'_>) -> Result<String, TaskError> {
        ctx.log("hanging for ever, as asked");
        // Deliberately no `ctx.checkpoint()`: a cancellation or a shutdown never reaches it.
        loop {
            std::thread::sleep(HANG_NAP);
        }
    }
}
