//! Task ids. The store gives each new task the id after the last one given (not SQLite's
//! AUTOINCREMENT, which reads and writes `sqlite_sequence` at every insert; see
//! migrations/008_narrow_task_keys.sql). An id is never given twice, even after its task is
//! deleted, because a task's UUID is made from its id: every delete raises `task_ids.last`
//! to the id it deleted, and the store starts from the higher of that and the highest id
//! stored. An id given to a task whose batch then rolled back was never acknowledged, and
//! is simply skipped.

use std::sync::atomic::{AtomicI64, Ordering};

use rusqlite::Connection;

use super::Result;
use crate::task::TaskId;

/// The last id given.
#[derive(Default)]
pub(super) struct TaskIds {
    last: AtomicI64,
}

impl TaskIds {
    /// Where `conn`'s file leaves off.
    pub(super) fn load(conn: &Connection) -> Result<TaskIds> {
        let last: i64 = conn.query_row(
            "SELECT max(coalesce((SELECT max(last) FROM task_ids), 0), \
             coalesce((SELECT max(id) FROM tasks), 0))",
            [],
            |r| r.get(0),
        )?;
        Ok(TaskIds {
            last: AtomicI64::new(last),
        })
    }

    /// A new task's id. (Atomic, so any thread may ask; only the writer's does.)
    pub(super) fn next(&self) -> TaskId {
        self.last.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// Within the transaction that deletes task `id`: its id stays given.
pub(super) fn keep_given(tx: &Connection, id: TaskId) -> Result<()> {
    tx.prepare_cached("UPDATE task_ids SET last = ?1 WHERE last < ?1")?
        .execute([id])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::finish::Finish;
    use super::super::tests::running_task;
    use super::super::{Durability, Store};
    use crate::task::{NewTask, Params, Scope};

    fn submit(store: &Store) -> i64 {
        let new = NewTask::new("sleep", Params::new());
        store.submit_many(&[new]).unwrap()[0]
    }

    /// A deleted task's id is not given again, by either delete, even after a restart
    /// (a task's UUID is made from its id).
    #[test]
    fn an_id_is_never_given_twice() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let store = Store::open(&path, Durability::Normal).unwrap();
        assert_eq!((submit(&store), submit(&store)), (1, 2));
        for id in [2, 1] {
            let deleted = store.scoped(Scope::All).delete(id, false).unwrap();
            assert_eq!(deleted, super::super::DeleteOutcome::Deleted);
        }
        drop(store);

        // No task is left: the highest id given is remembered apart from the rows.
        let store = Store::open(&path, Durability::Normal).unwrap();
        let task = running_task(&store);
        assert_eq!(task, 3);
        assert!(store
            .finish(task, "default", "me", Finish::success(b""))
            .unwrap());
        assert_eq!(
            store
                .remove_expired(vec![task], "9999-12-31T23:59:59")
                .unwrap(),
            1
        );
        drop(store);

        let store = Store::open(&path, Durability::Normal).unwrap();
        assert_eq!(submit(&store), 4);
    }
}
