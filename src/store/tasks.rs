//! Statements on tasks: submit (with idempotency keys), read and list, claim, progress,
//! finish, cancel and delete, and the recovery of tasks a stopped process left running.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, OptionalExtension, Row, Transaction};

use super::{Result, Store, StoreError};
use crate::task::{time, Counts, FileId, NewTask, Params, Scope, Status, Task, TaskId};

/// The message of a task that was running when the service stopped.
pub const INTERRUPTED: &str = "Interrupted: the service stopped while this task was running.";

/// How long a claim holds without a sign of life. One node recovers its own running tasks at
/// start and does not need it; a store shared by several nodes will rescue a task whose
/// lease expired. Progress reports renew it.
const LEASE_MS: i64 = 5 * 60 * 1000;

/// The claim: one statement reserving up to ?3 due tasks for owner ?1, due by ?2 (ms),
/// leased until ?4.
const CLAIM: &str = "UPDATE tasks SET lease_owner = ?1, lease_expires_at = ?4 \
     WHERE id IN (SELECT id FROM tasks WHERE status = 'Pending' AND lease_owner IS NULL \
                  AND due_at <= ?2 ORDER BY due_at, id LIMIT ?3 + 0) \
     RETURNING id, kind, params, io_filename, io_file_id, attempts + 1";

/// A new task: ?1 user id, ?2 user name, ?3 client, ?4 now, ?5 kind, ?6 params JSON, ?7 IO
/// file name, ?8 IO file, ?9 due (unix ms). Not `RETURNING id`: SQLite buffers RETURNING
/// rows in a temporary b-tree it builds for every execution, which costs more than the
/// insert itself; the rowid is read back instead.
const INSERT_TASK: &str = "INSERT INTO tasks (user_id, user_name, client, created_at, kind, \
     params, io_filename, io_file_id, due_at, updated_at) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?4)";

/// Task ?2, reserved for owner ?3, starts at ?1.
const START_TASK: &str = "UPDATE tasks SET status = 'In progress', start_time = ?1, \
     updated_at = ?1, attempts = attempts + 1 \
     WHERE id = ?2 AND lease_owner = ?3 AND status = 'Pending'";

/// Task ?12 ends: ?1 status, ?2 message, ?3..?6 counts, ?7 now, ?8/?9 a new IO file and its
/// name, ?10 LOG, ?11 ERR, and ?13 its start time when its start was folded into its end.
const END_TASK: &str = "UPDATE tasks SET status = ?1, message = ?2, percent_complete = 100, \
     total_records = ?3, succeeded_records = ?4, duplicate_records = ?5, failed_records = ?6, \
     end_time = ?7, updated_at = ?7, lease_owner = NULL, lease_expires_at = NULL, \
     io_file_id = coalesce(?8, io_file_id), io_filename = coalesce(?9, io_filename), \
     log_file_id = coalesce(?10, log_file_id), err_file_id = coalesce(?11, err_file_id), \
     start_time = coalesce(?13, start_time), attempts = attempts + (?13 IS NOT NULL) \
     WHERE id = ?12";

/// How long an Idempotency-Key is remembered.
const IDEMPOTENCY_WINDOW_MS: i64 = 24 * 60 * 60 * 1000;

const TASK_COLUMNS: &str = "id, user_id, user_name, client, created_at, kind, params, \
    io_filename, io_file_id IS NOT NULL, log_file_id IS NOT NULL, err_file_id IS NOT NULL, \
    percent_complete, status, message, start_time, end_time, \
    total_records, succeeded_records, duplicate_records, failed_records, attempts";

/// The answer to a submission: the task, and whether this call created it (false when an
/// Idempotency-Key matched an earlier submission).
#[derive(Debug, Clone)]
pub struct Submitted {
    pub task: Task,
    pub created: bool,
}

/// Filters and paging of the task list.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub status: Option<Status>,
    pub kind: Option<String>,
    pub user_id: Option<i64>,
    pub limit: u32,
    pub offset: u64,
}

/// A task the dispatcher claimed for this process: what a worker needs to run it.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: TaskId,
    pub kind: String,
    pub params: Params,
    pub io_filename: String,
    pub io_file: Option<FileId>,
    pub attempt: u32,
}

/// A running task's progress, as its handler last reported it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Progress {
    pub percent: u8,
    pub counts: Counts,
    pub message: String,
}

/// What a running task learns when it reports progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    Running {
        cancel_requested: bool,
    },
    /// The task was deleted, or is no longer this process's to run.
    Gone,
}

/// How a task ended. Shared (`Arc`) between the write that records it and the retry that
/// needs it should that write fail.
#[derive(Debug, Clone)]
pub struct Finish {
    pub status: Status,
    pub message: String,
    pub counts: Counts,
    /// A new IO file replacing the old one (an export's output), with its name.
    pub io_file: Option<(FileId, String)>,
    /// The LOG file written so far, if any.
    pub log_file: Option<FileId>,
    /// LOG bytes not yet stored: appended to the LOG file (created if needed) in the same
    /// transaction as the end, so a short task costs one commit to finish.
    pub log_tail: Vec<u8>,
    pub err_file: Option<FileId>,
    /// When the task started, if its start was never recorded (see [`QueuedStart::fold`]):
    /// recorded with the end, in the same statement.
    pub started_at: Option<String>,
}

/// A task's start, queued by [`Store::start_then`] and not yet run by the writer.
///
/// Most tasks end within microseconds, before the writer reaches their start. Then the
/// start is folded into the end: the queued start does nothing, and the end records both in
/// one statement, which spares the writer a statement, a savepoint and two count-trigger
/// runs per task. Folding is only possible while the start still waits, which also proves
/// the handler wrote nothing: every first write a handler makes (a file, progress, an
/// import) waits for its commit, and the writer runs jobs in order, so the start has run by
/// then.
pub struct QueuedStart {
    state: Arc<AtomicU8>,
    started_at: String,
}

const START_QUEUED: u8 = 0;
const START_RUN: u8 = 1;
const START_FOLDED: u8 = 2;

impl QueuedStart {
    /// Takes the start over if the writer has not run it yet: returns when the task started,
    /// for [`Finish::started_at`]; None if the start is (being) recorded on its own.
    pub fn fold(self) -> Option<String> {
        self.state
            .compare_exchange(
                START_QUEUED,
                START_FOLDED,
                Ordering::SeqCst,
                Ordering::SeqCst,
            )
            .ok()
            .map(|_| self.started_at)
    }
}

#[cfg(test)]
impl Finish {
    /// A successful end with only LOG lines to store.
    pub(super) fn success(log_tail: &[u8]) -> Arc<Finish> {
        Arc::new(Finish {
            status: Status::Success,
            message: String::new(),
            counts: Counts::default(),
            io_file: None,
            log_file: None,
            log_tail: log_tail.to_vec(),
            err_file: None,
            started_at: None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteOutcome {
    Deleted,
    /// The task is running: cancel it first.
    Running,
    NotFound,
}

impl Store {
    /// Stores a new task (Pending, due now) and returns it once committed. With an
    /// Idempotency-Key that this user sent within the last 24 hours, returns the task that
    /// submission created instead, or `IdempotencyConflict` if it was for a different task.
    pub fn submit(&self, new: &NewTask) -> Result<Submitted> {
        let new = new.clone();
        let (now, now_ms) = (time::now_text(), time::now_ms());
        let result = self.write(move |tx| {
            let (id, created) = insert_task(tx, &new, &now, now_ms)?;
            // A new task is what was inserted, with the schema's defaults: no need to read it.
            let task = if created {
                pending_task(id, new, now)
            } else {
                read_task(tx, id)?
            };
            Ok(Submitted { task, created })
        })?;
        if result.created {
            self.activity().ring();
        }
        Ok(result)
    }

    /// Stores many tasks in one transaction (all or none) and returns their ids, in order.
    pub fn submit_many(&self, tasks: &[NewTask]) -> Result<Vec<TaskId>> {
        let tasks = tasks.to_vec();
        let (now, now_ms) = (time::now_text(), time::now_ms());
        let ids = self.write(move |tx| {
            tasks
                .iter()
                .map(|t| insert_task(tx, t, &now, now_ms).map(|(id, _)| id))
                .collect::<Result<Vec<_>>>()
        })?;
        self.activity().ring();
        Ok(ids)
    }

    /// One task, if it exists within `scope`.
    pub fn task(&self, scope: &Scope, id: TaskId) -> Result<Task> {
        let conn = self.conn()?;
        let (clause, values) = one_in_scope(scope, id, "client");
        let sql = format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?1 {clause}");
        let task = conn
            .prepare_cached(&sql)?
            .query_row(params_from_iter(&values), task_from_row)?;
        Ok(task)
    }

    /// Tasks within `scope`, newest first, and the total count of those matching.
    pub fn list(&self, scope: &Scope, filter: &ListFilter) -> Result<(Vec<Task>, u64)> {
        let mut clauses = Vec::new();
        let mut values: Vec<Value> = Vec::new();
        if let Scope::Client(client) = scope {
            values.push(Value::Text(client.clone()));
            clauses.push(format!("client = ?{}", values.len()));
        }
        if let Some(status) = filter.status {
            values.push(Value::Text(status.as_str().into()));
            clauses.push(format!("status = ?{}", values.len()));
        }
        if let Some(kind) = &filter.kind {
            values.push(Value::Text(kind.clone()));
            clauses.push(format!("kind = ?{}", values.len()));
        }
        if let Some(user_id) = filter.user_id {
            values.push(Value::Integer(user_id));
            clauses.push(format!("user_id = ?{}", values.len()));
        }
        let where_sql = if clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", clauses.join(" AND "))
        };
        let mut conn = self.conn()?;
        // One read transaction: the count and the page see the same snapshot.
        let conn = conn.transaction()?;
        // Filtered by client and status at most, the kept counts answer; other filters count.
        let counted_table = if filter.kind.is_none() && filter.user_id.is_none() {
            "SELECT coalesce(sum(n), 0) FROM task_counts"
        } else {
            "SELECT count(*) FROM tasks"
        };
        let total: i64 = conn
            .prepare_cached(&format!("{counted_table} {where_sql}"))?
            .query_row(params_from_iter(values.iter()), |r| r.get(0))?;
        let n = values.len();
        values.push(Value::Integer(i64::from(filter.limit)));
        values.push(Value::Integer(
            i64::try_from(filter.offset).unwrap_or(i64::MAX),
        ));
        let sql = format!(
            "SELECT {TASK_COLUMNS} FROM tasks {where_sql} ORDER BY id DESC LIMIT ?{} + 0 OFFSET ?{} + 0",
            n + 1,
            n + 2
        );
        let mut stmt = conn.prepare_cached(&sql)?;
        let tasks = stmt
            .query_map(params_from_iter(values.iter()), task_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        drop(stmt);
        conn.finish()?;
        Ok((tasks, total as u64))
    }

    /// Claims up to `limit` due pending tasks for `owner` in one statement: reserved for it,
    /// they stay Pending until `start` (nobody else claims them meanwhile).
    pub fn claim_due(&self, owner: &str, limit: usize) -> Result<Vec<Claimed>> {
        let now_ms = time::now_ms();
        let owner = owner.to_string();
        let claimed = self.write(move |tx| {
            let mut stmt = tx.prepare_cached(CLAIM)?;
            let lease = now_ms + LEASE_MS;
            let rows = stmt.query_map(params![owner, now_ms, limit as i64, lease], |r| {
                Ok(Claimed {
                    id: r.get(0)?,
                    kind: r.get(1)?,
                    params: params_from_json(r.get_ref(2)?.as_str()?),
                    io_filename: r.get(3)?,
                    io_file: r.get(4)?,
                    attempt: r.get(5)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })?;
        let mut claimed = claimed;
        claimed.sort_by_key(|c| c.id);
        Ok(claimed)
    }

    /// When the next pending task falls due (unix ms), if any is pending.
    pub fn next_due_ms(&self) -> Result<Option<i64>> {
        let conn = self.conn()?;
        let due = conn
            .prepare_cached(
                "SELECT min(due_at) FROM tasks WHERE status = 'Pending' AND lease_owner IS NULL",
            )?
            .query_row([], |r| r.get(0))?;
        Ok(due)
    }

    /// Whether task `id` is still reserved for `owner` (not deleted meanwhile): checked just
    /// before it starts.
    pub fn is_reserved(&self, id: TaskId, owner: &str) -> Result<bool> {
        let conn = self.conn()?;
        let reserved = conn
            .prepare_cached(
                "SELECT 1 FROM tasks WHERE id = ?1 AND lease_owner = ?2 AND status = 'Pending'",
            )?
            .exists(params![id, owner])?;
        Ok(reserved)
    }

    /// Marks a reserved task running, without waiting: queued before everything the task's
    /// handler then writes, so nothing of its work is stored before its start. `then` gets
    /// whether it started (false: deleted meanwhile) once committed; a start the task's end
    /// took over (see [`QueuedStart`]) reports true and writes nothing.
    pub fn start_then(
        &self,
        id: TaskId,
        owner: &str,
        then: impl FnOnce(Result<bool>) + Send + 'static,
    ) -> QueuedStart {
        let (owner, now) = (owner.to_string(), time::now_text());
        let queued = QueuedStart {
            state: Arc::new(AtomicU8::new(START_QUEUED)),
            started_at: now.clone(),
        };
        let state = queued.state.clone();
        self.inner.writer.write_then(
            move |tx| {
                let claimed = state.compare_exchange(
                    START_QUEUED,
                    START_RUN,
                    Ordering::SeqCst,
                    Ordering::SeqCst,
                );
                match claimed {
                    Ok(_) => start_in(tx, id, &owner, &now),
                    // Folded into the task's end, which is queued behind this.
                    Err(_) => Ok(true),
                }
            },
            then,
        );
        queued
    }

    /// `start_then`, waiting for the commit.
    pub fn start(&self, id: TaskId, owner: &str) -> Result<bool> {
        let (owner, now) = (owner.to_string(), time::now_text());
        self.write(move |tx| start_in(tx, id, &owner, &now))
    }

    /// Records a running task's progress and reports whether it should go on.
    pub fn report_progress(
        &self,
        id: TaskId,
        owner: &str,
        progress: &Progress,
    ) -> Result<Liveness> {
        let now = time::now_text();
        let c = progress.counts;
        let (owner, progress) = (owner.to_string(), progress.clone());
        let cancel: Option<bool> = self.write(move |tx| {
            Ok(tx
                .prepare_cached(
                    "UPDATE tasks SET percent_complete = ?1, total_records = ?2, \
                     succeeded_records = ?3, duplicate_records = ?4, failed_records = ?5, \
                     message = ?6, updated_at = ?7, lease_expires_at = ?10 \
                     WHERE id = ?8 AND lease_owner = ?9 AND status = 'In progress' \
                     RETURNING cancel_requested",
                )?
                .query_row(
                    params![
                        progress.percent.min(99),
                        c.total,
                        c.succeeded,
                        c.duplicate,
                        c.failed,
                        progress.message,
                        now,
                        id,
                        owner,
                        time::now_ms() + LEASE_MS
                    ],
                    |r| r.get(0),
                )
                .optional()?)
        })?;
        Ok(match cancel {
            Some(cancel_requested) => Liveness::Running { cancel_requested },
            None => Liveness::Gone,
        })
    }

    /// Attaches a running task's LOG file, so it can be read while the task runs.
    pub fn attach_log(&self, id: TaskId, owner: &str, file: FileId) -> Result<bool> {
        let owner = owner.to_string();
        let changed = self.write(move |tx| {
            let changed = tx.execute(
                "UPDATE tasks SET log_file_id = ?1 WHERE id = ?2 AND lease_owner = ?3 AND status = 'In progress'",
                params![file, id, owner],
            )?;
            tx.execute("UPDATE files SET attached = 1 WHERE id = ?1", [file])?;
            Ok(changed)
        })?;
        Ok(changed == 1)
    }

    /// Ends a running task of `owner`. Returns false (and stores nothing) when the task was
    /// deleted or is no longer this owner's; the files it produced are then removed.
    pub fn finish(&self, id: TaskId, owner: &str, finish: Arc<Finish>) -> Result<bool> {
        let owner = owner.to_string();
        let finished = self.write(move |tx| finish_in(tx, id, &owner, &finish))?;
        self.activity().ring();
        Ok(finished)
    }

    /// `finish` without waiting: queued with the writes around it, and `then` gets the
    /// outcome once committed. `then` runs on the writer's thread: quick, and no writes.
    pub fn finish_then(
        &self,
        id: TaskId,
        owner: &str,
        finish: Arc<Finish>,
        then: impl FnOnce(Result<bool>) + Send + 'static,
    ) {
        let owner = owner.to_string();
        let store = self.clone();
        self.inner.writer.write_then(
            move |tx| finish_in(tx, id, &owner, &finish),
            move |outcome| {
                store.activity().ring();
                then(outcome);
            },
        );
    }

    /// Asks a running task to stop; its handler sees it at its next check.
    pub fn request_cancel(&self, scope: &Scope, id: TaskId) -> Result<bool> {
        let (clause, values) = one_in_scope(scope, id, "client");
        let sql = format!(
            "UPDATE tasks SET cancel_requested = 1 WHERE id = ?1 AND status = 'In progress' {clause}"
        );
        let changed = self.write(move |tx| Ok(tx.execute(&sql, params_from_iter(&values))?))?;
        Ok(changed == 1)
    }

    /// Deletes a task and its files unless it is running (`force` deletes it even then: its
    /// worker's later writes find no row and store nothing).
    pub fn delete(&self, scope: &Scope, id: TaskId, force: bool) -> Result<DeleteOutcome> {
        let (clause, values) = one_in_scope(scope, id, "client");
        let running_guard = if force {
            ""
        } else {
            "AND status <> 'In progress'"
        };
        let delete_sql = format!("DELETE FROM tasks WHERE id = ?1 {running_guard} {clause}");
        let exists_sql = format!("SELECT 1 FROM tasks WHERE id = ?1 {clause}");
        let outcome = self.write(move |tx| {
            if tx.execute(&delete_sql, params_from_iter(&values))? == 1 {
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
            self.activity().ring();
        }
        Ok(outcome)
    }

    /// Marks every task left running as ERROR with the Interrupted message: at start, those
    /// of any earlier process (`owner` None); at shutdown, those of this one. At start it also
    /// removes what stopped runs left half written: files no task points at (uploads,
    /// outputs) and unfinished imports. At shutdown it leaves those alone: a worker past the
    /// grace period may still be running, and its writes are refused from now on (they check
    /// the lease), so the next start removes them. Returns the ids of the interrupted tasks.
    pub fn interrupt_running(&self, owner: Option<&str>) -> Result<Vec<TaskId>> {
        let now = time::now_text();
        let owner = owner.map(String::from);
        let ids = self.write(move |tx| {
            let ids: Vec<TaskId> = {
                let mut stmt = tx.prepare(
                    // The counters go back to 0: what the task had counted is not kept (an
                    // unfinished import's rows are removed; see docs/api.md).
                    "UPDATE tasks SET status = 'ERROR', message = ?1, percent_complete = 100, \
                     end_time = ?2, updated_at = ?2, start_time = coalesce(start_time, ?2), \
                     lease_owner = NULL, lease_expires_at = NULL, total_records = 0, \
                     succeeded_records = 0, duplicate_records = 0, failed_records = 0 \
                     WHERE status = 'In progress' AND (?3 IS NULL OR lease_owner = ?3) RETURNING id",
                )?;
                let rows = stmt.query_map(params![INTERRUPTED, now, owner], |r| r.get(0))?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            // Reserved tasks that never started go back to the queue.
            tx.execute(
                "UPDATE tasks SET lease_owner = NULL, lease_expires_at = NULL \
                 WHERE status = 'Pending' AND lease_owner IS NOT NULL AND (?1 IS NULL OR lease_owner = ?1)",
                params![owner],
            )?;
            if owner.is_none() {
                tx.execute("DELETE FROM files WHERE attached = 0", [])?;
                super::datasets::remove_unfinished_imports(tx)?;
            }
            Ok(ids)
        })?;
        if !ids.is_empty() {
            self.activity().ring();
        }
        Ok(ids)
    }
}

/// Marks a reserved task running within a transaction; see `Store::start_then`.
fn start_in(tx: &Transaction<'_>, id: TaskId, owner: &str, now: &str) -> Result<bool> {
    let started = tx
        .prepare_cached(START_TASK)?
        .execute(params![now, id, owner])?;
    Ok(started == 1)
}

/// Records a task's end within a transaction; see `Store::finish`.
fn finish_in(tx: &Transaction<'_>, id: TaskId, owner: &str, finish: &Finish) -> Result<bool> {
    let now = time::now_text();
    let c = finish.counts;
    // A task whose start was folded into its end is still Pending (reserved for us).
    let this_run = if finish.started_at.is_some() {
        "SELECT io_file_id FROM tasks WHERE id = ?1 AND lease_owner = ?2 AND status = 'Pending'"
    } else {
        "SELECT io_file_id FROM tasks WHERE id = ?1 AND lease_owner = ?2 AND status = 'In progress'"
    };
    let old_io: Option<Option<FileId>> = tx
        .prepare_cached(this_run)?
        .query_row(params![id, owner], |r| r.get(0))
        .optional()?;
    let Some(old_io) = old_io else {
        return not_running(tx, id, owner, finish);
    };
    let log_file = match (finish.log_file, finish.log_tail.is_empty()) {
        (log_file, true) => log_file,
        (Some(file), false) => {
            super::files::append_in(tx, file, &finish.log_tail)?;
            Some(file)
        }
        (None, false) => Some(super::files::create_whole_in(tx, id, &finish.log_tail)?),
    };
    let (new_io, new_name) = match &finish.io_file {
        Some((file, name)) => (Some(*file), Some(name.as_str())),
        None => (None, None),
    };
    tx.prepare_cached(END_TASK)?.execute(params![
        finish.status.as_str(),
        finish.message,
        c.total,
        c.succeeded,
        c.duplicate,
        c.failed,
        now,
        new_io,
        new_name,
        log_file,
        finish.err_file,
        id,
        finish.started_at,
    ])?;
    for file in [new_io, finish.log_file, finish.err_file]
        .into_iter()
        .flatten()
    {
        tx.prepare_cached("UPDATE files SET attached = 1 WHERE id = ?1")?
            .execute([file])?;
    }
    if let (Some(old), Some(_)) = (old_io, new_io) {
        tx.execute("DELETE FROM files WHERE id = ?1", [old])?;
    }
    super::datasets::finish_import(tx, id)?;
    Ok(true)
}

/// The end of a task that is no longer this owner's to end: deleted, or interrupted at
/// shutdown, or never started (its start failed to commit). What this run produced is not
/// the task's; the task, if it still exists and waits, goes back to the queue.
fn not_running(tx: &Transaction<'_>, id: TaskId, owner: &str, finish: &Finish) -> Result<bool> {
    tx.prepare_cached(
        "UPDATE tasks SET lease_owner = NULL, lease_expires_at = NULL \
         WHERE id = ?1 AND lease_owner = ?2 AND status = 'Pending'",
    )?
    .execute(params![id, owner])?;
    // Files the task already points at (a LOG attached while it ran) stay with it.
    let produced = [
        finish.io_file.as_ref().map(|f| f.0),
        finish.log_file,
        finish.err_file,
    ];
    for file in produced.into_iter().flatten() {
        tx.execute("DELETE FROM files WHERE id = ?1 AND attached = 0", [file])?;
    }
    super::datasets::remove_import(tx, id)?;
    Ok(false)
}

/// A task just inserted by `insert_task`, as the schema's defaults make it.
fn pending_task(id: TaskId, new: NewTask, created_at: String) -> Task {
    Task {
        id,
        user_id: new.owner.user_id,
        user_name: new.owner.user_name,
        client: new.owner.client,
        created_at,
        kind: new.kind,
        params: new.params,
        io_filename: new.io_filename,
        has_io_file: new.io_file.is_some(),
        has_log_file: false,
        has_err_file: false,
        percent_complete: 0,
        status: Status::Pending,
        message: String::new(),
        start_time: None,
        end_time: None,
        counts: Counts::default(),
        attempts: 0,
    }
}

/// Inserts a task within a transaction; see `Store::submit`. Returns its id, and whether
/// it was created (false: an Idempotency-Key matched an earlier submission's task).
fn insert_task(
    tx: &Transaction<'_>,
    new: &NewTask,
    now: &str,
    now_ms: i64,
) -> Result<(TaskId, bool)> {
    let params_json =
        serde_json::to_string(&new.params).map_err(|e| StoreError::Internal(e.to_string()))?;
    // Only a submission with an Idempotency-Key needs its fingerprint.
    let fingerprint = new
        .idempotency_key
        .as_ref()
        .map(|_| format!("{}\n{}", new.kind, params_json));
    if let Some(key) = &new.idempotency_key {
        let earlier: Option<(TaskId, String, i64)> = tx
            .prepare_cached(
                "SELECT task_id, fingerprint, created_ms FROM idempotency_keys \
                 WHERE client = ?1 AND user_id = ?2 AND key = ?3",
            )?
            .query_row(params![new.owner.client, new.owner.user_id, key], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()?;
        if let Some((task_id, earlier_fingerprint, created_ms)) = earlier {
            if now_ms - created_ms < IDEMPOTENCY_WINDOW_MS {
                if Some(earlier_fingerprint) != fingerprint {
                    return Err(StoreError::IdempotencyConflict);
                }
                if let Some(upload) = new.io_file {
                    // The retry's upload is not needed: the first one is kept.
                    tx.execute(
                        "DELETE FROM files WHERE id = ?1 AND task_id IS NULL",
                        [upload],
                    )?;
                }
                return Ok((task_id, false));
            }
            tx.execute(
                "DELETE FROM idempotency_keys WHERE client = ?1 AND user_id = ?2 AND key = ?3",
                params![new.owner.client, new.owner.user_id, key],
            )?;
        }
    }
    // Checked before anything is written (see the writer: a write that fails halfway
    // fails its whole batch).
    if let Some(upload) = new.io_file {
        let staged = tx
            .prepare_cached("SELECT 1 FROM files WHERE id = ?1 AND task_id IS NULL")?
            .exists([upload])?;
        if !staged {
            return Err(StoreError::Internal(format!(
                "upload {upload} is not a staged file"
            )));
        }
    }
    let id: TaskId = tx.prepare_cached(INSERT_TASK)?.insert(params![
        new.owner.user_id,
        new.owner.user_name,
        new.owner.client,
        now,
        new.kind,
        params_json,
        new.io_filename,
        new.io_file,
        now_ms
    ])?;
    if let Some(upload) = new.io_file {
        tx.prepare_cached("UPDATE files SET task_id = ?1, attached = 1 WHERE id = ?2")?
            .execute(params![id, upload])?;
    }
    if let Some(key) = &new.idempotency_key {
        tx.prepare_cached(
            "INSERT INTO idempotency_keys (client, user_id, key, task_id, fingerprint, created_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![new.owner.client, new.owner.user_id, key, id, fingerprint, now_ms])?;
    }
    Ok((id, true))
}

/// A statement on one task within a scope: the extra WHERE clause (the client is parameter
/// 2) and the values to bind (the id, then the client when there is one).
pub(super) fn one_in_scope(scope: &Scope, id: TaskId, client_column: &str) -> (String, Vec<Value>) {
    match scope {
        Scope::Client(c) => (
            format!("AND {client_column} = ?2"),
            vec![Value::Integer(id), Value::Text(c.clone())],
        ),
        Scope::All => (String::new(), vec![Value::Integer(id)]),
    }
}

fn read_task(tx: &Transaction<'_>, id: TaskId) -> Result<Task> {
    Ok(tx
        .prepare_cached(&format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?1"))?
        .query_row([id], task_from_row)?)
}

fn params_from_json(text: &str) -> Params {
    // The store only ever writes a JSON object of strings here.
    serde_json::from_str(text).unwrap_or_default()
}

fn task_from_row(r: &Row<'_>) -> rusqlite::Result<Task> {
    let status_text = r.get_ref(12)?.as_str()?;
    let status = Status::parse(status_text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            12,
            rusqlite::types::Type::Text,
            format!("unknown status {status_text:?}").into(),
        )
    })?;
    Ok(Task {
        id: r.get(0)?,
        user_id: r.get(1)?,
        user_name: r.get(2)?,
        client: r.get(3)?,
        created_at: r.get(4)?,
        kind: r.get(5)?,
        params: params_from_json(r.get_ref(6)?.as_str()?),
        io_filename: r.get(7)?,
        has_io_file: r.get(8)?,
        has_log_file: r.get(9)?,
        has_err_file: r.get(10)?,
        percent_complete: r.get(11)?,
        status,
        message: r.get(13)?,
        start_time: r.get(14)?,
        end_time: r.get(15)?,
        counts: Counts {
            total: r.get(16)?,
            succeeded: r.get(17)?,
            duplicate: r.get(18)?,
            failed: r.get(19)?,
        },
        attempts: r.get(20)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Durability;

    #[test]
    fn the_kept_counts_match_the_tasks_through_every_change() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db"), Durability::Normal).unwrap();
        let mut other = NewTask::new("sleep", Params::new());
        other.owner.client = "other".into();
        let ids = store
            .submit_many(&vec![NewTask::new("sleep", Params::new()); 5])
            .unwrap();
        store.submit(&other).unwrap();
        let claimed = store.claim_due("me", 3).unwrap();
        assert_eq!(claimed.len(), 3);
        for task in &claimed {
            assert!(store.start(task.id, "me").unwrap());
        }
        let end = Finish::success(b"done\n");
        assert!(store.finish(claimed[0].id, "me", end).unwrap());
        let default = Scope::Client("default".into());
        assert_eq!(
            store.delete(&default, ids[4], false).unwrap(),
            DeleteOutcome::Deleted
        );
        store.interrupt_running(Some("me")).unwrap();

        let check = |scope: &Scope, status: Option<Status>| {
            let filter = ListFilter {
                status,
                limit: 1000,
                ..ListFilter::default()
            };
            let (tasks, total) = store.list(scope, &filter).unwrap();
            assert_eq!(total, tasks.len() as u64, "{scope:?} {status:?}");
            total
        };
        assert_eq!(check(&default, None), 4);
        assert_eq!(check(&default, Some(Status::Pending)), 1);
        assert_eq!(check(&default, Some(Status::Success)), 1);
        assert_eq!(check(&default, Some(Status::Error)), 2);
        assert_eq!(check(&default, Some(Status::InProgress)), 0);
        assert_eq!(check(&Scope::Client("other".into()), None), 1);
        assert_eq!(check(&Scope::All, None), 5);
        assert_eq!(check(&Scope::All, Some(Status::Pending)), 2);
    }

    #[test]
    fn a_claimed_task_stays_pending_until_it_starts_and_a_restart_requeues_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db"), Durability::Normal).unwrap();
        let ids = store
            .submit_many(&vec![NewTask::new("sleep", Params::new()); 2])
            .unwrap();
        assert_eq!(store.claim_due("me", 10).unwrap().len(), 2);
        let all = Scope::All;
        assert_eq!(store.task(&all, ids[0]).unwrap().status, Status::Pending);
        // Claimed once: a second claim finds nothing, and the dispatcher waits for nothing.
        assert!(store.claim_due("me", 10).unwrap().is_empty());
        assert_eq!(store.next_due_ms().unwrap(), None);
        assert!(store.start(ids[0], "me").unwrap());
        assert_eq!(store.task(&all, ids[0]).unwrap().status, Status::InProgress);
        assert_eq!(store.task(&all, ids[0]).unwrap().attempts, 1);
        // A crash: the started one is interrupted, the reserved one waits to run again.
        assert_eq!(store.interrupt_running(None).unwrap(), vec![ids[0]]);
        let requeued = store.task(&all, ids[1]).unwrap();
        assert_eq!((requeued.status, requeued.attempts), (Status::Pending, 0));
        let again = store.claim_due("next", 10).unwrap();
        assert_eq!(again.iter().map(|c| c.id).collect::<Vec<_>>(), vec![ids[1]]);
        assert_eq!(again[0].attempt, 1);
        // A task deleted while reserved does not start.
        let scope = Scope::Client("default".into());
        assert_eq!(
            store.delete(&scope, ids[1], false).unwrap(),
            DeleteOutcome::Deleted
        );
        assert!(!store.is_reserved(ids[1], "next").unwrap());
        assert!(!store.start(ids[1], "next").unwrap());
    }

    #[test]
    fn the_claim_is_prepared_once_whatever_its_limit() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db"), Durability::Normal).unwrap();
        let conn = store.conn().unwrap();
        let mut claim = conn.prepare(CLAIM).unwrap();
        for limit in 1..6 {
            claim
                .query(params!["me", time::now_ms(), limit, 0])
                .unwrap()
                .next()
                .unwrap();
        }
        let reprepared = claim.get_status(rusqlite::StatementStatus::RePrepare);
        assert_eq!(reprepared, 0);
    }

    #[test]
    fn a_task_s_own_writes_build_no_temporary_b_tree() {
        // A constant IN list of more than two values (in a statement or in a CHECK constraint
        // it must verify) or a RETURNING clause makes SQLite build a temporary b-tree on every
        // execution: more work than the row itself. The statements every task runs have none.
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db"), Durability::Normal).unwrap();
        let conn = store.conn().unwrap();
        let file_writes = super::super::files::HOT_STATEMENTS;
        for sql in [INSERT_TASK, START_TASK, END_TASK]
            .iter()
            .chain(file_writes)
        {
            let mut explain = conn.prepare(&format!("EXPLAIN {sql}")).unwrap();
            let unbound = vec![Value::Null; explain.parameter_count()];
            let opcodes: Vec<String> = explain
                .query_map(params_from_iter(unbound), |r| r.get(1))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            assert!(
                !opcodes.iter().any(|op| op == "OpenEphemeral"),
                "{sql} builds a temporary b-tree"
            );
        }
    }

    #[test]
    fn a_start_folded_into_the_end_records_both() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db"), Durability::Normal).unwrap();
        let ids = store
            .submit_many(&vec![NewTask::new("sleep", Params::new()); 2])
            .unwrap();
        assert_eq!(store.claim_due("me", 2).unwrap().len(), 2);

        // Ended without a recorded start: the end records it.
        let mut end = Finish::success(b"done\n");
        Arc::get_mut(&mut end).unwrap().started_at = Some("2026-11-26T10:00:00".into());
        assert!(store.finish(ids[0], "me", end.clone()).unwrap());
        let task = store.task(&Scope::All, ids[0]).unwrap();
        assert_eq!(task.status, Status::Success);
        assert_eq!(task.start_time.as_deref(), Some("2026-11-26T10:00:00"));
        assert_eq!(task.attempts, 1);
        assert!(task.has_log_file);
        // Only once: the same end again finds the task no longer reserved.
        assert!(!store.finish(ids[0], "me", end).unwrap());

        // A start the writer already ran cannot be folded.
        let (ran, started) = crossbeam_channel::bounded(1);
        let queued = store.start_then(ids[1], "me", move |r| ran.send(r).unwrap());
        assert!(started.recv().unwrap().unwrap());
        assert_eq!(queued.fold(), None);
        let task = store.task(&Scope::All, ids[1]).unwrap();
        assert_eq!(task.status, Status::InProgress);
        assert_eq!(task.attempts, 1);
    }
}
