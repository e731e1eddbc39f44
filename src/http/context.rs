//! What every route sees: the application (store, kinds, limits) and the request's context
//! (who is asking, and so which tasks they may see). Identity is resolved once, here, before
//! routing; while taskbox has no tokens every request is the open user of client `default`.

use std::sync::Arc;

use crate::handlers::Registry;
use crate::store::Store;
use crate::task::{Identity, Scope};

/// Limits on what a request may send.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_upload: u64,
    pub max_json: u64,
}

/// Shared by every HTTP thread.
pub struct App {
    pub store: Store,
    pub registry: Arc<Registry>,
    pub limits: Limits,
}

/// Who sent a request.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub identity: Identity,
}

impl RequestContext {
    /// Resolves the request's identity. The seam for tokens and tenants: today, the open user.
    pub fn resolve(_request: &tiny_http::Request) -> RequestContext {
        RequestContext {
            identity: Identity::open(),
        }
    }

    /// The tasks this request may see: its client's.
    pub fn scope(&self) -> Scope {
        Scope::Client(self.identity.client.clone())
    }
}
