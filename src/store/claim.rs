//! Claiming and starting: the dispatcher reserves due tasks for this process in one
//! statement, and a worker starts each (or folds its start into its end).

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use rusqlite::params;

use super::query::params_from_json;
use super::writer::JobTx;
use super::{Result, Store};
use crate::task::{FileId, Params, State, TaskId};

/// How long a claim holds without a sign of life. One node recovers its own running tasks at
/// start and does not need it; a store shared by several nodes will rescue a task whose
/// lease expired. Progress reports renew it.
pub(super) const LEASE_MS: i64 = 5 * 60 * 1000;

/// The claim: one statement reserving up to ?3 due tasks for owner ?1, due by ?2 (ms),
/// leased until ?4.
pub(super) const CLAIM: &str = "UPDATE tasks SET lease_owner = ?1, lease_expires_at = ?4 \
     WHERE id IN (SELECT id FROM tasks WHERE state = 'queued' AND lease_owner IS NULL \
                  AND due_at <= ?2 ORDER BY due_at, id LIMIT ?3 + 0) \
     RETURNING id, kind, params, io_filename, io_file_id, attempts + 1, client";

/// Task ?2 of client ?4, reserved for owner ?3, starts at ?1. (The client is known; it is
/// checked so that a caller naming the wrong one fails rather than move the wrong counts.)
pub(super) const START_TASK: &str = "UPDATE tasks SET state = 'running', start_time = ?1, \
     updated_at = ?1, attempts = attempts + 1 \
     WHERE id = ?2 AND lease_owner = ?3 AND state = 'queued' AND client = ?4";

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

impl Store {
    /// Claims up to `limit` due pending tasks for `owner` in one statement: reserved for it,
    /// they stay Pending until `start` (nobody else claims them meanwhile).
    pub fn claim_due(&self, owner: &str, limit: usize) -> Result<Vec<Claimed>> {
        let now_ms = self.clock().now_ms();
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
                    client: r.get(6)?,
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
                "SELECT min(due_at) FROM tasks WHERE state = 'queued' AND lease_owner IS NULL",
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
                "SELECT 1 FROM tasks WHERE id = ?1 AND lease_owner = ?2 AND state = 'queued'",
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
        client: &str,
        owner: &str,
        then: impl FnOnce(Result<bool>) + Send + 'static,
    ) -> QueuedStart {
        let (client, owner, now) = (
            client.to_string(),
            owner.to_string(),
            self.clock().now_text(),
        );
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
                    Ok(_) | Err(START_RUN) => start_in(tx, id, &client, &owner, &now),
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
        let (client, owner, now) = (
            client.to_string(),
            owner.to_string(),
            self.clock().now_text(),
        );
        self.write(move |tx| start_in(tx, id, &client, &owner, &now))
    }
}

/// Marks a reserved task running within a transaction; see `Store::start_then`.
fn start_in(tx: &JobTx<'_>, id: TaskId, client: &str, owner: &str, now: &str) -> Result<bool> {
    let started = tx
        .prepare_cached(START_TASK)?
        .execute(params![now, id, owner, client])?;
    if started == 1 {
        tx.moved(client, Some(State::Queued), Some(State::Running));
    }
    Ok(started == 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::*;
    use crate::task::{NewTask, Params, Scope, State};
    use rusqlite::params;

    #[test]
    fn a_claimed_task_stays_pending_until_it_starts_and_a_restart_requeues_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db"), Durability::Normal).unwrap();
        let ids = store
            .submit_many(&vec![NewTask::new("sleep", Params::new()); 2])
            .unwrap();
        assert_eq!(store.claim_due("me", 10).unwrap().len(), 2);
        let all = Scope::All;
        assert_eq!(store.task(&all, ids[0]).unwrap().state, State::Queued);
        // Claimed once: a second claim finds nothing, and the dispatcher waits for nothing.
        assert!(store.claim_due("me", 10).unwrap().is_empty());
        assert_eq!(store.next_due_ms().unwrap(), None);
        assert!(store.start(ids[0], "default", "me").unwrap());
        assert_eq!(store.task(&all, ids[0]).unwrap().state, State::Running);
        assert_eq!(store.task(&all, ids[0]).unwrap().attempts, 1);
        // A crash: the started one is interrupted, the reserved one waits to run again.
        assert_eq!(store.interrupt_running(None).unwrap(), vec![ids[0]]);
        let requeued = store.task(&all, ids[1]).unwrap();
        assert_eq!((requeued.state, requeued.attempts), (State::Queued, 0));
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
        assert!(!store.start(ids[1], "default", "next").unwrap());
    }

    #[test]
    fn the_claim_is_prepared_once_whatever_its_limit() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db"), Durability::Normal).unwrap();
        let conn = store.conn().unwrap();
        let mut claim = conn.prepare(CLAIM).unwrap();
        for limit in 1..6 {
            claim
                .query(params!["me", store.clock().now_ms(), limit, 0])
                .unwrap()
                .next()
                .unwrap();
        }
        let reprepared = claim.get_status(rusqlite::StatementStatus::RePrepare);
        assert_eq!(reprepared, 0);
    }
}
