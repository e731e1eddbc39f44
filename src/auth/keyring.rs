//! The tokens in memory. Each request reads one row (the generation that every change to
//! the tokens moves, whichever process makes it) and reloads the tokens only when it moved:
//! a token created or revoked by `taskbox token` beside the running server counts from the
//! next request, and a request otherwise costs one indexed read.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::store::{GenerationReader, Result, Store, TokenRecord};

/// The tokens as of one generation.
#[derive(Debug, Default)]
pub struct Tokens {
    generation: i64,
    by_id: HashMap<i64, TokenRecord>,
}

impl Tokens {
    /// Token `id`, if one was ever made (revoked and expired ones too).
    pub fn get(&self, id: i64) -> Option<&TokenRecord> {
        self.by_id.get(&id)
    }

    /// Whether any token was ever made: from then on the service runs authenticated.
    pub fn any(&self) -> bool {
        !self.by_id.is_empty()
    }
}

pub struct Keyring {
    store: Store,
    generation: GenerationReader,
    current: Mutex<Option<Arc<Tokens>>>,
}

impl Keyring {
    pub fn new(store: Store) -> Result<Keyring> {
        Ok(Keyring {
            generation: store.generation_reader()?,
            store,
            current: Mutex::new(None),
        })
    }

    /// The tokens as they are now.
    pub fn tokens(&self) -> Result<Arc<Tokens>> {
        let generation = self.generation.read()?;
        if let Some(tokens) = self.cached().filter(|t| t.generation == generation) {
            return Ok(tokens);
        }
        let (generation, records) = self.store.tokens()?;
        let fresh = Arc::new(Tokens {
            generation,
            by_id: records.into_iter().map(|t| (t.id, t)).collect(),
        });
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Some(fresh.clone());
        Ok(fresh)
    }

    fn cached(&self) -> Option<Arc<Tokens>> {
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}
