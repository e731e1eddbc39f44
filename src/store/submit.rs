//! Submitting tasks: one, or many in one transaction, with Idempotency-Keys remembered for a
//! day per client and user.

use std::collections::HashMap;
use std::sync::Arc;

use rusqlite::{params, OptionalExtension};

use super::query::read_task;
use super::space::check_unfinished_in;
use super::writer::JobTx;
use super::{Result, Store, StoreError};
use crate::task::{Counts, NewTask, State, Task, TaskId};

/// A new task: ?1 user id, ?2 user name, ?3 client, ?4 now, ?5 kind, ?6 params JSON, ?7 IO
/// file name, ?8 IO file, ?9 due (unix ms), ?10 its id (see `task_ids`), ?11 the client's
/// number (see `clients`).
pub(super) const INSERT_TASK: &str =
    "INSERT INTO tasks (id, user_id, user_name, client, client_no, created_at, kind, \
     params, io_filename, io_file_id, due_at, updated_at) \
     VALUES (?10, ?1, ?2, ?3, ?11, ?4, ?5, ?6, ?7, ?8, ?9, ?4)";

/// How long an Idempotency-Key is remembered.
const IDEMPOTENCY_WINDOW_MS: i64 = 24 * 60 * 60 * 1000;

/// The answer to a submission: the task, and whether this call created it (false when an
/// Idempotency-Key matched an earlier submission).
#[derive(Debug, Clone)]
pub struct Submitted {
    /// The task, as stored.
    pub task: Task,
    /// Whether this call created it (false: an Idempotency-Key matched an earlier one).
    pub created: bool,
}

impl Store {
    /// Stores a new task (Pending, due now) and returns it once committed. With an
    /// Idempotency-Key that this user sent within the last 24 hours, returns the task that
    /// submission created instead, or `IdempotencyConflict` if it was for a different task.
    pub(super) fn submit(&self, new: &NewTask) -> Result<Submitted> {
        let mut submitted = self.submit_all(std::slice::from_ref(new))?;
        submitted
            .pop()
            .ok_or_else(|| StoreError::Internal("a submission stored nothing".into()))
    }

    /// Stores many tasks in one transaction (all or none) and returns their ids, in order.
    #[cfg(test)]
    pub(super) fn submit_many(&self, tasks: &[NewTask]) -> Result<Vec<TaskId>> {
        let submitted = self.submit_all(tasks)?;
        Ok(submitted.into_iter().map(|s| s.task.id).collect())
    }

    /// Stores many tasks in one transaction (all or none) and returns each, in order, as
    /// `submit` does.
    pub(super) fn submit_all(&self, tasks: &[NewTask]) -> Result<Vec<Submitted>> {
        self.precheck_unfinished(tasks)?;
        // Each task's client number (see `clients`), numbering a new client first.
        let client_nos = tasks
            .iter()
            .map(|t| self.client_no(&t.owner.client))
            .collect::<Result<Vec<i64>>>()?;
        let tasks = Arc::new(tasks.to_vec());
        let now_ms = self.clock().now_ms();
        let store = self.clone();
        let now = crate::clock::format_ms(now_ms);
        let (inserted, at) = (tasks.clone(), now.clone());
        // The writer inserts; a new task is what was inserted, with the schema's defaults,
        // made here once committed rather than on the writer that every write waits for.
        let outcomes = self.write(move |tx| {
            let quota = store.limits().max_unfinished;
            insert_all(tx, &inserted, &client_nos, &at, now_ms, quota)
        })??;
        // The writer dropped its handle on the tasks before answering.
        let tasks = Arc::try_unwrap(tasks).unwrap_or_else(|shared| (*shared).clone());
        let submitted: Vec<Submitted> = outcomes
            .into_iter()
            .zip(tasks)
            .map(|((id, earlier), new)| match earlier {
                None => Submitted {
                    task: pending_task(id, new, now.clone()),
                    created: true,
                },
                Some(task) => Submitted {
                    task,
                    created: false,
                },
            })
            .collect();
        if submitted.iter().any(|s| s.created) {
            self.activity().bump();
        }
        Ok(submitted)
    }
}

impl Store {
    /// Refuses, before the writer, new tasks that would take their client past its quota of
    /// unfinished tasks (see `precheck_unfinished_of`). A task with an Idempotency-Key
    /// may be an earlier one again, which is not new: the writer decides for those.
    fn precheck_unfinished(&self, tasks: &[NewTask]) -> Result<()> {
        let unkeyed = tasks.iter().filter(|t| t.idempotency_key.is_none());
        for (client, n) in per_client(unkeyed) {
            self.precheck_unfinished_of(client, n)?;
        }
        Ok(())
    }
}

/// A task just inserted by `insert_task`, as the schema's defaults make it.
fn pending_task(id: TaskId, new: NewTask, created_at: String) -> Task {
    Task {
        id,
        uuid: String::new(),
        user_id: new.owner.user_id,
        user_name: new.owner.user_name,
        client: new.owner.client,
        updated_at: created_at.clone(),
        created_at,
        kind: new.kind,
        params: new.params,
        io_filename: new.io_filename,
        has_io_file: new.io_file.is_some(),
        has_log_file: false,
        has_err_file: false,
        percent_complete: 0,
        state: State::Queued,
        message: String::new(),
        start_time: None,
        end_time: None,
        counts: Counts::default(),
        attempts: 0,
    }
}

/// What an Idempotency-Key says of a submission, read before anything is written.
enum Earlier {
    /// No key, or one not seen: a new task.
    None,
    /// A key seen more than a day ago: forgotten, and a new task.
    Expired,
    /// The task an earlier submission with this key created.
    Matched(TaskId),
    /// The same key as the submission at this index of the same call, for the same task.
    SameAs(usize),
    /// A key that stands for another task (another kind, other params).
    Conflict,
}

/// A submission's task: its id, and the earlier submission's task when its key matched.
type Inserted = (TaskId, Option<Task>);

/// One submission of a call, as planned before anything is written.
struct Plan {
    params_json: String,
    /// The kind and params a key stands for (only with a key).
    fingerprint: Option<String>,
    earlier: Earlier,
}

/// Inserts `tasks` within the writer's transaction: for each, its id and, when an
/// Idempotency-Key matched an earlier submission, that submission's task. Everything that
/// may refuse the call (a key for another task, the quota of unfinished tasks) is decided
/// first, by reads, and a refusal is the inner error: the job then succeeds having written
/// nothing, so its batch need not run again without it (see writer.rs). The outer error
/// is a failure that leaves writes to roll back.
fn insert_all(
    tx: &JobTx<'_, '_>,
    tasks: &[NewTask],
    client_nos: &[i64],
    now: &str,
    now_ms: i64,
    quota: u64,
) -> Result<Result<Vec<Inserted>>> {
    let mut plans: Vec<Plan> = Vec::with_capacity(tasks.len());
    // The first submission of this call with each (client, user, key).
    let mut keys: HashMap<(&str, i64, &str), usize> = HashMap::new();
    for (i, new) in tasks.iter().enumerate() {
        let params_json =
            serde_json::to_string(&new.params).map_err(|e| StoreError::Internal(e.to_string()))?;
        // Only a submission with an Idempotency-Key needs its fingerprint.
        let fingerprint = new
            .idempotency_key
            .as_ref()
            .map(|_| format!("{}\n{}", new.kind, params_json));
        let earlier = match &new.idempotency_key {
            None => Earlier::None,
            Some(key) => {
                let id = (new.owner.client.as_str(), new.owner.user_id, key.as_str());
                match keys.get(&id) {
                    Some(&j) if plans[j].fingerprint == fingerprint => Earlier::SameAs(j),
                    Some(_) => Earlier::Conflict,
                    None => {
                        keys.insert(id, i);
                        earlier_of(tx, new, key, fingerprint.as_deref(), now_ms)?
                    }
                }
            }
        };
        if matches!(earlier, Earlier::Conflict) {
            return Ok(Err(StoreError::IdempotencyConflict));
        }
        plans.push(Plan {
            params_json,
            fingerprint,
            earlier,
        });
    }
    // A retry matched above is not a new task: no quota applies to it.
    let new_tasks = tasks
        .iter()
        .zip(&plans)
        .filter(|(_, plan)| matches!(plan.earlier, Earlier::None | Earlier::Expired))
        .map(|(new, _)| new);
    for (client, n) in per_client(new_tasks) {
        if let Err(refused) = check_unfinished_in(tx, client, quota, n) {
            return Ok(Err(refused));
        }
    }
    let mut outcomes: Vec<Inserted> = Vec::with_capacity(tasks.len());
    for ((new, plan), &client_no) in tasks.iter().zip(plans).zip(client_nos) {
        let earlier_task = match plan.earlier {
            Earlier::Matched(id) => Some(id),
            Earlier::SameAs(j) => Some(outcomes[j].0),
            Earlier::None | Earlier::Expired | Earlier::Conflict => None,
        };
        let outcome = match earlier_task {
            Some(id) => {
                discard_retried_upload(tx, new)?;
                (id, Some(read_task(tx, id)?))
            }
            None => {
                if matches!(plan.earlier, Earlier::Expired) {
                    tx.prepare_cached(
                        "DELETE FROM idempotency_keys WHERE client = ?1 AND user_id = ?2 AND key = ?3",
                    )?
                    .execute(params![new.owner.client, new.owner.user_id, new.idempotency_key])?;
                }
                (insert_task(tx, new, client_no, &plan, now, now_ms)?, None)
            }
        };
        outcomes.push(outcome);
    }
    Ok(Ok(outcomes))
}

/// What `new`'s Idempotency-Key `key` says, by the keys stored.
fn earlier_of(
    tx: &JobTx<'_, '_>,
    new: &NewTask,
    key: &str,
    fingerprint: Option<&str>,
    now_ms: i64,
) -> Result<Earlier> {
    let earlier: Option<(TaskId, String, i64)> = tx
        .prepare_cached(
            "SELECT task_id, fingerprint, created_ms FROM idempotency_keys \
             WHERE client = ?1 AND user_id = ?2 AND key = ?3",
        )?
        .query_row(params![new.owner.client, new.owner.user_id, key], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()?;
    Ok(match earlier {
        None => Earlier::None,
        Some((_, _, created_ms)) if now_ms - created_ms >= IDEMPOTENCY_WINDOW_MS => {
            Earlier::Expired
        }
        Some((task_id, earlier, _)) if Some(earlier.as_str()) == fingerprint => {
            Earlier::Matched(task_id)
        }
        Some(_) => Earlier::Conflict,
    })
}

/// A retried submission's upload is not needed: the first one's is kept. (Only the
/// client's own: an upload is used only by the client that sent it.)
fn discard_retried_upload(tx: &JobTx<'_, '_>, new: &NewTask) -> Result<()> {
    if let Some(upload) = new.io_file {
        tx.execute(
            "DELETE FROM files WHERE id = ?1 AND task_id IS NULL AND client = ?2",
            params![upload, new.owner.client],
        )?;
    }
    Ok(())
}

/// How many of `tasks` each client has, in the order the clients first appear.
fn per_client<'a>(tasks: impl Iterator<Item = &'a NewTask>) -> Vec<(&'a str, u64)> {
    let mut counted: Vec<(&str, u64)> = Vec::new();
    for task in tasks {
        let client = task.owner.client.as_str();
        match counted.iter_mut().find(|(c, _)| *c == client) {
            Some((_, n)) => *n += 1,
            None => counted.push((client, 1)),
        }
    }
    counted
}

/// Inserts a new task as `plan` prepared it (its key, if any, remembered with it).
fn insert_task(
    tx: &JobTx<'_, '_>,
    new: &NewTask,
    client_no: i64,
    plan: &Plan,
    now: &str,
    now_ms: i64,
) -> Result<TaskId> {
    if let Some(upload) = new.io_file {
        // An upload is used only by the client that sent it.
        let staged = tx
            .prepare_cached(
                "SELECT 1 FROM files WHERE id = ?1 AND task_id IS NULL AND client = ?2",
            )?
            .exists(params![upload, new.owner.client])?;
        if !staged {
            return Err(StoreError::Internal(format!(
                "upload {upload} is not a staged file"
            )));
        }
    }
    let id = tx.new_task_id();
    tx.insert_task().execute(params![
        new.owner.user_id,
        new.owner.user_name,
        new.owner.client,
        now,
        new.kind,
        plan.params_json,
        new.io_filename,
        new.io_file,
        now_ms,
        id,
        client_no
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
        .execute(params![new.owner.client, new.owner.user_id, key, id, plan.fingerprint, now_ms])?;
    }
    tx.moved(&new.owner.client, None, Some(State::Queued));
    Ok(id)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::clock::ManualClock;
    use crate::store::{Durability, StoreError, DEFAULT_POOL_SIZE};
    use crate::task::{Params, Scope};

    /// The clock is the store's, so a day passes without waiting for it.
    #[test]
    fn an_idempotency_key_is_remembered_for_a_day_by_the_store_s_clock() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::at(1_764_000_000_000));
        let store = Store::open_sized(
            &dir.path().join("t.db"),
            Durability::Normal,
            DEFAULT_POOL_SIZE,
            clock.clone(),
        )
        .unwrap();
        let store = store.scoped(Scope::All);
        let mut new = NewTask::new("sleep", Params::new());
        new.idempotency_key = Some("k".into());
        let first = store.submit(&new).unwrap();
        assert!(first.created);
        assert_eq!(first.task.created_at, "2025-11-24T16:00:00");

        clock.advance(Duration::from_secs(23 * 3600));
        let retry = store.submit(&new).unwrap();
        assert_eq!((retry.task.id, retry.created), (first.task.id, false));
        let mut other = new.clone();
        other.kind = "csv.export".into();
        assert!(matches!(
            store.submit(&other),
            Err(StoreError::IdempotencyConflict)
        ));

        clock.advance(Duration::from_secs(3600));
        let later = store.submit(&new).unwrap();
        assert!(later.created);
        assert_ne!(later.task.id, first.task.id);
    }

    /// Refusals decided inside the writer (a key for another task, the quota reached by
    /// keyed submissions, which the check before the writer leaves to it) are answers: the
    /// job writes nothing first, so the batch it shares does not run again.
    #[test]
    fn a_refusal_inside_the_writer_does_not_make_its_batch_run_again() {
        use std::sync::atomic::Ordering;
        let dir = tempfile::tempdir().unwrap();
        let limits = crate::store::StoreLimits {
            max_unfinished: 2,
            ..crate::store::StoreLimits::default()
        };
        let store = Store::open_limited(&dir.path().join("t.db"), limits);
        let all = store.scoped(Scope::All);
        let keyed = |key: &str, kind: &str| {
            let mut new = NewTask::new(kind, Params::new());
            new.idempotency_key = Some(key.into());
            new
        };
        all.submit(&keyed("a", "sleep")).unwrap();
        let release = store.inner.writer.hold();
        let (runs, answer) = store.inner.writer.probe();
        let refusals: Vec<_> = [
            keyed("a", "csv.export"),
            keyed("b", "sleep"),
            keyed("c", "sleep"),
        ]
        .into_iter()
        .map(|new| {
            let store = store.clone();
            std::thread::spawn(move || store.scoped(Scope::All).submit(&new))
        })
        .collect();
        store.inner.writer.wait_queued(4);
        release.send(()).unwrap();
        assert!(answer.recv().unwrap());
        let answers: Vec<_> = refusals.into_iter().map(|h| h.join().unwrap()).collect();
        assert!(
            matches!(answers[0], Err(StoreError::IdempotencyConflict)),
            "{answers:?}"
        );
        // One of b and c fits under the quota of 2; the other is refused.
        let refused = answers[1..]
            .iter()
            .filter(|a| matches!(a, Err(StoreError::Refused(_))))
            .count();
        assert_eq!(refused, 1, "{answers:?}");
        assert_eq!(runs.load(Ordering::SeqCst), 1, "the batch ran again");
    }

    /// Within one call: the same key for the same task is that task again; the same key
    /// for another task is a conflict, and nothing of the call is stored.
    #[test]
    fn a_key_repeated_within_one_call_is_one_task_or_a_conflict() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db"), Durability::Normal).unwrap();
        let all = store.scoped(Scope::All);
        let keyed = |key: &str, kind: &str| {
            let mut new = NewTask::new(kind, Params::new());
            new.idempotency_key = Some(key.into());
            new
        };
        let unkeyed = NewTask::new("sleep", Params::new());
        let twice = all
            .submit_many(&[keyed("k", "sleep"), unkeyed.clone(), keyed("k", "sleep")])
            .unwrap();
        assert_eq!(twice[0].task.id, twice[2].task.id);
        assert_eq!(
            twice.iter().map(|s| s.created).collect::<Vec<_>>(),
            [true, true, false]
        );
        let before = all.list(&Default::default()).unwrap().1;
        let conflict = all.submit_many(&[unkeyed, keyed("j", "sleep"), keyed("j", "csv.export")]);
        assert!(matches!(conflict, Err(StoreError::IdempotencyConflict)));
        assert_eq!(all.list(&Default::default()).unwrap().1, before);
    }
}
