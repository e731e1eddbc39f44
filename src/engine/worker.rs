//! A worker: takes claimed tasks from the channel, runs each through its kind's handler with
//! a fresh context, and records how it ended. A handler that panics or fails ends its task
//! ERROR; the worker thread goes on to the next task.

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use super::context::TaskContext;
use super::{Shared, TaskError};
use crate::store::{Claimed, Finish};
use crate::task::Status;

/// The message of a task stopped by a cancellation request.
pub const CANCELED: &str = "Canceled by request.";
/// Attempts to record a task's end while the store refuses (a full disk, a locked file).
const FINISH_ATTEMPTS: u32 = 6;

pub(super) fn run(shared: &Shared, rx: Receiver<Claimed>) {
    for task in rx.iter() {
        run_one(shared, &task);
        shared.busy.fetch_sub(1, Ordering::SeqCst);
        shared.store.activity().ring();
    }
    shared.alive.fetch_sub(1, Ordering::SeqCst);
    shared.store.activity().ring();
}

fn run_one(shared: &Shared, task: &Claimed) {
    let started = Instant::now();
    log::info!(
        "task {} started: {} (attempt {})",
        task.id,
        task.kind,
        task.attempt
    );
    let mut ctx = TaskContext::new(&shared.store, &shared.owner, task);
    ctx.log(format!("Started {} (attempt {})", task.kind, task.attempt));
    let result = match shared.registry.get(&task.kind) {
        Some(handler) => panic::catch_unwind(AssertUnwindSafe(|| handler.run(&mut ctx)))
            .unwrap_or_else(|payload| Err(TaskError::Failed(panic_message(payload.as_ref())))),
        None => Err(TaskError::Failed(format!(
            "Unknown task kind {:?}: this taskbox has no handler for it.",
            task.kind
        ))),
    };
    let (status, message) = match result {
        Ok(message) => (Status::Success, message),
        Err(TaskError::Cancelled) => (Status::Canceled, CANCELED.to_string()),
        Err(TaskError::Failed(message)) => (Status::Error, message),
        Err(TaskError::Store(e)) => (
            Status::Error,
            format!("The task could not use the database: {e}."),
        ),
        Err(TaskError::Io(e)) => (
            Status::Error,
            format!("The task failed reading or writing a file: {e}."),
        ),
    };
    let elapsed = started.elapsed();
    ctx.log(format!(
        "Finished {status} after {:.3} s{}{message}",
        elapsed.as_secs_f64(),
        if message.is_empty() { "" } else { ": " }
    ));
    let (counts, files) = ctx.close(status == Status::Success);
    let finish = Finish {
        status,
        message,
        counts,
        io_file: files.output,
        log_file: files.log,
        log_tail: files.log_tail,
        err_file: files.err,
    };
    let mut delay = Duration::from_millis(100);
    for attempt in 1..=FINISH_ATTEMPTS {
        match shared.store.finish(task.id, &shared.owner, &finish) {
            Ok(true) => {
                log::info!(
                    "task {} finished {status} in {:.3} s",
                    task.id,
                    elapsed.as_secs_f64()
                );
                return;
            }
            Ok(false) => {
                log::info!(
                    "task {} ended {status} but was deleted or interrupted meanwhile",
                    task.id
                );
                return;
            }
            Err(e) if attempt < FINISH_ATTEMPTS => {
                log::warn!(
                    "task {}: recording its end failed ({e}); trying again",
                    task.id
                );
                std::thread::sleep(delay);
                delay *= 2;
            }
            Err(e) => {
                // The next start marks it interrupted: it is never left running for good.
                log::error!("task {}: recording its end failed: {e}", task.id);
            }
        }
    }
}

/// Words for a panic, for the task's message.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let detail = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no details".into());
    format!("The task failed unexpectedly (the handler panicked: {detail}).")
}
