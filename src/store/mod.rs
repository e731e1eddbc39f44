//! The store: the only place that speaks SQL. It owns the SQLite file, its connection pool
//! and pragmas, the schema, and every statement on tasks, files and datasets.
//!
//! **The interface** is this facade, in taskbox's own types (no rusqlite type crosses it):
//! the methods of [`Store`] that are `pub` (what the engine and the service use: claim,
//! start, progress, finish, recovery, a task's files and imports, the clock and the activity
//! counter) and those of [`Scoped`] (everything a client may reach, always within its
//! scope). A second store (PostgreSQL, for several nodes) implements the same verbs; what is
//! SQLite's own stays behind them: [`Durability`] and the pragmas (`sqlite.rs`), the one
//! writer thread and its group commit (`writer.rs`), the schema's versions (`migrate.rs`).
//! One file per verb: `submit`, `query`, `claim`, `finish`, `remove`, `recovery`, `files`
//! (with `file_reader`, `file_writer`), `datasets`, `import`, `dataset_update`,
//! `campaign_imports` and `tokens` (whose `TokenBook` the `token` commands use beside a
//! running server).
//!
//! A bound `LIMIT ?` or `OFFSET ?` is written `?N + 0`: SQLite's planner reads a bare
//! bound limit and then re-prepares the statement whenever the value changes; an
//! expression it does not (checked with `StatementStatus::RePrepare`).
//!
//! Every write goes through one writer thread ([`writer`]): writes that arrive together
//! share one IMMEDIATE transaction and one commit (group commit), and each is answered only
//! after that commit. Reads use the pool's connections and never block the writer (WAL);
//! only a read that pairs rows with what the store keeps in memory (a list's total, a
//! claim) waits for a commit in progress to be applied (see `memory`).

mod campaign_imports;
mod claim;
mod clients;
mod counts;
mod dataset_update;
mod datasets;
mod error;
mod file_reader;
mod file_writer;
mod files;
mod finish;
mod import;
pub(crate) mod limits;
mod memory;
mod migrate;
mod query;
mod recovery;
mod remove;
mod retention;
mod scope;
mod snapshot;
mod space;
mod sqlite;
mod submit;
mod task_ids;
mod task_uuid;
mod tokens;
mod writer;

use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use r2d2::{Pool, PooledConnection};
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::Connection;

use crate::change_counter::ChangeCounter;
use crate::clock::Clock;
#[cfg(any(test, feature = "internals"))]
use crate::clock::SystemClock;

pub use campaign_imports::{CampaignImport, CampaignQuery, MAX_CAMPAIGN_LEN};
pub use claim::{Claimed, QueuedStart};
pub use dataset_update::{UpdateOutcome, UpdateRow, UpdateSession};
pub use datasets::{
    is_valid_name as is_valid_dataset_name, Dataset, MAX_NAME_LEN as MAX_DATASET_NAME,
};
pub use error::{Refusal, StoreError};
pub use file_reader::FileReader;
pub use file_writer::FileWriter;
pub use files::StoredFile;
pub use finish::{Finish, Liveness, Progress};
pub use import::{DatasetError, ImportSession, RowOutcome};
pub use limits::StoreLimits;
pub use query::ListFilter;
pub use recovery::INTERRUPTED;
pub use remove::DeleteOutcome;
pub use scope::Scoped;
use sqlite::{lock_database, pragmas_of};
pub use sqlite::{Durability, Pragmas};
pub use submit::Submitted;
pub use tokens::{GenerationReader, NewToken, TokenBook, TokenRecord};

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// How long a connection waits for the write lock before reporting the database busy.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections in the pool when the caller does not size it (see `Store::open_sized`).
#[cfg(any(test, feature = "internals"))]
pub const DEFAULT_POOL_SIZE: u32 = 32;
/// Per-connection page cache, in KiB (SQLite's `cache_size` takes negative KiB). Small on
/// purpose: the server's memory must not grow with the number of connections.
const CACHE_KIB: i64 = 2048;

/// The store: cheap to clone, shared by every thread.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool<SqliteConnectionManager>,
    /// Rung on every change that may let a waiter proceed: a task submitted (the dispatcher
    /// claims it), a task finished (a worker slot is free, a DELETE may go on).
    activity: ChangeCounter,
    /// Datasets with an import running: imports into one dataset run one at a time.
    importing: import::ImportLocks,
    /// The clients' numbers, which the tasks' indexes hold.
    clients: clients::ClientNumbers,
    /// Every write goes through it (group commit); see `writer`.
    writer: writer::Writer,
    /// The service's clock: every "now" the store writes comes from it.
    clock: Arc<dyn Clock>,
    /// Quotas, the free-space floor, the snapshot bound.
    limits: StoreLimits,
    /// The directory of the database file, whose filesystem the floor is about.
    dir: std::path::PathBuf,
    /// Task ids to UUIDs and back.
    uuids: task_uuid::TaskUuids,
    /// The tasks per client and state, and the tasks reserved by a claim (see `memory`).
    memory: Arc<memory::Memory>,
    /// Held by a claim from its snapshot to its reservations (see `claim`).
    claiming: std::sync::Mutex<()>,
    /// Held for the life of the store so no second process serves the same file.
    _lock_file: File,
}

type Conn = PooledConnection<SqliteConnectionManager>;

/// A connection to the file at `path` (created if missing) in WAL mode, at the current
/// schema: how the store and the `token` commands first open a file.
fn open_migrated(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // The first statement opens (maybe creates) the WAL and its -shm file: on a full disk
    // this is where the start fails, and it must say so.
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .map_err(|e| StoreError::classify(&conn, e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Internal(format!(
            "journal_mode is {mode}, WAL could not be set"
        )));
    }
    migrate::apply(&conn)?;
    Ok(conn)
}

impl Store {
    /// Opens (creating if needed) the database file, applies the schema and checks that every
    /// pragma took effect on the pooled connections.
    #[cfg(any(test, feature = "internals"))]
    pub fn open(path: &Path, durability: Durability) -> Result<Store> {
        Store::open_sized(path, durability, DEFAULT_POOL_SIZE, Arc::new(SystemClock))
    }

    /// `open` with a pool of `connections`. Every thread that may hold one at once needs
    /// one: each HTTP thread (a download holds its connection while it streams), each
    /// worker, the dispatcher.
    #[cfg(any(test, feature = "internals"))]
    pub fn open_sized(
        path: &Path,
        durability: Durability,
        connections: u32,
        clock: Arc<dyn Clock>,
    ) -> Result<Store> {
        Store::open_with(path, durability, connections, clock, StoreLimits::default())
    }

    /// `open_sized` with `limits`.
    pub fn open_with(
        path: &Path,
        durability: Durability,
        connections: u32,
        clock: Arc<dyn Clock>,
        limits: StoreLimits,
    ) -> Result<Store> {
        let lock_file = lock_database(path)?;
        // WAL is a property of the file: switch it once, before the pool opens connections
        // that would otherwise race to do it.
        let uuids = {
            let conn = open_migrated(path)?;
            task_uuid::TaskUuids::load(&conn)?
        };
        let sync = durability.synchronous_level();
        let init = move |c: &mut Connection| -> rusqlite::Result<()> {
            c.busy_timeout(BUSY_TIMEOUT)?;
            c.execute_batch(&format!(
                "PRAGMA foreign_keys=ON; PRAGMA synchronous={sync}; PRAGMA cache_size=-{CACHE_KIB};"
            ))?;
            c.set_prepared_statement_cache_capacity(64);
            Ok(())
        };
        let mut write_conn = Connection::open(path)?;
        init(&mut write_conn)?;
        let write_pragmas = pragmas_of(&write_conn)?;
        let memory = Arc::new(memory::Memory::load(&write_conn)?);
        let clients = clients::ClientNumbers::load(&write_conn)?;
        let writer = writer::Writer::start(write_conn, memory.clone())
            .map_err(|e| StoreError::Internal(format!("cannot start the writer: {e}")))?;
        let manager = SqliteConnectionManager::file(path).with_init(init);
        let pool = Pool::builder()
            // A connection to a local file does not go stale; r2d2's check on every
            // checkout ran an empty batch through SQLite's parser for every read.
            .test_on_check_out(false)
            .max_size(connections.max(2))
            .min_idle(Some(2))
            .connection_timeout(BUSY_TIMEOUT)
            .build(manager)?;
        let store = Store {
            inner: Arc::new(Inner {
                pool,
                activity: ChangeCounter::default(),
                importing: import::ImportLocks::default(),
                clients,
                writer,
                clock,
                limits,
                dir: space::database_dir(path),
                uuids,
                memory,
                claiming: std::sync::Mutex::new(()),
                _lock_file: lock_file,
            }),
        };
        let pragmas = store.pragmas()?;
        let expected = Pragmas {
            journal_mode: "wal".into(),
            synchronous: sync,
            foreign_keys: true,
            busy_timeout_ms: BUSY_TIMEOUT.as_millis() as i64,
        };
        if pragmas != expected || write_pragmas != expected {
            return Err(StoreError::Internal(format!(
                "pragmas did not take effect: expected {expected:?}, got {pragmas:?} \
                 (pool) and {write_pragmas:?} (writer)"
            )));
        }
        Ok(store)
    }

    /// A store on the file at `path` (NORMAL, a small pool, the system clock) with `limits`:
    /// for the tests of a quota or a bound.
    #[cfg(test)]
    pub(crate) fn open_limited(path: &Path, limits: StoreLimits) -> Store {
        Store::open_with(path, Durability::Normal, 4, Arc::new(SystemClock), limits)
            .expect("a store opens")
    }

    /// The pragmas in force on a pooled connection (for the start-up check and tests).
    pub fn pragmas(&self) -> Result<Pragmas> {
        pragmas_of(&*self.conn()?)
    }

    /// Rung whenever a task is submitted or finishes; see [`ChangeCounter`].
    pub fn activity(&self) -> &ChangeCounter {
        &self.inner.activity
    }

    /// The clock the store (and the engine, through it) takes "now" from.
    pub fn clock(&self) -> &dyn Clock {
        &*self.inner.clock
    }

    /// The store's limits.
    pub fn limits(&self) -> &StoreLimits {
        &self.inner.limits
    }

    /// `PRAGMA integrity_check`: "ok" for a sound file.
    #[cfg(any(test, feature = "internals"))]
    pub fn integrity_check(&self) -> Result<String> {
        let conn = self.conn()?;
        Ok(conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?)
    }

    fn conn(&self) -> Result<Conn> {
        Ok(self.inner.pool.get()?)
    }

    /// Runs `f` in the writer's transaction (IMMEDIATE, shared with the writes that arrive
    /// with it) and returns its result once committed.
    fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnMut(&writer::JobTx<'_, '_>) -> Result<T> + Send + 'static,
    {
        self.inner.writer.write(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::{NewTask, Params, TaskId};
    use rusqlite::TransactionBehavior;

    /// The rows of `EXPLAIN` (`prefix` "") or `EXPLAIN QUERY PLAN` of `sql` with `values`
    /// bound: their opcodes (column 1), or the plan's steps (column 3).
    pub(super) fn explain(
        conn: &rusqlite::Connection,
        what: &str,
        sql: &str,
        values: &[rusqlite::types::Value],
    ) -> Vec<String> {
        let column = if what.is_empty() { 1 } else { 3 };
        let mut explain = conn.prepare(&format!("EXPLAIN {what} {sql}")).unwrap();
        let values = &values[..explain.parameter_count()];
        explain
            .query_map(rusqlite::params_from_iter(values), |r| r.get(column))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    /// The bundled SQLite is built as .cargo/config.toml says: a page cache per connection
    /// (no process-wide mutex at every page) and no memory statistics (no mutex at every
    /// allocation). A `LIBSQLITE3_FLAGS` of the environment would override it.
    #[test]
    fn sqlite_is_built_without_its_global_mutexes() {
        let conn = Connection::open_in_memory().unwrap();
        let options: Vec<String> = conn
            .prepare("SELECT compile_options FROM pragma_compile_options")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert!(
            !options.iter().any(|o| o == "ENABLE_MEMORY_MANAGEMENT"),
            "{options:?}"
        );
        assert!(
            options.iter().any(|o| o == "DEFAULT_MEMSTATUS=0"),
            "{options:?}"
        );
    }

    /// A task submitted, claimed and started by owner "me", as the engine does before its
    /// handler writes (for the tests of the verbs a handler uses).
    pub(super) fn running_task(store: &Store) -> TaskId {
        let task = store
            .submit(&NewTask::new("test", Params::new()))
            .unwrap()
            .task
            .id;
        assert_eq!(store.claim_due(1).unwrap().tasks.len(), 1);
        assert!(store.start(task, "default", "me").unwrap());
        task
    }

    fn pragmas_of(conn: &Connection) -> Pragmas {
        let get_i = |p: &str| {
            conn.query_row(&format!("PRAGMA {p}"), [], |r| r.get::<_, i64>(0))
                .unwrap()
        };
        Pragmas {
            journal_mode: conn
                .query_row("PRAGMA journal_mode", [], |r| r.get::<_, String>(0))
                .unwrap()
                .to_ascii_lowercase(),
            synchronous: get_i("synchronous"),
            foreign_keys: get_i("foreign_keys") == 1,
            busy_timeout_ms: get_i("busy_timeout"),
        }
    }

    #[test]
    fn every_pooled_connection_has_the_pragmas() {
        for (durability, level) in [(Durability::Full, 2), (Durability::Normal, 1)] {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(&dir.path().join("t.db"), durability).unwrap();
            // Hold several at once so the pool must open new ones, each through its init.
            let conns: Vec<Conn> = (0..6).map(|_| store.conn().unwrap()).collect();
            for conn in &conns {
                assert_eq!(
                    pragmas_of(conn),
                    Pragmas {
                        journal_mode: "wal".into(),
                        synchronous: level,
                        foreign_keys: true,
                        busy_timeout_ms: BUSY_TIMEOUT.as_millis() as i64,
                    }
                );
            }
        }
    }

    #[test]
    fn sqlite_failures_map_to_what_a_client_can_act_on() {
        use rusqlite::ffi;
        let failure =
            |code| StoreError::from(rusqlite::Error::SqliteFailure(ffi::Error::new(code), None));
        assert!(matches!(failure(ffi::SQLITE_FULL), StoreError::DiskFull));
        for code in [
            ffi::SQLITE_IOERR_WRITE,
            ffi::SQLITE_IOERR_FSYNC,
            ffi::SQLITE_IOERR_SHMSIZE,
            ffi::SQLITE_READONLY,
            ffi::SQLITE_READONLY_DBMOVED,
            ffi::SQLITE_CANTOPEN,
            ffi::SQLITE_BUSY,
        ] {
            assert!(
                matches!(failure(code), StoreError::Unavailable(_)),
                "code {code}: {:?}",
                failure(code)
            );
        }
        // For real: a write where SQLite may only read.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch("CREATE TABLE t (n INTEGER)")
            .unwrap();
        let read_only =
            Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        let refused = read_only
            .execute("INSERT INTO t (n) VALUES (1)", [])
            .unwrap_err();
        let refused = StoreError::classify(&read_only, refused);
        assert!(matches!(refused, StoreError::Unavailable(_)), "{refused:?}");
    }

    #[test]
    fn a_second_store_on_the_same_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let _first = Store::open(&path, Durability::Full).unwrap();
        match Store::open(&path, Durability::Full) {
            Err(StoreError::Locked(message)) => assert!(message.contains("in use"), "{message}"),
            Err(other) => panic!("expected Locked, got {other}"),
            Ok(_) => panic!("expected Locked, got a second store"),
        }
    }

    #[test]
    fn writes_start_immediate() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db"), Durability::Full).unwrap();
        // An IMMEDIATE transaction holds the write lock from its start: a second writer on
        // another connection cannot begin until it ends.
        let mut held = store.conn().unwrap();
        let tx = held
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .unwrap();
        let other = store.conn().unwrap();
        other.busy_timeout(Duration::from_millis(50)).unwrap();
        assert!(other.execute_batch("BEGIN IMMEDIATE").is_err());
        drop(tx);
        let ok = store.write(|tx| Ok(tx.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?));
        assert_eq!(ok.unwrap(), 1);
    }
}
