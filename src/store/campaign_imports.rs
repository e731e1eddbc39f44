//! The import-result query: a client's csv.import tasks tagged with one campaign (their
//! param `campaign`), newest first, a page at a time, and how many there are in all.
//!
//! Both statements read the partial index `tasks_import_campaign` (migration 005) and
//! nothing else until the page's rows: SQLite uses a partial index on an expression only
//! for a WHERE clause that names the index's condition (`kind = 'csv.import'`, a literal,
//! never a bound value) and its expression (`json_extract(params, '$.campaign')`) word for
//! word, so both are written here exactly as the index writes them. The count reads the
//! index's range of the client and campaign alone; the page walks it backwards from its
//! newest task.

use rusqlite::types::Value;
use rusqlite::{params_from_iter, Row};

use super::query::{counts_at, state_at};
use super::{Result, Store};
use crate::task::{Counts, Scope, State, TaskId};

/// The longest campaign a csv.import takes (its param `campaign`), in bytes of UTF-8, and
/// so the longest the query can match.
pub const MAX_CAMPAIGN_LEN: usize = 64;

/// The tasks the index holds and the campaign they are tagged with, as the index writes
/// them; the scope's client and the filters follow.
const OF_CAMPAIGN: &str = "kind = 'csv.import' AND json_extract(params, '$.campaign') = ?1";

/// What a result needs of a task: not its params or its files, which a page of a hundred
/// big imports would otherwise read for nothing.
const RESULT_COLUMNS: &str = "id, state, message, start_time, end_time, \
    total_records, succeeded_records, duplicate_records, failed_records";

/// What the query asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CampaignQuery {
    /// The campaign, exactly as the imports' param `campaign` holds it.
    pub campaign: String,
    /// Only these tasks; None for every import of the campaign (Some of none: no task).
    pub task_ids: Option<Vec<TaskId>>,
    /// Tasks skipped before the page, newest first.
    pub offset: u64,
    /// The most tasks in the page.
    pub limit: u32,
}

/// An import as the query reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignImport {
    pub id: TaskId,
    /// The task's UUID, filled by the scoped store (as a `Task`'s is).
    pub uuid: String,
    pub state: State,
    /// `""` or the task's sentence.
    pub message: String,
    /// When it started running, UTC, `YYYY-MM-DDTHH:MM:SS`.
    pub start_time: Option<String>,
    /// When it ended, same format.
    pub end_time: Option<String>,
    pub counts: Counts,
}

impl Store {
    /// The csv.import tasks of `query.campaign` within `scope`, newest first, the page
    /// `query` asks for, and the count of all that match (one snapshot for both).
    pub(super) fn campaign_imports(
        &self,
        scope: &Scope,
        query: &CampaignQuery,
    ) -> Result<(Vec<CampaignImport>, u64)> {
        let Statements {
            count,
            page,
            values,
        } = statements(self.client_no_of(scope), query);
        let conn = self.conn()?;
        let conn = super::snapshot::Snapshot::begin(&conn)?;
        let filters = &values[..values.len() - 2];
        let total: i64 = conn
            .prepare_cached(&count)?
            .query_row(params_from_iter(filters), |r| r.get(0))?;
        let total = total as u64;
        if query.offset >= total || query.limit == 0 {
            return Ok((Vec::new(), total));
        }
        let imports = conn
            .prepare_cached(&page)?
            .query_map(params_from_iter(&values), import_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok((imports, total))
    }
}

/// The two statements of a query, and their values: the count's, then the page's limit
/// and offset.
struct Statements {
    count: String,
    page: String,
    values: Vec<Value>,
}

/// `client_no` is the scope's client's number, None for every client's (see
/// `Store::client_no_of`).
fn statements(client_no: Option<Value>, query: &CampaignQuery) -> Statements {
    let mut values = vec![Value::Text(query.campaign.clone())];
    let mut matching = OF_CAMPAIGN.to_string();
    if let Some(client_no) = client_no {
        values.push(client_no);
        matching.push_str(&format!(" AND client_no = ?{}", values.len()));
    }
    if let Some(ids) = &query.task_ids {
        // One value however many ids: one statement for every length, no bound on variables.
        values.push(Value::Text(serde_json::to_string(ids).unwrap_or_default()));
        matching.push_str(&format!(
            " AND id IN (SELECT value FROM json_each(?{}))",
            values.len()
        ));
    }
    let n = values.len();
    values.push(Value::Integer(i64::from(query.limit)));
    values.push(Value::Integer(
        i64::try_from(query.offset).unwrap_or(i64::MAX),
    ));
    Statements {
        count: format!("SELECT count(*) FROM tasks WHERE {matching}"),
        page: format!(
            "SELECT {RESULT_COLUMNS} FROM tasks WHERE {matching} \
             ORDER BY id DESC LIMIT ?{} + 0 OFFSET ?{} + 0",
            n + 1,
            n + 2
        ),
        values,
    }
}

fn import_from_row(r: &Row<'_>) -> rusqlite::Result<CampaignImport> {
    Ok(CampaignImport {
        id: r.get(0)?,
        uuid: String::new(),
        state: state_at(r, 1)?,
        message: r.get(2)?,
        start_time: r.get(3)?,
        end_time: r.get(4)?,
        counts: counts_at(r, 5)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::*;
    use crate::task::{NewTask, Params};

    fn open() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db"), Durability::Normal).unwrap();
        (dir, store)
    }

    /// A task of `kind` owned by `client`, tagged with `campaign` if given.
    fn task(kind: &str, client: &str, campaign: Option<&str>) -> NewTask {
        let mut params = Params::new();
        params.insert("table".into(), "calls".into());
        if let Some(campaign) = campaign {
            params.insert("campaign".into(), campaign.into());
        }
        let mut new = NewTask::new(kind, params);
        new.owner.client = client.into();
        new
    }

    /// Stores `task(kind, client, campaign)` and returns its id.
    fn add(store: &Store, kind: &str, client: &str, campaign: Option<&str>) -> TaskId {
        store.submit(&task(kind, client, campaign)).unwrap().task.id
    }

    fn query(campaign: &str, offset: u64, limit: u32) -> CampaignQuery {
        CampaignQuery {
            campaign: campaign.into(),
            task_ids: None,
            offset,
            limit,
        }
    }

    fn ids(page: &[CampaignImport]) -> Vec<TaskId> {
        page.iter().map(|i| i.id).collect()
    }

    fn page_of(store: &Store, scope: &Scope, campaign: &str) -> Vec<CampaignImport> {
        store
            .campaign_imports(scope, &query(campaign, 0, 100))
            .unwrap()
            .0
    }

    #[test]
    fn a_campaign_s_imports_come_newest_first_a_page_at_a_time_with_their_count() {
        let (_dir, store) = open();
        let mut mine = Vec::new();
        for i in 0..7 {
            mine.push(add(&store, "csv.import", "acme", Some("c1")));
            // Around them: another campaign, an untagged import, another kind tagged alike.
            let noise = match i % 3 {
                0 => task("csv.import", "acme", Some("c2")),
                1 => task("csv.import", "acme", None),
                _ => task("csv.export", "acme", Some("c1")),
            };
            store.submit(&noise).unwrap();
        }
        mine.reverse();
        let acme = Scope::Client("acme".into());
        let (page, count) = store.campaign_imports(&acme, &query("c1", 0, 3)).unwrap();
        assert_eq!((ids(&page), count), (mine[..3].to_vec(), 7));
        let (page, count) = store.campaign_imports(&acme, &query("c1", 6, 3)).unwrap();
        assert_eq!((ids(&page), count), (mine[6..].to_vec(), 7));
        let (page, count) = store.campaign_imports(&acme, &query("c1", 7, 3)).unwrap();
        assert_eq!((ids(&page), count), (vec![], 7));
        // Exact: neither case nor a prefix matches.
        for other in ["C1", "c", "c1 ", "nothing"] {
            let (page, count) = store.campaign_imports(&acme, &query(other, 0, 3)).unwrap();
            assert_eq!((page.len(), count), (0, 0), "{other}");
        }
        let first = page_of(&store, &acme, "c1").remove(0);
        assert_eq!(
            (first.state, first.counts, first.start_time),
            (State::Queued, Counts::default(), None)
        );
    }

    #[test]
    fn only_the_tasks_named_are_counted_and_listed() {
        let (_dir, store) = open();
        let tagged: Vec<TaskId> = (0..5)
            .map(|_| add(&store, "csv.import", "acme", Some("c1")))
            .collect();
        let other = add(&store, "csv.import", "acme", Some("c2"));
        let acme = Scope::Client("acme".into());
        let only = |task_ids: Vec<TaskId>| {
            let q = CampaignQuery {
                task_ids: Some(task_ids),
                ..query("c1", 0, 100)
            };
            let (page, count) = store.campaign_imports(&acme, &q).unwrap();
            (ids(&page), count)
        };
        // Named twice, or with a task of another campaign and one that does not exist.
        assert_eq!(
            only(vec![tagged[1], tagged[3], tagged[1], other, 999_999]),
            (vec![tagged[3], tagged[1]], 2)
        );
        assert_eq!(only(vec![]), (vec![], 0));
    }

    #[test]
    fn another_client_s_campaign_is_out_of_reach_of_a_client_s_view() {
        let (_dir, store) = open();
        let acme = add(&store, "csv.import", "acme", Some("c1"));
        let globex = add(&store, "csv.import", "globex", Some("c1"));
        let of = |scoped: &Scoped| {
            let (page, count) = scoped.campaign_imports(&query("c1", 0, 10)).unwrap();
            (ids(&page), count)
        };
        let acme_view = store.scoped(Scope::Client("acme".into()));
        assert_eq!(of(&acme_view), (vec![acme], 1));
        assert_eq!(of(&acme_view.for_client("acme").unwrap()), (vec![acme], 1));
        // Its own view cannot be narrowed to another client: the route answers "no imports".
        assert!(acme_view.for_client("globex").is_none());
        // An administrator's view narrows to either, and sees each alone.
        let admin = store.scoped(Scope::All);
        assert_eq!(of(&admin.for_client("globex").unwrap()), (vec![globex], 1));
        assert_eq!(of(&admin.for_client("acme").unwrap()), (vec![acme], 1));
        assert_eq!(of(&admin.for_client("initech").unwrap()), (vec![], 0));
        // Not narrowed, it sees the campaign in every client.
        assert_eq!(of(&admin), (vec![globex, acme], 2));
    }

    #[test]
    fn an_import_reports_its_state_times_counts_and_message() {
        let (_dir, store) = open();
        let id = add(&store, "csv.import", "acme", Some("c1"));
        assert_eq!(store.claim_due(1).unwrap().tasks.len(), 1);
        assert!(store.start(id, "acme", "me").unwrap());
        let acme = Scope::Client("acme".into());
        let running = page_of(&store, &acme, "c1").remove(0);
        assert_eq!(running.state, State::Running);
        assert!(running.start_time.is_some() && running.end_time.is_none());
        let mut end = Finish::success(b"done\n");
        let finish = std::sync::Arc::get_mut(&mut end).unwrap();
        finish.state = State::Failed;
        finish.message = "Some records were not imported.".into();
        finish.counts = Counts {
            total: 4,
            succeeded: 2,
            duplicate: 1,
            failed: 1,
        };
        assert!(store.finish(id, "acme", "me", end).unwrap());
        let ended = page_of(&store, &acme, "c1").remove(0);
        assert_eq!(
            (ended.state, ended.message.as_str(), ended.counts.failed),
            (State::Failed, "Some records were not imported.", 1)
        );
        assert_eq!(ended.counts.total, 4);
        assert!(ended.end_time.is_some());
    }

    #[test]
    fn the_count_and_the_page_read_the_campaign_index_and_sort_nothing() {
        let (_dir, store) = open();
        let conn = store.conn().unwrap();
        let explain = crate::store::tests::explain;
        let Statements {
            count,
            page,
            values,
        } = statements(Some(Value::Integer(1)), &query("c1", 0, 10));
        let search = "SEARCH tasks USING INDEX tasks_import_campaign (client_no=? AND <expr>=?)";
        assert_eq!(explain(&conn, "QUERY PLAN", &count, &values), [search]);
        // SQLite does not call the index covering (the kind it implies is a column it
        // lacks), but it seeks a task's row only to read a column of it, and the count
        // reads none: it counts index entries.
        let program = explain(&conn, "", &count, &values);
        assert!(!program.iter().any(|op| op == "Column"), "{program:?}");
        // The page walks the same range newest first; the rows it skips (the offset) are
        // passed over before any column of theirs is read.
        assert_eq!(explain(&conn, "QUERY PLAN", &page, &values), [search]);
        let program = explain(&conn, "", &page, &values);
        let at = |opcode: &str| program.iter().position(|op| op == opcode);
        assert!(at("IfPos") < at("Column"), "{program:?}");
        // With ids, each is looked up: nothing reads every task of the client.
        let named = CampaignQuery {
            task_ids: Some(vec![1, 2, 3]),
            ..query("c1", 0, 10)
        };
        let Statements {
            count,
            page,
            values,
        } = statements(Some(Value::Integer(1)), &named);
        for sql in [count, page] {
            let steps = explain(&conn, "QUERY PLAN", &sql, &values).join("\n");
            assert!(!steps.contains("SCAN tasks"), "{sql}:\n{steps}");
        }
    }
}
