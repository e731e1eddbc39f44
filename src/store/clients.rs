//! The clients' numbers. The tasks' indexes begin with the client's number rather than its
//! name (`tasks.client_no`; see migrations/008_narrow_task_keys.sql): a number compares in
//! a few instructions, a name in many. Each client is numbered once, by a write of its own
//! before its first task, and never renumbered; the numbers are kept in memory from the
//! store's opening on, so a submission or a list looks its client's up without a read.

use std::collections::HashMap;
use std::sync::RwLock;

use rusqlite::types::Value;
use rusqlite::Connection;

use super::{Result, Store};
use crate::task::Scope;

/// The numbers of the clients that have had tasks, by name.
#[derive(Default)]
pub(super) struct ClientNumbers {
    by_name: RwLock<HashMap<String, i64>>,
}

impl ClientNumbers {
    /// The numbers stored in `conn`'s file.
    pub(super) fn load(conn: &Connection) -> Result<ClientNumbers> {
        let mut stmt = conn.prepare("SELECT name, no FROM clients")?;
        let by_name = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(ClientNumbers {
            by_name: RwLock::new(by_name),
        })
    }

    fn get(&self, client: &str) -> Option<i64> {
        let by_name = self.by_name.read().unwrap_or_else(|e| e.into_inner());
        by_name.get(client).copied()
    }

    fn insert(&self, client: &str, no: i64) {
        let mut by_name = self.by_name.write().unwrap_or_else(|e| e.into_inner());
        by_name.insert(client.to_string(), no);
    }
}

impl Store {
    /// `client`'s number, numbering it first (committed before this returns) if it has
    /// none yet.
    pub(super) fn client_no(&self, client: &str) -> Result<i64> {
        if let Some(no) = self.inner.clients.get(client) {
            return Ok(no);
        }
        let name = client.to_string();
        // Another thread may number it meanwhile: the name is unique, and both read its one
        // number back.
        let no: i64 = self.write(move |tx| {
            Ok(tx.query_row(
                "INSERT INTO clients (name) VALUES (?1) \
                 ON CONFLICT (name) DO UPDATE SET name = excluded.name RETURNING no",
                [&name],
                |r| r.get(0),
            )?)
        })?;
        self.inner.clients.insert(client, no);
        Ok(no)
    }

    /// The number of `scope`'s client as a value to compare `tasks.client_no` with (None:
    /// the scope is every client's): NULL, which matches no task, for a client never
    /// numbered (it has no task).
    pub(super) fn client_no_of(&self, scope: &Scope) -> Option<Value> {
        match scope {
            Scope::Client(client) => Some(match self.inner.clients.get(client) {
                Some(no) => Value::Integer(no),
                None => Value::Null,
            }),
            Scope::All => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Durability, Store};
    use crate::task::Scope;
    use rusqlite::types::Value;

    /// A client is numbered once, by its first task, and keeps its number across a restart;
    /// one never numbered matches no task.
    #[test]
    fn a_client_is_numbered_once_and_for_good() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let value_of = |store: &Store, client: &str| {
            store.client_no_of(&Scope::Client(client.into())).unwrap()
        };
        let store = Store::open(&path, Durability::Normal).unwrap();
        assert_eq!(value_of(&store, "a"), Value::Null);
        let a = store.client_no("a").unwrap();
        let b = store.client_no("b").unwrap();
        assert_ne!(a, b);
        assert_eq!(store.client_no("a").unwrap(), a);
        assert_eq!(value_of(&store, "a"), Value::Integer(a));
        drop(store);
        let store = Store::open(&path, Durability::Normal).unwrap();
        assert_eq!(value_of(&store, "b"), Value::Integer(b));
        assert_eq!(store.client_no("b").unwrap(), b);
        assert_eq!(value_of(&store, "c"), Value::Null);
    }
}
