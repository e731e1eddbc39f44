//! What every route sees: who is asking, the store within their scope, the kinds and the
//! limits. It is made by `App::resolve`, once per request, after routing; while taskbox has
//! no tokens every request is the open user of client `default`.

use std::sync::Arc;

use super::limits::Limits;
use crate::kind::Registry;
use crate::store::Scoped;
use crate::task::Identity;
use crate::task_service::TaskService;

/// What a route sees: who is asking, the store as they may see it, the kinds, the limits.
pub struct RequestContext {
    pub identity: Identity,
    /// The store within the caller's scope: the only store a route can reach.
    pub store: Scoped,
    pub registry: Arc<Registry>,
    pub limits: Limits,
}

impl RequestContext {
    /// The shared task verbs, within this request's scope.
    pub fn tasks(&self) -> TaskService<'_> {
        TaskService::new(&self.store, &self.registry)
    }
}
