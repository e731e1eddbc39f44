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

mod context;
mod dispatcher;
mod worker;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

pub use context::TaskContext;

use crate::handlers::Registry;
use crate::store::{Store, StoreError};
use crate::task::{time, TaskId};

/// How a task's run ended other than successfully.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// A cancellation was requested and the handler stopped.
    #[error("canceled")]
    Cancelled,
    /// The task failed; the message is for the person who reads the task.
    #[error("{0}")]
    Failed(String),
    #[error("storage failed: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// State shared by the dispatcher and the workers.
struct Shared {
    store: Store,
    registry: Arc<Registry>,
    /// This process's name on the leases it takes.
    owner: String,
    workers: usize,
    /// Tasks handed to workers and not yet finished: the dispatcher claims no more than the
    /// workers can start at once, so no claimed task waits in the channel.
    busy: AtomicUsize,
    /// Worker threads still alive (shutdown waits for this to reach zero).
    alive: AtomicUsize,
    /// Set once by `stop`; the dispatcher and workers check it after each wake.
    stopping: AtomicBool,
}

/// The running engine.
pub struct Engine {
    shared: Arc<Shared>,
    dispatcher: Option<JoinHandle<()>>,
    workers: Vec<JoinHandle<()>>,
}

impl Engine {
    pub fn start(store: Store, registry: Arc<Registry>, workers: usize) -> std::io::Result<Engine> {
        let shared = Arc::new(Shared {
            store,
            registry,
            owner: format!("taskbox-{}-{}", std::process::id(), time::now_ms()),
            workers,
            busy: AtomicUsize::new(0),
            alive: AtomicUsize::new(workers),
            stopping: AtomicBool::new(false),
        });
        // Bounded to the pool's size: the dispatcher never claims more than that.
        let (tx, rx) = crossbeam_channel::bounded(workers);
        let mut handles = Vec::with_capacity(workers);
        for n in 0..workers {
            let shared = shared.clone();
            let rx = rx.clone();
            handles.push(
                std::thread::Builder::new()
                    .name(format!("worker-{n}"))
                    .spawn(move || worker::run(&shared, rx))?,
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
        self.shared.store.activity().ring();
    }

    /// Stops claiming, lets running tasks finish until `deadline`, then marks those still
    /// running as interrupted. Returns their ids.
    pub fn stop(mut self, deadline: Instant) -> Vec<TaskId> {
        self.stop_claiming();
        let shared = &self.shared;
        if let Some(d) = self.dispatcher.take() {
            let _ = d.join();
        }
        loop {
            let seen = shared.store.activity().generation();
            if shared.alive.load(Ordering::SeqCst) == 0 {
                break;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            shared.store.activity().wait_past(seen, left);
        }
        let interrupted = match shared.store.interrupt_running(Some(&shared.owner)) {
            Ok(ids) => ids,
            Err(e) => {
                log::error!("could not mark running tasks interrupted: {e}");
                Vec::new()
            }
        };
        for handle in self.workers.drain(..) {
            if handle.is_finished() {
                let _ = handle.join();
            }
            // A worker still running its task past the grace period is left to the exit.
        }
        if !interrupted.is_empty() {
            log::warn!(
                "interrupted {} task(s) still running after the grace period",
                interrupted.len()
            );
        }
        interrupted
    }
}
