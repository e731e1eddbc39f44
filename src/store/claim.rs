//! Claiming and starting: the dispatcher reserves due tasks for this process, and a
//! worker starts each (or folds its start into its end).
//!
//! A reservation is kept in memory (`memory.rs`), not in the task's row: one process owns
//! the file (its lock file says so), so a reservation needs to outlive neither it nor a
//! crash (a task reserved and not started simply waits again). The claim is then a read on
//! a pooled connection, not a write: the writer, which every submission and end waits on,
//! does nothing for it. A task's row changes once it starts (state, owner, lease).

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use rusqlite::params;

use super::query::params_from_json;
use super::snapshot::Snapshot;
use super::writer::JobTx;
use super::{Result, Store};
use crate::task::{FileId, Params, State, TaskId};

/// How long a claim holds without a sign of life. One node recovers its own running tasks at
/// start and does not need it; a store shared by several nodes will rescue a task whose
/// lease expired. Progress reports renew it.
pub(super) const LEASE_MS: i64 = 5 * 60 * 1000;

/// The waiting tasks, oldest due first, ?1 of them: read from the queue's index alone
/// (`tasks_queued_due`, whose condition this repeats).
pub(super) const WAITING: &str = "SELECT id, due_at FROM tasks \
     WHERE state = 1 AND lease_owner IS NULL ORDER BY due_at, id LIMIT ?1 + 0";

/// What a worker needs of task ?1 to run it.
const CLAIMED: &str =
    "SELECT kind, params, io_filename, io_file_id, attempts + 1, client FROM tasks WHERE id = ?1";

/// Task ?2 of client ?4, reserved by this process, starts at ?1, leased to owner ?3 until
/// ?5. (The client is known; it is checked so that a caller naming the wrong one fails
/// rather than move the wrong counts.)
pub(super) const START_TASK: &str = "UPDATE tasks SET state = 4, start_time = ?1, \
     updated_at = ?1, attempts = attempts + 1, lease_owner = ?3, lease_expires_at = ?5 \
     WHERE id = ?2 AND state = 1 AND client = ?4";

/// A task the dispatcher claimed for this process: what a worker needs to run it.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: TaskId,
    pub kind: String,
    pub params: Params,
    pub io_filename: String,
    pub io_file: Option<FileId>,
    pub attempt: u32,
    /// The client the task belongs to: what it may reach (its datasets) is that client's.
    pub client: String,
}

/// A task's start, queued by [`Store::start_then`] and not yet run by the writer.
///
/// Most tasks end within microseconds, before the writer reaches their start. Then the
/// start is folded into the end: the queued start does nothing, and the end records both in
/// one statement, which spares the writer a statement per task. Folding is only possible
/// while the start still waits, which also proves the handler wrote nothing: every first
/// write a handler makes (a file, progress, an import) waits for its commit, and the writer
/// runs jobs in order, so the start has run by
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

/// What a claim found: the tasks it reserved, and when the first waiting task it did not
/// take falls due (None: none waits but those reserved).
#[derive(Debug, Default)]
pub struct Claims {
    pub tasks: Vec<Claimed>,
    pub next_due_ms: Option<i64>,
}

impl Store {
    /// Reserves up to `limit` due waiting tasks for this process, oldest due first: they
    /// stay Pending until `start` (no other claim takes them meanwhile).
    pub fn claim_due(&self, limit: usize) -> Result<Claims> {
        let memory = &self.inner.memory;
        // One claim at a time: what one reserves, the next must see reserved.
        let _claiming = self
            .inner
            .claiming
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        // The dispatcher tries whenever a task is submitted or ends; most often, with tasks
        // taken as they come, every waiting task is already reserved.
        if memory.unreserved_waiting() == 0 {
            return Ok(Claims::default());
        }
        let conn = self.conn()?;
        let snapshot = Snapshot::begin(&conn)?;
        let reserved = memory.claim_snapshot(|| snapshot.pin())?;
        let now_ms = self.clock().now_ms();
        // The reserved tasks are the oldest due: read past them, and one more, to see when
        // the next falls due.
        let wanted = limit.saturating_add(reserved.len()).saturating_add(1);
        let mut waiting = snapshot.prepare_cached(WAITING)?;
        let mut rows = waiting.query([i64::try_from(wanted).unwrap_or(i64::MAX)])?;
        let mut due = Vec::with_capacity(limit);
        let mut next_due_ms = None;
        while let Some(row) = rows.next()? {
            let (id, due_at): (TaskId, i64) = (row.get(0)?, row.get(1)?);
            if reserved.contains(&id) {
                continue;
            }
            if due_at > now_ms || due.len() == limit {
                next_due_ms = Some(due_at);
                break;
            }
            due.push(id);
        }
        drop(rows);
        let mut fetch = snapshot.prepare_cached(CLAIMED)?;
        let mut tasks = Vec::with_capacity(due.len());
        for id in due {
            tasks.push(fetch.query_row([id], |r| {
                Ok(Claimed {
                    id,
                    kind: r.get(0)?,
                    params: params_from_json(r.get_ref(1)?.as_str()?),
                    io_filename: r.get(2)?,
                    io_file: r.get(3)?,
                    attempt: r.get(4)?,
                    client: r.get(5)?,
                })
            })?);
        }
        // A task deleted since the snapshot (which saw it waiting) is not taken.
        let taken = memory.reserve(tasks.iter().map(|c| c.id));
        tasks.retain(|c| taken.contains(&c.id));
        Ok(Claims { tasks, next_due_ms })
    }

    /// Whether reserved task `id` still waits to start: false if it was deleted meanwhile,
    /// or if the service stops (see `interrupt_running`): its handler must not run. Asked of
    /// memory alone: a reservation ends with the commit that takes its task out of the queue
    /// (its start, its end, its delete) or with the service.
    pub fn still_waiting(&self, id: TaskId) -> bool {
        self.inner.memory.is_reserved(id)
    }

    /// Marks a reserved task running, without waiting: queued before everything the task's
    /// handler then writes, so nothing of its work is stored before its start. `then` gets
    /// whether it started (false: deleted meanwhile) once committed; a start the task's end
    /// took over (see [`QueuedStart`]) reports true and writes nothing.
    pub fn start_then(
        &self,
        id: TaskId,
        client: &str,
        owner: &str,
        then: impl FnOnce(Result<bool>) + Send + 'static,
    ) -> QueuedStart {
        let (client, owner) = (client.to_string(), owner.to_string());
        let now_ms = self.clock().now_ms();
        let now = crate::clock::format_ms(now_ms);
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
                    // Run (a second time too: the writer may run a job again, see writer.rs).
                    Ok(_) | Err(START_RUN) => start_in(tx, id, &client, &owner, (&now, now_ms)),
                    // Folded into the task's end, which is queued behind this.
                    Err(_) => Ok(true),
                }
            },
            then,
        );
        queued
    }

    /// `start_then`, waiting for the commit.
    #[cfg(test)]
    pub fn start(&self, id: TaskId, client: &str, owner: &str) -> Result<bool> {
        let (client, owner) = (client.to_string(), owner.to_string());
        let now_ms = self.clock().now_ms();
        let now = crate::clock::format_ms(now_ms);
        self.write(move |tx| start_in(tx, id, &client, &owner, (&now, now_ms)))
    }
}

/// Marks a reserved task running within a transaction; see `Store::start_then`. Its
/// reservation goes with the commit: started, or gone (deleted meanwhile).
fn start_in(
    tx: &JobTx<'_, '_>,
    id: TaskId,
    client: &str,
    owner: &str,
    now: (&str, i64),
) -> Result<bool> {
    let (now, now_ms) = now;
    if !tx.is_reserved(id) {
        // Not claimed here, or the service stopped since (see `Store::interrupt_running`).
        return Ok(false);
    }
    let started = tx.prepare_cached(START_TASK)?.execute(params![
        now,
        id,
        owner,
        client,
        now_ms + LEASE_MS
    ])?;
    if started == 1 {
        tx.moved(client, Some(State::Queued), Some(State::Running));
    }
    tx.released(id);
    Ok(started == 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::*;
    use crate::task::{NewTask, Params, Scope, State};
    use rusqlite::params;
    use std::sync::Arc;

    /// A store with `n` tasks submitted and claimed (reserved, not started).
    fn claimed(n: usize) -> (tempfile::TempDir, Store, Vec<TaskId>) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db"), Durability::Normal).unwrap();
        let ids = store
            .submit_many(&vec![NewTask::new("sleep", Params::new()); n])
            .unwrap();
        assert_eq!(store.claim_due(n).unwrap().tasks.len(), n);
        (dir, store, ids)
    }

    #[test]
    fn a_claimed_task_stays_pending_until_it_starts_and_a_restart_requeues_it() {
        let (_dir, store, ids) = claimed(2);
        let all = Scope::All;
        assert_eq!(store.task(&all, ids[0]).unwrap().state, State::Queued);
        // Claimed once: a second claim finds nothing, and the dispatcher waits for nothing.
        let claims = store.claim_due(10).unwrap();
        assert!(claims.tasks.is_empty());
        assert_eq!(claims.next_due_ms, None);
        assert!(store.start(ids[0], "default", "me").unwrap());
        assert_eq!(store.task(&all, ids[0]).unwrap().state, State::Running);
        assert_eq!(store.task(&all, ids[0]).unwrap().attempts, 1);
        // A crash: the started one is interrupted, the reserved one waits to run again.
        assert_eq!(store.interrupt_running(None).unwrap(), vec![ids[0]]);
        let requeued = store.task(&all, ids[1]).unwrap();
        assert_eq!((requeued.state, requeued.attempts), (State::Queued, 0));
        let again = store.claim_due(10).unwrap().tasks;
        assert_eq!(again.iter().map(|c| c.id).collect::<Vec<_>>(), vec![ids[1]]);
        assert_eq!(again[0].attempt, 1);
        // A task deleted while reserved does not start.
        let scope = Scope::Client("default".into());
        assert_eq!(
            store.delete(&scope, ids[1], false).unwrap(),
            DeleteOutcome::Deleted
        );
        assert!(!store.still_waiting(ids[1]));
        assert!(!store.start(ids[1], "default", "next").unwrap());
        assert!(!store.inner.memory.is_reserved(ids[1]));
    }

    /// Once the service stops (its running tasks interrupted), a task it reserved and did not
    /// start may not start, nor end with its start folded in: it waits for the next start.
    #[test]
    fn a_reserved_task_cannot_start_once_the_service_stopped() {
        let (_dir, store, ids) = claimed(2);
        assert!(ids.iter().all(|id| store.still_waiting(*id)));
        assert!(store.interrupt_running(Some("me")).unwrap().is_empty());
        // A worker that takes one of them now does not run it...
        assert!(ids.iter().all(|id| !store.still_waiting(*id)));
        // ...and a start or a folded end that comes anyway is refused.
        assert!(!store.start(ids[0], "default", "me").unwrap());
        let mut folded = crate::store::Finish::success(b"");
        Arc::get_mut(&mut folded).unwrap().started_at = Some("2026-01-01T00:00:00".into());
        assert!(!store.finish(ids[1], "default", "me", folded).unwrap());
        for id in ids {
            assert_eq!(store.task(&Scope::All, id).unwrap().state, State::Queued);
        }
        assert_eq!(store.claim_due(10).unwrap().tasks.len(), 2);
    }

    /// A start queued behind the service's stop, in the same batch of the writer, is
    /// refused as one in a later batch is.
    #[test]
    fn a_start_in_the_batch_of_the_stop_is_refused() {
        let (_dir, store, ids) = claimed(1);
        let id = ids[0];
        // Hold the writer until the stop and the start are both queued behind it.
        let release = store.inner.writer.hold();
        let stopping = {
            let store = store.clone();
            std::thread::spawn(move || store.interrupt_running(Some("me")).unwrap())
        };
        store.inner.writer.wait_queued(1);
        let (started, start) = crossbeam_channel::bounded(1);
        store.start_then(id, "default", "me", move |r| started.send(r).unwrap());
        release.send(()).unwrap();
        assert!(
            !start.recv().unwrap().unwrap(),
            "a start behind the stop ran"
        );
        stopping.join().unwrap();
        assert_eq!(store.task(&Scope::All, id).unwrap().state, State::Queued);
    }

    /// A reserved task deleted before it started no longer holds its place: a task
    /// submitted next is claimed at once.
    #[test]
    fn a_reserved_task_deleted_frees_its_reservation_with_the_delete() {
        let (_dir, store, ids) = claimed(1);
        let first = ids[0];
        let scope = Scope::Client("default".into());
        assert_eq!(
            store.delete(&scope, first, false).unwrap(),
            DeleteOutcome::Deleted
        );
        assert!(!store.still_waiting(first));
        let next = store
            .submit_many(&[NewTask::new("sleep", Params::new())])
            .unwrap()[0];
        let claimed = store.claim_due(1).unwrap().tasks;
        assert_eq!(claimed.iter().map(|t| t.id).collect::<Vec<_>>(), [next]);
    }

    /// Claims taken while the tasks claimed before start (each start takes its task out of
    /// the queue and drops its reservation at one commit) never take a task twice, and in
    /// the end take every one.
    #[test]
    fn claims_racing_starts_take_each_task_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db"), Durability::Normal).unwrap();
        let total = 400;
        store
            .submit_many(&vec![NewTask::new("sleep", Params::new()); total])
            .unwrap();
        let (started, starts) = crossbeam_channel::unbounded();
        let mut seen = std::collections::HashSet::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while seen.len() < total {
            assert!(std::time::Instant::now() < deadline, "claims stalled");
            for task in store.claim_due(7).unwrap().tasks {
                assert!(seen.insert(task.id), "task {} claimed twice", task.id);
                let started = started.clone();
                store.start_then(task.id, &task.client, "me", move |r| {
                    started.send(r).unwrap();
                });
            }
        }
        for _ in 0..total {
            assert!(starts.recv().unwrap().unwrap());
        }
        assert!(store.claim_due(7).unwrap().tasks.is_empty());
    }

    /// A task not yet due is not claimed, and the claim says when it falls due (the
    /// dispatcher sleeps until then); reserved tasks are passed over.
    #[test]
    fn a_claim_says_when_the_next_task_falls_due() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(crate::clock::ManualClock::at(1_764_000_000_000));
        let store = Store::open_sized(
            &dir.path().join("t.db"),
            Durability::Normal,
            4,
            clock.clone(),
        )
        .unwrap();
        store
            .submit_many(&vec![NewTask::new("sleep", Params::new()); 2])
            .unwrap();
        clock.advance(std::time::Duration::from_millis(10));
        let later = store
            .submit_many(&[NewTask::new("sleep", Params::new())])
            .unwrap()[0];
        clock.set(1_764_000_000_005);
        let claims = store.claim_due(1).unwrap();
        assert_eq!(claims.tasks.len(), 1);
        let claims = store.claim_due(5).unwrap();
        assert_eq!(claims.tasks.len(), 1, "the second of the two due");
        assert_eq!(claims.next_due_ms, Some(1_764_000_000_010));
        clock.set(1_764_000_000_010);
        let claims = store.claim_due(5).unwrap();
        assert_eq!(
            claims.tasks.iter().map(|t| t.id).collect::<Vec<_>>(),
            [later]
        );
        assert_eq!(claims.next_due_ms, None);
    }

    #[test]
    fn the_claim_is_prepared_once_whatever_its_limit() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db"), Durability::Normal).unwrap();
        let conn = store.conn().unwrap();
        let mut claim = conn.prepare(WAITING).unwrap();
        for limit in 1..6 {
            claim.query(params![limit]).unwrap().next().unwrap();
        }
        let reprepared = claim.get_status(rusqlite::StatementStatus::RePrepare);
        assert_eq!(reprepared, 0);
    }
}
