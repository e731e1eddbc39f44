//! A running task's writes: its progress (which also says whether to go on), its LOG file
//! attached while it runs, and its end, with the files it produced.

use std::sync::Arc;

use rusqlite::{params, Connection, OptionalExtension};

use super::claim::LEASE_MS;
use super::writer::JobTx;
use super::{Result, Store};
use crate::task::{Counts, FileId, State, TaskId};

/// Task ?12 of client ?17 ends, if it is still in state ?16 and leased to owner ?15 (NULL:
/// a task reserved, whose start is folded into its end, has no lease yet): ?1 state, ?2
/// message, ?3..?6 counts, ?7 now, ?8/?9 a new IO file and its name, ?10 LOG, ?11 ERR, ?13
/// its start time when its start was folded into its end, and ?14 its LOG when kept in the
/// row. (The client is known; it is checked so that a caller naming the wrong one fails
/// rather than move the wrong counts.)
pub(super) const END_TASK: &str =
    "UPDATE tasks SET state = ?1, message = ?2, percent_complete = 100, \
     total_records = ?3, succeeded_records = ?4, duplicate_records = ?5, failed_records = ?6, \
     end_time = ?7, updated_at = ?7, lease_owner = NULL, lease_expires_at = NULL, \
     io_file_id = coalesce(?8, io_file_id), io_filename = coalesce(?9, io_filename), \
     log_file_id = coalesce(?10, log_file_id), err_file_id = coalesce(?11, err_file_id), \
     start_time = coalesce(?13, start_time), attempts = attempts + (?13 IS NOT NULL), \
     log_text = coalesce(?14, log_text) \
     WHERE id = ?12 AND lease_owner IS ?15 AND state = ?16 AND client = ?17";

/// The longest LOG kept in its task's row rather than as a file of its own (see
/// migrations/006_short_log_in_row.sql): one that was never stored while the task ran.
/// Small enough that the row stays on one page or two.
pub(crate) const INLINE_LOG_MAX: usize = 4096;

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
    pub state: State,
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
    /// Whether the task began an import into a dataset (see `Store::begin_import`): its
    /// rows become visible with the end. Other tasks' ends skip that statement.
    pub began_import: bool,
}

#[cfg(test)]
impl Finish {
    /// A successful end with only LOG lines to store.
    pub(super) fn success(log_tail: &[u8]) -> Arc<Finish> {
        Arc::new(Finish {
            state: State::Succeeded,
            message: String::new(),
            counts: Counts::default(),
            io_file: None,
            log_file: None,
            log_tail: log_tail.to_vec(),
            err_file: None,
            started_at: None,
            began_import: false,
        })
    }

    /// A successful end of a task that began an import.
    pub(super) fn import_success() -> Arc<Finish> {
        let mut finish = Finish::success(b"");
        Arc::get_mut(&mut finish).expect("just made").began_import = true;
        finish
    }
}

impl Store {
    /// Records a running task's progress and reports whether it should go on.
    pub fn report_progress(
        &self,
        id: TaskId,
        owner: &str,
        progress: &Progress,
    ) -> Result<Liveness> {
        let now_ms = self.clock().now_ms();
        let now = crate::clock::format_ms(now_ms);
        let c = progress.counts;
        let (owner, progress) = (owner.to_string(), progress.clone());
        let cancel: Option<bool> = self.write(move |tx| {
            Ok(tx
                .prepare_cached(
                    "UPDATE tasks SET percent_complete = ?1, total_records = ?2, \
                     succeeded_records = ?3, duplicate_records = ?4, failed_records = ?5, \
                     message = ?6, updated_at = ?7, lease_expires_at = ?10 \
                     WHERE id = ?8 AND lease_owner = ?9 AND state = 4 \
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
                        now_ms + LEASE_MS
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
                "UPDATE tasks SET log_file_id = ?1 WHERE id = ?2 AND lease_owner = ?3 AND state = 4",
                params![file, id, owner],
            )?;
            tx.execute("UPDATE files SET attached = 1 WHERE id = ?1", [file])?;
            Ok(changed)
        })?;
        Ok(changed == 1)
    }

    /// Ends a running task of `owner`'s (task `id` of `client`'s). Returns false (and stores
    /// nothing) when the task was deleted or is no longer this owner's; the files it
    /// produced are then removed.
    pub fn finish(
        &self,
        id: TaskId,
        client: &str,
        owner: &str,
        finish: Arc<Finish>,
    ) -> Result<bool> {
        let (client, owner) = (client.to_string(), owner.to_string());
        let now = self.clock().now_text();
        let began_import = finish.began_import;
        let finished = self.write(move |tx| finish_in(tx, id, &client, &owner, &finish, &now))?;
        self.after_end(id, began_import, true);
        Ok(finished)
    }

    /// `finish` without waiting: queued with the writes around it, and `then` gets the
    /// outcome once committed. `then` runs on the writer's thread: quick, and no writes.
    pub fn finish_then(
        &self,
        id: TaskId,
        client: &str,
        owner: &str,
        finish: Arc<Finish>,
        then: impl FnOnce(Result<bool>) + Send + 'static,
    ) {
        let (client, owner) = (client.to_string(), owner.to_string());
        let now = self.clock().now_text();
        let store = self.clone();
        let began_import = finish.began_import;
        self.inner.writer.write_then(
            move |tx| finish_in(tx, id, &client, &owner, &finish, &now),
            move |outcome| {
                store.after_end(id, began_import, outcome.is_ok());
                then(outcome);
            },
        );
    }

    /// After task `id`'s end was written (`committed`, or failed): the dataset its import
    /// kept for the end is released once the end is recorded (see `import`), and whoever
    /// waits for a task to end looks again.
    fn after_end(&self, id: TaskId, began_import: bool, committed: bool) {
        if began_import && committed {
            self.inner.importing.release_at_end(id);
        }
        self.activity().bump();
    }
}

/// Records a task's end within a transaction; see `Store::finish`.
fn finish_in(
    tx: &JobTx<'_, '_>,
    id: TaskId,
    client: &str,
    owner: &str,
    finish: &Finish,
    now: &str,
) -> Result<bool> {
    let c = finish.counts;
    // A task whose start was folded into its end is still Pending (reserved for us, with no
    // lease in its row), and its reservation goes with this commit whatever the outcome.
    let (expected, lease) = if finish.started_at.is_some() {
        (State::Queued, None)
    } else {
        (State::Running, Some(owner))
    };
    if expected == State::Queued && !tx.is_reserved(id) {
        // The service stopped since the task was claimed (see `Store::interrupt_running`).
        return not_running(tx, id, finish);
    }
    tx.released(id);
    let tail = &finish.log_tail;
    let inline = finish.log_file.is_none() && !tail.is_empty() && tail.len() <= INLINE_LOG_MAX;
    // The end's own statement checks that the task is still this run's. Only an end that
    // writes before it (a LOG stored as a file) or replaces the IO file (whose id it needs)
    // looks first; most ends are the one statement.
    let old_io = if (!tail.is_empty() && !inline) || finish.io_file.is_some() {
        let old_io: Option<Option<FileId>> = tx
            .prepare_cached(
                "SELECT io_file_id FROM tasks WHERE id = ?1 AND lease_owner IS ?2 AND state = ?3",
            )?
            .query_row(params![id, lease, expected.code()], |r| r.get(0))
            .optional()?;
        match old_io {
            Some(old_io) => old_io,
            None => return not_running(tx, id, finish),
        }
    } else {
        None
    };
    let (log_file, log_text) = match (finish.log_file, tail.is_empty()) {
        (log_file, true) => (log_file, None),
        (Some(file), false) => {
            super::files::append_in(tx, file, tail)?;
            (Some(file), None)
        }
        (None, false) if inline => (None, Some(tail.as_slice())),
        (None, false) => (
            Some(super::files::create_whole_in(tx, id, tail, now)?),
            None,
        ),
    };
    let (new_io, new_name) = match &finish.io_file {
        Some((file, name)) => (Some(*file), Some(name.as_str())),
        None => (None, None),
    };
    let ended = tx.end_task().execute(params![
        finish.state.code(),
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
        log_text,
        lease,
        expected.code(),
        client,
    ])?;
    if ended == 0 {
        return not_running(tx, id, finish);
    }
    tx.moved(client, Some(expected), Some(finish.state));
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
    if finish.began_import {
        super::import::finish_import(tx, id)?;
    }
    Ok(true)
}

/// The end of a task that is no longer this owner's to end: deleted, or interrupted at
/// shutdown, or never started (its start failed to commit). What this run produced is not
/// the task's; the task, if it still exists and waits, is claimed again (its reservation
/// goes with this commit).
fn not_running(tx: &Connection, id: TaskId, finish: &Finish) -> Result<bool> {
    // Files the task already points at (a LOG attached while it ran) stay with it.
    let produced = [
        finish.io_file.as_ref().map(|f| f.0),
        finish.log_file,
        finish.err_file,
    ];
    for file in produced.into_iter().flatten() {
        tx.execute("DELETE FROM files WHERE id = ?1 AND attached = 0", [file])?;
    }
    super::import::remove_import(tx, id)?;
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::super::claim::START_TASK;
    use super::super::submit::INSERT_TASK;
    use super::*;
    use crate::store::*;
    use crate::task::{NewTask, Params, Scope, State};
    use rusqlite::params_from_iter;
    use rusqlite::types::Value;

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
            .chain(super::super::space::HOT_STATEMENTS)
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
        assert_eq!(store.claim_due(2).unwrap().tasks.len(), 2);

        // Ended without a recorded start: the end records it.
        let mut end = Finish::success(b"done\n");
        Arc::get_mut(&mut end).unwrap().started_at = Some("2026-11-26T10:00:00".into());
        assert!(store.finish(ids[0], "default", "me", end.clone()).unwrap());
        let task = store.task(&Scope::All, ids[0]).unwrap();
        assert_eq!(task.state, State::Succeeded);
        assert_eq!(task.start_time.as_deref(), Some("2026-11-26T10:00:00"));
        assert_eq!(task.attempts, 1);
        assert!(task.has_log_file);
        // Only once: the same end again finds the task no longer reserved.
        assert!(!store.finish(ids[0], "default", "me", end).unwrap());

        // A start the writer already ran cannot be folded.
        let (ran, started) = crossbeam_channel::bounded(1);
        let queued = store.start_then(ids[1], "default", "me", move |r| ran.send(r).unwrap());
        assert!(started.recv().unwrap().unwrap());
        assert_eq!(queued.fold(), None);
        let task = store.task(&Scope::All, ids[1]).unwrap();
        assert_eq!(task.state, State::Running);
        assert_eq!(task.attempts, 1);
    }
}
