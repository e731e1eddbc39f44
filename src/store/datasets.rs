//! Datasets: the tables that csv.import fills and csv.export reads, kept in the same SQLite
//! file as tables named `ds_<name>` (every column TEXT, in header order), described in the
//! `datasets` table.
//!
//! An import writes its rows in batches (short transactions, so submissions are never held
//! up behind a long import), each row tagged with the importing task's id in the hidden
//! column `__taskbox_task`. Until the import is done its rows are invisible to exports; an
//! import that fails, is cancelled or is cut short by a crash is removed whole (here on
//! abort, or by recovery at the next start). Imports into one dataset run one at a time.

use std::collections::HashSet;
use std::sync::{Condvar, Mutex};

use rusqlite::{params, params_from_iter, OptionalExtension, Transaction};

use super::{Result, Store, StoreError};
use crate::task::{time, TaskId};

/// The hidden column naming the import that wrote a row.
const TASK_COLUMN: &str = "__taskbox_task";
/// The most columns a dataset may have (SQLite allows 2000 per table, one is ours).
pub const MAX_COLUMNS: usize = 1999;
/// The longest dataset name.
pub const MAX_NAME_LEN: usize = 64;

/// A dataset as described in the `datasets` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dataset {
    pub name: String,
    pub columns: Vec<String>,
}

/// Why an import or export cannot go on, in words for the task's message.
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

/// Whether `name` may name a dataset: letters, digits and `_`, not starting with a digit,
/// at most 64 characters.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit())
}

/// What became of one row offered to an import.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowOutcome {
    Inserted,
    Duplicate,
}

/// The datasets with an import running in this process.
#[derive(Default)]
pub(super) struct ImportLocks {
    busy: Mutex<HashSet<String>>,
    freed: Condvar,
}

impl ImportLocks {
    fn acquire(&self, name: &str) {
        let mut busy = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        while busy.contains(name) {
            busy = self.freed.wait(busy).unwrap_or_else(|e| e.into_inner());
        }
        busy.insert(name.to_string());
    }

    fn release(&self, name: &str) {
        let mut busy = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        busy.remove(name);
        self.freed.notify_all();
    }
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

fn table_of(name: &str) -> String {
    quote(&format!("ds_{name}"))
}

impl Store {
    /// A dataset's description, if it exists.
    pub fn dataset(&self, name: &str) -> Result<Option<Dataset>> {
        let conn = self.conn()?;
        let columns: Option<String> = conn
            .prepare_cached("SELECT columns FROM datasets WHERE name = ?1")?
            .query_row([name], |r| r.get(0))
            .optional()?;
        columns
            .map(|c| {
                let columns =
                    serde_json::from_str(&c).map_err(|e| StoreError::Internal(e.to_string()))?;
                Ok(Dataset {
                    name: name.to_string(),
                    columns,
                })
            })
            .transpose()
    }

    /// How many finished rows a dataset holds.
    pub fn dataset_len(&self, name: &str) -> Result<u64> {
        let conn = self.conn()?;
        let sql = format!(
            "SELECT count(*) FROM {} WHERE {TASK_COLUMN} NOT IN \
             (SELECT task_id FROM dataset_imports WHERE state = 'running')",
            table_of(name)
        );
        let count: i64 = conn.prepare_cached(&sql)?.query_row([], |r| r.get(0))?;
        Ok(count as u64)
    }

    /// Up to `limit` finished rows of a dataset after row `after` (0 for the first page), in
    /// import order: `(row id, cells of columns)`. Pages keep each read short, so a long
    /// export never pins the WAL.
    pub fn dataset_page(
        &self,
        name: &str,
        columns: &[String],
        after: i64,
        limit: usize,
    ) -> Result<Vec<(i64, Vec<String>)>> {
        let conn = self.conn()?;
        let select: Vec<String> = columns.iter().map(|c| quote(c)).collect();
        let sql = format!(
            "SELECT rowid, {} FROM {} WHERE rowid > ?1 AND {TASK_COLUMN} NOT IN \
             (SELECT task_id FROM dataset_imports WHERE state = 'running') ORDER BY rowid LIMIT ?2",
            select.join(", "),
            table_of(name)
        );
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params![after, limit as i64], |r| {
            let mut cells = Vec::with_capacity(columns.len());
            for i in 0..columns.len() {
                cells.push(r.get::<_, Option<String>>(i + 1)?.unwrap_or_default());
            }
            Ok((r.get(0)?, cells))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Starts importing rows with `header` into dataset `name` for task `task`, creating the
    /// dataset from the header if it does not exist. Waits while another import into the
    /// same dataset runs.
    pub fn begin_import(
        &self,
        task: TaskId,
        name: &str,
        header: &[String],
        key: &[String],
    ) -> Result<ImportSession, DatasetError> {
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
            if column == TASK_COLUMN {
                return Err(DatasetError::BadHeader(format!(
                    "the column name {TASK_COLUMN:?} is reserved"
                )));
            }
            if !seen.insert(column.as_str()) {
                return Err(DatasetError::BadHeader(format!(
                    "the header names the column {column:?} twice"
                )));
            }
        }
        for k in key {
            if !seen.contains(k.as_str()) {
                return Err(DatasetError::BadHeader(format!(
                    "the key column {k:?} is not in the header"
                )));
            }
        }
        self.inner.importing.acquire(name);
        let session = ImportSession {
            store: self.clone(),
            task,
            name: name.to_string(),
            insert_sql: String::new(),
            exists_sql: None,
            order: Vec::new(),
            key_positions: Vec::new(),
            finished: false,
        };
        // From here the session's Drop releases the lock and removes what it wrote.
        self.prepare_import(session, header, key)
    }

    fn prepare_import(
        &self,
        mut session: ImportSession,
        header: &[String],
        key: &[String],
    ) -> Result<ImportSession, DatasetError> {
        let name = session.name.clone();
        let table = table_of(&name);
        let columns = self.write(|tx| {
            let existing: Option<String> = tx
                .query_row(
                    "SELECT columns FROM datasets WHERE name = ?1",
                    [&name],
                    |r| r.get(0),
                )
                .optional()?;
            let columns: Vec<String> = match existing {
                Some(text) => {
                    serde_json::from_str(&text).map_err(|e| StoreError::Internal(e.to_string()))?
                }
                None => {
                    let defs: Vec<String> = header
                        .iter()
                        .map(|c| format!("{} TEXT", quote(c)))
                        .collect();
                    tx.execute_batch(&format!(
                        "CREATE TABLE {table} ({}, {TASK_COLUMN} INTEGER NOT NULL); \
                         CREATE INDEX {} ON {table} ({TASK_COLUMN});",
                        defs.join(", "),
                        quote(&format!("ds_{name}__task"))
                    ))?;
                    tx.execute(
                        "INSERT INTO datasets (name, columns, created_at) VALUES (?1, ?2, ?3)",
                        params![
                            name,
                            serde_json::to_string(header).unwrap_or_default(),
                            time::now_text()
                        ],
                    )?;
                    header.to_vec()
                }
            };
            Ok(columns)
        })?;
        let have: HashSet<&str> = columns.iter().map(String::as_str).collect();
        let given: HashSet<&str> = header.iter().map(String::as_str).collect();
        if have != given {
            return Err(DatasetError::HeaderMismatch {
                dataset: name,
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
        // Bind in the dataset's column order; `order[i]` is the header position of column i.
        session.order = columns
            .iter()
            .map(|c| header.iter().position(|h| h == c).unwrap_or_default())
            .collect();
        let placeholders: Vec<String> = (1..=columns.len() + 1).map(|i| format!("?{i}")).collect();
        session.insert_sql = format!(
            "INSERT INTO {table} ({}, {TASK_COLUMN}) VALUES ({})",
            columns
                .iter()
                .map(|c| quote(c))
                .collect::<Vec<_>>()
                .join(", "),
            placeholders.join(", ")
        );
        if !key.is_empty() {
            session.key_positions = key
                .iter()
                .map(|k| header.iter().position(|h| h == k).unwrap_or_default())
                .collect();
            let conditions: Vec<String> = key
                .iter()
                .enumerate()
                .map(|(i, k)| format!("{} = ?{}", quote(k), i + 1))
                .collect();
            session.exists_sql = Some(format!(
                "SELECT 1 FROM {table} WHERE {} LIMIT 1",
                conditions.join(" AND ")
            ));
            let index_name = quote(&format!(
                "ds_{name}__key_{:016x}",
                fnv1a(&key.join("\u{1f}"))
            ));
            let index_columns: Vec<String> = key.iter().map(|k| quote(k)).collect();
            self.write(|tx| {
                tx.execute_batch(&format!(
                    "CREATE INDEX IF NOT EXISTS {index_name} ON {table} ({})",
                    index_columns.join(", ")
                ))?;
                Ok(())
            })?;
        }
        let task = session.task;
        self.write(|tx| {
            tx.execute(
                "INSERT INTO dataset_imports (task_id, dataset, state) VALUES (?1, ?2, 'running')",
                params![task, name],
            )?;
            Ok(())
        })?;
        Ok(session)
    }
}

/// An import under way; see the module notes. Dropping it unfinished removes its rows.
pub struct ImportSession {
    store: Store,
    task: TaskId,
    name: String,
    insert_sql: String,
    exists_sql: Option<String>,
    /// For each dataset column, the position of its cell in a row as given (header order).
    order: Vec<usize>,
    key_positions: Vec<usize>,
    finished: bool,
}

impl ImportSession {
    /// Inserts a batch of rows (cells in header order, as many as the header has) in one
    /// transaction. A row whose key equals that of a stored row, or of an earlier row of
    /// this import, is a duplicate and is not inserted.
    pub fn insert(&mut self, rows: &[Vec<String>]) -> Result<Vec<RowOutcome>> {
        self.store.write(|tx| {
            let mut insert = tx.prepare_cached(&self.insert_sql)?;
            let mut exists = match &self.exists_sql {
                Some(sql) => Some(tx.prepare_cached(sql)?),
                None => None,
            };
            let mut outcomes = Vec::with_capacity(rows.len());
            for row in rows {
                if let Some(exists) = exists.as_mut() {
                    let key = self.key_positions.iter().map(|&p| row[p].as_str());
                    if exists.exists(params_from_iter(key))? {
                        outcomes.push(RowOutcome::Duplicate);
                        continue;
                    }
                }
                let cells = self
                    .order
                    .iter()
                    .map(|&p| rusqlite::types::Value::Text(row[p].clone()));
                let values =
                    cells.chain(std::iter::once(rusqlite::types::Value::Integer(self.task)));
                insert.execute(params_from_iter(values))?;
                outcomes.push(RowOutcome::Inserted);
            }
            Ok(outcomes)
        })
    }

    /// Makes the imported rows visible: the import is done.
    pub fn commit(mut self) -> Result<()> {
        let task = self.task;
        self.store.write(|tx| {
            tx.execute(
                "UPDATE dataset_imports SET state = 'done' WHERE task_id = ?1",
                [task],
            )?;
            Ok(())
        })?;
        self.finished = true;
        Ok(())
    }

    /// Removes every row this import wrote.
    pub fn abort(mut self) -> Result<()> {
        self.remove()
    }

    fn remove(&mut self) -> Result<()> {
        self.finished = true;
        let task = self.task;
        self.store.write(|tx| remove_unfinished_import(tx, task))
    }
}

impl Drop for ImportSession {
    fn drop(&mut self) {
        if !self.finished {
            if let Err(e) = self.remove() {
                // Recovery at the next start removes the rows instead.
                log::warn!(
                    "task {}: could not remove an unfinished import: {e}",
                    self.task
                );
            }
        }
        self.store.inner.importing.release(&self.name);
    }
}

/// Removes the rows of task `task`'s import if it did not finish.
pub(super) fn remove_unfinished_import(tx: &Transaction<'_>, task: TaskId) -> Result<()> {
    let dataset: Option<String> = tx
        .query_row(
            "SELECT dataset FROM dataset_imports WHERE task_id = ?1 AND state = 'running'",
            [task],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(name) = dataset {
        tx.execute(
            &format!("DELETE FROM {} WHERE {TASK_COLUMN} = ?1", table_of(&name)),
            [task],
        )?;
        tx.execute("DELETE FROM dataset_imports WHERE task_id = ?1", [task])?;
    }
    Ok(())
}

/// At start: removes every import that a stopped process left unfinished.
pub(super) fn remove_all_unfinished_imports(tx: &Transaction<'_>) -> Result<()> {
    let tasks: Vec<TaskId> = {
        let mut stmt = tx.prepare("SELECT task_id FROM dataset_imports WHERE state = 'running'")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    for task in tasks {
        remove_unfinished_import(tx, task)?;
    }
    Ok(())
}

/// FNV-1a: a stable, dependency-free hash for naming key indexes.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dataset_names_follow_the_rule() {
        assert!(is_valid_name("rates"));
        assert!(is_valid_name("_x9"));
        assert!(!is_valid_name("9x"));
        assert!(!is_valid_name("a-b"));
        assert!(!is_valid_name(""));
        assert!(!is_valid_name(&"a".repeat(65)));
        assert!(is_valid_name(&"a".repeat(64)));
    }
}
