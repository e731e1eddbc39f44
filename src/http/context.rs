//! What every route sees: the application (store, kinds, limits) and the request's context
//! (who is asking, and so which tasks they may see). Identity is resolved once, here, before
//! routing; while taskbox has no tokens every request is the open user of client `default`.

use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;

use crate::handlers::Registry;
use crate::store::Store;
use crate::task::{Identity, Scope};

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
