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
use crate::auth::Authenticator;
use crate::kind::Registry;
use crate::store::Store;

/// The header with which an administrator's token acts for one client.
pub const ACT_FOR_HEADER: &str = "X-Taskbox-Client";

/// Shared by every HTTP thread. Routes never see it: they get a [`RequestContext`].
pub struct App {
    pub(super) store: Store,
    pub(super) registry: Arc<Registry>,
    pub(super) limits: Limits,
    /// Every family's routes.
    pub(super) router: Router,
    /// The hosts requests may name, and their pages' origins.
    pub(super) hosts: AllowedHosts,
    /// Who sends a request.
    auth: Authenticator,
}

impl App {
    pub fn new(
        store: Store,
        registry: Arc<Registry>,
        limits: Limits,
        router: Router,
        hosts: AllowedHosts,
        auth: Authenticator,
    ) -> App {
        App {
            store,
            registry,
            limits,
            router,
            hosts,
            auth,
        }
    }

    /// Resolves who sent a request, after routing (so that a refusal wears the route's
    /// family): its token's user and client, or the open user while the service runs open;
    /// 401 without a valid token, 403 for a client it may not act for. The route gets the
    /// store within that caller's scope and nothing wider.
    pub fn resolve(&self, request: &Request<'_>) -> Result<RequestContext, ApiError> {
        let caller = self.auth.authenticate(
            request.header("Authorization"),
            request.header(ACT_FOR_HEADER),
            request.remote_addr().map(|a| a.ip()),
        )?;
        Ok(RequestContext {
            store: self
                .store
                .scoped(caller.scope)
                .acting_as(&caller.identity.client),
            identity: caller.identity,
            registry: self.registry.clone(),
            limits: self.limits,
        })
    }
}
