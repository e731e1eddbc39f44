//! `StoreError`: what went wrong in the store, as facts the layers above can act on, and
//! how SQLite's errors become them.

use rusqlite::{Connection, ErrorCode};

/// What went wrong in the store, as facts the layers above can act on.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// The disk (or the file's quota) is full: nothing was stored.
    #[error("the disk holding the database is full")]
    DiskFull,
    /// The database cannot be used right now (locked too long, read-only, I/O error):
    /// the same request may succeed later.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// An Idempotency-Key was reused for a different task.
    #[error("idempotency key reused for a different task")]
    IdempotencyConflict,
    /// Another process holds the database.
    #[error("{0}")]
    Locked(String),
    /// A limit of the store refused the write: nothing was stored.
    #[error("{0}")]
    Refused(Refusal),
    #[error("database error: {0}")]
    Internal(String),
}

/// Which of the store's limits refused a write (see `StoreLimits`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The client's stored files would pass its quota of `limit` bytes.
    #[error("the client's files would pass their quota of {limit} bytes")]
    BytesQuota {
        /// The quota.
        limit: u64,
    },
    /// The client has `limit` tasks waiting or running already.
    #[error("the client has {limit} unfinished tasks already")]
    UnfinishedQuota {
        /// The quota.
        limit: u64,
    },
    /// The database's filesystem has `free` bytes left, under the floor of `floor`.
    #[error("{free} bytes free on the database's disk, under the floor of {floor}")]
    FreeSpace {
        /// Free bytes (what an unprivileged process may use).
        free: u64,
        /// The floor.
        floor: u64,
    },
}

impl From<rusqlite::Error> for StoreError {
    fn from(err: rusqlite::Error) -> StoreError {
        if let rusqlite::Error::QueryReturnedNoRows = err {
            return StoreError::NotFound;
        }
        match err.sqlite_error_code() {
            Some(ErrorCode::DiskFull) => StoreError::DiskFull,
            Some(
                ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::ReadOnly
                | ErrorCode::CannotOpen
                | ErrorCode::SystemIoFailure
                | ErrorCode::NoLargeFileSupport
                | ErrorCode::OutOfMemory,
            ) => StoreError::Unavailable(err.to_string()),
            _ => StoreError::Internal(err.to_string()),
        }
    }
}

impl StoreError {
    /// `err`, which `conn` just returned, looking at the OS error behind an I/O failure.
    /// SQLite says SQLITE_FULL only when writing pages runs out of space; out of space while
    /// growing its shared-memory file (`-shm`: the first read after the file was removed,
    /// a WAL past about 4000 pages), or out of quota (EDQUOT) anywhere, reach it as a plain
    /// "disk I/O error". Its `sqlite3_system_errno` is set by every such failure, so it
    /// is fresh for an I/O error just returned (and only then, so only then it is read).
    #[allow(unsafe_code)] // the one call below, with its SAFETY note
    pub(super) fn classify(conn: &Connection, err: rusqlite::Error) -> StoreError {
        if err.sqlite_error_code() == Some(ErrorCode::SystemIoFailure) {
            // SAFETY: the handle is valid while `conn` is borrowed; the call only reads it.
            let errno = unsafe { rusqlite::ffi::sqlite3_system_errno(conn.handle()) };
            let kind = std::io::Error::from_raw_os_error(errno).kind();
            if matches!(
                kind,
                std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
            ) {
                return StoreError::DiskFull;
            }
        }
        err.into()
    }
}

impl From<r2d2::Error> for StoreError {
    fn from(err: r2d2::Error) -> StoreError {
        StoreError::Unavailable(err.to_string())
    }
}
