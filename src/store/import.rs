//! Imports into datasets. An import writes its rows in batches (short transactions, so
//! submissions are never held up behind a long import), each row tagged with the importing
//! task's id. Its rows stay invisible to exports until the import is `done`, which happens
//! in the transaction that records the task's end ([`finish_import`], called by
//! `Store::finish`). An import that fails or is cancelled removes its rows; one cut short
//! by a crash is removed by the next start's recovery. Every batch checks, in its
//! transaction, that the task is still this process's to run, so a task deleted or
//! interrupted meanwhile writes nothing more. Imports into one dataset run one at a time;
//! one waiting for its turn asks its caller, several times a second, whether to go on
//! waiting, so a cancellation or a shutdown ends the wait at once. A committed import keeps
//! its dataset's lock until its task's end is recorded (or the service's stop interrupts
//! it), so the next import or update of the dataset sees its rows.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};

use super::datasets::{
    column, insert_row_sql, is_valid_name, key_conditions, key_index_sql, parse_columns, table,
    MAX_COLUMNS,
};
use super::writer::InFlight;
use super::{Result, Store, StoreError};
use crate::task::TaskId;

/// Why an import cannot go on, in words for the task's message.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("the header's columns differ from those of dataset {dataset}: {}", describe_difference(.missing, .extra))]
    HeaderMismatch {
        dataset: String,
        missing: Vec<String>,
        extra: Vec<String>,
    },
    #[error("{0}")]
    BadHeader(String),
    /// The caller gave up waiting for another import into the dataset to end.
    #[error("the wait for another import into the dataset was given up")]
    Abandoned,
    /// A dataset to update does not exist (for this client).
    #[error("there is no dataset named {0:?}")]
    NoSuchDataset(String),
    /// A column named (a key) that the dataset does not have.
    #[error("dataset {dataset} has no column {column:?}; its columns are {}", .columns.join(", "))]
    UnknownColumn {
        dataset: String,
        column: String,
        columns: Vec<String>,
    },
    #[error("{0}")]
    Store(#[from] StoreError),
}

fn describe_difference(missing: &[String], extra: &[String]) -> String {
    let list = |v: &[String]| {
        v.iter()
            .map(|c| format!("{c:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match (missing.is_empty(), extra.is_empty()) {
        (false, false) => format!("missing {}; extra {}", list(missing), list(extra)),
        (false, true) => format!("missing {}", list(missing)),
        _ => format!("extra {}", list(extra)),
    }
}

impl From<rusqlite::Error> for DatasetError {
    fn from(e: rusqlite::Error) -> DatasetError {
        DatasetError::Store(e.into())
    }
}

/// What became of one row offered to an import.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowOutcome {
    Inserted,
    Duplicate,
}

/// How often an import waiting for a dataset's lock asks whether to go on waiting (besides
/// at each release): a cancellation or a shutdown ends the wait within this.
const LOCK_WAIT_TICK: Duration = Duration::from_millis(50);

/// The datasets locked in this process: by an import or an update running, or by a committed
/// import whose task's end is not recorded yet.
#[derive(Default)]
pub(super) struct ImportLocks {
    busy: Mutex<HashSet<String>>,
    freed: Condvar,
    /// The locks of committed imports whose tasks' ends are not recorded yet, by task: their
    /// rows become visible with that end, and an update or import let in before it would
    /// not see them (see `ImportSession::commit`).
    awaiting_end: Mutex<HashMap<TaskId, Vec<String>>>,
}

impl ImportLocks {
    /// Takes the lock on `name`, waiting while another import holds it for as long as
    /// `keep_waiting` says (asked before every look at the lock while it is held, every
    /// [`LOCK_WAIT_TICK`] at least). False: given up, the lock not taken.
    fn acquire(&self, name: &str, keep_waiting: &mut dyn FnMut() -> bool) -> bool {
        let lock = || self.busy.lock().unwrap_or_else(|e| e.into_inner());
        let mut busy = lock();
        while busy.contains(name) {
            // Asked without the mutex: it may write to the store, and take its time.
            drop(busy);
            if !keep_waiting() {
                return false;
            }
            busy = lock();
            if busy.contains(name) {
                busy = self
                    .freed
                    .wait_timeout(busy, LOCK_WAIT_TICK)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        }
        busy.insert(name.to_string());
        true
    }

    fn release(&self, name: &str) {
        let mut busy = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        busy.remove(name);
        self.freed.notify_all();
    }

    /// Releases the lock that task `task`'s committed import kept for its end, if any.
    pub(super) fn release_at_end(&self, task: TaskId) {
        let parked = self
            .awaiting_end
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&task);
        for name in parked.into_iter().flatten() {
            self.release(&name);
        }
    }
}

/// A dataset's lock (see [`ImportLocks`]), held until dropped or kept for a task's end.
pub(super) struct DatasetLock {
    store: Store,
    /// None once handed to `awaiting_end`.
    name: Option<String>,
}

impl DatasetLock {
    /// Keeps the lock past this value's life, until task `task`'s end is recorded (see
    /// `ImportLocks::release_at_end`).
    fn keep_until_end_of(mut self, task: TaskId) {
        if let Some(name) = self.name.take() {
            let locks = &self.store.inner.importing;
            let mut awaiting = locks.awaiting_end.lock().unwrap_or_else(|e| e.into_inner());
            awaiting.entry(task).or_default().push(name);
        }
    }
}

impl Drop for DatasetLock {
    fn drop(&mut self) {
        if let Some(name) = &self.name {
            self.store.inner.importing.release(name);
        }
    }
}

impl Store {
    /// Takes the lock on client `client`'s dataset `name`, which every import and update
    /// of it holds, waiting as `ImportLocks::acquire` does. None: given up.
    pub(super) fn lock_dataset(
        &self,
        client: &str,
        name: &str,
        keep_waiting: &mut dyn FnMut() -> bool,
    ) -> Option<DatasetLock> {
        // Datasets are one client's: the lock is on the client's name for it.
        let name = format!("{client}\0{name}");
        self.inner
            .importing
            .acquire(&name, keep_waiting)
            .then(|| DatasetLock {
                store: self.clone(),
                name: Some(name),
            })
    }
}

impl Store {
    /// Starts importing rows with `header` into client `client`'s dataset `name` for task
    /// `task` (run by `owner`), creating the dataset from the header if it does not exist.
    /// Waits while another import into the same dataset runs, as long as `keep_waiting`
    /// says (see `ImportLocks::acquire`); `Abandoned` when it says no.
    #[allow(clippy::too_many_arguments)]
    pub fn begin_import(
        &self,
        task: TaskId,
        owner: &str,
        client: &str,
        name: &str,
        header: &[String],
        key: &[String],
        keep_waiting: &mut dyn FnMut() -> bool,
    ) -> Result<ImportSession, DatasetError> {
        check_header(name, header, key)?;
        let Some(lock) = self.lock_dataset(client, name, keep_waiting) else {
            return Err(DatasetError::Abandoned);
        };
        let mut plan = ImportPlan {
            task,
            owner: owner.to_string(),
            ..ImportPlan::default()
        };
        let mut session = ImportSession {
            store: self.clone(),
            lock: Some(lock),
            plan: Arc::new(ImportPlan {
                task,
                ..ImportPlan::default()
            }),
            in_flight: InFlight::new(),
            finished: false,
        };
        // From here the session's Drop releases the lock and removes what it wrote.
        let now = self.clock().now_text();
        let (name_owned, header_owned) = (name.to_string(), header.to_vec());
        let client = client.to_string();
        let (dataset, columns) = self.write(move |tx| {
            let (name, header) = (&name_owned, &header_owned);
            let existing: Option<(i64, String)> = tx
                .query_row(
                    "SELECT id, columns FROM datasets WHERE client = ?1 AND name = ?2",
                    [&client, name],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let found = match existing {
                Some((id, columns)) => (id, parse_columns(&columns)?),
                None => {
                    let id: i64 = tx.query_row(
                        "INSERT INTO datasets (client, name, columns, created_at) VALUES (?1, ?2, ?3, ?4) RETURNING id",
                        params![client, name, serde_json::to_string(&header).unwrap_or_default(), now],
                        |r| r.get(0),
                    )?;
                    let defs: Vec<String> =
                        (0..header.len()).map(|i| format!("{} TEXT NOT NULL", column(i))).collect();
                    let table = table(id);
                    // No index on task_id: see `remove_import`.
                    tx.execute_batch(&format!(
                        "CREATE TABLE {table} (row_id INTEGER PRIMARY KEY, task_id INTEGER NOT NULL, {});",
                        defs.join(", ")
                    ))?;
                    (id, header.clone())
                }
            };
            // An import of this dataset not 'done' is dead: this process runs one at a time
            // and holds the lock, which a committed import keeps until its task's end makes
            // it done (one interrupted by the service's stop stays 'committed'). Its rows
            // must not count as duplicates.
            let dead: Vec<TaskId> = {
                let mut stmt = tx.prepare_cached(
                    "SELECT task_id FROM dataset_imports WHERE dataset_id = ?1 AND state <> 'done'",
                )?;
                let rows = stmt.query_map([found.0], |r| r.get(0))?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            for dead_task in dead {
                remove_import(tx, dead_task)?;
            }
            Ok(found)
        })?;
        let have: HashSet<&str> = columns.iter().map(String::as_str).collect();
        let given: HashSet<&str> = header.iter().map(String::as_str).collect();
        if have != given {
            return Err(DatasetError::HeaderMismatch {
                dataset: name.to_string(),
                missing: columns
                    .iter()
                    .filter(|c| !given.contains(c.as_str()))
                    .cloned()
                    .collect(),
                extra: header
                    .iter()
                    .filter(|c| !have.contains(c.as_str()))
                    .cloned()
                    .collect(),
            });
        }
        let position_in_header =
            |c: &String| header.iter().position(|h| h == c).unwrap_or_default();
        // `order[i]`: where dataset column i stands in the header (the sets are equal).
        plan.order = columns.iter().map(position_in_header).collect();
        let table = table(dataset);
        plan.insert_sql = insert_row_sql(dataset, columns.len());
        if !key.is_empty() {
            let key_columns: Vec<usize> = key
                .iter()
                .map(|k| columns.iter().position(|c| c == k).unwrap_or_default())
                .collect();
            plan.key_positions = key.iter().map(position_in_header).collect();
            plan.exists_sql = Some(format!(
                "SELECT 1 FROM {table} WHERE {} LIMIT 1",
                key_conditions(&key_columns, 1)
            ));
            let create_index = key_index_sql(dataset, &key_columns);
            self.write(move |tx| Ok(tx.execute_batch(&create_index)?))?;
        }
        let record_import = format!(
            "INSERT INTO dataset_imports (task_id, dataset_id, state, after_row) \
             VALUES (?1, ?2, 'running', (SELECT coalesce(max(row_id), 0) FROM {table}))"
        );
        self.write(move |tx| {
            tx.execute(&record_import, params![task, dataset])?;
            Ok(())
        })?;
        session.plan = Arc::new(plan);
        Ok(session)
    }
}

fn check_header(name: &str, header: &[String], key: &[String]) -> Result<(), DatasetError> {
    if !is_valid_name(name) {
        return Err(DatasetError::BadHeader(format!(
            "{name:?} is not a valid dataset name"
        )));
    }
    if header.len() > MAX_COLUMNS {
        return Err(DatasetError::BadHeader(format!(
            "the header has {} columns; a dataset holds at most {MAX_COLUMNS}",
            header.len()
        )));
    }
    let mut seen = HashSet::new();
    for (i, column) in header.iter().enumerate() {
        if column.is_empty() {
            return Err(DatasetError::BadHeader(format!(
                "column {} of the header has no name",
                i + 1
            )));
        }
        if !seen.insert(column.as_str()) {
            return Err(DatasetError::BadHeader(format!(
                "the header names the column {column:?} twice"
            )));
        }
    }
    if let Some(missing) = key.iter().find(|k| !seen.contains(k.as_str())) {
        return Err(DatasetError::BadHeader(format!(
            "the key column {missing:?} is not in the header"
        )));
    }
    Ok(())
}

/// An import under way; see the module notes. Dropping it before [`ImportSession::commit`]
/// removes its rows.
pub struct ImportSession {
    store: Store,
    /// Released as the session drops (after its Drop), or at the task's end once committed.
    lock: Option<DatasetLock>,
    plan: Arc<ImportPlan>,
    /// The batch sent and not yet answered.
    in_flight: InFlight<Vec<RowOutcome>>,
    finished: bool,
}

/// What every batch of an import needs, shared with the writer's jobs.
#[derive(Default)]
struct ImportPlan {
    task: TaskId,
    owner: String,
    insert_sql: String,
    exists_sql: Option<String>,
    /// For each dataset column, the position of its cell in a row as given (header order).
    order: Vec<usize>,
    key_positions: Vec<usize>,
}

impl ImportSession {
    /// Sends a batch of rows (cells in header order, as many as the header has) to be
    /// inserted in one transaction, and returns at once with the outcomes of the batch sent
    /// before it: one batch is written while the caller reads the next, so reading the file
    /// and writing the database overlap. A row whose key equals that of a stored row, or of
    /// an earlier row of this import, is a duplicate and is not inserted. Fails with
    /// `NotFound` once the task is no longer this process's to run (seen by the batch after
    /// the one that found it, or by [`ImportSession::commit`]).
    pub fn insert(&mut self, rows: Vec<Vec<String>>) -> Result<Vec<RowOutcome>> {
        let plan = self.plan.clone();
        let earlier = self.in_flight.send(&self.store.inner.writer, move |tx| {
            insert_rows(tx, &plan, &rows)
        })?;
        Ok(earlier.unwrap_or_default())
    }

    /// The whole file is read: waits for the last batch (and returns its outcomes), then
    /// marks the import committed. The rows become visible when the task's end is recorded.
    pub fn commit(mut self) -> Result<Vec<RowOutcome>> {
        let last = self.in_flight.wait()?.unwrap_or_default();
        let (task, owner) = (self.plan.task, self.plan.owner.clone());
        self.store.write(move |tx| {
            check_still_running(tx, task, &owner)?;
            tx.execute(
                "UPDATE dataset_imports SET state = 'committed' WHERE task_id = ?1 AND state = 'running'",
                [task],
            )?;
            Ok(())
        })?;
        self.finished = true;
        // Held until the end that makes the rows visible: an update or import let in
        // before it would not see them.
        if let Some(lock) = self.lock.take() {
            lock.keep_until_end_of(task);
        }
        Ok(last)
    }
}

/// Inserts one batch of an import within a transaction; see `ImportSession::insert`.
fn insert_rows(
    tx: &Connection,
    plan: &ImportPlan,
    rows: &[Vec<String>],
) -> Result<Vec<RowOutcome>> {
    check_still_running(tx, plan.task, &plan.owner)?;
    let mut insert = tx.prepare_cached(&plan.insert_sql)?;
    let mut exists = match &plan.exists_sql {
        Some(sql) => Some(tx.prepare_cached(sql)?),
        None => None,
    };
    let mut outcomes = Vec::with_capacity(rows.len());
    for row in rows {
        if let Some(exists) = exists.as_mut() {
            for (i, &p) in plan.key_positions.iter().enumerate() {
                exists.raw_bind_parameter(i + 1, row[p].as_str())?;
            }
            if exists.raw_query().next()?.is_some() {
                outcomes.push(RowOutcome::Duplicate);
                continue;
            }
        }
        insert.raw_bind_parameter(1, plan.task)?;
        for (i, &p) in plan.order.iter().enumerate() {
            insert.raw_bind_parameter(i + 2, row[p].as_str())?;
        }
        insert.raw_execute()?;
        outcomes.push(RowOutcome::Inserted);
    }
    Ok(outcomes)
}

impl Drop for ImportSession {
    fn drop(&mut self) {
        // The removal below is queued after the batch in flight, so it removes that too.
        if !self.finished {
            let task = self.plan.task;
            if let Err(e) = self.store.write(move |tx| remove_import(tx, task)) {
                // The next start's recovery removes the rows instead.
                log::warn!("task {task}: could not remove an unfinished import: {e}");
            }
        }
        // The lock, if still here, is released as `lock` drops, after this.
    }
}

pub(super) fn check_still_running(tx: &Connection, task: TaskId, owner: &str) -> Result<()> {
    let running = tx
        .prepare_cached("SELECT 1 FROM tasks WHERE id = ?1 AND lease_owner = ?2 AND state = 4")?
        .exists(params![task, owner])?;
    if running {
        Ok(())
    } else {
        Err(StoreError::NotFound)
    }
}

/// Within the transaction that records task `task`'s end: its committed import is done.
pub(super) fn finish_import(tx: &Connection, task: TaskId) -> Result<()> {
    tx.prepare_cached(
        "UPDATE dataset_imports SET state = 'done' WHERE task_id = ?1 AND state = 'committed'",
    )?
    .execute([task])?;
    Ok(())
}

/// Removes the rows of task `task`'s import unless it is done.
pub(super) fn remove_import(tx: &Connection, task: TaskId) -> Result<()> {
    let import: Option<(i64, i64)> = tx
        .prepare_cached(
            "SELECT dataset_id, after_row FROM dataset_imports WHERE task_id = ?1 AND state <> 'done'",
        )?
        .query_row([task], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    if let Some((dataset, after_row)) = import {
        // Imports into a dataset run one at a time, so this import's rows all come after the
        // last row stored when it began: a range of row ids, not a scan of the table.
        tx.execute(
            &format!(
                "DELETE FROM {} WHERE row_id > ?1 AND task_id = ?2",
                table(dataset)
            ),
            params![after_row, task],
        )?;
        tx.execute("DELETE FROM dataset_imports WHERE task_id = ?1", [task])?;
    }
    Ok(())
}

/// At start: removes every import that a stopped process left unfinished.
pub(super) fn remove_unfinished_imports(tx: &Connection) -> Result<()> {
    let tasks: Vec<TaskId> = {
        let mut stmt = tx.prepare("SELECT task_id FROM dataset_imports WHERE state <> 'done'")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    for task in tasks {
        remove_import(tx, task)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::running_task;
    use crate::store::Durability;
    use crate::store::Finish;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// A store with one claimed task, run by owner "me".
    fn store_with_running_task() -> (tempfile::TempDir, Store, TaskId) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db"), Durability::Normal).unwrap();
        let task = running_task(&store);
        (dir, store, task)
    }

    fn rows(n: usize) -> Vec<Vec<String>> {
        (0..n).map(|i| strings(&[&i.to_string(), "x"])).collect()
    }

    fn visible(store: &Store) -> u64 {
        store
            .dataset_len(&store.dataset("default", "t").unwrap().unwrap())
            .unwrap()
    }

    /// An import into dataset "t" (columns k, v) for `task`, run by "me".
    fn begin(store: &Store, task: TaskId) -> ImportSession {
        store
            .begin_import(
                task,
                "me",
                "default",
                "t",
                &strings(&["k", "v"]),
                &[],
                &mut || true,
            )
            .unwrap()
    }

    fn finish(store: &Store, task: TaskId) -> bool {
        store
            .finish(task, "default", "me", Finish::import_success())
            .unwrap()
    }

    #[test]
    fn rows_become_visible_only_with_the_tasks_end() {
        let (_dir, store, task) = store_with_running_task();
        let mut import = begin(&store, task);
        import.insert(rows(3)).unwrap();
        assert_eq!(visible(&store), 0);
        import.commit().unwrap();
        assert_eq!(visible(&store), 0, "committed is not yet done");
        assert!(finish(&store, task));
        assert_eq!(visible(&store), 3);
    }

    #[test]
    fn an_interrupted_task_writes_no_more_rows_and_leaves_none() {
        let (_dir, store, task) = store_with_running_task();
        let mut import = begin(&store, task);
        import.insert(rows(3)).unwrap();
        // The grace period ends: the task is no longer this process's.
        assert_eq!(store.interrupt_running(Some("me")).unwrap(), vec![task]);
        // The batch of 3 was written before; the next one is refused, as its commit says.
        assert_eq!(import.insert(rows(2)).unwrap().len(), 3);
        assert!(matches!(import.commit(), Err(StoreError::NotFound)));
        assert!(!finish(&store, task));
        assert_eq!(visible(&store), 0);
        let left: i64 = store
            .conn()
            .unwrap()
            .query_row("SELECT count(*) FROM ds_1", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 0, "the rows of the import were removed");
    }

    #[test]
    fn removing_an_unfinished_import_keeps_the_rows_of_earlier_ones() {
        let (_dir, store, first) = store_with_running_task();
        let mut import = begin(&store, first);
        import.insert(rows(3)).unwrap();
        import.commit().unwrap();
        assert!(finish(&store, first));
        let second = running_task(&store);
        let mut import = begin(&store, second);
        import.insert(rows(4)).unwrap();
        import.commit().unwrap();
        // The process dies before the second import's end is recorded.
        assert_eq!(store.interrupt_running(None).unwrap(), vec![second]);
        let stored: i64 = store
            .conn()
            .unwrap()
            .query_row("SELECT count(*) FROM ds_1", [], |r| r.get(0))
            .unwrap();
        assert_eq!(stored, 3);
        assert_eq!(visible(&store), 3);
    }

    #[test]
    fn a_crash_after_the_whole_file_was_read_leaves_no_rows() {
        let (_dir, store, task) = store_with_running_task();
        let mut import = begin(&store, task);
        import.insert(rows(3)).unwrap();
        import.commit().unwrap();
        // The process dies before the task's end is recorded; the next start recovers.
        assert_eq!(store.interrupt_running(None).unwrap(), vec![task]);
        assert_eq!(visible(&store), 0);
        let imports: i64 = store
            .conn()
            .unwrap()
            .query_row("SELECT count(*) FROM dataset_imports", [], |r| r.get(0))
            .unwrap();
        assert_eq!(imports, 0);
    }

    #[test]
    fn a_committed_import_keeps_its_dataset_until_its_end_makes_the_rows_visible() {
        let (_dir, store, task) = store_with_running_task();
        let mut import = begin(&store, task);
        import.insert(rows(3)).unwrap();
        import.commit().unwrap();
        // The rows are invisible until the end: an update let in now would not see them.
        assert_eq!(visible(&store), 0);
        let mut asked = 0;
        let taken = store.lock_dataset("default", "t", &mut || {
            asked += 1;
            false
        });
        assert!(taken.is_none());
        assert_eq!(asked, 1);
        assert!(finish(&store, task));
        assert_eq!(visible(&store), 3);
        let lock = store.lock_dataset("default", "t", &mut || panic!("released at the end"));
        assert!(lock.is_some());
    }

    #[test]
    fn an_import_interrupted_after_its_commit_releases_its_dataset() {
        let (_dir, store, task) = store_with_running_task();
        let mut import = begin(&store, task);
        import.insert(rows(3)).unwrap();
        import.commit().unwrap();
        assert_eq!(store.interrupt_running(Some("me")).unwrap(), vec![task]);
        let lock = store.lock_dataset("default", "t", &mut || panic!("released by the stop"));
        assert!(lock.is_some());
        drop(lock);
        // Its rows, left for the next start to remove, are not duplicates of a later
        // import's.
        let next = running_task(&store);
        let mut import = store
            .begin_import(
                next,
                "me",
                "default",
                "t",
                &strings(&["k", "v"]),
                &strings(&["k"]),
                &mut || true,
            )
            .unwrap();
        import.insert(rows(3)).unwrap();
        assert_eq!(import.commit().unwrap(), vec![RowOutcome::Inserted; 3]);
    }

    #[test]
    fn headers_that_cannot_make_a_dataset() {
        let h = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(check_header("t", &h(&["id", "ID", "rowid", " a\"b"]), &h(&["ID"])).is_ok());
        assert!(check_header("t", &h(&["a", "a"]), &[]).is_err());
        assert!(check_header("t", &h(&["a", ""]), &[]).is_err());
        assert!(check_header("t", &h(&["a"]), &h(&["b"])).is_err());
        assert!(check_header("t", &vec!["c".to_string(); MAX_COLUMNS + 1], &[]).is_err());
    }

    #[test]
    fn a_wait_for_the_lock_ends_when_its_caller_gives_up() {
        let locks = ImportLocks::default();
        assert!(locks.acquire("d", &mut || panic!("a free lock is not waited for")));
        // Held: asked at once and again every tick, until it says no.
        let mut asked = 0;
        let started = std::time::Instant::now();
        let taken = locks.acquire("d", &mut || {
            asked += 1;
            asked < 3
        });
        assert!(!taken);
        assert_eq!(asked, 3);
        assert!(
            started.elapsed() < LOCK_WAIT_TICK * 20,
            "{:?}",
            started.elapsed()
        );
        // Given up, it holds nothing: once released, the next taker gets the lock at once.
        locks.release("d");
        assert!(locks.acquire("d", &mut || panic!("free again")));
        // Another dataset is not held up.
        assert!(locks.acquire("e", &mut || panic!("another dataset")));
    }

    #[test]
    fn a_waiting_import_takes_the_lock_once_it_is_released() {
        let locks = Arc::new(ImportLocks::default());
        assert!(locks.acquire("d", &mut || true));
        let releaser = {
            let locks = locks.clone();
            std::thread::spawn(move || {
                std::thread::sleep(LOCK_WAIT_TICK);
                locks.release("d");
            })
        };
        let mut asked = 0;
        assert!(locks.acquire("d", &mut || {
            asked += 1;
            true
        }));
        assert!(asked >= 1);
        releaser.join().unwrap();
    }
}
