//! The application every HTTP thread shares: the store, the kinds, the limits and the route
//! table. Routes never see it: it resolves who sends each request and hands the route a
//! [`RequestContext`] holding only what that caller may use.

use std::sync::Arc;

use super::context::RequestContext;
use super::error::ApiError;
use super::limits::Limits;
use super::origin::AllowedHosts;
use super::request::Request;
use super::route::Router;
use crate::kind::Registry;
use crate::store::Store;
use crate::task::{Identity, Scope};

/// Shared by every HTTP thread. Routes never see it: they get a [`RequestContext`].
pub struct App {
    pub(super) store: Store,
    pub(super) registry: Arc<Registry>,
    pub(super) limits: Limits,
    /// Every family's routes.
    pub(super) router: Router,
    /// The hosts requests may name, and their pages' origins.
    pub(super) hosts: AllowedHosts,
}

impl App {
    pub fn new(
        store: Store,
        registry: Arc<Registry>,
        limits: Limits,
        router: Router,
        hosts: AllowedHosts,
    ) -> App {
        App {
            store,
            registry,
            limits,
            router,
            hosts,
        }
    }

    /// Resolves who sent a request, before routing. It sees the application (a token is
    /// looked up in the store) and may refuse (401): the seam for tokens and tenants. Today
    /// every request is the open user of client `default`.
    pub fn resolve(&self, _request: &Request<'_>) -> Result<RequestContext, ApiError> {
        let identity = Identity::open();
        let scope = Scope::Client(identity.client.clone());
        Ok(RequestContext {
            store: self.store.scoped(scope),
            identity,
            registry: self.registry.clone(),
            limits: self.limits,
        })
    }
}
