//! The engine: a dispatcher thread that claims due tasks from the store and a fixed pool of
//! worker threads that run them through their kind's handler. The engine knows nothing of
//! HTTP; it meets the HTTP layer in the store (submissions ring the store's activity
//! signal, which wakes the dispatcher).
//!
//! Shutdown flows one way: `stop` sets the stop flag and rings the signal; the dispatcher
//! sees it, claims nothing more and drops the channel's sender; each worker finishes the
//! task it runs, finds the channel closed and exits (a worker retrying to record a task's
//! end against a refusing store stops retrying once the flag is set). Whatever still runs
//! when the grace period ends is marked interrupted in the store and its thread is left to
//! the process's exit.

mod dispatcher;
mod worker;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

use crate::kind::Registry;
use crate::store::{Finish, Store};
use crate::task::TaskId;

/// A task's end that the writer could not record (the task, its client, how it ended),
/// kept to be recorded again.
type Unrecorded = (TaskId, String, Arc<Finish>);

/// State shared by the dispatcher and the workers.
struct Shared {
    store: Store,
    registry: Arc<Registry>,
    /// This process's name on the leases it takes.
    owner: String,
    workers: usize,
    /// Tasks claimed and not yet finished (running, or waiting in the channel).
    busy: AtomicUsize,
    /// Worker threads still alive (shutdown waits for this to reach zero).
    alive: AtomicUsize,
    /// Set once by `stop`; the dispatcher and workers check it after each wake.
    stopping: AtomicBool,
    /// How long tasks run, in microseconds (a moving average; 0 until one has run): the
    /// dispatcher claims ahead for tasks that take no time, see `dispatcher`.
    task_micros: AtomicU64,
    /// When each worker's current task started, in microseconds since `epoch` plus one (0:
    /// idle): a worker held by a long task stops the dispatcher claiming ahead.
    running_since: Vec<AtomicU64>,
    epoch: Instant,
    /// Task ends the writer could not record: the writer's failure path sends them here,
    /// which wakes an idle worker to record them again (see `worker::run`).
    unrecorded: Sender<Unrecorded>,
}

impl Shared {
    /// Marks worker `n` busy with a task from now (`true`) or idle.
    fn note_running(&self, n: usize, running: bool) {
        let value = if running {
            self.epoch.elapsed().as_micros() as u64 + 1
        } else {
            0
        };
        self.running_since[n].store(value, Ordering::Relaxed);
    }

    /// Whether some worker's task has run longer than `limit`.
    fn a_task_runs_longer_than(&self, limit: Duration) -> bool {
        let now = self.epoch.elapsed().as_micros() as u64 + 1;
        let limit = limit.as_micros() as u64;
        self.running_since.iter().any(|since| {
            let since = since.load(Ordering::Relaxed);
            since != 0 && now.saturating_sub(since) > limit
        })
    }

    /// Folds a task's run time into the moving average (weight 1/8).
    fn note_task_time(&self, took: Duration) {
        let sample = took.as_micros().min(u128::from(u32::MAX)) as u64;
        let old = self.task_micros.load(Ordering::Relaxed);
        let new = if old == 0 {
            sample.max(1)
        } else {
            (old * 7 + sample) / 8
        };
        self.task_micros.store(new.max(1), Ordering::Relaxed);
    }
}

/// The running engine.
pub struct Engine {
    shared: Arc<Shared>,
    dispatcher: Option<JoinHandle<()>>,
    workers: Vec<JoinHandle<()>>,
}

impl Engine {
    pub fn start(store: Store, registry: Arc<Registry>, workers: usize) -> std::io::Result<Engine> {
        let (unrecorded, to_record) = crossbeam_channel::unbounded();
        let shared = Arc::new(Shared {
            owner: format!("taskbox-{}-{}", std::process::id(), store.clock().now_ms()),
            store,
            registry,
            workers,
            busy: AtomicUsize::new(0),
            alive: AtomicUsize::new(workers),
            stopping: AtomicBool::new(false),
            task_micros: AtomicU64::new(0),
            running_since: (0..workers).map(|_| AtomicU64::new(0)).collect(),
            epoch: Instant::now(),
            unrecorded,
        });
        // Bounded to what the dispatcher may have claimed and not yet finished.
        let (tx, rx) = crossbeam_channel::bounded(workers + dispatcher::MAX_AHEAD);
        let mut handles = Vec::with_capacity(workers);
        for n in 0..workers {
            let shared = shared.clone();
            let inbox = worker::Inbox {
                tasks: rx.clone(),
                unrecorded: to_record.clone(),
            };
            handles.push(
                std::thread::Builder::new()
                    .name(format!("worker-{n}"))
                    .spawn(move || worker::run(&shared, n, inbox))?,
            );
        }
        let dispatcher = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("dispatcher".into())
                .spawn(move || dispatcher::run(&shared, tx))?
        };
        Ok(Engine {
            shared,
            dispatcher: Some(dispatcher),
            workers: handles,
        })
    }

    /// Stops claiming new tasks; running ones go on. `stop` completes the shutdown.
    pub fn stop_claiming(&self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.shared.store.activity().bump();
    }

    /// Stops claiming, lets running tasks finish until `deadline`, then marks those still
    /// running as interrupted. Returns their ids.
    pub fn stop(mut self, deadline: Instant) -> Vec<TaskId> {
        self.stop_claiming();
        let shared = &self.shared;
        if let Some(d) = self.dispatcher.take() {
            let _ = d.join();
        }
        shared
            .store
            .activity()
            .wait_until(deadline, || shared.alive.load(Ordering::SeqCst) == 0);
        let interrupted = match shared.store.interrupt_running(Some(&shared.owner)) {
            Ok(ids) => ids,
            Err(e) => {
                log::error!("could not mark running tasks interrupted: {e}");
                Vec::new()
            }
        };
        // A worker still in its handler past the grace period (one stuck in a loop that never
        // looks at cancellation, say) is not joined: it is left to the process's exit, which
        // does not wait for it. Its writes are refused from now on (they check the lease).
        let mut stuck = 0;
        for handle in self.workers.drain(..) {
            if handle.is_finished() {
                let _ = handle.join();
            } else {
                stuck += 1;
            }
        }
        if !interrupted.is_empty() {
            log::warn!(
                "interrupted {} task(s) still running after the grace period",
                interrupted.len()
            );
        }
        if stuck > 0 {
            // Counted apart from the interrupted tasks: a task deleted while its handler hung
            // leaves a stuck worker and no task to interrupt.
            log::warn!("{stuck} worker thread(s) still running a handler are abandoned");
        }
        interrupted
    }
}
