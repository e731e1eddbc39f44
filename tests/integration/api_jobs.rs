//! The bulk API against the real binary: a JSON array of records posted as one job of
//! `dataset.update`, polled by its UUID at both paths until it completes, with its counts,
//! its message naming each failed record by its key, `Retry-After` while it runs, and the
//! same task in the Web Service Tasks API; bodies that are not arrays of records refused
//! with nothing kept.

use serde_json::{json, Value};

use crate::common::*;

fn bulk(server: &Server, query: &str, body: &[u8]) -> Answer {
    send(
        "POST",
        &server.url(&format!("/engine/api/bulk/dataset.update?{query}")),
        &[("Content-Type", "application/json")],
        Some(body),
    )
}

/// Imports `csv` into dataset `table` keyed by `code`, and waits for the import's end.
fn import(server: &Server, table: &str, csv: &str) {
    let answer = post_file(
        server,
        &format!("kind=csv.import&table={table}&key=code&filename={table}.csv"),
        csv.as_bytes(),
    );
    let id = answer.data(202)["WebServiceTaskId"].as_i64().unwrap();
    let done = wait_finished(server, id);
    assert_eq!(done["Status"], "SUCCESS", "{done}");
}

/// Polls the job until it is completed or failed; every answer before says Retry-After.
fn wait_job(server: &Server, uuid: &str) -> Value {
    wait_until("the job to end", || {
        let answer = get(&server.url(&format!("/engine/api/api-jobs/{uuid}")));
        assert_eq!(answer.status, 200, "{}", answer.text());
        let job = answer.json();
        match job["status"].as_str() {
            Some("completed" | "failed") => {
                assert_eq!(answer.header("Retry-After"), None, "{job}");
                Some(job)
            }
            Some("pending" | "processing") => {
                let advice: u32 = answer
                    .header("Retry-After")
                    .expect("Retry-After")
                    .parse()
                    .unwrap();
                assert!((1..=2).contains(&advice), "{advice}");
                None
            }
            other => panic!("status {other:?}: {job}"),
        }
    })
}

fn is_plain_time(v: &Value) -> bool {
    let t = v.as_str().unwrap_or("");
    t.len() == 19 && t.as_bytes()[10] == b' ' && t.as_bytes()[4] == b'-'
}

fn is_rfc3339_micros(v: &Value) -> bool {
    let t = v.as_str().unwrap_or("");
    t.len() == 27 && t.as_bytes()[10] == b'T' && t.ends_with('Z') && t.as_bytes()[19] == b'.'
}

#[test]
fn a_bulk_update_is_a_job_polled_by_its_uuid_until_completed_with_its_failures_named() {
    let server = Server::start();
    // 9,990 rows; 10,000 records: 5,000 change a rate, 4,990 repeat the rows as they are,
    // 10 name codes that are not there.
    let mut csv = String::from("code,name,rate\n");
    for code in 1..=9990 {
        csv.push_str(&format!("{code},n{code},0.1\n"));
    }
    import(&server, "rates", &csv);
    let records: Vec<Value> = (1..=10_000)
        .map(|code| {
            let rate = if code <= 5000 { "0.2" } else { "0.1" };
            json!({"code": code.to_string(), "rate": rate})
        })
        .collect();
    let body = serde_json::to_vec(&records).unwrap();
    let answer = bulk(&server, "table=rates&key=code", &body);
    assert_eq!(answer.status, 202, "{}", answer.text());
    let accepted = answer.json();
    assert_eq!(accepted["status"], "pending", "{accepted}");
    let uuid = accepted["id"].as_str().unwrap().to_string();
    assert_eq!(
        answer.header("Location"),
        Some(format!("/engine/api/api-jobs/{uuid}").as_str())
    );
    assert_eq!(accepted["type"], "dataset.update");
    assert_eq!(accepted["company_id"], "default");
    assert!(is_rfc3339_micros(&accepted["created_at"]), "{accepted}");
    assert_eq!(accepted["start_time"], Value::Null);
    assert_eq!(accepted["end_time"], Value::Null);

    let job = wait_job(&server, &uuid);
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(job["total_records"], 10_000, "{job}");
    assert_eq!(job["effected_records"], 5000, "{job}");
    assert!(
        is_plain_time(&job["start_time"]) && is_plain_time(&job["end_time"]),
        "{job}"
    );
    assert!(is_rfc3339_micros(&job["updated_at"]), "{job}");
    let message = job["message"].as_str().unwrap();
    for code in 9991..=10_000 {
        assert!(
            message.contains(&format!("code: {code} failed: no such record")),
            "{message}"
        );
    }
    assert_eq!(
        message.lines().filter(|l| l.contains("failed")).count(),
        10,
        "{message}"
    );
    // The same job at the short path, and the same task in Web Service Tasks.
    let again = get(&server.url(&format!("/api-jobs/{uuid}")));
    assert_eq!(again.json(), job);
    let (tasks, _) = list_all(&server);
    let task = tasks
        .iter()
        .find(|t| t["Uuid"] == uuid.as_str())
        .expect("the job's task");
    assert_eq!(task["Kind"], "dataset.update");
    assert_eq!(task["IoFileName"], "records.json");
    assert_eq!(task["FailedRecords"], 10);
    let id = task["WebServiceTaskId"].as_i64().unwrap();
    let records_back = get(&server.url(&format!("/webservicetasks/{id}/IoFile")));
    assert_eq!(
        records_back.body, body,
        "the IO file is the records as sent"
    );
    let err = get(&server.url(&format!("/webservicetasks/{id}/ErrorFile"))).text();
    assert!(err.contains("9991") && err.contains("10000"), "{err}");
}

#[test]
fn with_upsert_missing_rows_are_created_and_counted_as_effected() {
    let server = Server::start();
    import(&server, "people", "code,name\n1,Ann\n2,Ben\n");
    let body = json!([
        {"code": "1", "name": "Ann"},
        {"code": "2", "name": "Benjamin"},
        {"code": "3", "name": "Cid"}
    ]);
    let answer = bulk(
        &server,
        "table=people&key=code&upsert=true",
        body.to_string().as_bytes(),
    );
    let uuid = answer.json()["id"].as_str().unwrap().to_string();
    let job = wait_job(&server, &uuid);
    assert_eq!(
        (
            job["status"].as_str(),
            job["total_records"].as_u64(),
            job["effected_records"].as_u64()
        ),
        (Some("completed"), Some(3), Some(2)),
        "{job}"
    );
    assert_eq!(job["message"], "", "{job}");
}

#[test]
fn a_body_that_is_not_an_array_of_records_is_400_and_nothing_is_kept() {
    let server = Server::start();
    import(&server, "t", "code,name\n1,a\n");
    for body in [
        &b""[..],
        b"{\"code\": \"1\"}",
        b"[1, 2]",
        b"[{\"code\": \"1\"},",
        b"[{\"code\": \"1\"}] [",
        b"not json",
    ] {
        let answer = bulk(&server, "table=t&key=code", body);
        assert_eq!(
            answer.status,
            400,
            "{:?}: {}",
            String::from_utf8_lossy(body),
            answer.text()
        );
        let error = answer.json()["error"].as_str().unwrap().to_string();
        assert!(error.contains("JSON array of records"), "{error}");
    }
    // Only the import's task exists.
    let (tasks, total) = list_all(&server);
    assert_eq!(total, 1, "{tasks:?}");
}

#[test]
fn a_type_that_takes_no_records_or_another_content_type_is_400() {
    let server = Server::start();
    let answer = send(
        "POST",
        &server.url("/engine/api/bulk/sleep?seconds=1"),
        &[("Content-Type", "application/json")],
        Some(b"[]"),
    );
    assert_eq!(answer.status, 400);
    assert!(
        answer.json()["error"]
            .as_str()
            .unwrap()
            .contains("dataset.update"),
        "{}",
        answer.text()
    );
    let answer = send(
        "POST",
        &server.url("/engine/api/bulk/dataset.update?table=t&key=code"),
        &[("Content-Type", "text/plain")],
        Some(b"[]"),
    );
    assert_eq!(answer.status, 400, "{}", answer.text());
    // A param the kind does not take.
    let answer = bulk(&server, "table=t&key=code&colour=red", b"[]");
    assert_eq!(answer.status, 400);
    assert!(
        answer.json()["error"].as_str().unwrap().contains("colour"),
        "{}",
        answer.text()
    );
}

#[test]
fn an_unknown_job_is_404_in_the_family_s_form() {
    let server = Server::start();
    for id in ["00000000-0000-4000-8000-000000000001", "not-a-uuid", "1"] {
        for path in [
            format!("/engine/api/api-jobs/{id}"),
            format!("/api-jobs/{id}"),
        ] {
            let answer = get(&server.url(&path));
            assert_eq!(answer.status, 404, "{path}");
            assert!(
                answer.json()["error"]
                    .as_str()
                    .unwrap()
                    .contains("does not exist"),
                "{}",
                answer.text()
            );
        }
    }
}
