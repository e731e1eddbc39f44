//! Access tokens as the database keeps them: the hash of each secret, whose it is, when it
//! expires and whether it was revoked. The server reads them (`Store::tokens`, and the one
//! row `Store::token_generation` that tells it they changed); the `token` commands change
//! them through a [`TokenBook`], which opens the file beside a running server (it takes no
//! lock: SQLite's own locking serializes its few writes with the server's).

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::sqlite::Durability;
use super::{Conn, Result, Store, StoreError};

/// A token as stored (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// Its id: the first part of the token's text, and what `token revoke` names.
    pub id: i64,
    /// SHA-256 of its secret.
    pub secret_hash: [u8; 32],
    /// The user it stands for.
    pub user_id: i64,
    /// That user's name.
    pub user_name: String,
    /// The user's client (tenant).
    pub client: String,
    /// Whether it sees every client.
    pub admin: bool,
    /// UTC, `YYYY-MM-DDTHH:MM:SS`.
    pub created_at: String,
    /// Unix seconds after which it is refused; `None`: never.
    pub expires_at: Option<i64>,
    /// When it was revoked (UTC), if it was.
    pub revoked_at: Option<String>,
}

/// A token to store.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// SHA-256 of its secret.
    pub secret_hash: [u8; 32],
    /// The user it stands for.
    pub user_id: i64,
    /// That user's name.
    pub user_name: String,
    /// The user's client.
    pub client: String,
    /// Whether it sees every client.
    pub admin: bool,
    /// Unix seconds after which it is refused.
    pub expires_at: Option<i64>,
}

const COLUMNS: &str =
    "id, secret_hash, user_id, user_name, client, admin, created_at, expires_at, revoked_at";

fn record(row: &Row<'_>) -> rusqlite::Result<TokenRecord> {
    let hash: Vec<u8> = row.get(1)?;
    let mut secret_hash = [0u8; 32];
    // The schema's CHECK keeps it 32 bytes; anything else would match no secret.
    if hash.len() == 32 {
        secret_hash.copy_from_slice(&hash);
    }
    Ok(TokenRecord {
        id: row.get(0)?,
        secret_hash,
        user_id: row.get(2)?,
        user_name: row.get(3)?,
        client: row.get(4)?,
        admin: row.get(5)?,
        created_at: row.get(6)?,
        expires_at: row.get(7)?,
        revoked_at: row.get(8)?,
    })
}

fn all(conn: &Connection) -> Result<Vec<TokenRecord>> {
    let mut stmt = conn.prepare_cached(&format!("SELECT {COLUMNS} FROM tokens ORDER BY id"))?;
    let rows = stmt.query_map([], record)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

fn generation(conn: &Connection) -> Result<i64> {
    Ok(conn
        .prepare_cached("SELECT n FROM token_generation WHERE only = 1")?
        .query_row([], |r| r.get(0))?)
}

/// Reads the token generation, on every request, on a connection of its own (taken from the
/// pool once and kept): the read never waits for a pooled connection, and a burst of
/// requests does not grow the pool.
pub struct GenerationReader {
    conn: Mutex<Conn>,
}

impl GenerationReader {
    /// A number that moves whenever a token is created or revoked, by any process.
    pub fn read(&self) -> Result<i64> {
        generation(&self.conn.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Store {
    /// A reader of the token generation; see [`GenerationReader`].
    pub fn generation_reader(&self) -> Result<GenerationReader> {
        Ok(GenerationReader {
            conn: Mutex::new(self.conn()?),
        })
    }

    /// A number that moves whenever a token is created or revoked, by any process.
    pub fn token_generation(&self) -> Result<i64> {
        generation(&*self.conn()?)
    }

    /// Every token (revoked and expired ones too), with the generation they were read at.
    pub fn tokens(&self) -> Result<(i64, Vec<TokenRecord>)> {
        let mut conn = self.conn()?;
        // One snapshot for both, so the generation is exactly that of the list.
        let tx = conn.transaction()?;
        let result = (generation(&tx)?, all(&tx)?);
        tx.commit()?;
        Ok(result)
    }
}

/// The tokens of a database file, opened by the `token` commands.
pub struct TokenBook {
    conn: Connection,
}

impl TokenBook {
    /// Opens (creating it if missing, at the current schema) the database at `path`. A
    /// server may be running on it, unless the file needs a schema upgrade: an upgrade
    /// may rebuild tables under a server of the older version, which would go on with
    /// statements of the old schema. Then the file must be free (`Locked` otherwise).
    pub fn open(path: &Path) -> Result<TokenBook> {
        let _upgrading = if super::migrate::is_current(&Connection::open(path)?)? {
            None
        } else {
            Some(super::sqlite::lock_database(path).map_err(|e| match e {
                StoreError::Locked(_) => StoreError::Locked(format!(
                    "{} needs a schema upgrade and a taskbox server is running on it: stop \
                     that server (or start this version's) before managing tokens",
                    path.display()
                )),
                other => other,
            })?)
        };
        let conn = super::open_migrated(path)?;
        conn.execute_batch(&format!(
            "PRAGMA foreign_keys=ON; PRAGMA synchronous={};",
            Durability::Full.synchronous_level()
        ))?;
        Ok(TokenBook { conn })
    }

    /// Stores a token; its id.
    pub fn create(&self, new: &NewToken, created_at: &str) -> Result<i64> {
        self.conn.execute(
            "INSERT INTO tokens (secret_hash, user_id, user_name, client, admin, created_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                &new.secret_hash[..],
                new.user_id,
                new.user_name,
                new.client,
                new.admin,
                created_at,
                new.expires_at
            ],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Every token, oldest first.
    pub fn list(&self) -> Result<Vec<TokenRecord>> {
        all(&self.conn)
    }

    /// Revokes token `id` at `now`. `Ok(None)` when there is no such token; the record as
    /// it now is otherwise (revoking twice keeps the first time).
    pub fn revoke(&self, id: i64, now: &str) -> Result<Option<TokenRecord>> {
        self.conn.execute(
            "UPDATE tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
            params![id, now],
        )?;
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM tokens WHERE id = ?1"),
                [id],
                record,
            )
            .optional()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The token commands upgrade a file's schema only while no server holds it: an older
    /// server would go on with statements of the old schema.
    #[test]
    fn a_file_to_upgrade_is_not_upgraded_under_a_running_server() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let version = || -> i64 {
            Connection::open(&path)
                .unwrap()
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .unwrap()
        };
        let server = super::super::sqlite::lock_database(&path).unwrap();
        let refused = TokenBook::open(&path).err().unwrap();
        assert!(matches!(refused, StoreError::Locked(_)), "{refused}");
        assert!(
            refused.to_string().contains("needs a schema upgrade"),
            "{refused}"
        );
        assert_eq!(version(), 0, "nothing was upgraded");
        drop(server);
        let book = TokenBook::open(&path).unwrap();
        assert!(version() > 0);
        // At the current schema, a running server does not stop the token commands.
        let _server = super::super::sqlite::lock_database(&path).unwrap();
        drop(book);
        TokenBook::open(&path).unwrap();
    }

    fn new_token(client: &str) -> NewToken {
        NewToken {
            secret_hash: [7; 32],
            user_id: 5,
            user_name: "Smith, John".into(),
            client: client.into(),
            admin: false,
            expires_at: None,
        }
    }

    #[test]
    fn a_token_made_beside_a_running_store_is_seen_by_it_with_a_new_generation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let store = Store::open(&path, Durability::Full).unwrap();
        let (before, none) = store.tokens().unwrap();
        assert!(none.is_empty());

        let book = TokenBook::open(&path).unwrap();
        let id = book
            .create(&new_token("acme"), "2026-12-07T10:00:00")
            .unwrap();
        let (after, tokens) = store.tokens().unwrap();
        assert!(after > before);
        assert_eq!(tokens.len(), 1);
        assert_eq!(tokens[0].id, id);
        assert_eq!(tokens[0].client, "acme");
        assert_eq!(tokens[0].secret_hash, [7; 32]);
        assert_eq!(store.token_generation().unwrap(), after);

        let revoked = book.revoke(id, "2026-12-07T11:00:00").unwrap().unwrap();
        assert_eq!(revoked.revoked_at.as_deref(), Some("2026-12-07T11:00:00"));
        assert!(store.token_generation().unwrap() > after);
        // A second revocation keeps the first time; an unknown id is None.
        let again = book.revoke(id, "2026-12-08T00:00:00").unwrap().unwrap();
        assert_eq!(again.revoked_at.as_deref(), Some("2026-12-07T11:00:00"));
        assert!(book
            .revoke(id + 1, "2026-12-08T00:00:00")
            .unwrap()
            .is_none());
        assert_eq!(book.list().unwrap().len(), 1);
    }
}
