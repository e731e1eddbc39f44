//! The update verb against a real database: what each row does, upsert, composite keys,
//! the index it makes, one client's dataset beside another's of the same name, refusals.

use super::*;
use crate::store::tests::running_task;
use crate::store::{Durability, Finish, StoreError};

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("t.db"), Durability::Normal).unwrap();
    (dir, store)
}

/// Imports `rows` (cells in `header` order) into client `client`'s dataset `name`.
fn import(store: &Store, client: &str, name: &str, header: &[&str], rows: &[&[&str]]) {
    let task = running_task(store);
    let mut import = store
        .begin_import(task, "me", client, name, &strings(header), &[], &mut || {
            true
        })
        .unwrap();
    import
        .insert(rows.iter().map(|r| strings(r)).collect())
        .unwrap();
    import.commit().unwrap();
    assert!(store
        .finish(task, "default", "me", Finish::import_success())
        .unwrap());
}

/// Every row of client `client`'s dataset `name`, in row order.
fn rows_of(store: &Store, client: &str, name: &str) -> Vec<Vec<String>> {
    let dataset = store.dataset(client, name).unwrap().unwrap();
    let all: Vec<usize> = (0..dataset.columns.len()).collect();
    let page = store.dataset_page(&dataset, &all, 0, 1000).unwrap();
    page.into_iter().map(|(_, cells)| cells).collect()
}

fn begin(store: &Store, task: TaskId, client: &str, key: &[&str], upsert: bool) -> UpdateSession {
    store
        .begin_update(task, "me", client, "t", &strings(key), upsert, &mut || true)
        .unwrap()
}

fn row(key: &[&str], cells: &[(usize, &str)]) -> UpdateRow {
    UpdateRow {
        key: strings(key),
        cells: cells.iter().map(|&(p, v)| (p, v.to_string())).collect(),
    }
}

/// Applies `rows` in one batch and returns their outcomes.
fn apply(session: &mut UpdateSession, rows: Vec<UpdateRow>) -> Vec<UpdateOutcome> {
    assert!(
        session.apply(rows).unwrap().is_empty(),
        "nothing was in flight"
    );
    let done = session.wait().unwrap();
    done.into_iter().map(|(_, outcome)| outcome).collect()
}

#[test]
fn each_row_changes_the_cells_that_differ_and_says_what_it_did() {
    let (_dir, store) = open();
    import(
        &store,
        "default",
        "t",
        &["id", "name", "rate"],
        &[
            &["1", "one", "0.1"],
            &["2", "two", "0.2"],
            &["3", "three", "0.3"],
        ],
    );
    let mut session = begin(&store, running_task(&store), "default", &["id"], false);
    assert_eq!(session.dataset().columns, ["id", "name", "rate"]);
    let outcomes = apply(
        &mut session,
        vec![
            row(&["1"], &[(2, "0.15")]),
            row(&["2"], &[(1, "two"), (2, "0.2")]),
            row(&["9"], &[(1, "nine")]),
            // Only the key: it matches, and changes nothing.
            row(&["3"], &[]),
            row(&["8"], &[]),
            // Cells in any order; the same cell set again changes nothing the second time.
            row(&["3"], &[(2, "0.35"), (1, "THREE")]),
            row(&["3"], &[(1, "THREE"), (2, "0.35")]),
        ],
    );
    use UpdateOutcome::*;
    assert_eq!(
        outcomes,
        [Changed, Unchanged, NoSuchRow, Unchanged, NoSuchRow, Changed, Unchanged]
    );
    drop(session);
    assert_eq!(
        rows_of(&store, "default", "t"),
        [
            strings(&["1", "one", "0.15"]),
            strings(&["2", "two", "0.2"]),
            strings(&["3", "THREE", "0.35"]),
        ]
    );
}

#[test]
fn with_upsert_a_missing_key_makes_a_row_with_the_cells_it_names() {
    let (_dir, store) = open();
    import(
        &store,
        "default",
        "t",
        &["a", "id", "b"],
        &[&["x", "1", "y"]],
    );
    let mut session = begin(&store, running_task(&store), "default", &["id"], true);
    let outcomes = apply(
        &mut session,
        vec![
            row(&["2"], &[(2, "b2")]),
            row(&["3"], &[]),
            // Made earlier in the same batch: now it is there.
            row(&["2"], &[(0, "a2")]),
            row(&["1"], &[(0, "x")]),
        ],
    );
    use UpdateOutcome::*;
    assert_eq!(outcomes, [Created, Created, Changed, Unchanged]);
    drop(session);
    assert_eq!(
        rows_of(&store, "default", "t"),
        [
            strings(&["x", "1", "y"]),
            strings(&["a2", "2", "b2"]),
            strings(&["", "3", ""]),
        ]
    );
}

#[test]
fn a_composite_key_matches_on_every_column_and_every_row_that_has_it() {
    let (_dir, store) = open();
    import(
        &store,
        "default",
        "t",
        &["country", "city", "n"],
        &[
            &["FR", "Paris", "1"],
            &["US", "Paris", "2"],
            &["FR", "Lyon", "3"],
            // Not unique: an update sets every row with the key.
            &["FR", "Lyon", "4"],
        ],
    );
    let mut session = begin(
        &store,
        running_task(&store),
        "default",
        &["city", "country"],
        false,
    );
    let outcomes = apply(
        &mut session,
        vec![
            row(&["Paris", "US"], &[(2, "20")]),
            row(&["Lyon", "FR"], &[(2, "30")]),
            row(&["Lyon", "US"], &[(2, "0")]),
        ],
    );
    use UpdateOutcome::*;
    assert_eq!(outcomes, [Changed, Changed, NoSuchRow]);
    drop(session);
    let n: Vec<String> = rows_of(&store, "default", "t")
        .into_iter()
        .map(|r| r[2].clone())
        .collect();
    assert_eq!(n, ["1", "20", "30", "30"]);
    // The lookup goes through an index on the key's columns, named after their positions.
    let index: String = store
        .conn()
        .unwrap()
        .query_row(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = 'ds_1_key_c2_c1'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(index.contains("ON ds_1 (c2, c1)"), "{index}");
}

#[test]
fn another_clients_dataset_of_the_same_name_is_untouched() {
    let (_dir, store) = open();
    import(&store, "acme", "t", &["id", "v"], &[&["1", "acme"]]);
    import(&store, "default", "t", &["id", "v"], &[&["1", "default"]]);
    let mut session = begin(&store, running_task(&store), "acme", &["id"], true);
    let outcomes = apply(
        &mut session,
        vec![row(&["1"], &[(1, "changed")]), row(&["2"], &[(1, "new")])],
    );
    assert_eq!(outcomes, [UpdateOutcome::Changed, UpdateOutcome::Created]);
    drop(session);
    assert_eq!(
        rows_of(&store, "acme", "t"),
        [strings(&["1", "changed"]), strings(&["2", "new"])]
    );
    assert_eq!(
        rows_of(&store, "default", "t"),
        [strings(&["1", "default"])]
    );
    // A client with no dataset of that name has none to update, whoever else does.
    let refused = store.begin_update(
        running_task(&store),
        "me",
        "other",
        "t",
        &strings(&["id"]),
        true,
        &mut || true,
    );
    assert!(
        matches!(&refused, Err(DatasetError::NoSuchDataset(name)) if name == "t"),
        "{:?}",
        refused.err()
    );
}

#[test]
fn a_key_column_the_dataset_lacks_is_refused_naming_the_columns() {
    let (_dir, store) = open();
    import(&store, "default", "t", &["id", "v"], &[&["1", "a"]]);
    let refused = store
        .begin_update(
            running_task(&store),
            "me",
            "default",
            "t",
            &strings(&["id", "ID"]),
            false,
            &mut || true,
        )
        .err()
        .unwrap();
    assert_eq!(
        refused.to_string(),
        "dataset t has no column \"ID\"; its columns are id, v"
    );
}

#[test]
fn an_update_waits_for_the_dataset_and_its_caller_may_give_up() {
    let (_dir, store) = open();
    import(&store, "default", "t", &["id", "v"], &[&["1", "a"]]);
    let held = begin(&store, running_task(&store), "default", &["id"], false);
    let mut asked = 0;
    let given_up = store.begin_update(
        running_task(&store),
        "me",
        "default",
        "t",
        &strings(&["id"]),
        false,
        &mut || {
            asked += 1;
            false
        },
    );
    assert!(matches!(given_up, Err(DatasetError::Abandoned)));
    assert_eq!(asked, 1);
    // Another client's dataset of the same name is another lock.
    import(&store, "acme", "t", &["id"], &[&["1"]]);
    drop(begin(&store, running_task(&store), "acme", &["id"], false));
    drop(held);
    drop(begin(
        &store,
        running_task(&store),
        "default",
        &["id"],
        false,
    ));
}

#[test]
fn a_task_no_longer_running_applies_nothing_more() {
    let (_dir, store) = open();
    import(&store, "default", "t", &["id", "v"], &[&["1", "a"]]);
    let task = running_task(&store);
    let mut session = begin(&store, task, "default", &["id"], true);
    assert_eq!(store.interrupt_running(Some("me")).unwrap(), vec![task]);
    session.apply(vec![row(&["1"], &[(1, "b")])]).unwrap();
    assert!(matches!(session.wait(), Err(StoreError::NotFound)));
    drop(session);
    assert_eq!(rows_of(&store, "default", "t"), [strings(&["1", "a"])]);
}
