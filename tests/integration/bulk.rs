//! POST /webservicetasks/bulk: many tasks in one request, all or none. Every task stored in
//! order and run; one bad task refusing the whole array, named by its index; the bounds
//! (count, bytes, type); the quota taking the whole array or none of it; a retry with the
//! same Idempotency-Key creating nothing; the path's other methods.

use serde_json::{json, Value};

use crate::common::*;

fn post_bulk(server: &Server, body: &Value) -> Answer {
    post_json(&server.url("/webservicetasks/bulk"), body)
}

fn post_bulk_keyed(server: &Server, body: &Value, key: &str) -> Answer {
    send(
        "POST",
        &server.url("/webservicetasks/bulk"),
        &[
            ("Content-Type", "application/json"),
            ("Idempotency-Key", key),
        ],
        Some(body.to_string().as_bytes()),
    )
}

fn ids(data: &Value) -> Vec<i64> {
    data.as_array()
        .expect("an array of tasks")
        .iter()
        .map(|t| t["WebServiceTaskId"].as_i64().expect("id"))
        .collect()
}

fn sleeps(n: usize) -> Value {
    Value::Array(
        (0..n)
            .map(|_| json!({"kind": "sleep", "params": {"seconds": 0}}))
            .collect(),
    )
}

#[test]
fn a_bulk_submission_stores_every_task_in_order_and_each_runs() {
    let server = Server::start();
    let body = json!([
        {"kind": "sleep", "params": {"seconds": "0"}},
        {"kind": "sleep", "params": {"seconds": 0.01}},
        {"kind": "sleep"},
    ]);
    let data = post_bulk(&server, &body).data(202);
    let tasks = data.as_array().unwrap();
    assert_eq!(tasks.len(), 3);
    for task in tasks {
        assert_eq!(task["Status"], "Pending", "{task}");
        assert_eq!(task["Kind"], "sleep");
        assert_eq!(task["IoFileName"], "");
    }
    assert_eq!(tasks[1]["Params"], json!({"seconds": "0.01"}));
    let ids = ids(&data);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    for id in &ids {
        assert_eq!(wait_finished(&server, *id)["Status"], "SUCCESS");
    }
    let (listed, total) = list_all(&server);
    assert_eq!(total, 3);
    assert_eq!(listed.len(), 3);
    // The prefix and any case reach the same route.
    let data = post_json(&server.url("/IVRAPI/WebServiceTasks/Bulk"), &sleeps(1)).data(202);
    assert_eq!(data.as_array().unwrap().len(), 1);
}

#[test]
fn one_bad_task_refuses_the_whole_array_naming_its_index() {
    let server = Server::start();
    let cases = [
        (
            json!([{"kind": "sleep"}, {"kind": "sleeep"}, {"kind": "sleep"}]),
            "The task at index 1: The kind \"sleeep\" is unknown",
        ),
        (
            json!([{"kind": "sleep", "params": {"colour": "red"}}]),
            "The task at index 0: The param colour is unknown for kind sleep",
        ),
        (
            json!([{"kind": "sleep"}, {"kind": "sleep", "params": {"seconds": "-1"}}]),
            "The task at index 1:",
        ),
        (
            json!([{"kind": "sleep"}, "sleep"]),
            "The task at index 1: it must be an object with kind and params.",
        ),
        (
            json!([{"kind": "sleep", "file": "x"}]),
            "The task at index 0: The JSON object has an unknown field \"file\"",
        ),
        (
            json!([{"kind": "sleep", "params": {"seconds": [1]}}]),
            "The task at index 0: The param seconds must be a string, a number or a boolean.",
        ),
        (
            json!([{"kind": "csv.import", "params": {"table": "t", "key": "k"}}]),
            "The task at index 0:",
        ),
        (
            json!([{"kind": "sleeep"}, {"kind": 5}]),
            "The task at index 0: The kind \"sleeep\" is unknown",
        ),
        (
            json!({"kind": "sleep"}),
            "The JSON body must be an array of tasks",
        ),
    ];
    for (body, expected) in cases {
        let message = post_bulk(&server, &body).error(400);
        assert!(message.starts_with(expected), "{body}: {message}");
    }
    let malformed = send(
        "POST",
        &server.url("/webservicetasks/bulk"),
        &[("Content-Type", "application/json")],
        Some(b"[{\"kind\": \"sleep\"},"),
    );
    assert!(malformed.error(400).contains("malformed"));
    assert_eq!(list_all(&server).1, 0, "a refused array stored a task");
}

#[test]
fn the_array_is_bounded_in_count_bytes_and_type() {
    let server = Server::start_with(&["--max-bulk-tasks", "2", "--max-json", "1024"]);
    let message = post_bulk(&server, &sleeps(3)).error(400);
    assert!(message.contains("--max-bulk-tasks"), "{message}");
    assert!(message.contains("1 to 2 tasks"), "{message}");
    let message = post_bulk(&server, &json!([])).error(400);
    assert!(message.contains("not 0"), "{message}");
    let long = json!([{"kind": "sleep", "params": {"seconds": "0".repeat(2000)}}]);
    let message = post_bulk(&server, &long).error(413);
    assert!(message.contains("--max-json"), "{message}");
    // Only JSON: a web form's type (which another site's page may send) is refused.
    for content_type in ["text/plain", "application/x-www-form-urlencoded"] {
        let answer = send(
            "POST",
            &server.url("/webservicetasks/bulk"),
            &[("Content-Type", content_type)],
            Some(sleeps(1).to_string().as_bytes()),
        );
        assert!(answer.error(415).contains("application/json"));
    }
    let answer = send("POST", &server.url("/webservicetasks/bulk"), &[], None);
    assert!(answer.error(415).contains("JSON array"));
    assert_eq!(list_all(&server).1, 0);
    let data = post_bulk(&server, &sleeps(2)).data(202);
    assert_eq!(ids(&data).len(), 2);
}

#[test]
fn the_quota_of_unfinished_tasks_takes_the_whole_array_or_none_of_it() {
    let server = Server::start_with(&["--workers", "1", "--max-unfinished-tasks", "3"]);
    let release = server.dir.join("release-bulk");
    let held = submit(&server, "debug.hold", json!({"release": release}));
    wait_running(&server, held);
    let message = post_bulk(&server, &sleeps(3)).error(429);
    assert!(message.contains("--max-unfinished-tasks"), "{message}");
    assert_eq!(list_all(&server).1, 1, "part of a refused array was stored");
    let data = post_bulk(&server, &sleeps(2)).data(202);
    std::fs::write(&release, b"").expect("release the held task");
    for id in ids(&data).into_iter().chain([held]) {
        assert_eq!(wait_finished(&server, id)["Status"], "SUCCESS");
    }
}

#[test]
fn a_retried_bulk_submission_with_its_idempotency_key_creates_nothing() {
    let server = Server::start();
    let first = ids(&post_bulk_keyed(&server, &sleeps(3), "batch-1").data(202));
    let again = ids(&post_bulk_keyed(&server, &sleeps(3), "batch-1").data(200));
    assert_eq!(first, again);
    assert_eq!(list_all(&server).1, 3);
    // Another task at an index already used is a conflict, and nothing more is stored.
    let mut changed = sleeps(3);
    changed[1]["params"]["seconds"] = json!(1);
    let message = post_bulk_keyed(&server, &changed, "batch-1").error(409);
    assert!(!message.is_empty());
    assert_eq!(list_all(&server).1, 3);
    // A single submission's key never matches one of a bulk's, even one spelled as the
    // bulk's key and an index might be.
    let single = send(
        "POST",
        &server.url("/webservicetasks"),
        &[
            ("Content-Type", "application/json"),
            ("Idempotency-Key", "batch-1#0"),
        ],
        Some(
            json!({"kind": "sleep", "params": {"seconds": 0}})
                .to_string()
                .as_bytes(),
        ),
    );
    let single = single.data(202)["WebServiceTaskId"].as_i64().unwrap();
    assert!(!first.contains(&single));
    // A new key is a new array.
    let other = ids(&post_bulk_keyed(&server, &sleeps(3), "batch-2").data(202));
    assert!(other.iter().all(|id| !first.contains(id)));
}

#[test]
fn the_bulk_path_answers_other_methods_with_405_and_is_no_task_id() {
    let server = Server::start();
    for method in ["GET", "DELETE", "PUT"] {
        let answer = send(method, &server.url("/webservicetasks/bulk"), &[], None);
        assert_eq!(answer.status, 405, "{method}");
        assert_eq!(answer.header("Allow"), Some("POST"), "{method}");
    }
    // A task's own paths are as they were.
    let id = submit(&server, "sleep", json!({"seconds": 0}));
    wait_finished(&server, id);
    get(&server.url(&format!("/webservicetasks/{id}"))).data(200);
    let message = get(&server.url("/webservicetasks/bulky")).error(400);
    assert!(message.contains("task id"), "{message}");
}
