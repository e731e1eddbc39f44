//! dataset.update through the Web Service Tasks API: a dataset made by csv.import, updated
//! by key from a JSON array of records sent as the task's IO file; the counts, the message
//! naming the failed records, the ERR file's JSON lines, the dataset after (through an
//! export), upsert, composite keys, bad records among good ones, bad input as a whole.

use serde_json::{json, Value};

use crate::common::*;
use crate::lifecycle::{big_csv, hold_import_under_way};

fn id_of(task: &Value) -> i64 {
    task["WebServiceTaskId"].as_i64().expect("an id")
}

/// [Total, Succeeded, Duplicate, Failed], after checking they add up.
fn counts(task: &Value) -> [u64; 4] {
    let counts = [
        "TotalRecords",
        "SucceededRecords",
        "DuplicateRecords",
        "FailedRecords",
    ]
    .map(|f| {
        task[f]
            .as_u64()
            .unwrap_or_else(|| panic!("no {f} in {task}"))
    });
    assert_eq!(counts[0], counts[1] + counts[2] + counts[3], "{task}");
    counts
}

/// Imports `csv` into `table` with `key`, expecting SUCCESS.
fn import(server: &Server, table: &str, key: &str, csv: &str) {
    let query = format!("kind=csv.import&table={table}&key={key}&filename=data.csv");
    let id = id_of(&post_file(server, &query, csv.as_bytes()).data(202));
    let task = wait_finished(server, id);
    assert_eq!(task["Status"], "SUCCESS", "{task}");
}

/// Submits a dataset.update of `table` with `params` (a query string: key, upsert) and the
/// records `body` as its IO file `records.json`; returns the finished task.
fn update(server: &Server, table: &str, params: &str, body: &[u8]) -> Value {
    let url = server.url(&format!(
        "/webservicetasks?kind=dataset.update&table={table}&{params}&filename=records.json"
    ));
    let answer = send(
        "POST",
        &url,
        &[("Content-Type", "application/octet-stream")],
        Some(body),
    );
    let task = wait_finished(server, id_of(&answer.data(202)));
    assert_eq!(task["PercentComplete"], 100, "{task}");
    task
}

fn records(records: &[Value]) -> Vec<u8> {
    serde_json::to_vec(records).unwrap()
}

/// The ERR file's lines, each a JSON object.
fn err_lines(server: &Server, task: &Value) -> Vec<Value> {
    assert_eq!(task["ErrFileName"], "records-err.txt", "{task}");
    let file = get(&server.url(&format!("/webservicetasks/{}/ErrorFile", id_of(task))));
    assert_eq!(file.status, 200, "{}", file.text());
    file.text()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

fn no_err_file(server: &Server, task: &Value) {
    assert_eq!(task["ErrFileName"], "", "{task}");
    let file = get(&server.url(&format!("/webservicetasks/{}/ErrorFile", id_of(task))));
    assert_eq!(file.error(404), "File is empty or does not exist.");
}

/// The dataset's rows, exported, header first.
fn rows(server: &Server, table: &str) -> Vec<Vec<String>> {
    let id = submit(server, "csv.export", json!({ "table": table }));
    let task = wait_finished(server, id);
    assert_eq!(task["Status"], "SUCCESS", "{task}");
    let file = get(&server.url(&format!("/webservicetasks/{id}/IoFile")));
    assert_eq!(file.status, 200);
    let text = file.text();
    text.split_terminator("\r\n")
        .map(|line| line.split(',').map(String::from).collect())
        .collect()
}

fn case(i: usize) -> String {
    format!("case-{i:05}")
}

/// A dataset `cases` of cases 0 to `stored - 1`, all `open` and owned by `ann`; then 10,000
/// records for cases 0 to 9,999: every third one says `open` (already so), the others
/// `closed`.
fn ten_thousand_records(server: &Server, stored: usize) -> Vec<u8> {
    let mut csv = String::from("Case ID,status,owner\n");
    for i in 0..stored {
        csv.push_str(&format!("{},open,ann\n", case(i)));
    }
    import(server, "cases", "Case%20ID", &csv);
    let all: Vec<Value> = (0..10_000)
        .map(|i| json!({"Case ID": case(i), "status": status(i)}))
        .collect();
    records(&all)
}

fn status(i: usize) -> &'static str {
    if i.is_multiple_of(3) {
        "open"
    } else {
        "closed"
    }
}

#[test]
fn a_bulk_update_counts_what_changed_and_names_each_record_without_a_row() {
    let server = Server::start();
    // Cases 9,850 to 9,999 have no row.
    let body = ten_thousand_records(&server, 9_850);
    let task = update(&server, "cases", "key=Case%20ID", &body);

    assert_eq!(
        task["Status"], "SUCCESS",
        "every record was processed: {task}"
    );
    let unchanged = (0..9_850usize).filter(|i| i.is_multiple_of(3)).count() as u64;
    assert_eq!(counts(&task), [10_000, 9_850 - unchanged, unchanged, 150]);
    // The message names the first hundred by key, one line each, then counts the rest.
    let message = task["Message"].as_str().unwrap();
    let lines: Vec<&str> = message.lines().collect();
    assert_eq!(lines.len(), 101, "{message}");
    for (n, line) in lines[..100].iter().enumerate() {
        assert_eq!(
            *line,
            format!("Case ID: {} failed: no such record", case(9_850 + n))
        );
    }
    assert_eq!(
        lines[100],
        "50 more records failed; the error file has every failed record, each with the reason."
    );
    // The ERR file has all of them, in order, each with its reason and the record.
    let err = err_lines(&server, &task);
    assert_eq!(err.len(), 150);
    for (n, line) in err.iter().enumerate() {
        let i = 9_850 + n;
        assert_eq!(
            *line,
            json!({"number": i + 1, "error": "no such record",
                   "record": {"Case ID": case(i), "status": status(i)}})
        );
    }
    // The dataset: the rows set, the cells not named untouched, nothing created.
    let rows = rows(&server, "cases");
    assert_eq!(rows[0], ["Case ID", "status", "owner"]);
    assert_eq!(rows.len(), 1 + 9_850);
    for (i, row) in rows[1..].iter().enumerate() {
        assert_eq!(*row, [case(i).as_str(), status(i), "ann"]);
    }
    let log = get(&server.url(&format!("/webservicetasks/{}/LogFile", id_of(&task)))).text();
    assert!(log.contains("Updating dataset cases by Case ID"), "{log}");
    assert!(log.contains("already up to date"), "{log}");

    // The same records again change nothing: each is a duplicate of what is stored.
    let again = update(&server, "cases", "key=Case%20ID", &body);
    assert_eq!(counts(&again), [10_000, 0, 9_850, 150]);
}

#[test]
fn with_upsert_records_without_a_row_create_one() {
    let server = Server::start();
    let body = ten_thousand_records(&server, 9_850);
    let task = update(&server, "cases", "key=Case%20ID&upsert=true", &body);

    assert_eq!(task["Status"], "SUCCESS", "{task}");
    assert_eq!(task["Message"], "", "nothing failed: {task}");
    let unchanged = (0..9_850usize).filter(|i| i.is_multiple_of(3)).count() as u64;
    assert_eq!(counts(&task), [10_000, 10_000 - unchanged, unchanged, 0]);
    no_err_file(&server, &task);
    let rows = rows(&server, "cases");
    assert_eq!(rows.len(), 1 + 10_000);
    for (i, row) in rows[1..].iter().enumerate() {
        // A created row has the cells its record names; the others are empty.
        let owner = if i < 9_850 { "ann" } else { "" };
        assert_eq!(*row, [case(i).as_str(), status(i), owner]);
    }
}

#[test]
fn bad_records_among_good_ones_fail_alone_and_say_why() {
    let server = Server::start();
    import(
        &server,
        "people",
        "id",
        "id,name,age\n1,Ann,30\n2,Bob,40\n3,Cy,50\n",
    );
    let body = br#"[
        {"id": "1", "name": "Anne"},
        "not a record",
        {"name": "nobody"},
        {"id": "2", "colour": "red"},
        {"id": 3, "age": 51, "name": null},
        {"id": "2", "name": {"first": "Bob"}},
        {"id": "4", "name": "Dee"}
    ]"#;
    let task = update(&server, "people", "key=id", body);
    assert_eq!(task["Status"], "SUCCESS", "{task}");
    assert_eq!(counts(&task), [7, 2, 0, 5]);
    assert_eq!(
        task["Message"],
        "Record 2 failed: the record is a string, not an object\n\
         Record 3 failed: the key column \"id\" is missing\n\
         id: 2 failed: the dataset has no column \"colour\"\n\
         id: 2 failed: the value of \"name\" is an object; a value is a string, a number, a \
         boolean or null\n\
         id: 4 failed: no such record"
    );
    let err = err_lines(&server, &task);
    assert_eq!(
        err,
        [
            json!({"number": 2, "error": "the record is a string, not an object",
                   "record": "not a record"}),
            json!({"number": 3, "error": "the key column \"id\" is missing",
                   "record": {"name": "nobody"}}),
            json!({"number": 4, "error": "the dataset has no column \"colour\"",
                   "record": {"id": "2", "colour": "red"}}),
            json!({"number": 6,
                   "error": "the value of \"name\" is an object; a value is a string, a number, a boolean or null",
                   "record": {"id": "2", "name": {"first": "Bob"}}}),
            json!({"number": 7, "error": "no such record", "record": {"id": "4", "name": "Dee"}}),
        ]
    );
    // The good records applied: a number as its text, null as an empty cell.
    assert_eq!(
        rows(&server, "people"),
        [
            ["id", "name", "age"],
            ["1", "Anne", "30"],
            ["2", "Bob", "40"],
            ["3", "", "51"],
        ]
    );
}

#[test]
fn a_composite_key_matches_every_column_and_names_a_failure_by_all_of_them() {
    let server = Server::start();
    import(
        &server,
        "cities",
        "country,city",
        "country,city,population\nFR,Paris,2100000\nUS,Paris,25000\nFR,Nice,340000\n",
    );
    let body = records(&[
        json!({"city": "Paris", "country": "US", "population": "24000"}),
        json!({"country": "FR", "city": "Nice", "population": 340000}),
        json!({"country": "US", "city": "Nice", "population": "1"}),
        json!({"country": "FR", "population": "1"}),
    ]);
    let task = update(&server, "cities", "key=country,city", &body);
    assert_eq!(task["Status"], "SUCCESS", "{task}");
    assert_eq!(counts(&task), [4, 1, 1, 2]);
    assert_eq!(
        task["Message"],
        "country: US, city: Nice failed: no such record\n\
         Record 4 failed: the key column \"city\" is missing"
    );
    assert_eq!(
        rows(&server, "cities"),
        [
            ["country", "city", "population"],
            ["FR", "Paris", "2100000"],
            ["US", "Paris", "24000"],
            ["FR", "Nice", "340000"],
        ]
    );
}

#[test]
fn input_that_is_not_a_json_array_or_breaks_off_fails_the_task_saying_where() {
    let server = Server::start();
    import(&server, "people", "id", "id,name\n1,Ann\n2,Bob\n");
    let task = update(&server, "people", "key=id", br#"{"id": "1", "name": "X"}"#);
    assert_eq!(task["Status"], "ERROR", "{task}");
    assert_eq!(
        task["Message"],
        "The update stopped: the records are not a JSON array: expected '[' at byte 0, \
         found '{'. Nothing was updated."
    );
    assert_eq!(counts(&task), [0, 0, 0, 0]);

    // A syntax error midway: the records before it are applied, and the message says so.
    let body = br#"[{"id": "1", "name": "Anne"}, {"id": "3"}, {"id": "2" "name": "Bo"}]"#;
    let task = update(&server, "people", "key=id", body);
    assert_eq!(task["Status"], "ERROR", "{task}");
    assert_eq!(
        task["Message"],
        "The update stopped: the records are not valid JSON at byte 54: expected `,` or `}`. \
         The 2 records before it were applied (1 changed the dataset, 0 were already up to \
         date, 1 failed); none after it was read."
    );
    assert_eq!(counts(&task), [2, 1, 0, 1]);
    assert_eq!(err_lines(&server, &task).len(), 1);
    assert_eq!(
        rows(&server, "people"),
        [["id", "name"], ["1", "Anne"], ["2", "Bob"]]
    );

    // The dataset or a key column that does not exist: nothing is done.
    let task = update(&server, "nobody", "key=id", b"[]");
    assert_eq!(task["Status"], "ERROR", "{task}");
    assert_eq!(
        task["Message"],
        "Nothing was updated: there is no dataset named \"nobody\"."
    );
    let task = update(&server, "people", "key=id,ID", b"[]");
    assert_eq!(
        task["Message"],
        "Nothing was updated: dataset people has no column \"ID\"; its columns are id, name."
    );
    // An empty array is a job done with nothing to do.
    let task = update(&server, "people", "key=id", b" [ ] ");
    assert_eq!(
        (task["Status"].as_str(), counts(&task)),
        (Some("SUCCESS"), [0; 4])
    );
}

#[test]
fn a_submission_without_a_key_a_file_or_with_a_bad_upsert_is_refused() {
    let server = Server::start();
    let post = |query: &str, body: &[u8]| {
        send(
            "POST",
            &server.url(&format!("/webservicetasks?kind=dataset.update&{query}")),
            &[("Content-Type", "application/octet-stream")],
            Some(body),
        )
    };
    let cases = [
        (post("table=t", b"[]"), "The param key is required"),
        (post("table=t&key=", b"[]"), "The param key names no column"),
        (
            post("table=t&key=id&upsert=yes", b"[]"),
            "The param upsert must be true or false",
        ),
        (
            post("table=9t&key=id", b"[]"),
            "The param table is not a valid dataset name",
        ),
        (post("table=t&key=id", b""), "dataset.update needs a file"),
        (
            post("table=t&key=id&keys=id", b"[]"),
            "known params: table, key, upsert",
        ),
    ];
    for (answer, expected) in cases {
        let message = answer.error(400);
        assert!(message.contains(expected), "{message:?} lacks {expected:?}");
    }
}

#[test]
fn an_update_waits_for_an_import_of_its_dataset_and_then_sees_its_rows() {
    let server = Server::start_with(&["--workers", "2"]);
    let dir = tempfile::tempdir().unwrap();
    let release = dir.path().join("release");
    let query = format!(
        "table=held&key=id&filename=first.csv&release={}",
        release.display()
    );
    let import = hold_import_under_way(&server, &big_csv(10_000), &query);
    let url = server.url("/webservicetasks?kind=dataset.update&table=held&key=id");
    let body = br#"[{"id": "5", "name": "five"}]"#;
    let answer = send(
        "POST",
        &url,
        &[("Content-Type", "application/octet-stream")],
        Some(body),
    );
    let update = id_of(&answer.data(202));
    wait_until("the update to wait for the import", || {
        let t = task(&server, update);
        assert!(
            matches!(t["Status"].as_str(), Some("Pending" | "In progress")),
            "{t}"
        );
        (t["Message"] == "Waiting for another import or update of dataset held to end.")
            .then_some(())
    });

    std::fs::write(&release, b"").unwrap();
    assert_eq!(wait_finished(&server, import)["Status"], "SUCCESS");
    let done = wait_finished(&server, update);
    assert_eq!(
        (done["Status"].as_str(), counts(&done)),
        (Some("SUCCESS"), [1, 1, 0, 0]),
        "{done}"
    );
    let rows = rows(&server, "held");
    assert_eq!(rows.len(), 1 + 10_000);
    assert_eq!(rows[1 + 5], ["5", "five", "35"]);
}
