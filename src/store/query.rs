//! Reading tasks: one by id, and the list with its filters, paging and kept totals.

use rusqlite::types::Value;
use rusqlite::{params_from_iter, Connection, Row};

use super::counts::{slot, PerState};
use super::snapshot::Snapshot;
use super::{Result, Store};
use crate::task::{Counts, Params, Scope, State, Task, TaskId};

const TASK_COLUMNS: &str = "id, user_id, user_name, client, created_at, kind, params, \
    io_filename, io_file_id IS NOT NULL, (log_file_id IS NOT NULL OR log_text IS NOT NULL), \
    err_file_id IS NOT NULL, \
    percent_complete, state, message, start_time, end_time, \
    total_records, succeeded_records, duplicate_records, failed_records, attempts, updated_at";

/// Filters and paging of the task list.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Tasks in any of these states; all when empty.
    pub states: Vec<State>,
    /// Tasks of this kind only.
    pub kind: Option<String>,
    /// Tasks of this user only.
    pub user_id: Option<i64>,
    /// The most tasks in one page.
    pub limit: u32,
    /// Tasks skipped before the page.
    pub offset: u64,
    /// Stop reading tasks once their text (params, message, names) has taken this many
    /// bytes: a page of big tasks ends early. At least one task is read.
    pub max_bytes: Option<usize>,
}

impl Store {
    /// One task, if it exists within `scope`.
    pub(super) fn task(&self, scope: &Scope, id: TaskId) -> Result<Task> {
        let conn = self.conn()?;
        let (clause, values) = super::scope::one_in_scope(scope, id, "client");
        let sql = format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?1 {clause}");
        let task = conn
            .prepare_cached(&sql)?
            .query_row(params_from_iter(&values), task_from_row)?;
        Ok(task)
    }

    /// Tasks within `scope`, newest first, and the total count of those matching.
    pub(super) fn list(&self, scope: &Scope, filter: &ListFilter) -> Result<(Vec<Task>, u64)> {
        let conn = self.conn()?;
        // One read transaction, whose snapshot the kept counts are taken at: the total and
        // the page see the same moment.
        let conn = Snapshot::begin(&conn)?;
        let client = match scope {
            Scope::Client(client) => Some(client.as_str()),
            Scope::All => None,
        };
        let counts = self
            .inner
            .memory
            .at_snapshot(|| conn.pin(), |counts| counts.of(client))?;
        let states = occupied_states(&counts, &filter.states);
        if states.as_ref().is_some_and(Vec::is_empty) {
            return Ok((Vec::new(), 0));
        }
        let mut clauses = Vec::new();
        let mut values: Vec<Value> = Vec::new();
        if let Scope::Client(client) = scope {
            values.push(self.client_no_value(client));
            clauses.push(format!("client_no = ?{}", values.len()));
        }
        if let Some(states) = &states {
            let mut marks = Vec::with_capacity(states.len());
            for state in states {
                values.push(Value::Integer(state.code()));
                marks.push(format!("?{}", values.len()));
            }
            clauses.push(format!("state IN ({})", marks.join(", ")));
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
        // Filtered by client and state at most, the kept counts answer; other filters count.
        let total: u64 = if filter.kind.is_none() && filter.user_id.is_none() {
            match &states {
                Some(states) => states.iter().map(|s| counts[slot(*s)]).sum(),
                None => counts.iter().sum(),
            }
        } else {
            let counted: i64 = conn
                .prepare_cached(&format!("SELECT count(*) FROM tasks {where_sql}"))?
                .query_row(params_from_iter(values.iter()), |r| r.get(0))?;
            counted.max(0) as u64
        };
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
        let mut rows = stmt.query(params_from_iter(values.iter()))?;
        let mut tasks = Vec::new();
        let mut bytes = 0;
        while let Some(row) = rows.next()? {
            let task = task_from_row(row)?;
            bytes += text_bytes(&task);
            tasks.push(task);
            if filter.max_bytes.is_some_and(|max| bytes >= max) {
                break;
            }
        }
        Ok((tasks, total))
    }
}

/// Of the `wanted` states (all when empty: None), those that some task is in, by the kept
/// `counts`. A list filtered by one state walks the (client, state, id) index newest first
/// and stops at its page; filtered by several (Web Service Tasks' Pending is every waiting
/// state), SQLite would read every matching row to sort them. Only the states that hold
/// tasks are kept, which is mostly one.
fn occupied_states(counts: &PerState, wanted: &[State]) -> Option<Vec<State>> {
    if wanted.len() <= 1 {
        return (!wanted.is_empty()).then(|| wanted.to_vec());
    }
    // Each state once, however often it was asked for: the total counts each once.
    Some(
        State::ALL
            .into_iter()
            .filter(|s| wanted.contains(s) && counts[slot(*s)] > 0)
            .collect(),
    )
}

pub(super) fn read_task(tx: &Connection, id: TaskId) -> Result<Task> {
    Ok(tx
        .prepare_cached(&format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?1"))?
        .query_row([id], task_from_row)?)
}

pub(super) fn params_from_json(text: &str) -> Params {
    // The store only ever writes a JSON object of strings here.
    serde_json::from_str(text).unwrap_or_default()
}

/// The bytes of a task's text: no more than its JSON takes, in any family's view of it.
fn text_bytes(task: &Task) -> usize {
    let params: usize = task.params.iter().map(|(k, v)| k.len() + v.len()).sum();
    params + task.message.len() + task.io_filename.len() + task.user_name.len() + task.kind.len()
}

/// The state in column `index` of a row.
pub(super) fn state_at(r: &Row<'_>, index: usize) -> rusqlite::Result<State> {
    let code = r.get_ref(index)?.as_i64()?;
    State::from_code(code).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            index,
            rusqlite::types::Type::Integer,
            format!("unknown state {code}").into(),
        )
    })
}

/// The four record counters in the columns from `first` on: total, succeeded, duplicate,
/// failed.
pub(super) fn counts_at(r: &Row<'_>, first: usize) -> rusqlite::Result<Counts> {
    Ok(Counts {
        total: r.get(first)?,
        succeeded: r.get(first + 1)?,
        duplicate: r.get(first + 2)?,
        failed: r.get(first + 3)?,
    })
}

fn task_from_row(r: &Row<'_>) -> rusqlite::Result<Task> {
    let state = state_at(r, 12)?;
    Ok(Task {
        id: r.get(0)?,
        uuid: String::new(),
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
        state,
        message: r.get(13)?,
        start_time: r.get(14)?,
        end_time: r.get(15)?,
        counts: counts_at(r, 16)?,
        attempts: r.get(20)?,
        updated_at: r.get(21)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::*;
    use crate::task::{NewTask, Params, Scope, State};

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
        let claimed = store.claim_due(3).unwrap().tasks;
        assert_eq!(claimed.len(), 3);
        for task in &claimed {
            assert!(store.start(task.id, "default", "me").unwrap());
        }
        let end = Finish::success(b"done\n");
        assert!(store.finish(claimed[0].id, "default", "me", end).unwrap());
        let default = Scope::Client("default".into());
        assert_eq!(
            store.delete(&default, ids[4], false).unwrap(),
            DeleteOutcome::Deleted
        );
        store.interrupt_running(Some("me")).unwrap();

        let check = |scope: &Scope, status: Option<State>| {
            let filter = ListFilter {
                states: status.into_iter().collect(),
                limit: 1000,
                ..ListFilter::default()
            };
            let (tasks, total) = store.list(scope, &filter).unwrap();
            assert_eq!(total, tasks.len() as u64, "{scope:?} {status:?}");
            total
        };
        assert_eq!(check(&default, None), 4);
        assert_eq!(check(&default, Some(State::Queued)), 1);
        assert_eq!(check(&default, Some(State::Succeeded)), 1);
        assert_eq!(check(&default, Some(State::Failed)), 2);
        assert_eq!(check(&default, Some(State::Running)), 0);
        assert_eq!(check(&Scope::Client("other".into()), None), 1);
        assert_eq!(check(&Scope::All, None), 5);
        assert_eq!(check(&Scope::All, Some(State::Queued)), 2);
    }

    #[test]
    fn a_state_asked_for_twice_is_counted_once() {
        let mut counts = PerState::default();
        counts[slot(State::Queued)] = 3;
        let wanted = [State::Queued, State::Running, State::Queued];
        assert_eq!(occupied_states(&counts, &wanted), Some(vec![State::Queued]));
    }

    #[test]
    fn a_filter_of_several_states_lists_those_that_hold_tasks() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db"), Durability::Normal).unwrap();
        let waiting = |scope: &Scope| {
            let filter = ListFilter {
                states: State::WAITING.to_vec(),
                limit: 2,
                ..ListFilter::default()
            };
            let (tasks, total) = store.list(scope, &filter).unwrap();
            (tasks.iter().map(|t| t.id).collect::<Vec<_>>(), total)
        };
        let default = Scope::Client("default".into());
        assert_eq!(waiting(&default), (vec![], 0));
        let ids = store
            .submit_many(&vec![NewTask::new("sleep", Params::new()); 4])
            .unwrap();
        let claimed = store.claim_due(1).unwrap().tasks;
        assert!(store.start(claimed[0].id, "default", "me").unwrap());
        // Newest first, a page of two, the total of all three still waiting.
        assert_eq!(waiting(&default), (vec![ids[3], ids[2]], 3));
        assert_eq!(waiting(&Scope::All), (vec![ids[3], ids[2]], 3));
        assert_eq!(waiting(&Scope::Client("other".into())), (vec![], 0));
    }

    #[test]
    fn a_page_stops_reading_once_its_tasks_take_the_byte_budget() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db"), Durability::Normal).unwrap();
        let mut params = Params::new();
        params.insert("columns".into(), "c".repeat(1000));
        store
            .submit_many(&vec![NewTask::new("csv.export", params); 10])
            .unwrap();
        let page = |max_bytes| {
            let filter = ListFilter {
                limit: 1000,
                max_bytes,
                ..ListFilter::default()
            };
            let (tasks, total) = store.list(&Scope::All, &filter).unwrap();
            assert_eq!(total, 10, "the total counts every task");
            tasks.len()
        };
        assert_eq!(page(None), 10);
        // Each task's text is 1017 bytes (its param, name and value, and its kind): the
        // task that reaches the budget is the last one read.
        assert_eq!(page(Some(3 * 1017)), 3);
        assert_eq!(page(Some(3 * 1017 + 1)), 4);
        assert_eq!(page(Some(1)), 1, "at least one task");
    }
}
