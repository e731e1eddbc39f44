//! Direct reads of the database file, for what the API does not show: which tasks exist
//! the instant after a crash, `PRAGMA integrity_check`, and the rows of each import in the
//! dataset tables. The connection changes nothing: it is query-only and does not checkpoint
//! the WAL when it closes, so the next taskbox finds the file exactly as the crash left it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags};

pub fn open(path: &Path) -> Connection {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)
        .expect("no checkpoint on close");
    conn.pragma_update(None, "query_only", true)
        .expect("query_only");
    conn.busy_timeout(Duration::from_secs(10))
        .expect("busy timeout");
    conn
}

pub fn integrity_check(conn: &Connection) -> String {
    let rows: Vec<String> = conn
        .prepare("PRAGMA integrity_check")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    rows.join("; ")
}

/// A task as the crash test looks at it.
#[derive(Debug, Clone)]
pub struct TaskRow {
    pub kind: String,
    /// Its status in the Web Service Tasks contract's words (the file keeps the store's
    /// state; the waiting states all read Pending, as clients see them).
    pub status: String,
    pub message: String,
    pub succeeded: i64,
}

/// Every task, by id.
pub fn tasks(conn: &Connection) -> BTreeMap<i64, TaskRow> {
    let mut stmt = conn
        .prepare(
            // The store's state numbers (migrations/008_narrow_task_keys.sql).
            "SELECT id, kind, CASE state WHEN 4 THEN 'In progress' \
             WHEN 5 THEN 'SUCCESS' WHEN 6 THEN 'ERROR' \
             WHEN 7 THEN 'CANCELED' ELSE 'Pending' END, \
             message, succeeded_records FROM tasks",
        )
        .unwrap();
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                TaskRow {
                    kind: r.get(1)?,
                    status: r.get(2)?,
                    message: r.get(3)?,
                    succeeded: r.get(4)?,
                },
            ))
        })
        .unwrap();
    rows.collect::<Result<_, _>>().unwrap()
}

/// The state of each task's import (`running`, `committed` or `done`), by task id.
pub fn imports(conn: &Connection) -> BTreeMap<i64, String> {
    let mut stmt = conn
        .prepare("SELECT task_id, state FROM dataset_imports")
        .unwrap();
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
    rows.collect::<Result<_, _>>().unwrap()
}

/// How many dataset rows each task wrote, over every dataset.
pub fn rows_by_task(conn: &Connection) -> BTreeMap<i64, i64> {
    let ids: Vec<i64> = conn
        .prepare("SELECT id FROM datasets")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut counts = BTreeMap::new();
    for id in ids {
        let mut stmt = conn
            .prepare(&format!(
                "SELECT task_id, count(*) FROM ds_{id} GROUP BY task_id"
            ))
            .unwrap();
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))
            .unwrap();
        for row in rows {
            let (task, n) = row.unwrap();
            *counts.entry(task).or_insert(0) += n;
        }
    }
    counts
}

/// Dataset rows of imports not yet done (a crash leaves those of the imports it cut short).
pub fn unfinished_import_rows(imports: &BTreeMap<i64, String>, rows: &BTreeMap<i64, i64>) -> i64 {
    rows.iter()
        .filter(|(task, _)| imports.get(task).map(String::as_str) != Some("done"))
        .map(|(_, n)| n)
        .sum()
}

/// Dataset rows written by any of `tasks`.
pub fn rows_of(conn: &Connection, tasks: &BTreeSet<i64>) -> i64 {
    let counts = rows_by_task(conn);
    tasks.iter().filter_map(|t| counts.get(t)).sum()
}

/// The invariants between tasks, imports and dataset rows that hold at every commit, so
/// also the instant after a crash. Returns what is wrong, one sentence each.
///
/// - An import that is not `done` belongs to a task still In progress (a finished or
///   failed import is marked done, or removed, in the transaction that ends its task).
/// - A `done` import belongs to a finished task, and its rows are exactly the task's
///   SucceededRecords.
/// - A SUCCESS import is done (every test file has data rows).
/// - Rows belong to a done import or to one still running.
pub fn import_problems(conn: &Connection) -> Vec<String> {
    import_problems_in(&tasks(conn), &imports(conn), &rows_by_task(conn))
}

/// [`import_problems`] over tasks, imports and row counts already read.
pub fn import_problems_in(
    tasks: &BTreeMap<i64, TaskRow>,
    imports: &BTreeMap<i64, String>,
    rows: &BTreeMap<i64, i64>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let finished = |s: &str| matches!(s, "SUCCESS" | "ERROR" | "CANCELED");
    for (id, state) in imports {
        let Some(task) = tasks.get(id) else {
            problems.push(format!("import of task {id} ({state}) has no task"));
            continue;
        };
        if state == "done" {
            let n = rows.get(id).copied().unwrap_or(0);
            if !finished(&task.status) {
                problems.push(format!(
                    "task {id} is {} but its import is done",
                    task.status
                ));
            }
            if n != task.succeeded {
                problems.push(format!(
                    "task {id} ({}) has {n} dataset rows but SucceededRecords {}",
                    task.status, task.succeeded
                ));
            }
        } else if task.status != "In progress" {
            problems.push(format!(
                "task {id} is {} but its import is still {state}",
                task.status
            ));
        }
    }
    for (id, task) in tasks {
        let state = imports.get(id).map(String::as_str);
        if task.kind == "csv.import" && task.status == "SUCCESS" && state != Some("done") {
            problems.push(format!("task {id} is SUCCESS but its import is {state:?}"));
        }
    }
    for (id, n) in rows {
        let state = imports.get(id).map(String::as_str);
        if state.is_none() {
            problems.push(format!(
                "{n} dataset rows of task {id}, which has no import"
            ));
        }
    }
    problems
}
