//! The service: starts the pieces in order (store → recovery → HTTP → engine) and stops
//! them as: engine stops claiming → HTTP → engine with its grace period → store.
//!
//! HTTP is bound before the engine starts: binding is what fails in practice (the port is
//! taken), and a start that fails must leave the database as it found it. Were the engine
//! started first, its dispatcher would already have claimed pending tasks, and stopping it
//! would mark them interrupted though they never ran. Requests accepted before the engine
//! is up only store tasks; the dispatcher claims them when it starts.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::{Config, MAX_GRACE_SECS};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::handlers::Registry;
use crate::http::{App, HttpServer, Limits};
use crate::store::{Store, Submitted};
use crate::task::{NewTask, TaskId};

pub struct Service {
    store: Store,
    engine: Option<Engine>,
    http: Option<HttpServer>,
    addr: SocketAddr,
    grace: Duration,
}

impl Service {
    /// Starts the service with the built-in kinds.
    pub fn start(config: Config) -> Result<Service> {
        Service::start_with(config, Registry::builtin())
    }

    /// Starts the service with the given kinds.
    pub fn start_with(config: Config, registry: Registry) -> Result<Service> {
        config.validate()?;
        // A connection for every thread that may hold one at once, and a few to spare.
        let connections = (config.http_threads + config.workers + 4).min(u32::MAX as usize) as u32;
        let store = Store::open_sized(&config.db_path, config.durability, connections)?;
        let interrupted = store.interrupt_running(None)?;
        if !interrupted.is_empty() {
            log::warn!(
                "recovery: {} task(s) were running when the service last stopped and are marked interrupted: {:?}",
                interrupted.len(),
                interrupted
            );
        }
        let registry = Arc::new(registry);
        let app = Arc::new(App {
            store: store.clone(),
            registry: registry.clone(),
            limits: Limits::of(&config),
        });
        let http =
            HttpServer::start(&config.listen, config.http_threads, app).map_err(|reason| {
                Error::Listen {
                    addr: config.listen.clone(),
                    reason,
                }
            })?;
        let engine = match Engine::start(store.clone(), registry, config.workers) {
            Ok(engine) => engine,
            Err(e) => {
                http.stop(Instant::now());
                return Err(e.into());
            }
        };
        let addr = http.addr();
        log::info!(
            "taskbox listening on http://{addr} (database {}, {} workers)",
            config.db_path.display(),
            config.workers
        );
        Ok(Service {
            store,
            engine: Some(engine),
            http: Some(http),
            addr,
            grace: config.grace,
        })
    }

    /// The address the HTTP server listens on (the real port when 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The store, for submitting and reading tasks in-process.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Submits a task without HTTP.
    pub fn submit(&self, task: &NewTask) -> Result<Submitted> {
        Ok(self.store.submit(task)?)
    }

    /// Stops taking requests, lets running tasks finish within the grace period, and marks
    /// those still running as interrupted. Returns their ids.
    pub fn shutdown(mut self) -> Vec<TaskId> {
        self.stop()
    }

    /// One grace period covers both: requests in flight and running tasks.
    fn stop(&mut self) -> Vec<TaskId> {
        // `validate` bounds the grace period; bounded and checked here all the same, since
        // a panic here (in `drop`, too) would skip marking the interrupted tasks.
        let now = Instant::now();
        let grace = self.grace.min(Duration::from_secs(MAX_GRACE_SECS));
        let deadline = now.checked_add(grace).unwrap_or(now);
        if let Some(engine) = &self.engine {
            engine.stop_claiming();
        }
        if let Some(http) = self.http.take() {
            http.stop(deadline);
        }
        match self.engine.take() {
            Some(engine) => engine.stop(deadline),
            None => Vec::new(),
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop();
    }
}
