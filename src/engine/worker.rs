//! A worker: takes claimed tasks from the channel, runs each through its kind's handler with
//! a fresh context, and records how it ended. A handler that panics or fails ends its task
//! ERROR; the worker thread goes on to the next task.

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use super::{Shared, Unrecorded};
use crate::kind::{TaskContext, TaskError};
use crate::store::{Claimed, Finish, QueuedStart};
use crate::task::State;

/// The message of a task stopped by a cancellation request.
pub const CANCELED: &str = "Canceled by request.";
/// The message of a task whose handler panicked (what the panic said is in the server log).
pub(crate) const PANICKED: &str =
    "The task failed unexpectedly (its handler panicked); the server log has the details.";
/// The first wait before recording a task's end again after the store refused it (a full
/// disk, a locked file); it doubles up to [`FINISH_RETRY_MAX`].
const FINISH_RETRY_FIRST: Duration = Duration::from_millis(100);
const FINISH_RETRY_MAX: Duration = Duration::from_secs(5);

/// What a worker waits on: claimed tasks from the dispatcher, and task ends the writer
/// could not record (sent by the writer's failure path, so an idle worker wakes for them at
/// once rather than on a timer).
pub(super) struct Inbox {
    pub tasks: Receiver<Claimed>,
    pub unrecorded: Receiver<Unrecorded>,
}

/// Runs as worker `n` until the task channel closes.
pub(super) fn run(shared: &Shared, n: usize, inbox: Inbox) {
    loop {
        let task = crossbeam_channel::select! {
            recv(inbox.tasks) -> task => match task {
                Ok(task) => task,
                Err(_) => break,
            },
            recv(inbox.unrecorded) -> end => {
                if let Ok(end) = end {
                    record_unrecorded(shared, end, &inbox.unrecorded);
                }
                continue;
            }
        };
        let Some(queued_start) = start(shared, &task) else {
            shared.busy.fetch_sub(1, Ordering::SeqCst);
            shared.store.activity().bump();
            continue;
        };
        let started = Instant::now();
        shared.note_running(n, true);
        let (mut finish, elapsed) = run_one(shared, &task);
        finish.started_at = queued_start.fold();
        shared.note_running(n, false);
        shared.note_task_time(started.elapsed());
        // The end is recorded by the writer with the writes around it (one commit for many
        // tasks' ends), and this worker goes on at once. Until the commit the task is still
        // "In progress"; a crash meanwhile marks it interrupted, as for any running task.
        let (id, status) = (task.id, finish.state);
        // Said here, not once the end is committed: the callback below runs on the writer,
        // which every write waits for, and a log line costs it a formatted record and a
        // write to stderr. An end that fails to commit says so in its own line. The one
        // line at info a task costs (its start is at debug): at thousands of tasks a
        // second, each line is a measurable share of the CPU.
        log::info!(
            "task {id} finished {} in {:.3} s: {} (attempt {})",
            status.label(),
            elapsed.as_secs_f64(),
            task.kind,
            task.attempt
        );
        let finish = Arc::new(finish);
        let retry = finish.clone();
        let (unrecorded, client) = (shared.unrecorded.clone(), task.client.clone());
        shared.store.finish_then(
            task.id,
            &task.client,
            &shared.owner,
            finish,
            move |outcome| match outcome {
                Ok(true) => {}
                Ok(false) => log::info!(
                    "task {id} ended {} but was deleted or interrupted meanwhile",
                    status.label()
                ),
                Err(e) => {
                    log::warn!("task {id}: recording its end failed ({e}); trying again");
                    // The receivers live as long as the workers; none left means the
                    // engine is gone and the next start marks the task interrupted.
                    let _ = unrecorded.send((id, client, retry));
                }
            },
        );
        shared.busy.fetch_sub(1, Ordering::SeqCst);
        shared.store.activity().bump();
    }
    while let Ok(end) = inbox.unrecorded.try_recv() {
        record_unrecorded(shared, end, &inbox.unrecorded);
    }
    shared.alive.fetch_sub(1, Ordering::SeqCst);
    shared.store.activity().bump();
}

/// Starts a reserved task: None if it was deleted while it waited, or if the service stops
/// (its handler must not run then). The start is recorded
/// without waiting (see `Store::start_then`): nothing the handler writes is stored before it,
/// and a crash before its commit leaves the task Pending, to run again at the next start.
/// A task that ends before the writer reaches its start records both at once (see
/// `QueuedStart`).
fn start(shared: &Shared, task: &Claimed) -> Option<QueuedStart> {
    if !shared.store.still_waiting(task.id) {
        log::info!(
            "task {} was deleted before it started, or the service is stopping",
            task.id
        );
        return None;
    }
    let id = task.id;
    let queued =
        shared.store.start_then(
            task.id,
            &task.client,
            &shared.owner,
            move |outcome| match outcome {
                Ok(true) => {}
                Ok(false) => log::info!("task {id} was deleted as it started"),
                Err(e) => log::warn!("task {id}: recording its start failed: {e}"),
            },
        );
    Some(queued)
}

/// Records an end the writer could not (a full disk, a locked file), and then any others
/// waiting, one by one, for as long as it takes: giving up would leave a task "In
/// progress" for the life of the process. This worker takes no new task meanwhile. Only a
/// shutdown ends the retries: the engine's stop then marks the task interrupted, or, if
/// the store still refuses, the next start does.
fn record_unrecorded(shared: &Shared, first: Unrecorded, more: &Receiver<Unrecorded>) {
    let mut next = Some(first);
    while let Some((id, client, finish)) = next.take() {
        let recorded = retry_until_stopped(
            shared,
            || {
                shared
                    .store
                    .finish(id, &client, &shared.owner, finish.clone())
            },
            |e, delay| {
                log::warn!("task {id}: recording its end failed ({e}); trying again in {delay:?}")
            },
        );
        match recorded {
            Ok(_) => log::info!("task {id}: its end is recorded"),
            Err(e) => log::error!(
                "task {id}: recording its end failed ({e}) and the service is stopping; it is \
                 marked interrupted"
            ),
        }
        next = more.try_recv().ok();
    }
}

/// Runs a task through its handler and returns how it ended, and how long it ran.
fn run_one(shared: &Shared, task: &Claimed) -> (Finish, Duration) {
    let started = Instant::now();
    log::debug!(
        "task {} started: {} (attempt {})",
        task.id,
        task.kind,
        task.attempt
    );
    let mut ctx = TaskContext::new(&shared.store, &shared.owner, task, &shared.stopping);
    ctx.log(format!("Started {} (attempt {})", task.kind, task.attempt));
    let result = match shared.registry.get(&task.kind) {
        Some(handler) => panic::catch_unwind(AssertUnwindSafe(|| handler.run(&mut ctx)))
            .unwrap_or_else(|payload| {
                // The panic's own words are for the server log: they may show internals.
                log::error!(
                    "task {}: its handler panicked: {}",
                    task.id,
                    panic_detail(payload.as_ref())
                );
                Err(TaskError::Permanent(PANICKED.into()))
            }),
        None => Err(TaskError::Permanent(format!(
            "Unknown task kind {:?}: this taskbox has no handler for it.",
            task.kind
        ))),
    };
    let (status, message) = match result {
        Ok(message) => (State::Succeeded, message),
        Err(TaskError::Cancelled) => (State::Canceled, CANCELED.to_string()),
        // Retryable or not, a failure ends the task: attempts come with queues.
        Err(e) => (State::Failed, e.message()),
    };
    let elapsed = started.elapsed();
    ctx.log(format!(
        "Finished {} after {:.3} s{}{message}",
        status.label(),
        elapsed.as_secs_f64(),
        if message.is_empty() { "" } else { ": " }
    ));
    let (counts, files) = ctx.close(status == State::Succeeded);
    let finish = Finish {
        state: status,
        message,
        counts,
        io_file: files.output,
        log_file: files.log,
        log_tail: files.log_tail,
        err_file: files.err,
        started_at: None,
        began_import: files.began_import,
    };
    (finish, elapsed)
}

/// Runs `attempt` until it succeeds, waiting between failures from [`FINISH_RETRY_FIRST`],
/// doubling, up to [`FINISH_RETRY_MAX`]. Once the engine is stopping it makes one last
/// attempt and returns its error: a wait is cut short by the stop (which rings the
/// activity signal), so a shutdown is never held up by more than one attempt.
fn retry_until_stopped<T, E>(
    shared: &Shared,
    mut attempt: impl FnMut() -> Result<T, E>,
    mut failed: impl FnMut(&E, Duration),
) -> Result<T, E> {
    let mut delay = FINISH_RETRY_FIRST;
    loop {
        let error = match attempt() {
            Ok(value) => return Ok(value),
            Err(e) => e,
        };
        if shared.stopping.load(Ordering::SeqCst) {
            return Err(error);
        }
        failed(&error, delay);
        pause_unless_stopping(shared, delay);
        delay = backoff(delay);
    }
}

/// The wait after `delay`: doubled, capped at [`FINISH_RETRY_MAX`].
fn backoff(delay: Duration) -> Duration {
    delay.saturating_mul(2).min(FINISH_RETRY_MAX)
}

/// Sleeps for `delay`, or until the engine is stopping, whichever comes first.
fn pause_unless_stopping(shared: &Shared, delay: Duration) {
    let until = Instant::now() + delay;
    shared
        .store
        .activity()
        .wait_until(until, || shared.stopping.load(Ordering::SeqCst));
}

/// What a panic says, for the server log.
fn panic_detail(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no details".into())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
    use std::sync::Arc;

    use super::*;
    use crate::kind::Registry;
    use crate::store::Durability;
    use crate::store::Store;

    fn shared(dir: &tempfile::TempDir) -> Arc<Shared> {
        Arc::new(Shared {
            store: Store::open(&dir.path().join("t.db"), Durability::Normal).unwrap(),
            registry: Arc::new(Registry::builtin()),
            owner: "test".into(),
            workers: 1,
            busy: AtomicUsize::new(0),
            alive: AtomicUsize::new(1),
            stopping: AtomicBool::new(false),
            task_micros: AtomicU64::new(0),
            running_since: vec![AtomicU64::new(0)],
            epoch: Instant::now(),
            unrecorded: crossbeam_channel::unbounded().0,
        })
    }

    #[test]
    fn the_backoff_doubles_up_to_its_cap() {
        let mut delay = FINISH_RETRY_FIRST;
        let mut seen = vec![delay];
        for _ in 0..8 {
            delay = backoff(delay);
            seen.push(delay);
        }
        let ms: Vec<u128> = seen.iter().map(|d| d.as_millis()).collect();
        assert_eq!(ms, [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
    }

    #[test]
    fn recording_is_retried_until_it_succeeds() {
        let dir = tempfile::tempdir().unwrap();
        let shared = shared(&dir);
        let mut attempts = 0;
        let mut waits = Vec::new();
        let result = retry_until_stopped(
            &shared,
            || {
                attempts += 1;
                if attempts < 4 {
                    Err("refused")
                } else {
                    Ok(attempts)
                }
            },
            |_, delay| waits.push(delay.as_millis()),
        );
        assert_eq!(result, Ok(4));
        assert_eq!(waits, [100, 200, 400]);
    }

    #[test]
    fn a_stop_ends_the_retries_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let shared = shared(&dir);
        // Stopping already: one attempt, no wait.
        shared.stopping.store(true, Ordering::SeqCst);
        let started = Instant::now();
        let mut attempts = 0;
        let result: Result<(), _> = retry_until_stopped(
            &shared,
            || {
                attempts += 1;
                Err("refused")
            },
            |_, _| panic!("no wait once stopping"),
        );
        assert_eq!((result, attempts), (Err("refused"), 1));
        // Sooner than the first wait would have ended.
        assert!(started.elapsed() < FINISH_RETRY_FIRST);

        // Stopped while waiting between attempts: the wait ends, one last attempt is made.
        shared.stopping.store(false, Ordering::SeqCst);
        // The third wait (400 ms) begins: told to the stopper, which stops the engine then,
        // while the retries wait or just before they do (either way the wait must end).
        let (third_wait, begins) = std::sync::mpsc::channel::<Instant>();
        let stopper = {
            let shared = shared.clone();
            std::thread::spawn(move || {
                let began = begins.recv().expect("the third wait");
                shared.stopping.store(true, Ordering::SeqCst);
                shared.store.activity().bump();
                (began, Instant::now())
            })
        };
        let mut attempts = 0;
        let mut waits = 0;
        let result: Result<(), _> = retry_until_stopped(
            &shared,
            || {
                attempts += 1;
                Err("refused")
            },
            |_, delay| {
                waits += 1;
                if waits == 3 {
                    assert_eq!(delay, Duration::from_millis(400));
                    third_wait.send(Instant::now()).expect("the stopper waits");
                }
            },
        );
        let returned = Instant::now();
        let (began, stopped) = stopper.join().unwrap();
        assert_eq!(result, Err("refused"));
        // Three before the third wait, and one at the stop.
        assert!(attempts >= 3, "{attempts} attempts");
        assert_eq!(attempts, 4);
        // Uncut, the wait would have lasted until `began` + 400 ms, and the retries gone on
        // after it: they ended before, so the stop cut the wait short.
        let wait_left = Duration::from_millis(400).saturating_sub(stopped.duration_since(began));
        assert!(
            returned.duration_since(stopped) < wait_left,
            "the retries went on {:?} after the stop",
            returned.duration_since(stopped)
        );
    }
}
