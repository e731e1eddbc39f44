//! What is SQLite's own and no other store would share: how hard a commit is pushed to the
//! disk ([`Durability`]), the pragmas every connection must have (checked at start), and
//! the lock file that keeps a second process off the same database file.

use std::fs::File;
use std::path::Path;

use rusqlite::Connection;

use super::{Result, StoreError};

/// How hard a commit is pushed to the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// `synchronous=FULL`: a commit survives a process crash and a power loss.
    Full,
    /// `synchronous=NORMAL`: a commit survives a process crash; a power loss may roll back
    /// the last commits (never corrupts the file).
    Normal,
}

impl Durability {
    /// The durability named `full` or `normal` (any case).
    pub fn parse(text: &str) -> Option<Durability> {
        match text.to_ascii_lowercase().as_str() {
            "full" => Some(Durability::Full),
            "normal" => Some(Durability::Normal),
            _ => None,
        }
    }

    /// The value of `PRAGMA synchronous` that SQLite reports for this setting.
    pub fn synchronous_level(self) -> i64 {
        match self {
            Durability::Full => 2,
            Durability::Normal => 1,
        }
    }
}

pub(super) fn pragmas_of(conn: &Connection) -> Result<Pragmas> {
    let get_i = |p: &str| conn.query_row(&format!("PRAGMA {p}"), [], |r| r.get::<_, i64>(0));
    Ok(Pragmas {
        journal_mode: conn
            .query_row("PRAGMA journal_mode", [], |r| r.get::<_, String>(0))?
            .to_ascii_lowercase(),
        synchronous: get_i("synchronous")?,
        foreign_keys: get_i("foreign_keys")? == 1,
        busy_timeout_ms: get_i("busy_timeout")?,
    })
}

/// The pragmas that matter, as read back from a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pragmas {
    pub journal_mode: String,
    pub synchronous: i64,
    pub foreign_keys: bool,
    pub busy_timeout_ms: i64,
}

/// Takes an exclusive lock on `<db>.lock` so a second taskbox on the same file refuses to
/// start instead of "recovering" the first one's running tasks.
pub(super) fn lock_database(path: &Path) -> Result<File> {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| {
            StoreError::Unavailable(format!(
                "cannot open {}: {e}",
                Path::new(&lock_path).display()
            ))
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Locked(format!(
            "{} is in use by another taskbox process",
            path.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(StoreError::Unavailable(format!(
            "cannot lock {}: {e}",
            Path::new(&lock_path).display()
        ))),
    }
}
