//! Updates of a dataset's rows by key (the kind `dataset.update`). Each row offered names
//! its key values and the cells to set: the rows whose key columns equal those values have
//! those cells set where they differ; with upsert, a key no row has makes a new row (its
//! other cells empty, tagged with the updating task's id). Lookups go through an index on
//! the key columns, made when an update first needs it (named after the columns'
//! positions, shared with csv.import's for the same key), so no batch scans the table.
//!
//! Batches are applied in the writer's transactions, one in flight while the caller reads
//! the next (as an import's are), and each is kept once committed: an update has no rows
//! of its own to take back, so one stopped midway (cancelled, failed, interrupted) keeps
//! the batches it applied. Every batch checks that the task is still this process's to
//! run. An update holds the dataset's lock for its whole run, as an import does: it never
//! runs beside an import or another update of the same dataset, and only ever sees (and
//! matches) rows of finished imports.

use std::sync::Arc;

use rusqlite::Connection;

use super::datasets::{column, insert_row_sql, key_conditions, key_index_sql, table, visible_row};
use super::import::{check_still_running, DatasetLock};
use super::writer::InFlight;
use super::{Dataset, DatasetError, Result, Store};
use crate::task::TaskId;

/// One record to apply: its key values (in the key's order) and the cells it sets, by
/// column position (none of them a key column).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateRow {
    pub key: Vec<String>,
    pub cells: Vec<(usize, String)>,
}

/// What became of one row offered to an update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateOutcome {
    /// At least one matching row had a cell changed.
    Changed,
    /// Rows match, and already hold every cell it sets.
    Unchanged,
    /// No row matched; with upsert, one was made.
    Created,
    /// No row matched, and without upsert none was made.
    NoSuchRow,
}

/// An update under way; see the module notes. Dropping it waits for the batch in flight,
/// then releases the dataset.
pub struct UpdateSession {
    store: Store,
    dataset: Dataset,
    plan: Arc<UpdatePlan>,
    in_flight: InFlight<Applied>,
    /// Released as the session drops, after its Drop has waited for the batch in flight.
    _lock: DatasetLock,
}

/// What every batch of an update needs, shared with the writer's jobs.
struct UpdatePlan {
    task: TaskId,
    owner: String,
    table: String,
    /// The condition that a row of the table is visible (see `visible_row`).
    visible: String,
    width: usize,
    key_columns: Vec<usize>,
    upsert: bool,
    exists_sql: String,
    insert_sql: String,
}

impl Store {
    /// Starts updating client `client`'s dataset `name` by the columns `key` for task `task`
    /// (run by `owner`), creating missing rows when `upsert`. Waits while another import or
    /// update of the dataset runs, as long as `keep_waiting` says (see
    /// `Store::begin_import`). Refuses a dataset that does not exist and a key column it
    /// does not have; makes the index on the key columns if there is none.
    #[allow(clippy::too_many_arguments)]
    pub fn begin_update(
        &self,
        task: TaskId,
        owner: &str,
        client: &str,
        name: &str,
        key: &[String],
        upsert: bool,
        keep_waiting: &mut dyn FnMut() -> bool,
    ) -> Result<UpdateSession, DatasetError> {
        let Some(lock) = self.lock_dataset(client, name, keep_waiting) else {
            return Err(DatasetError::Abandoned);
        };
        let Some(dataset) = self.dataset(client, name)? else {
            return Err(DatasetError::NoSuchDataset(name.to_string()));
        };
        let mut key_columns = Vec::with_capacity(key.len());
        for wanted in key {
            match dataset.columns.iter().position(|c| c == wanted) {
                Some(p) => key_columns.push(p),
                None => {
                    return Err(DatasetError::UnknownColumn {
                        dataset: name.to_string(),
                        column: wanted.clone(),
                        columns: dataset.columns.clone(),
                    })
                }
            }
        }
        let create_index = key_index_sql(dataset.id, &key_columns);
        self.write(move |tx| Ok(tx.execute_batch(&create_index)?))?;
        let table = table(dataset.id);
        let plan = UpdatePlan {
            task,
            owner: owner.to_string(),
            exists_sql: format!(
                "SELECT 1 FROM {table} WHERE {} AND {} LIMIT 1",
                key_conditions(&key_columns, 1),
                visible_row(&table)
            ),
            visible: visible_row(&table),
            insert_sql: insert_row_sql(dataset.id, dataset.columns.len()),
            table,
            width: dataset.columns.len(),
            key_columns,
            upsert,
        };
        Ok(UpdateSession {
            store: self.clone(),
            dataset,
            plan: Arc::new(plan),
            in_flight: InFlight::new(),
            _lock: lock,
        })
    }
}

impl UpdateSession {
    /// The dataset being updated.
    pub fn dataset(&self) -> &Dataset {
        &self.dataset
    }

    /// Sends a batch of rows to be applied in one transaction, and returns at once with the
    /// rows of the batch sent before it and their outcomes, in order (none for the first).
    /// Fails with `NotFound` once the task is no longer this process's to run.
    pub fn apply(&mut self, mut rows: Vec<UpdateRow>) -> Result<Vec<(UpdateRow, UpdateOutcome)>> {
        // In column order, so that records naming the same columns share one statement;
        // sorted here, off the writer.
        for row in &mut rows {
            row.cells.sort_unstable_by_key(|&(p, _)| p);
        }
        let (plan, rows) = (self.plan.clone(), Arc::new(rows));
        // The writer may run a job twice (see writer.rs): the rows stay shared, not moved.
        let earlier = self.in_flight.send(&self.store.inner.writer, move |tx| {
            Ok((rows.clone(), apply_rows(tx, &plan, &rows)?))
        })?;
        Ok(earlier.map(with_outcomes).unwrap_or_default())
    }

    /// Waits for the batch in flight, and returns its rows and their outcomes.
    pub fn wait(&mut self) -> Result<Vec<(UpdateRow, UpdateOutcome)>> {
        Ok(self
            .in_flight
            .wait()?
            .map(with_outcomes)
            .unwrap_or_default())
    }
}

impl Drop for UpdateSession {
    fn drop(&mut self) {
        // Its outcome no longer matters, but the dataset is not free before it is written.
        let _ = self.in_flight.wait();
    }
}

/// A batch's rows and, in their order, what became of each.
type Applied = (Arc<Vec<UpdateRow>>, Vec<UpdateOutcome>);

fn with_outcomes((rows, outcomes): Applied) -> Vec<(UpdateRow, UpdateOutcome)> {
    let rows = Arc::try_unwrap(rows).unwrap_or_else(|rows| (*rows).clone());
    rows.into_iter().zip(outcomes).collect()
}

/// Applies one batch within a transaction (see `UpdateSession::apply`): `rows`, their
/// cells in column order.
fn apply_rows(
    tx: &Connection,
    plan: &UpdatePlan,
    rows: &[UpdateRow],
) -> Result<Vec<UpdateOutcome>> {
    check_still_running(tx, plan.task, &plan.owner)?;
    let mut exists = tx.prepare_cached(&plan.exists_sql)?;
    let mut insert = if plan.upsert {
        Some(tx.prepare_cached(&plan.insert_sql)?)
    } else {
        None
    };
    let mut outcomes = Vec::with_capacity(rows.len());
    // The statement of the last record's columns: records mostly name the same ones.
    let (mut shape, mut sql) = (Vec::new(), String::new());
    for row in rows {
        if !row.cells.iter().map(|&(p, _)| p).eq(shape.iter().copied()) {
            shape = row.cells.iter().map(|&(p, _)| p).collect();
            sql = update_sql(plan, &row.cells);
        }
        let changed = !row.cells.is_empty() && {
            let mut update = tx.prepare_cached(&sql)?;
            let cells = row.cells.iter().map(|(_, v)| v);
            for (i, value) in cells.chain(&row.key).enumerate() {
                update.raw_bind_parameter(i + 1, value.as_str())?;
            }
            update.raw_execute()? > 0
        };
        let outcome = if changed {
            UpdateOutcome::Changed
        } else {
            for (i, value) in row.key.iter().enumerate() {
                exists.raw_bind_parameter(i + 1, value.as_str())?;
            }
            if exists.raw_query().next()?.is_some() {
                UpdateOutcome::Unchanged
            } else if let Some(insert) = insert.as_mut() {
                let mut cells = vec![""; plan.width];
                for (&p, value) in plan.key_columns.iter().zip(&row.key) {
                    cells[p] = value.as_str();
                }
                for (p, value) in &row.cells {
                    cells[*p] = value.as_str();
                }
                insert.raw_bind_parameter(1, plan.task)?;
                for (i, cell) in cells.into_iter().enumerate() {
                    insert.raw_bind_parameter(i + 2, cell)?;
                }
                insert.raw_execute()?;
                UpdateOutcome::Created
            } else {
                UpdateOutcome::NoSuchRow
            }
        };
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// Sets the cells at their positions (`?1`...) in the visible rows with the key (the params
/// after them) that differ in any of them.
fn update_sql(plan: &UpdatePlan, cells: &[(usize, String)]) -> String {
    let set: Vec<String> = (cells.iter().enumerate())
        .map(|(i, (p, _))| format!("{} = ?{}", column(*p), i + 1))
        .collect();
    let differs: Vec<String> = (cells.iter().enumerate())
        .map(|(i, (p, _))| format!("{} <> ?{}", column(*p), i + 1))
        .collect();
    format!(
        "UPDATE {} SET {} WHERE {} AND ({}) AND {}",
        plan.table,
        set.join(", "),
        key_conditions(&plan.key_columns, cells.len() + 1),
        differs.join(" OR "),
        plan.visible
    )
}

#[cfg(test)]
mod tests;
