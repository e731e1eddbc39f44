//! Bounded inputs and their hygiene: every param is one its kind declares, within the length
//! it declares, whichever form the submission takes; `sleep` has a maximum; a page of the
//! list has a byte budget; an import waiting for its dataset ends at once when it is
//! cancelled or the service stops; a task failed by the database says so without the
//! database's own words; the rows of an ERR file are defused, and import back.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::*;
use crate::lifecycle::{
    assert_gone, assert_interrupted, big_csv, delete_ok, export_rows, hold_import_under_way,
    wait_log,
};

/// POSTs a multipart form of `fields` (no file) to /webservicetasks`query`.
fn post_form(server: &Server, query: &str, fields: &[(&str, &str)]) -> Answer {
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!("--XyZ\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                .as_bytes(),
        );
    }
    body.extend_from_slice(b"--XyZ--\r\n");
    send(
        "POST",
        &server.url(&format!("/webservicetasks{query}")),
        &[("Content-Type", "multipart/form-data; boundary=XyZ")],
        Some(&body),
    )
}

/// The message of a 400, after checking it names each of `names`.
fn refused(answer: &Answer, names: &[&str]) -> String {
    let message = answer.error(400);
    for name in names {
        assert!(message.contains(name), "{message:?} does not name {name:?}");
    }
    message
}

fn id_of(data: &Value) -> i64 {
    data["WebServiceTaskId"].as_i64().expect("an id")
}

/// The number of tasks the server holds.
fn task_count(server: &Server) -> u64 {
    total_count(&get(&server.url("/webservicetasks?limit=1")))
}

#[test]
fn an_unknown_param_is_400_naming_it_and_the_known_ones_in_every_form() {
    let server = Server::start();
    let cases = [
        // A raw post: every query field but kind and filename is a param.
        (
            post_file(&server, "kind=sleep&seconds=0&colour=red", b""),
            "The param colour is unknown for kind sleep; known params: seconds.",
        ),
        // With a body, refused before the body is stored.
        (
            post_file(&server, "kind=csv.import&tabel=t", b"a,b\n1,2\n"),
            "The param tabel is unknown for kind csv.import; known params: table, key, campaign.",
        ),
        // JSON.
        (
            post_task(&server, "csv.export", json!({"table": "t", "colums": "a"})),
            "The param colums is unknown for kind csv.export; known params: table, columns, raw.",
        ),
    ];
    for (answer, expected) in cases {
        assert_eq!(refused(&answer, &[]), expected);
    }
    // A multipart form's fields, and the query fields that come with it.
    let answer = post_form(&server, "", &[("kind", "sleep"), ("extra", "1")]);
    refused(&answer, &["extra", "known params: seconds"]);
    let answer = post_form(&server, "?kind=sleep&fromquery=1", &[("seconds", "0")]);
    refused(&answer, &["fromquery", "known params: seconds"]);
    // A long name is not echoed whole.
    let long = "n".repeat(10_000);
    let message = refused(&post_task(&server, "sleep", json!({ long: "1" })), &[]);
    assert!(message.len() < 300, "{message}");
    assert!(message.contains("known params: seconds"), "{message}");

    assert_eq!(task_count(&server), 0, "a refused submission was stored");
    // The declared params go through every form.
    let data = post_form(&server, "?kind=sleep", &[("seconds", "0")]).data(202);
    assert_eq!(data["Params"], json!({"seconds": "0"}));
    let id = id_of(&post_file(&server, "kind=sleep&seconds=0", b"").data(202));
    assert_eq!(wait_finished(&server, id)["Status"], "SUCCESS");
}

#[test]
fn a_value_longer_than_its_param_takes_is_400_naming_the_param_and_the_limit() {
    let server = Server::start();
    let columns = "c".repeat(64 * 1024 + 1);
    let answer = post_task(
        &server,
        "csv.export",
        json!({"table": "t", "columns": columns}),
    );
    refused(&answer, &["columns", "65537 bytes", "65536 bytes"]);
    let answer = post_file(
        &server,
        &format!("kind=sleep&seconds={}", "1".repeat(33)),
        b"",
    );
    refused(&answer, &["seconds", "32 bytes"]);
    let release = "r".repeat(4097);
    let answer = post_form(
        &server,
        "",
        &[("kind", "debug.hold"), ("release", &release)],
    );
    refused(&answer, &["release", "4096 bytes"]);
    let answer = post_task(&server, "csv.export", json!({"table": "t".repeat(65)}));
    refused(&answer, &["table", "64 bytes"]);
    assert_eq!(task_count(&server), 0, "a refused submission was stored");

    // At the limit, accepted and stored whole.
    let columns = "c".repeat(64 * 1024);
    let data = post_task(
        &server,
        "csv.export",
        json!({"table": "t", "columns": columns}),
    )
    .data(202);
    assert_eq!(
        data["Params"]["columns"].as_str().map(str::len),
        Some(64 * 1024)
    );
}

#[test]
fn a_sleep_past_its_maximum_is_400_naming_it() {
    let server = Server::start_with(&["--max-sleep-secs", "2"]);
    for answer in [
        post_task(&server, "sleep", json!({"seconds": 2.5})),
        post_file(&server, "kind=sleep&seconds=3", b""),
    ] {
        refused(&answer, &["seconds", "from 0 to 2", "--max-sleep-secs"]);
    }
    assert_eq!(task_count(&server), 0);
    let id = submit(&server, "sleep", json!({"seconds": "0.2"}));
    assert_eq!(wait_finished(&server, id)["Status"], "SUCCESS");
    // The maximum itself is accepted (and the task cancelled: no need to wait for it).
    let id = submit(&server, "sleep", json!({"seconds": 2}));
    delete_ok(&server, id);
    drop(server);

    // By default, an hour.
    let server = Server::start();
    let answer = post_task(&server, "sleep", json!({"seconds": 3601}));
    refused(&answer, &["seconds", "from 0 to 3600", "--max-sleep-secs"]);
    let id = submit(&server, "sleep", json!({"seconds": 3600}));
    delete_ok(&server, id);

    // The setting has bounds of its own.
    for bad in ["0", "86401"] {
        let (status, stderr) = Server::builder()
            .args(&["--max-sleep-secs", bad])
            .run_to_exit(DEADLINE);
        assert_eq!(status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("max-sleep-secs"), "{stderr}");
    }
}

/// Lists with `query`; the page's tasks, X-Total-Count, X-Next-Offset and the size of its
/// `data` as JSON.
fn list_page(server: &Server, query: &str) -> (Vec<Value>, u64, Option<u64>, usize) {
    let answer = get(&server.url(&format!("/webservicetasks?{query}")));
    let data = answer.data(200);
    let next = answer
        .header("X-Next-Offset")
        .map(|n| n.parse().expect("a number"));
    let bytes = serde_json::to_vec(&data).unwrap().len();
    let tasks = data.as_array().expect("a list").clone();
    (tasks, total_count(&answer), next, bytes)
}

#[test]
fn a_list_page_ends_at_its_byte_budget_and_the_client_pages_on() {
    const BUDGET: usize = 64 * 1024;
    let server = Server::start_with(&["--max-list-bytes", &BUDGET.to_string()]);
    // Tasks of about 20 KiB each (their params): three to a page.
    let columns = "c".repeat(20_000);
    let ids: Vec<i64> = (0..10)
        .map(|_| {
            submit(
                &server,
                "csv.export",
                json!({"table": "t", "columns": columns}),
            )
        })
        .collect();
    for &id in &ids {
        wait_finished(&server, id);
    }
    let (page, total, next, bytes) = list_page(&server, "limit=1000");
    assert_eq!(
        total, 10,
        "X-Total-Count counts every task, whatever the page holds"
    );
    assert_eq!(page.len(), 3, "the page ends before the budget");
    assert!(bytes <= BUDGET, "a page of {bytes} bytes");
    assert_eq!(next, Some(3));

    // Paging on from each page's end reads every task once, newest first.
    let mut seen: Vec<i64> = page.iter().map(id_of).collect();
    let mut offset = next;
    while let Some(from) = offset {
        let (page, total, next, bytes) = list_page(&server, &format!("limit=1000&offset={from}"));
        assert_eq!(total, 10);
        assert!(bytes <= BUDGET, "a page of {bytes} bytes");
        assert!(!page.is_empty());
        seen.extend(page.iter().map(id_of));
        assert_eq!(next.is_some(), seen.len() < 10, "X-Next-Offset {next:?}");
        offset = next;
    }
    let newest_first: Vec<i64> = ids.iter().rev().copied().collect();
    assert_eq!(seen, newest_first);

    // A page that ends at its limit within the budget is a normal page.
    let (page, _, next, _) = list_page(&server, "limit=2");
    assert_eq!((page.len(), next), (2, None));

    // A task larger than the budget alone still comes, alone.
    let huge = submit(
        &server,
        "csv.export",
        json!({"table": "t", "columns": "c".repeat(64 * 1024)}),
    );
    wait_finished(&server, huge);
    let (page, total, next, bytes) = list_page(&server, "limit=1000");
    assert_eq!(page.iter().map(id_of).collect::<Vec<_>>(), [huge]);
    assert!(bytes > BUDGET);
    assert_eq!((total, next), (11, Some(1)));
}

/// Waits until import `id` is running and waiting for another import into `table`.
fn wait_waiting_for(server: &Server, id: i64, table: &str) {
    let waiting = format!("Waiting for another import into dataset {table} to end.");
    wait_until("the second import to wait for the first", || {
        let t = task(server, id);
        assert!(
            matches!(t["Status"].as_str(), Some("Pending" | "In progress")),
            "the second import ended: {t}"
        );
        (t["Message"] == waiting.as_str()).then_some(())
    });
}

const SMALL_CSV: &[u8] = b"id,name,amount\nx1,a,1\nx2,b,2\n";

#[test]
fn cancelling_an_import_waiting_for_its_dataset_ends_it_at_once() {
    let server = Server::start_with(&["--workers", "2"]);
    let first = hold_import_under_way(&server, &big_csv(10_000), "table=locked&filename=first.csv");
    let query = "kind=csv.import&table=locked&filename=second.csv";
    let second = id_of(&post_file(&server, query, SMALL_CSV).data(202));
    wait_waiting_for(&server, second, "locked");

    // A DELETE waits up to 10 s for a running task to stop; this one stops at once.
    let took = delete_ok(&server, second);
    assert!(took < Duration::from_secs(5), "DELETE took {took:?}");
    assert_gone(&server, second);
    wait_log(&server, &format!("task {second} finished CANCELED"));
    assert_eq!(task(&server, first)["Status"], "In progress");

    // The first import is cancelled too; the dataset's lock is free for the next one.
    delete_ok(&server, first);
    let third = id_of(&post_file(&server, query, SMALL_CSV).data(202));
    let done = wait_finished(&server, third);
    assert_eq!(done["Status"], "SUCCESS", "{done}");
    assert_eq!(export_rows(&server, "locked"), Some(2));
}

#[test]
fn a_stopping_service_does_not_wait_for_an_import_waiting_for_its_dataset() {
    let dir = tempfile::tempdir().expect("temp dir");
    let args = ["--workers", "2", "--grace-secs", "60"];
    let mut server = Server::start_in(dir.path(), &args);
    let release = dir.path().join("release-first");
    let query = format!(
        "table=stopping&filename=first.csv&release={}",
        release.display()
    );
    let first = hold_import_under_way(&server, &big_csv(10_000), &query);
    let query = "kind=csv.import&table=stopping&filename=second.csv";
    let second = id_of(&post_file(&server, query, SMALL_CSV).data(202));
    wait_waiting_for(&server, second, "stopping");

    server.signal("TERM");
    // The waiting import ends while the first is still held: it did not wait for it.
    wait_log(&server, &format!("task {second} finished ERROR"));
    assert!(!release.exists());
    std::fs::write(&release, b"").expect("release the first import");
    let status = server.wait_exit(DEADLINE, "SIGTERM");
    assert!(status.success(), "{status:?}");

    let server = Server::start_in(dir.path(), &args);
    let done = task(&server, first);
    assert_eq!(done["Status"], "SUCCESS", "{done}");
    assert_eq!(done["SucceededRecords"], 10_000);
    let waited = task(&server, second);
    assert_interrupted(&waited);
    assert_eq!(waited["SucceededRecords"], 0, "{waited}");
    assert_eq!(export_rows(&server, "stopping"), Some(10_000));
}

/// Drops the table holding dataset `name`'s rows, behind the server's back.
fn drop_dataset_table(db: &Path, name: &str) {
    let conn = rusqlite::Connection::open(db).expect("open the database");
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    let id: i64 = conn
        .query_row("SELECT id FROM datasets WHERE name = ?1", [name], |r| {
            r.get(0)
        })
        .expect("the dataset");
    conn.execute_batch(&format!("DROP TABLE ds_{id}"))
        .expect("drop the dataset's table");
}

#[test]
fn a_task_failed_by_the_database_says_so_without_the_database_s_words() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start_in(dir.path(), &["--workers", "1"]);
    let release = dir.path().join("release");
    let query = format!("table=dropped&filename=d.csv&release={}", release.display());
    let import = hold_import_under_way(&server, &big_csv(10_000), &query);
    // Its next batch meets SQLite's own error ("no such table: ds_1").
    drop_dataset_table(&server.db_path(), "dropped");
    std::fs::write(&release, b"").expect("release the import");
    let done = wait_finished(&server, import);
    assert_eq!(done["Status"], "ERROR", "{done}");
    assert_eq!(
        done["Message"],
        "The task stopped on an internal error of the database; the server log has the \
         details. Submit it again, and report it if it recurs."
    );
    let log = get(&server.url(&format!("/webservicetasks/{import}/LogFile"))).text();
    for text in [done["Message"].as_str().unwrap(), log.as_str()] {
        for internal in ["no such table", "ds_", "SQLITE", "sqlite"] {
            assert!(!text.contains(internal), "{internal:?} in {text:?}");
        }
    }
    // The details are in the server's log.
    wait_log(&server, "no such table");
    let id = submit(&server, "sleep", json!({"seconds": 0}));
    assert_eq!(wait_finished(&server, id)["Status"], "SUCCESS");
}

fn import(server: &Server, query: &str, csv: &[u8]) -> Value {
    let id = id_of(&post_file(server, &format!("kind=csv.import&{query}"), csv).data(202));
    wait_finished(server, id)
}

fn file(server: &Server, task: &Value, which: &str) -> Vec<u8> {
    let answer = get(&server.url(&format!("/webservicetasks/{}/{which}", id_of(task))));
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.body
}

fn export(server: &Server, params: Value) -> Vec<u8> {
    let id = submit(server, "csv.export", params);
    let done = wait_finished(server, id);
    assert_eq!(done["Status"], "SUCCESS", "{done}");
    file(server, &done, "IoFile")
}

#[test]
fn err_rows_are_defused_and_corrected_they_import_back_as_written() {
    let server = Server::start();
    let csv = b"code,name\nA,plain\n=B,=1+1\n-C,+1,extra\n@D\n";
    let done = import(&server, "table=fx&key=code", csv);
    assert_eq!(done["FailedRecords"], 2, "{done}");
    let err = file(&server, &done, "ErrorFile");
    assert_eq!(
        String::from_utf8_lossy(&err),
        "code,name,error\r\n\
         '-C,'+1,extra,\"expected 2 fields, found 3\"\r\n\
         '@D,\"expected 2 fields, found 1\"\r\n"
    );

    // The rows corrected in the ERR file (the extra field and the reasons cut) import as
    // the cells they were, not with the `'` in front.
    let corrected = b"code,name\r\n'-C,'+1\r\n'@D,x\r\n";
    let again = import(&server, "table=fx&key=code", corrected);
    assert_eq!(again["Status"], "SUCCESS", "{again}");
    let raw = export(&server, json!({"table": "fx", "raw": true}));
    assert_eq!(
        String::from_utf8_lossy(&raw),
        "code,name\r\nA,plain\r\n=B,=1+1\r\n-C,+1\r\n@D,x\r\n"
    );

    // An export, defused, imports back into its dataset: every row a duplicate.
    let defused = export(&server, json!({"table": "fx"}));
    assert_eq!(
        String::from_utf8_lossy(&defused),
        "code,name\r\nA,plain\r\n'=B,'=1+1\r\n'-C,'+1\r\n'@D,x\r\n"
    );
    let back = import(&server, "table=fx&key=code", &defused);
    assert_eq!(back["Status"], "SUCCESS", "{back}");
    assert_eq!(back["DuplicateRecords"], 4, "{back}");

    // A cell that only looks defused is written so that it comes back as it was.
    let lookalike = import(&server, "table=fy&key=k", b"k\n''=x\n");
    assert_eq!(lookalike["SucceededRecords"], 1, "{lookalike}");
    let raw = export(&server, json!({"table": "fy", "raw": true}));
    assert_eq!(raw, b"k\r\n'=x\r\n");
    let defused = export(&server, json!({"table": "fy"}));
    assert_eq!(defused, b"k\r\n''=x\r\n");
    let back = import(&server, "table=fy&key=k", &defused);
    assert_eq!(back["DuplicateRecords"], 1, "{back}");
}
