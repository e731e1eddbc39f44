//! The registry: the known kinds by name. The task service asks it to validate a
//! submission; the engine asks it for the handler that runs a claimed task.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::Handler;

/// The known kinds, by name. [`Registry::builtin`] holds the built-in kinds; an embedder
/// adds its own with [`Registry::register`].
#[derive(Clone, Default)]
pub struct Registry {
    handlers: BTreeMap<&'static str, Arc<dyn Handler>>,
}

impl Registry {
    /// A registry with no kinds.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Adds (or replaces) a kind.
    pub fn register(&mut self, handler: impl Handler + 'static) {
        self.handlers.insert(handler.kind(), Arc::new(handler));
    }

    /// The handler of `kind`, if it is known.
    pub fn get(&self, kind: &str) -> Option<&Arc<dyn Handler>> {
        self.handlers.get(kind)
    }

    /// The names of the known kinds, sorted.
    pub fn kinds(&self) -> Vec<&'static str> {
        self.handlers.keys().copied().collect()
    }
}
