//! Schema versions. Version 1 is schema.sql, embedded in the binary; each later version is
//! one more step in `STEPS` (a file in migrations/, also embedded), applied in order in one
//! transaction with `PRAGMA user_version` moved to match. A file from a newer taskbox is
//! refused rather than misread.
//!
//! A step may rebuild a table (SQLite cannot change a column's CHECK in place): foreign
//! keys are off while the steps run, as SQLite's procedure for that asks, and
//! `foreign_key_check` must find nothing before the transaction commits.

use rusqlite::Connection;

use super::{Result, StoreError};

/// Step n (1-based) brings a file from version n-1 to version n.
const STEPS: &[&str] = &[
    include_str!("../../schema.sql"),
    include_str!("../../migrations/002_import_start_row.sql"),
    include_str!("../../migrations/003_states_and_owners.sql"),
    include_str!("../../migrations/004_client_usage.sql"),
    include_str!("../../migrations/005_tokens_and_tenants.sql"),
    include_str!("../../migrations/006_short_log_in_row.sql"),
    include_str!("../../migrations/007_counts_in_memory.sql"),
    include_str!("../../migrations/008_narrow_task_keys.sql"),
];

/// Whether the file of `conn` is at this taskbox's schema version (false for a new file).
pub fn is_current(conn: &Connection) -> Result<bool> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    Ok(current == STEPS.len() as i64)
}

pub fn apply(conn: &Connection) -> Result<()> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let latest = STEPS.len() as i64;
    if current > latest {
        return Err(StoreError::Internal(format!(
            "the database is at schema version {current}, newer than this taskbox ({latest}); \
             use a newer taskbox"
        )));
    }
    if current == latest {
        return Ok(());
    }
    if current > 0 {
        // A step may rebuild the tasks' table: a large file takes a while.
        log::info!("upgrading the database from schema version {current} to {latest}");
    }
    // Outside the transaction: inside one, the pragma is a no-op.
    conn.execute_batch("PRAGMA foreign_keys = OFF")?;
    let result = apply_steps(conn, current);
    conn.execute_batch("PRAGMA foreign_keys = ON")?;
    result
}

fn apply_steps(conn: &Connection, current: i64) -> Result<()> {
    // A plain connection: start the transaction by hand so it is IMMEDIATE.
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let result = (|| {
        for (i, step) in STEPS.iter().enumerate().skip(current as usize) {
            conn.execute_batch(step)?;
            conn.execute_batch(&format!("PRAGMA user_version = {}", i + 1))?;
        }
        let broken: i64 =
            conn.query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
                r.get(0)
            })?;
        if broken > 0 {
            return Err(StoreError::Internal(format!(
                "the schema upgrade left {broken} row(s) with a broken reference"
            )));
        }
        Ok(())
    })();
    match result {
        Ok(()) => Ok(conn.execute_batch("COMMIT")?),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applies_once_and_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("t.db")).unwrap();
        apply(&conn).unwrap();
        apply(&conn).unwrap();
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, STEPS.len() as i64);
        let n: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='tasks'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 1);
    }

    #[test]
    fn brings_a_version_1_file_forward() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("t.db")).unwrap();
        conn.execute_batch(STEPS[0]).unwrap();
        conn.execute_batch("PRAGMA user_version = 1").unwrap();
        conn.execute_batch(
            "INSERT INTO datasets (id, name, columns, created_at) VALUES (1, 'd', '[]', '');
             INSERT INTO dataset_imports (task_id, dataset_id, state) VALUES (7, 1, 'done');",
        )
        .unwrap();
        apply(&conn).unwrap();
        let after_row: i64 = conn
            .query_row(
                "SELECT after_row FROM dataset_imports WHERE task_id = 7",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(
            after_row, 0,
            "an import of version 1 is removed by a full scan"
        );
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, STEPS.len() as i64);
    }

    /// A file written by version 2 (built by its own steps, then filled as version 2 wrote
    /// it) opens with every task, file, dataset and key as before, in version 3's terms.
    #[test]
    fn a_version_2_file_keeps_every_task_file_and_dataset() {
        use crate::store::{Durability, ListFilter, Store};
        use crate::task::{FileRole, Scope, State};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(STEPS[0]).unwrap();
            conn.execute_batch(STEPS[1]).unwrap();
            conn.execute_batch("PRAGMA user_version = 2").unwrap();
            conn.execute_batch(
                "INSERT INTO tasks (id, created_at, kind, due_at, updated_at, status, end_time, percent_complete, message)
                   VALUES (1, '2026-01-01T00:00:00', 'sleep', 0, '2026-01-01T00:00:00', 'SUCCESS', '2026-01-01T00:00:01', 100, 'done'),
                          (2, '2026-01-01T00:00:00', 'sleep', 0, '2026-01-01T00:00:00', 'ERROR', '2026-01-01T00:00:01', 100, 'failed'),
                          (3, '2026-01-01T00:00:00', 'sleep', 0, '2026-01-01T00:00:00', 'CANCELED', '2026-01-01T00:00:01', 100, ''),
                          (4, '2026-01-01T00:00:00', 'sleep', 0, '2026-01-01T00:00:00', 'Pending', NULL, 0, ''),
                          (9, '2026-01-01T00:00:00', 'csv.import', 0, '2026-01-01T00:00:00', 'Pending', NULL, 0, '');
                 INSERT INTO tasks (id, created_at, kind, due_at, updated_at, status, lease_owner)
                   VALUES (5, '2026-01-01T00:00:00', 'sleep', 0, '2026-01-01T00:00:00', 'In progress', 'old');
                 -- Task 9 was the last inserted, then deleted: its id is never to be reused.
                 DELETE FROM tasks WHERE id = 9;
                 INSERT INTO files (id, task_id, size, attached, created_at) VALUES (1, 1, 3, 1, '');
                 INSERT INTO file_chunks (file_id, seq, data) VALUES (1, 0, x'616263');
                 UPDATE tasks SET io_file_id = 1, io_filename = 'a.csv' WHERE id = 1;
                 INSERT INTO idempotency_keys VALUES ('default', 0, 'k', 1, 'sleep\n{}', 0);
                 INSERT INTO datasets (id, name, columns, created_at) VALUES (1, 'rates', '[\"code\"]', '');
                 CREATE TABLE ds_1 (row_id INTEGER PRIMARY KEY, task_id INTEGER NOT NULL, c1 TEXT NOT NULL);
                 INSERT INTO ds_1 VALUES (1, 1, 'US');
                 INSERT INTO dataset_imports (task_id, dataset_id, state) VALUES (1, 1, 'done');",
            )
            .unwrap();
        }
        let store = Store::open(&path, Durability::Normal).unwrap();
        let all = store.scoped(Scope::All);
        let state = |id| all.task(id).unwrap().state;
        assert_eq!(state(1), State::Succeeded);
        assert_eq!(state(2), State::Failed);
        assert_eq!(state(3), State::Canceled);
        assert_eq!(state(4), State::Queued);
        assert_eq!(state(5), State::Running);
        assert_eq!(all.task(2).unwrap().message, "failed");
        // The kept counts were made anew from the rows.
        let total = |states: Vec<State>| {
            let filter = ListFilter {
                states,
                limit: 10,
                ..ListFilter::default()
            };
            all.list(&filter).unwrap().1
        };
        assert_eq!(total(vec![]), 5);
        assert_eq!(total(vec![State::Queued]), 1);
        assert_eq!(total(vec![State::Succeeded, State::Failed]), 2);
        // Files, datasets (now client default's) and keys are where they were.
        let file = all.task_file(1, FileRole::Io).unwrap().unwrap();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut all.open_file(file.id).unwrap(), &mut bytes).unwrap();
        assert_eq!(bytes, b"abc");
        let dataset = store.dataset("default", "rates").unwrap().unwrap();
        assert_eq!(store.dataset_len(&dataset).unwrap(), 1);
        assert!(store.dataset("other", "rates").unwrap().is_none());
        // A new task takes an id past every id ever given, the deleted one's included.
        let id = all
            .submit(&crate::task::NewTask::new("sleep", Default::default()))
            .unwrap()
            .task
            .id;
        assert_eq!(id, 10);
        assert_eq!(store.integrity_check().unwrap(), "ok");
    }

    /// A file written by version 5 keeps its tasks' LOG files; tasks that end after the
    /// upgrade keep a short LOG in their row, read the same way.
    #[test]
    fn a_version_5_file_keeps_its_log_files_and_new_tasks_keep_short_logs_in_the_row() {
        use crate::store::{Durability, Finish, Store};
        use crate::task::{FileRole, NewTask, Params, Scope};
        use std::io::Read;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        {
            let conn = Connection::open(&path).unwrap();
            for step in &STEPS[..5] {
                conn.execute_batch(step).unwrap();
            }
            conn.execute_batch(
                "PRAGMA user_version = 5;
                 INSERT INTO tasks (id, created_at, kind, due_at, updated_at, state, end_time, percent_complete)
                   VALUES (1, '2026-01-01T00:00:00', 'sleep', 0, '2026-01-01T00:00:00', 'succeeded', '2026-01-01T00:00:01', 100);
                 INSERT INTO files (id, task_id, size, attached, created_at) VALUES (1, 1, 4, 1, '');
                 INSERT INTO file_chunks (file_id, seq, data) VALUES (1, 0, x'6f6c640a');
                 UPDATE tasks SET log_file_id = 1 WHERE id = 1;",
            )
            .unwrap();
        }
        let store = Store::open(&path, Durability::Normal).unwrap();
        let all = store.scoped(Scope::All);
        let read = |mut reader: crate::store::FileReader| {
            let mut bytes = Vec::new();
            reader.read_to_end(&mut bytes).unwrap();
            bytes
        };
        assert!(all.task(1).unwrap().has_log_file);
        let file = all.task_file(1, FileRole::Log).unwrap().unwrap();
        assert_eq!(read(all.open_file(file.id).unwrap()), b"old\n");
        assert!(all.task_log_text(1).unwrap().is_none());

        // A task ending now with a short LOG: in its row, no file.
        let id = store
            .submit_many(&[NewTask::new("sleep", Params::new())])
            .unwrap()[0];
        assert_eq!(store.claim_due(1).unwrap().tasks.len(), 1);
        let mut end = Finish::success(b"short\n");
        std::sync::Arc::get_mut(&mut end).unwrap().started_at = Some("2026-01-01T00:00:02".into());
        assert!(store.finish(id, "default", "me", end).unwrap());
        assert!(all.task(id).unwrap().has_log_file);
        assert!(all.task_file(id, FileRole::Log).unwrap().is_none());
        assert_eq!(read(all.task_log_text(id).unwrap().unwrap()), b"short\n");
        // Scoped: another client's task is not there.
        let other = store.scoped(Scope::Client("other".into()));
        assert!(other.task_log_text(id).unwrap().is_none());

        // A LOG over the bound is a file, as before.
        let long = vec![b'x'; super::super::finish::INLINE_LOG_MAX + 1];
        let id = store
            .submit_many(&[NewTask::new("sleep", Params::new())])
            .unwrap()[0];
        assert_eq!(store.claim_due(1).unwrap().tasks.len(), 1);
        let mut end = Finish::success(&long);
        std::sync::Arc::get_mut(&mut end).unwrap().started_at = Some("2026-01-01T00:00:02".into());
        assert!(store.finish(id, "default", "me", end).unwrap());
        assert!(all.task_log_text(id).unwrap().is_none());
        let file = all.task_file(id, FileRole::Log).unwrap().unwrap();
        assert_eq!(read(all.open_file(file.id).unwrap()), long);
        assert_eq!(store.integrity_check().unwrap(), "ok");
    }

    /// A file written by version 6 (with its counting triggers) opens with its tasks counted
    /// from the rows, and the counts move with the tasks from then on.
    #[test]
    fn a_version_6_file_is_counted_from_its_rows() {
        use crate::store::{Durability, ListFilter, Store};
        use crate::task::{NewTask, Params, Scope, State};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        {
            let conn = Connection::open(&path).unwrap();
            for step in &STEPS[..6] {
                conn.execute_batch(step).unwrap();
            }
            conn.execute_batch(
                "PRAGMA user_version = 6;
                 INSERT INTO tasks (id, client, created_at, kind, due_at, updated_at, state, end_time, percent_complete)
                   VALUES (1, 'a', '2026-01-01T00:00:00', 'sleep', 0, '2026-01-01T00:00:00', 'succeeded', '2026-01-01T00:00:01', 100),
                          (2, 'a', '2026-01-01T00:00:00', 'sleep', 0, '2026-01-01T00:00:00', 'queued', NULL, 0),
                          (3, 'b', '2026-01-01T00:00:00', 'sleep', 0, '2026-01-01T00:00:00', 'queued', NULL, 0);",
            )
            .unwrap();
        }
        let store = Store::open(&path, Durability::Normal).unwrap();
        let total = |client: &str, states: Vec<State>| {
            let filter = ListFilter {
                states,
                limit: 10,
                ..ListFilter::default()
            };
            let scope = Scope::Client(client.into());
            store.scoped(scope).list(&filter).unwrap().1
        };
        assert_eq!(total("a", vec![]), 2);
        assert_eq!(total("a", vec![State::Queued]), 1);
        assert_eq!(total("b", vec![State::Queued, State::Running]), 1);
        let mut new = NewTask::new("sleep", Params::new());
        new.owner.client = "b".into();
        store.submit_many(&[new]).unwrap();
        assert_eq!(total("b", vec![State::Queued]), 2);
        let triggers: i64 = store
            .conn()
            .unwrap()
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name LIKE '%count%'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(triggers, 0, "the counting triggers and table are gone");
        assert_eq!(store.integrity_check().unwrap(), "ok");
    }

    /// A file written by version 7 keeps every task, in every state, of every client, and
    /// its ids: the next task's id is past every id given, even a deleted one.
    #[test]
    fn a_version_7_file_keeps_its_tasks_states_clients_and_ids() {
        use crate::store::{Durability, ListFilter, Store};
        use crate::task::{NewTask, Params, Scope, State};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        {
            let conn = Connection::open(&path).unwrap();
            for step in &STEPS[..7] {
                conn.execute_batch(step).unwrap();
            }
            // Tasks 1-8 in each state, then 9 (the highest) deleted: AUTOINCREMENT's
            // sequence remembers it.
            let mut sql = String::from("PRAGMA user_version = 7;");
            for (i, state) in State::ALL.iter().enumerate() {
                let id = i + 1;
                let client = if id % 2 == 0 { "a" } else { "b" };
                let (end, percent, lease) = match state {
                    s if s.is_finished() => ("'2026-01-01T00:00:01'", 100, "NULL"),
                    State::Running => ("NULL", 0, "'old'"),
                    _ => ("NULL", 0, "NULL"),
                };
                sql.push_str(&format!(
                    "INSERT INTO tasks (id, client, created_at, kind, due_at, updated_at, state, \
                     end_time, percent_complete, lease_owner) VALUES ({id}, '{client}', \
                     '2026-01-01T00:00:00', 'sleep', 0, '2026-01-01T00:00:00', '{}', {end}, \
                     {percent}, {lease});",
                    state.as_str()
                ));
            }
            sql.push_str(
                "INSERT INTO tasks (id, created_at, kind, due_at, updated_at) \
                 VALUES (9, '', 'sleep', 0, '');
                 DELETE FROM tasks WHERE id = 9;",
            );
            conn.execute_batch(&sql).unwrap();
        }
        let store = Store::open(&path, Durability::Normal).unwrap();
        let scoped = store.scoped(Scope::All);
        for (i, state) in State::ALL.iter().enumerate() {
            let task = scoped.task((i + 1) as i64).unwrap();
            let client = if (i + 1) % 2 == 0 { "a" } else { "b" };
            assert_eq!((task.state, task.client.as_str()), (*state, client));
        }
        let listed = |client: &str, states: Vec<State>| {
            let filter = ListFilter {
                states,
                limit: 10,
                ..ListFilter::default()
            };
            let (tasks, total) = store
                .scoped(Scope::Client(client.into()))
                .list(&filter)
                .unwrap();
            (tasks.iter().map(|t| t.id).collect::<Vec<_>>(), total)
        };
        assert_eq!(listed("a", vec![]), (vec![8, 6, 4, 2], 4));
        assert_eq!(
            listed("b", vec![State::Queued, State::Running]),
            (vec![5], 1)
        );
        assert_eq!(listed("b", vec![State::Queued]), (vec![], 0));
        assert_eq!(listed("a", vec![State::Queued]), (vec![2], 1));
        let mut new = NewTask::new("sleep", Params::new());
        new.owner.client = "c".into();
        let ids = store.submit_many(&[new.clone(), new]).unwrap();
        assert_eq!(ids, [10, 11], "id 9 was given before the upgrade");
        assert_eq!(listed("c", vec![]), (vec![11, 10], 2));
        let misnumbered: i64 = store
            .conn()
            .unwrap()
            .query_row(
                "SELECT count(*) FROM tasks t LEFT JOIN clients c ON c.no = t.client_no \
                 WHERE c.name IS NOT t.client",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(misnumbered, 0, "every task's number is its client's");
        assert_eq!(store.integrity_check().unwrap(), "ok");
    }

    #[test]
    fn refuses_a_newer_file() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("t.db")).unwrap();
        conn.execute_batch("PRAGMA user_version = 99").unwrap();
        assert!(matches!(apply(&conn), Err(StoreError::Internal(_))));
    }
}
