//! The diagnostic kinds, compiled only with the feature `test-kinds` (which `cargo test`
//! turns on) and registered only when the service is started with `--test-kinds`
//! (`TASKBOX_TEST_KINDS=true`); never part of a release build. Two misbehave on purpose,
//! so that tests can show the engine survives it:
//!
//! - `debug.panic` panics: its task ends ERROR while the worker goes on.
//! - `debug.hang` never returns and never looks at cancellation (a handler stuck in an
//!   endless loop): a shutdown must still end within its grace period, marking the task
//!   interrupted, and a DELETE must still answer.
//!
//! Two hold a task running for as long as a test needs it running, whatever the machine's
//! speed (a sleep or a big file only makes that likely):
//!
//! - `debug.hold` runs until the file named by its param `release` exists (the test
//!   creates it), or until it is cancelled or the service stops; without `release`, only
//!   the latter two end it. Its param `percent` (0 to 100) is the progress it reports
//!   meanwhile.
//! - `debug.import` is `csv.import` (the same params and checks) that, once the rows of
//!   its first batch are stored and counted, holds like `debug.hold` before going on: an
//!   import caught midway, with rows written and more to come. A batch's rows are counted
//!   when the next batch is sent, so a file of fewer than two full batches (4000 rows) is
//!   imported without a hold.

use std::path::Path;
use std::time::Duration;

use super::csv_import::PARAMS as IMPORT_PARAMS;
use super::CsvImport;
use crate::kind::{Handler, Param, TaskContext, TaskError};
use crate::task::Params;

pub struct Panic;

impl Handler for Panic {
    fn kind(&self) -> &'static str {
        "debug.panic"
    }

    fn params(&self) -> &[Param] {
        &[]
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

    fn params(&self) -> &[Param] {
        &[]
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

/// How long a holding task sleeps between two looks at its release file and at
/// cancellation (each look is a `checkpoint`, which reports progress at its own interval).
const HOLD_NAP: Duration = Duration::from_millis(5);

/// The param `percent` of `debug.hold`: absent (0) or a whole number from 0 to 100.
fn hold_percent(params: &Params) -> Result<u8, String> {
    match params.get("percent") {
        None => Ok(0),
        Some(text) => match text.trim().parse::<u8>() {
            Ok(p) if p <= 100 => Ok(p),
            _ => Err(format!(
                "The param percent must be a whole number from 0 to 100, not {text:?}."
            )),
        },
    }
}

/// Holds the task running until the file named by the param `release` exists (if given),
/// a cancellation is requested or the service stops (`checkpoint` fails then).
fn hold(ctx: &mut TaskContext<'_>) -> Result<(), TaskError> {
    let release = ctx.param("release").map(String::from);
    match &release {
        Some(path) => ctx.log(format!("Holding until {path} exists")),
        None => ctx.log("Holding until cancelled"),
    }
    loop {
        ctx.checkpoint()?;
        if let Some(path) = &release {
            if Path::new(path).exists() {
                ctx.log(format!("Released: {path} exists"));
                return Ok(());
            }
        }
        std::thread::sleep(HOLD_NAP);
    }
}

/// The param `release` of the holding kinds: a path, at most 4096 bytes (PATH_MAX).
const RELEASE: Param = Param::new(
    "release",
    4096,
    "the file whose existence releases the task",
);

const HOLD_PARAMS: [Param; 2] = [
    RELEASE,
    Param::new("percent", 3, "the progress reported while held, 0 to 100"),
];

const HELD_IMPORT_PARAMS: [Param; 3] = [IMPORT_PARAMS[0], IMPORT_PARAMS[1], RELEASE];

pub struct Hold;

impl Handler for Hold {
    fn kind(&self) -> &'static str {
        "debug.hold"
    }

    fn params(&self) -> &[Param] {
        &HOLD_PARAMS
    }

    fn validate(&self, params: &Params, _has_input: bool) -> Result<(), String> {
        hold_percent(params).map(|_| ())
    }

    fn run(&self, ctx: &mut TaskContext<'_>) -> Result<String, TaskError> {
        let percent = hold_percent(ctx.params()).map_err(TaskError::Permanent)?;
        ctx.set_percent(percent);
        hold(ctx)?;
        Ok("Released.".into())
    }
}

pub struct HeldImport;

impl Handler for HeldImport {
    fn kind(&self) -> &'static str {
        "debug.import"
    }

    fn params(&self) -> &[Param] {
        &HELD_IMPORT_PARAMS
    }

    fn validate(&self, params: &Params, has_input: bool) -> Result<(), String> {
        CsvImport.validate(params, has_input)
    }

    fn run(&self, ctx: &mut TaskContext<'_>) -> Result<String, TaskError> {
        // The import has set its progress and counts before the hook: the holding loop's
        // checkpoints report them.
        CsvImport.run_with(ctx, &mut hold)
    }
}
