//! What every route sees: the request's context (who is asking, the store within their
//! scope, the kinds, the limits), made from the application shared by every HTTP thread.
//! Identity is resolved once, here, before routing; while taskbox has no tokens every
//! request is the open user of client `default`.

use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;

use super::error::ApiError;
use super::request::Request;
use super::route::Router;
use crate::kind::Registry;
use crate::store::{Scoped, Store};
use crate::task::{Identity, Scope};
use crate::task_service::TaskService;

/// Limits on what a request may send, and on the connections that send them (the
/// settings of the same names in `Config`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_upload: u64,
    pub max_json: u64,
    pub max_headers: usize,
    pub max_header_bytes: usize,
    pub read_timeout: Duration,
    pub max_connections: usize,
}

impl Limits {
    pub fn of(config: &Config) -> Limits {
        Limits {
            max_upload: config.max_upload,
            max_json: config.max_json,
            max_headers: config.max_headers,
            max_header_bytes: config.max_header_bytes,
            read_timeout: config.read_timeout,
            max_connections: config.max_connections,
        }
    }
}

/// Shared by every HTTP thread. Routes never see it: they get a [`RequestContext`].
pub struct App {
    pub(super) store: Store,
    pub(super) registry: Arc<Registry>,
    pub(super) limits: Limits,
    /// Every family's routes.
    pub(super) router: Router,
}

impl App {
    pub fn new(store: Store, registry: Arc<Registry>, limits: Limits, router: Router) -> App {
        App {
            store,
            registry,
            limits,
            router,
        }
    }
}

/// What a route sees: who is asking, the store as they may see it, the kinds, the limits.
pub struct RequestContext {
    pub identity: Identity,
    /// The store within the caller's scope: the only store a route can reach.
    pub store: Scoped,
    pub registry: Arc<Registry>,
    pub limits: Limits,
}

impl RequestContext {
    /// Resolves who sent a request, before routing. It sees the application (a token is
    /// looked up in the store) and may refuse (401): the seam for tokens and tenants. Today
    /// every request is the open user of client `default`.
    pub fn resolve(app: &App, _request: &Request<'_>) -> Result<RequestContext, ApiError> {
        let identity = Identity::open();
        let scope = Scope::Client(identity.client.clone());
        Ok(RequestContext {
            store: app.store.scoped(scope),
            identity,
            registry: app.registry.clone(),
            limits: app.limits,
        })
    }

    /// The shared task verbs, within this request's scope.
    pub fn tasks(&self) -> TaskService<'_> {
        TaskService::new(&self.store, &self.registry)
    }
}
