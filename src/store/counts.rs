//! How many tasks each client has in each state: the list's total (X-Total-Count), the
//! states a list need look at, and the quota of unfinished tasks read it instead of counting
//! rows. Kept in memory (see `memory.rs` for how it stays of one moment with the rows).
//!
//! The rows are the truth. The counts are counted from them once, when the store opens (so
//! a crash loses nothing), and from then on moved by the writer's jobs, each saying what its
//! statements changed (`JobTx::moved`): a batch's changes are applied when it commits and
//! forgotten when it rolls back. Counting was done by triggers on `tasks` before schema
//! version 7; each trigger is a statement run inside the task's own, which costs a statement
//! journal and about a tenth of the writer's work per task.

use std::collections::HashMap;

use rusqlite::Connection;

use super::Result;
use crate::task::State;

/// Tasks per state, indexed by `slot(state)`.
pub(super) type PerState = [u64; State::ALL.len()];

/// Where a state's number is in a [`PerState`].
pub(super) fn slot(state: State) -> usize {
    state as usize
}

/// The unfinished tasks among `per_state`.
pub(super) fn unfinished(per_state: &PerState) -> u64 {
    State::ALL
        .iter()
        .filter(|s| !s.is_finished())
        .map(|s| per_state[slot(*s)])
        .sum()
}

/// The committed counts, per client, and of all clients together.
#[derive(Default, Clone, Debug, PartialEq)]
pub(super) struct TaskCounts {
    by_client: HashMap<String, PerState>,
    all: PerState,
}

/// The tasks per client (by name) and state, counted along the `tasks_client_state_id`
/// index.
const COUNT_BY_CLIENT_AND_STATE: &str =
    "SELECT (SELECT name FROM clients WHERE no = client_no), state, n \
     FROM (SELECT client_no, state, count(*) AS n FROM tasks GROUP BY client_no, state)";

impl TaskCounts {
    /// Counts the tasks in `conn`'s file (the `tasks_client_state_id` index answers it).
    pub(super) fn load(conn: &Connection) -> Result<TaskCounts> {
        let mut by_client: HashMap<String, PerState> = HashMap::new();
        let mut stmt = conn.prepare(COUNT_BY_CLIENT_AND_STATE)?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let client: String = row.get(0)?;
            let state: i64 = row.get(1)?;
            let n: i64 = row.get(2)?;
            // The schema's CHECK allows the same states.
            let Some(state) = State::from_code(state) else {
                continue;
            };
            by_client.entry(client).or_default()[slot(state)] = n.max(0) as u64;
        }
        let mut all = PerState::default();
        for counts in by_client.values() {
            for (a, n) in all.iter_mut().zip(counts) {
                *a += n;
            }
        }
        Ok(TaskCounts { by_client, all })
    }

    /// `client`'s counts (None: all clients' together).
    pub(super) fn of(&self, client: Option<&str>) -> PerState {
        match client {
            Some(client) => self.by_client.get(client).copied().unwrap_or_default(),
            None => self.all,
        }
    }

    /// Applies committed `changes`.
    pub(super) fn apply(&mut self, changes: Changes) {
        for (client, deltas) in changes.by_client {
            let counts = self.by_client.entry(client).or_default();
            for ((count, all), delta) in counts.iter_mut().zip(&mut self.all).zip(deltas) {
                // A count going below zero would be a job misreporting its change: the
                // counts say zero rather than wrap.
                *count = count.saturating_add_signed(delta);
                *all = all.saturating_add_signed(delta);
            }
        }
    }

    /// The clients with a task, and their counts (for the tests that compare them with the
    /// rows).
    #[cfg(test)]
    pub(super) fn nonzero(&self) -> HashMap<String, PerState> {
        self.by_client
            .iter()
            .filter(|(_, n)| n.iter().any(|n| *n > 0))
            .map(|(c, n)| (c.clone(), *n))
            .collect()
    }
}

/// Changes to the counts not yet committed: one job's, or a batch's. A list, not a map: a
/// job moves one client's tasks and a batch a few clients', and every task's submission,
/// start and end adds a change, on the writer; a map hashed each.
#[derive(Default)]
pub(super) struct Changes {
    by_client: Vec<(String, [i64; State::ALL.len()])>,
}

impl Changes {
    /// One of `client`'s tasks went `from` one state `to` another (None: it was inserted, or
    /// deleted).
    pub(super) fn moved(&mut self, client: &str, from: Option<State>, to: Option<State>) {
        let deltas = self.deltas_of(client);
        if let Some(from) = from {
            deltas[slot(from)] -= 1;
        }
        if let Some(to) = to {
            deltas[slot(to)] += 1;
        }
    }

    fn deltas_of(&mut self, client: &str) -> &mut [i64; State::ALL.len()] {
        let at = match self.by_client.iter().position(|(c, _)| c == client) {
            Some(at) => at,
            None => {
                self.by_client
                    .push((client.to_string(), Default::default()));
                self.by_client.len() - 1
            }
        };
        &mut self.by_client[at].1
    }

    /// Adds `other`'s changes to these.
    pub(super) fn absorb(&mut self, other: Changes) {
        if self.by_client.is_empty() {
            *self = other;
            return;
        }
        for (client, deltas) in other.by_client {
            for (m, d) in self.deltas_of(&client).iter_mut().zip(deltas) {
                *m += d;
            }
        }
    }

    /// The change to `client`'s unfinished tasks.
    pub(super) fn unfinished(&self, client: &str) -> i64 {
        let deltas = self.by_client.iter().find(|(c, _)| c == client);
        deltas.map_or(0, |(_, deltas)| {
            State::ALL
                .iter()
                .filter(|s| !s.is_finished())
                .map(|s| deltas[slot(*s)])
                .sum()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Durability, Finish, Store, StoreLimits};
    use crate::task::{NewTask, Params, Scope, TaskId};
    use std::sync::Arc;

    /// Fails unless the kept counts of every client are those its rows say.
    fn assert_counts_agree(store: &Store, step: &str) {
        let conn = store.conn().unwrap();
        let misnumbered: i64 = conn
            .query_row(
                "SELECT count(*) FROM tasks t LEFT JOIN clients c ON c.no = t.client_no \
                 WHERE c.name IS NOT t.client",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(
            misnumbered, 0,
            "a task's number is not its client's, after {step}"
        );
        // Counted by the names the rows hold, not through the numbers.
        let mut stmt = conn
            .prepare("SELECT client, state, count(*) FROM tasks GROUP BY client, state")
            .unwrap();
        let mut rows: HashMap<String, PerState> = HashMap::new();
        for row in stmt
            .query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get(2)?))
            })
            .unwrap()
        {
            let (client, state, n): (String, i64, u64) = row.unwrap();
            rows.entry(client).or_default()[slot(State::from_code(state).unwrap())] = n;
        }
        let kept = store
            .inner
            .memory
            .at_snapshot(|| Ok(()), |counts| counts.nonzero())
            .unwrap();
        assert_eq!(kept, rows, "after {step}");
    }

    fn task_of(client: &str, key: Option<&str>) -> NewTask {
        let mut new = NewTask::new("sleep", Params::new());
        new.owner.client = client.into();
        new.idempotency_key = key.map(String::from);
        new
    }

    /// Every verb that inserts, moves or deletes a task moves the kept counts exactly as the
    /// rows change, refusals and failed writes included; a reopened store counts the same.
    #[test]
    fn the_kept_counts_follow_every_verb() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let limits = StoreLimits {
            max_unfinished: 3,
            ..StoreLimits::default()
        };
        let open = || Store::open_limited(&path, limits);
        let store = open();
        let all = store.scoped(Scope::All);
        let a = all.submit(&task_of("a", Some("k"))).unwrap().task.id;
        all.submit(&task_of("a", Some("k"))).unwrap();
        let mut conflict = task_of("a", Some("k"));
        conflict.kind = "csv.export".into();
        assert!(all.submit(&conflict).is_err());
        assert_counts_agree(&store, "a submission, its retry and a conflict");
        let b: Vec<TaskId> = all
            .submit_many(&[task_of("b", None), task_of("b", None), task_of("a", None)])
            .unwrap()
            .iter()
            .map(|s| s.task.id)
            .collect();
        assert!(all
            .submit_many(&[task_of("a", None), task_of("a", Some("new"))])
            .is_err());
        all.submit(&task_of("a", Some("other"))).unwrap();
        assert!(all.submit(&task_of("a", Some("over"))).is_err());
        assert!(all.submit(&task_of("a", None)).is_err());
        assert_counts_agree(&store, "many, and refusals by the quota");

        let claimed = store.claim_due(10).unwrap().tasks;
        assert_eq!(claimed.len(), 5);
        assert!(store.start(a, "a", "me").unwrap());
        assert!(!store.start(a, "a", "me").unwrap());
        assert_counts_agree(&store, "claims and a start");
        assert!(store
            .finish(a, "a", "me", Finish::success(b"ok\n"))
            .unwrap());
        assert!(!store.finish(a, "a", "me", Finish::success(b"")).unwrap());
        let mut folded = Finish::success(b"");
        Arc::get_mut(&mut folded).unwrap().started_at = Some("2026-01-01T00:00:00".into());
        assert!(store.finish(b[0], "b", "me", folded).unwrap());
        assert_counts_agree(&store, "ends, one with its start folded in");

        assert!(store.start(b[1], "b", "me").unwrap());
        assert!(all.request_cancel(b[1]).unwrap());
        assert_eq!(
            all.delete(b[1], false).unwrap(),
            crate::store::DeleteOutcome::Running
        );
        assert_eq!(
            all.delete(a, false).unwrap(),
            crate::store::DeleteOutcome::Deleted
        );
        assert_counts_agree(&store, "a cancel and deletes");
        assert!(store.start(b[2], "a", "me").unwrap());
        assert_eq!(store.interrupt_running(Some("me")).unwrap().len(), 2);
        assert_counts_agree(&store, "the interruption of running tasks");
        let removed = store.remove_expired(vec![b[0], b[1], b[2]], "9999-01-01T00:00:00");
        assert_eq!(removed.unwrap(), 3);
        assert_counts_agree(&store, "retention");
        assert_eq!(
            all.delete(b[0], true).unwrap(),
            crate::store::DeleteOutcome::NotFound
        );
        all.submit(&task_of("c", None)).unwrap();
        drop(all);
        drop(store);
        let store = open();
        assert_counts_agree(&store, "a reopening");
        store
            .scoped(Scope::All)
            .submit(&task_of("a", None))
            .unwrap();
        assert_counts_agree(&store, "a submission after the reopening");
    }

    /// A list's total is the count of the snapshot its page is read from, however the
    /// writer's commits fall around it. The submitters delete what they submit, so that the
    /// tasks stay few and every list is cheap, while commits keep coming for as long as the
    /// lists go on.
    #[test]
    fn a_list_s_total_and_page_are_of_one_moment_while_tasks_come_and_go() {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db"), Durability::Normal).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let churned = Arc::new(AtomicU64::new(0));
        let submitters: Vec<_> = (0..2)
            .map(|_| {
                let (store, stop, churned) = (store.clone(), stop.clone(), churned.clone());
                std::thread::spawn(move || {
                    let all = store.scoped(Scope::All);
                    while !stop.load(Ordering::SeqCst) {
                        let id = all.submit(&task_of("a", None)).unwrap().task.id;
                        all.delete(id, false).unwrap();
                        churned.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        let mine = store.scoped(Scope::Client("a".into()));
        let filter = crate::store::ListFilter {
            limit: u32::MAX,
            ..Default::default()
        };
        // Lists go on until many tasks have come and gone meanwhile, however fast either is.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let mut lists = 0;
        while lists < 500 || churned.load(Ordering::SeqCst) < 300 {
            let (page, total) = mine.list(&filter).unwrap();
            assert_eq!(page.len() as u64, total);
            lists += 1;
            assert!(
                std::time::Instant::now() < deadline,
                "the submitters stalled"
            );
        }
        stop.store(true, Ordering::SeqCst);
        for submitter in submitters {
            submitter.join().unwrap();
        }
    }

    #[test]
    fn every_state_has_its_own_slot() {
        for (i, state) in State::ALL.iter().enumerate() {
            assert_eq!(slot(*state), i);
        }
    }
}
