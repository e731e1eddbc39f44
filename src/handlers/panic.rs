//! `debug.panic`: a kind whose handler panics, to show (and test) that a panicking handler
//! ends its task ERROR while the worker goes on. Registered only when the service is started
//! with test kinds enabled (`TASKBOX_TEST_KINDS=true`); never part of a normal install.

use super::Handler;
use crate::engine::{TaskContext, TaskError};
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
