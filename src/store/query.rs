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
        let client_no = self.client_no_of(scope);
        let Some(ListSql {
            count,
            page,
            values,
        }) = list_sql(client_no, filter, &counts)
        else {
            return Ok((Vec::new(), 0));
        };
        let filters = &values[..values.len() - 2];
        let total: u64 = match count {
            Count::Kept(total) => total,
            Count::Sql(sql) => {
                let counted: i64 = conn
                    .prepare_cached(&sql)?
                    .query_row(params_from_iter(filters), |r| r.get(0))?;
                counted.max(0) as u64
            }
        };
        let Some(sql) = page else {
            return Ok((Vec::new(), total));
        };
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

/// A list's statements: how its total is had, its page (None: no task can match), and
/// their values (the page's limit and offset last; the count takes the others).
struct ListSql {
    count: Count,
    page: Option<String>,
    values: Vec<Value>,
}

enum Count {
    /// From the kept counts.
    Kept(u64),
    /// Counted by this statement.
    Sql(String),
}

/// The statements of a list of `filter`'s tasks of the client numbered `client_no` (None:
/// every client's), whose tasks per state are `counts`. None when no task can match.
fn list_sql(client_no: Option<Value>, filter: &ListFilter, counts: &PerState) -> Option<ListSql> {
    let states = occupied_states(counts, &filter.states);
    if states.as_ref().is_some_and(Vec::is_empty) {
        return None;
    }
    // Filtered by client and state at most, the kept counts answer; other filters count.
    let by_state_only = filter.kind.is_none() && filter.user_id.is_none();
    let kept = match &states {
        Some(states) => states.iter().map(|s| counts[slot(*s)]).sum(),
        None => counts.iter().sum(),
    };
    let mut values: Vec<Value> = Vec::new();
    let (count, from) = match client_no {
        // A client's list, by state at most: one walk of the (client_no, state, id) index
        // per state, merged.
        Some(client_no) if by_state_only => {
            values.push(client_no);
            let states = states.unwrap_or_else(|| occupied_states_of(counts));
            (Count::Kept(kept), by_state(states, &mut values))
        }
        client_no => {
            let where_sql = where_clause(client_no, states.as_deref(), filter, &mut values);
            let count = if by_state_only {
                Count::Kept(kept)
            } else {
                Count::Sql(format!("SELECT count(*) FROM tasks {where_sql}"))
            };
            let from = format!("SELECT {TASK_COLUMNS} FROM tasks {where_sql}");
            (count, Some(from))
        }
    };
    let n = values.len();
    values.push(Value::Integer(i64::from(filter.limit)));
    values.push(Value::Integer(
        i64::try_from(filter.offset).unwrap_or(i64::MAX),
    ));
    let page = from.map(|from| {
        format!(
            "{from} ORDER BY id DESC LIMIT ?{} + 0 OFFSET ?{} + 0",
            n + 1,
            n + 2
        )
    });
    Some(ListSql {
        count,
        page,
        values,
    })
}

/// The WHERE clause of a list with `filter`'s kind and user (and `states`, `client_no`),
/// its values pushed onto `values`.
fn where_clause(
    client_no: Option<Value>,
    states: Option<&[State]>,
    filter: &ListFilter,
    values: &mut Vec<Value>,
) -> String {
    let mut clauses = Vec::new();
    if let Some(client_no) = client_no {
        values.push(client_no);
        clauses.push(format!("client_no = ?{}", values.len()));
    }
    if let Some(states) = states {
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
    if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    }
}

/// Of the `wanted` states (all when empty: None), those that some task is in, by the kept
/// `counts`. A list filtered by one state walks the (client_no, state, id) index newest first
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

/// Every state that holds tasks, by the kept counts.
fn occupied_states_of(counts: &PerState) -> Vec<State> {
    State::ALL
        .into_iter()
        .filter(|s| counts[slot(*s)] > 0)
        .collect()
}

/// The rows of a client's tasks in `states` (its number is `values`' only one, ?1), as one
/// SELECT per state joined by UNION ALL: the tasks have no (client, id) index (one fewer
/// entry for every new task to insert), and a single `state IN (...)` ordered by id would
/// make SQLite sort every matching row, while each arm walks the (client_no, state, id)
/// index in id order and SQLite merges the arms, stopping at the page. Every task is in
/// one state, so no row comes twice. None when `states` is empty.
fn by_state(states: Vec<State>, values: &mut Vec<Value>) -> Option<String> {
    let arms: Vec<String> = states
        .into_iter()
        .map(|state| {
            values.push(Value::Integer(state.code()));
            format!(
                "SELECT {TASK_COLUMNS} FROM tasks WHERE client_no = ?1 AND state = ?{}",
                values.len()
            )
        })
        .collect();
    (!arms.is_empty()).then(|| arms.join(" UNION ALL "))
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
    use crate::store::tests::explain;
    use crate::store::*;
    use crate::task::{NewTask, Params, Scope, State};

    /// No list sorts its rows (at a million tasks, a sort reads every matching one): a
    /// client's list by state walks the (client_no, state, id) index, merging a walk per
    /// state; its other filters walk their own index; every client's list walks the table.
    #[test]
    fn no_list_sorts_its_tasks() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db"), Durability::Normal).unwrap();
        let conn = store.conn().unwrap();
        let mut counts = PerState::default();
        for (state, n) in [
            (State::Queued, 5),
            (State::Running, 2),
            (State::Succeeded, 90),
        ] {
            counts[slot(state)] = n;
        }
        let client = Some(Value::Integer(1));
        let filter = |states: &[State], kind: Option<&str>, user_id: Option<i64>| ListFilter {
            states: states.to_vec(),
            kind: kind.map(String::from),
            user_id,
            limit: 10,
            ..ListFilter::default()
        };
        let waiting = [
            State::Scheduled,
            State::Queued,
            State::Held,
            State::Retrying,
        ];
        let by_state = "USING INDEX tasks_client_state_id (client_no=? AND state=?)";
        let cases = [
            (client.clone(), filter(&[], None, None), Some(by_state), 3),
            (
                client.clone(),
                filter(&waiting, None, None),
                Some(by_state),
                1,
            ),
            (
                client.clone(),
                filter(&[State::Running, State::Queued], None, None),
                Some(by_state),
                2,
            ),
            (
                client.clone(),
                filter(&[], Some("sleep"), None),
                Some("tasks_client_kind_id"),
                1,
            ),
            (
                client.clone(),
                filter(&[State::Queued, State::Running], Some("sleep"), None),
                Some("tasks_client_kind_id"),
                1,
            ),
            (
                client.clone(),
                filter(&[], None, Some(7)),
                Some("tasks_client_user_id"),
                1,
            ),
            (None, filter(&[], None, None), None, 1),
            (None, filter(&waiting, None, None), None, 1),
        ];
        for (client_no, filter, index, walks) in cases {
            let sql = list_sql(client_no, &filter, &counts).unwrap();
            let page = sql.page.unwrap();
            let plan = explain(&conn, "QUERY PLAN", &page, &sql.values).join("\n");
            assert!(!plan.contains("TEMP B-TREE"), "{page}:\n{plan}");
            let found = plan.matches("SEARCH tasks").count() + plan.matches("SCAN tasks").count();
            assert_eq!(found, walks, "{page}:\n{plan}");
            match index {
                Some(index) => assert_eq!(plan.matches(index).count(), walks, "{plan}"),
                None => assert!(plan.contains("SCAN tasks"), "{plan}"),
            }
        }
        // Nothing to read: no task in the states asked for.
        assert!(list_sql(None, &filter(&[State::Failed], None, None), &counts).is_some());
        assert!(list_sql(
            None,
            &filter(&[State::Failed, State::Held], None, None),
            &counts
        )
        .is_none());
    }

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
