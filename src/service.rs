//! The service: starts the pieces in order (store → recovery → HTTP → engine → retention)
//! and stops them as: retention → engine stops claiming → HTTP → engine with its grace
//! period → store.
//!
//! HTTP is bound before the engine starts: binding is what fails in practice (the port is
//! taken), and a start that fails must leave the database as it found it. Were the engine
//! started first, its dispatcher would already have claimed pending tasks, and stopping it
//! would mark them interrupted though they never ran. Requests accepted before the engine
//! is up only store tasks; the dispatcher claims them when it starts.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::auth::{AuthMode, AuthSettings, Authenticator, ThrottleSettings};
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, MAX_GRACE_SECS};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::http::{AllowedHosts, App, HttpServer, Limits};
use crate::kind::Registry;
use crate::retention::Retention;
use crate::store::{ListFilter, Scoped, Store, StoreLimits, Submitted};
use crate::task::{NewTask, Scope, Task, TaskId};
use crate::task_service::{TaskService, TaskServiceError};

/// The running service: its store, engine and HTTP server. Dropping it stops it as
/// [`Service::shutdown`] does.
pub struct Service {
    store: Store,
    /// Removes finished tasks past their age (None: kept for ever).
    retention: Option<Retention>,
    registry: Arc<Registry>,
    engine: Option<Engine>,
    http: Option<HttpServer>,
    addr: SocketAddr,
    grace: Duration,
}

impl Service {
    /// Starts the service with the built-in kinds, set up by `config`
    /// ([`Registry::builtin_with`]).
    pub fn start(config: Config) -> Result<Service> {
        let registry = Registry::builtin_with(&config);
        Service::start_with(config, registry)
    }

    /// Starts the service with the given kinds (built with [`Registry::builtin_with`] to
    /// give the built-in ones the config's settings).
    pub fn start_with(config: Config, registry: Registry) -> Result<Service> {
        Service::start_with_clock(config, registry, Arc::new(SystemClock))
    }

    /// Starts the service with the given kinds and clock (a [`crate::ManualClock`] in a
    /// test of anything time-dependent). The store and the engine both take "now" from it.
    pub fn start_with_clock(
        config: Config,
        registry: Registry,
        clock: Arc<dyn Clock>,
    ) -> Result<Service> {
        config.validate()?;
        crate::http::ensure_descriptors(config.descriptors_needed(), config.max_connections)
            .map_err(Error::Config)?;
        let connections = config.pool_connections().min(u32::MAX as usize) as u32;
        let limits = StoreLimits {
            quota_bytes: config.quota_bytes,
            max_unfinished: config.max_unfinished_tasks,
            min_free_bytes: config.min_free_bytes,
            max_snapshot: config.max_snapshot,
        };
        let store = Store::open_with(
            &config.db_path,
            config.durability,
            connections,
            clock.clone(),
            limits,
        )?;
        let interrupted = store.interrupt_running(None)?;
        if !interrupted.is_empty() {
            log::warn!(
                "recovery: {} task(s) were running when the service last stopped and are marked interrupted: {:?}",
                interrupted.len(),
                interrupted
            );
        }
        let authenticator = authenticator(&config, &store, clock)?;
        let registry = Arc::new(registry);
        let app_registry = registry.clone();
        let app = Arc::new(App::new(
            store.clone(),
            registry.clone(),
            Limits::of(&config),
            crate::api::router(),
            AllowedHosts::new(&config.allowed_hosts, listen_address(&config.listen)),
            authenticator,
        ));
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
        let retention = match Retention::start(store.clone(), config.retention) {
            Ok(retention) => retention,
            Err(e) => {
                http.stop(Instant::now());
                engine.stop(Instant::now());
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
            retention,
            registry: app_registry,
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

    /// The store as an administrator sees it: every client's tasks.
    fn admin(&self) -> Scoped {
        self.store.scoped(Scope::All)
    }

    /// Submits a task without HTTP, validated against its kind exactly as a submission over
    /// HTTP is.
    pub fn submit(&self, task: &NewTask) -> Result<Submitted> {
        let store = self.admin();
        Ok(TaskService::new(&store, &self.registry).submit(task)?)
    }

    /// Submits many tasks in one transaction (all or none), each validated against its kind.
    pub fn submit_many(&self, tasks: &[NewTask]) -> Result<Vec<TaskId>> {
        let store = self.admin();
        let submitted = TaskService::new(&store, &self.registry).submit_many(tasks)?;
        Ok(submitted.into_iter().map(|s| s.task.id).collect())
    }

    /// A task of any client, by id.
    pub fn task(&self, id: TaskId) -> Result<Task> {
        let store = self.admin();
        Ok(TaskService::new(&store, &self.registry).task(id)?)
    }

    /// Tasks of every client matching `filter`, newest first, and how many match in all.
    pub fn tasks(&self, filter: &ListFilter) -> Result<(Vec<Task>, u64)> {
        Ok(self.admin().list(filter)?)
    }

    /// Waits until task `id` has ended, or `timeout` passes; returns it as it then is.
    pub fn wait(&self, id: TaskId, timeout: Duration) -> Result<Task> {
        let deadline = Instant::now() + timeout;
        let mut last = None;
        let mut failed = None;
        self.store
            .activity()
            .wait_until(deadline, || match self.task(id) {
                Ok(task) => {
                    let ended = task.state.is_finished();
                    last = Some(task);
                    ended
                }
                Err(e) => {
                    failed = Some(e);
                    true
                }
            });
        match (failed, last) {
            (Some(e), _) => Err(e),
            (None, Some(task)) => Ok(task),
            (None, None) => self.task(id),
        }
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
        if let Some(retention) = self.retention.take() {
            retention.stop();
        }
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

impl From<TaskServiceError> for Error {
    fn from(e: TaskServiceError) -> Error {
        match e {
            TaskServiceError::Invalid(message) => Error::Invalid(message),
            TaskServiceError::TaskNotFound(id) => Error::TaskNotFound(id),
            TaskServiceError::FileMissing => Error::FileMissing,
            TaskServiceError::Store(e) => Error::Store(e),
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The address `listen` names (the unspecified one when it names none: then only the
/// loopback names and the configured ones are allowed hosts, and binding reports the error).
/// How requests will be authenticated. The open mode serves only on loopback, unless told
/// `--allow-open-network`: a start that would serve open on another address is refused,
/// with what to do instead.
fn authenticator(config: &Config, store: &Store, clock: Arc<dyn Clock>) -> Result<Authenticator> {
    let loopback = std::net::ToSocketAddrs::to_socket_addrs(&config.listen)
        .map(|addrs| addrs.collect::<Vec<_>>())
        .is_ok_and(|addrs| !addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback()));
    let open_allowed = loopback || config.allow_open_network;
    let settings = AuthSettings {
        mode: config.auth,
        open_allowed,
        throttle: ThrottleSettings {
            max_delay: config.auth_max_delay,
            forget_after: config.auth_forget,
        },
    };
    let auth = Authenticator::new(store.clone(), settings, clock)?;
    if config.auth == AuthMode::Auto && !open_allowed && !auth.has_tokens()? {
        return Err(Error::Listen {
            addr: config.listen.clone(),
            reason: "no access token exists, so taskbox would serve open (anyone who can reach \
                     the port could read, change and delete every task) on an address that is \
                     not loopback. Create a token first (taskbox token create --user-id 1 \
                     --user-name admin --client default --admin), or listen on 127.0.0.1, or \
                     start with --allow-open-network if an open service there is what you want"
                .into(),
        });
    }
    if config.auth == AuthMode::Required && !auth.has_tokens()? {
        log::warn!(
            "--auth required and no access token exists yet: every request is refused until \
             one is made (taskbox token create)"
        );
    }
    Ok(auth)
}

fn listen_address(listen: &str) -> std::net::SocketAddr {
    std::net::ToSocketAddrs::to_socket_addrs(listen)
        .ok()
        .and_then(|mut addrs| addrs.next())
        .unwrap_or_else(|| std::net::SocketAddr::from(([0, 0, 0, 0], 0)))
}
