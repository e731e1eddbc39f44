//! Cancelling and deleting a task (with its files, through the schema's cascades).

use rusqlite::{params_from_iter, OptionalExtension};

use super::scope::one_in_scope;
use super::{Result, Store};
use crate::task::{Scope, State, TaskId};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteOutcome {
    Deleted,
    /// The task is running: cancel it first.
    Running,
    NotFound,
}

impl Store {
    /// Asks a running task to stop; its handler sees it at its next check.
    pub fn request_cancel(&self, scope: &Scope, id: TaskId) -> Result<bool> {
        let (clause, values) = one_in_scope(scope, id, "client");
        let sql =
            format!("UPDATE tasks SET cancel_requested = 1 WHERE id = ?1 AND state = 4 {clause}");
        let changed = self.write(move |tx| Ok(tx.execute(&sql, params_from_iter(&values))?))?;
        Ok(changed == 1)
    }

    /// Deletes a task and its files unless it is running (`force` deletes it even then: its
    /// worker's later writes find no row and store nothing).
    pub fn delete(&self, scope: &Scope, id: TaskId, force: bool) -> Result<DeleteOutcome> {
        let (clause, values) = one_in_scope(scope, id, "client");
        let running_guard = if force { "" } else { "AND state <> 4" };
        let delete_sql = format!(
            "DELETE FROM tasks WHERE id = ?1 {running_guard} {clause} RETURNING client, state"
        );
        let exists_sql = format!("SELECT 1 FROM tasks WHERE id = ?1 {clause}");
        let outcome = self.write(move |tx| {
            let deleted: Option<(String, i64)> = tx
                .prepare(&delete_sql)?
                .query_row(params_from_iter(&values), |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            if let Some((client, state)) = deleted {
                super::task_ids::keep_given(tx, id)?;
                let state = State::from_code(state);
                tx.moved(&client, state, None);
                if state == Some(State::Queued) {
                    // Reserved or not: a claim need not skip it any more.
                    tx.released(id);
                }
                return Ok(DeleteOutcome::Deleted);
            }
            Ok(
                if tx.prepare(&exists_sql)?.exists(params_from_iter(&values))? {
                    DeleteOutcome::Running
                } else {
                    DeleteOutcome::NotFound
                },
            )
        })?;
        if outcome == DeleteOutcome::Deleted {
            self.activity().bump();
        }
        Ok(outcome)
    }
}
