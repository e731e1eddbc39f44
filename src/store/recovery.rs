//! Recovery: the tasks a stopped process left running are interrupted (at start, any
//! process's; at shutdown, this one's), and what it left half written is removed.

use rusqlite::params;

use super::{Result, Store};
use crate::task::{State, TaskId};

/// The message of a task that was running when the service stopped.
pub const INTERRUPTED: &str = "Interrupted: the service stopped while this task was running.";

impl Store {
    /// Marks every task left running as ERROR with the Interrupted message: at start, those
    /// of any earlier process (`owner` None); at shutdown, those of this one. At start it also
    /// removes what stopped runs left half written: files no task points at (uploads,
    /// outputs) and unfinished imports. At shutdown it leaves those alone: a worker past the
    /// grace period may still be running, and its writes are refused from now on (they check
    /// the lease), so the next start removes them. Reserved tasks that never started wait
    /// again, and none of them may start after this (a start needs its reservation). Returns
    /// the ids of the interrupted tasks.
    pub fn interrupt_running(&self, owner: Option<&str>) -> Result<Vec<TaskId>> {
        let now = self.clock().now_text();
        let owner = owner.map(String::from);
        let ids = self.write(move |tx| {
            let interrupted: Vec<(TaskId, String)> = {
                let mut stmt = tx.prepare(
                    // The counters go back to 0: what the task had counted is not kept (an
                    // unfinished import's rows are removed; see docs/api.md).
                    "UPDATE tasks SET state = 6, message = ?1, percent_complete = 100, \
                     end_time = ?2, updated_at = ?2, start_time = coalesce(start_time, ?2), \
                     lease_owner = NULL, lease_expires_at = NULL, total_records = 0, \
                     succeeded_records = 0, duplicate_records = 0, failed_records = 0 \
                     WHERE state = 4 AND (?3 IS NULL OR lease_owner = ?3) \
                     RETURNING id, client",
                )?;
                let rows = stmt.query_map(params![INTERRUPTED, now, owner], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            for (_, client) in &interrupted {
                tx.moved(client, Some(State::Running), Some(State::Failed));
            }
            // Reserved tasks that never started wait again, and none may start from now on.
            tx.release_all();
            if owner.is_none() {
                // A file written before reservations were kept in memory may have some in
                // its rows.
                tx.execute(
                    "UPDATE tasks SET lease_owner = NULL, lease_expires_at = NULL \
                     WHERE state = 1 AND lease_owner IS NOT NULL",
                    [],
                )?;
                tx.execute("DELETE FROM files WHERE attached = 0", [])?;
                super::import::remove_unfinished_imports(tx)?;
            }
            Ok(interrupted
                .into_iter()
                .map(|(id, _)| id)
                .collect::<Vec<_>>())
        })?;
        for &id in &ids {
            // Its import stays invisible (removed by the next start's recovery).
            self.inner.importing.release_at_end(id);
        }
        if !ids.is_empty() {
            self.activity().bump();
        }
        Ok(ids)
    }
}
