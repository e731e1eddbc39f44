//! Every endpoint of the Web Service Tasks contract over HTTP: creating tasks in the three
//! forms, reading, listing and filtering them, downloading their files, deleting them, the
//! path rules, Idempotency-Key, and the names of the LOG and ERR files.

use crate::common::*;
use serde_json::{json, Value};

/// The task object's fields, in the contract's order: the ten original ones, then ours.
/// The contract's fields in its order, then `Uuid` (every task's, by which the bulk API's
/// jobs know it; after the contract's fields so that none of them moves).
const FIELDS: [&str; 19] = [
    "WebServiceTaskId",
    "UserId",
    "UserName",
    "DateTime",
    "IoFileName",
    "LogFileName",
    "ErrFileName",
    "PercentComplete",
    "Status",
    "Message",
    "Kind",
    "Params",
    "StartTime",
    "EndTime",
    "TotalRecords",
    "SucceededRecords",
    "DuplicateRecords",
    "FailedRecords",
    "Uuid",
];

const BOUNDARY: &str = "----taskboxTestBoundary7MA4YWxkTrZu0gW";

/// A multipart/form-data body: the fields, then (if given) a part named `file`.
fn multipart_body(fields: &[(&str, &str)], file: Option<(&str, &[u8])>) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        body.extend_from_slice(
            format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(value.as_bytes());
        body.extend_from_slice(b"\r\n");
    }
    if let Some((filename, bytes)) = file {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        body.extend_from_slice(
            format!("Content-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n")
                .as_bytes(),
        );
        body.extend_from_slice(b"Content-Type: application/octet-stream\r\n\r\n");
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

fn post_multipart(server: &Server, body: &[u8]) -> Answer {
    let content_type = format!("multipart/form-data; boundary={BOUNDARY}");
    send(
        "POST",
        &server.url("/webservicetasks"),
        &[("Content-Type", content_type.as_str())],
        Some(body),
    )
}

fn id_of(task: &Value) -> i64 {
    task["WebServiceTaskId"]
        .as_i64()
        .unwrap_or_else(|| panic!("no id in {task}"))
}

/// `YYYY-MM-DDTHH:MM:SS`.
fn is_timestamp(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 19
        && b.iter().enumerate().all(|(i, &c)| match i {
            4 | 7 => c == b'-',
            10 => c == b'T',
            13 | 16 => c == b':',
            _ => c.is_ascii_digit(),
        })
}

/// Checks that the task object `data` (inside the answer's raw `body`) has exactly the
/// contract's fields, in the contract's order.
fn assert_field_order(answer: &Answer) {
    let data = answer.json()["data"].clone();
    let keys: Vec<&str> = data
        .as_object()
        .expect("task object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, FIELDS, "fields of {data}");
    // And in the bytes on the wire, independently of how the JSON is parsed here.
    let text = answer.text();
    let mut last = 0;
    for field in FIELDS {
        let at = text
            .find(&format!("\"{field}\":"))
            .unwrap_or_else(|| panic!("{field} missing in {text}"));
        assert!(at > last, "{field} out of order in {text}");
        last = at;
    }
}

fn ids(list: &Value) -> Vec<i64> {
    list.as_array().expect("array").iter().map(id_of).collect()
}

fn list(server: &Server, query: &str) -> (Vec<i64>, u64) {
    let answer = get(&server.url(&format!("/webservicetasks{query}")));
    let data = answer.data(200);
    let total = answer
        .header("X-Total-Count")
        .expect("X-Total-Count")
        .parse()
        .expect("X-Total-Count is a number");
    (ids(&data), total)
}

#[test]
fn a_raw_post_answers_202_with_location_and_a_pending_task_in_the_contract_order() {
    let server = Server::start();
    let answer = send(
        "POST",
        &server.url("/webservicetasks?kind=sleep&filename=Data%20File.csv&seconds=+0%20"),
        &[("Content-Type", "text/csv")],
        Some(b"a,b\r\n1,2\r\n"),
    );
    let data = answer.data(202);
    let id = id_of(&data);
    assert!(id > 0);
    assert_eq!(
        answer.header("Location"),
        Some(format!("/webservicetasks/{id}").as_str())
    );
    assert_field_order(&answer);
    assert_eq!(data["Status"], "Pending", "{data}");
    assert_eq!(data["UserId"], 0);
    assert_eq!(data["UserName"], "");
    assert!(is_timestamp(data["DateTime"].as_str().unwrap()), "{data}");
    assert_eq!(data["IoFileName"], "Data File.csv");
    assert_eq!(data["LogFileName"], "");
    assert_eq!(data["ErrFileName"], "");
    assert_eq!(data["PercentComplete"], 0);
    assert_eq!(data["Message"], "");
    assert_eq!(data["Kind"], "sleep");
    // kind and filename are not params; `+` and `%20` are both a space (and sleep takes
    // its seconds with spaces around).
    assert_eq!(data["Params"], json!({"seconds": " 0 "}));
    assert_eq!(data["StartTime"], Value::Null);
    assert_eq!(data["EndTime"], Value::Null);
    for counter in [
        "TotalRecords",
        "SucceededRecords",
        "DuplicateRecords",
        "FailedRecords",
    ] {
        assert_eq!(data[counter], 0, "{counter}");
    }

    let done = wait_finished(&server, id);
    assert_eq!(done["Status"], "SUCCESS", "{done}");
    assert_eq!(done["PercentComplete"], 100);
    assert!(is_timestamp(done["StartTime"].as_str().unwrap()), "{done}");
    assert!(is_timestamp(done["EndTime"].as_str().unwrap()), "{done}");
    assert!(done["StartTime"].as_str() <= done["EndTime"].as_str());
    assert_eq!(done["IoFileName"], "Data File.csv");
    assert_eq!(done["LogFileName"], "Data File-log.txt");
    assert_eq!(done["ErrFileName"], "");
    // A finished task keeps the same fields in the same order.
    assert_field_order(&get(&server.url(&format!("/webservicetasks/{id}"))));
}

#[test]
fn a_raw_post_takes_its_file_name_from_content_disposition_else_upload() {
    let server = Server::start();
    let from_header = send(
        "POST",
        &server.url("/webservicetasks?kind=sleep"),
        &[
            ("Content-Type", "application/octet-stream"),
            (
                "Content-Disposition",
                "attachment; filename=\"from header.csv\"",
            ),
        ],
        Some(b"x"),
    )
    .data(202);
    assert_eq!(from_header["IoFileName"], "from header.csv");

    // The query's filename wins over the header's.
    let both = send(
        "POST",
        &server.url("/webservicetasks?kind=sleep&filename=query.csv"),
        &[
            ("Content-Type", "application/octet-stream"),
            ("Content-Disposition", "attachment; filename=\"header.csv\""),
        ],
        Some(b"x"),
    )
    .data(202);
    assert_eq!(both["IoFileName"], "query.csv");

    let extended = send(
        "POST",
        &server.url("/webservicetasks?kind=sleep"),
        &[
            ("Content-Type", "application/octet-stream"),
            (
                "Content-Disposition",
                "attachment; filename=\"x.csv\"; filename*=UTF-8''%C3%A9t%C3%A9.csv",
            ),
        ],
        Some(b"x"),
    )
    .data(202);
    assert_eq!(extended["IoFileName"], "été.csv");

    // No Content-Type at all is a raw body too (saying so, as a page's fetch of a blob
    // has no type either: see origins.rs).
    let untyped = send(
        "POST",
        &server.url("/webservicetasks?kind=sleep&filename=plain.txt"),
        &[("X-Taskbox-Upload", "file")],
        Some(b"raw"),
    )
    .data(202);
    assert_eq!(untyped["IoFileName"], "plain.txt");
    wait_finished(&server, id_of(&untyped));
    let io = get(&server.url(&format!("/webservicetasks/{}/IoFile", id_of(&untyped))));
    assert_eq!(io.body, b"raw");

    let unnamed = post_file(&server, "kind=sleep", b"some bytes").data(202);
    assert_eq!(unnamed["IoFileName"], "upload");
    let done = wait_finished(&server, id_of(&unnamed));
    assert_eq!(done["LogFileName"], "upload-log.txt");
    let io = get(&server.url(&format!("/webservicetasks/{}/IoFile", id_of(&unnamed))));
    assert_eq!(io.status, 200);
    assert_eq!(io.body, b"some bytes");
    assert_eq!(
        io.header("Content-Disposition"),
        Some("attachment; filename=\"upload\"")
    );
}

#[test]
fn a_raw_post_with_an_empty_body_is_a_task_without_io_file() {
    let server = Server::start();
    let data = post_file(&server, "kind=sleep&filename=ignored.csv", b"").data(202);
    assert_eq!(data["IoFileName"], "", "{data}");
    let id = id_of(&data);
    let done = wait_finished(&server, id);
    assert_eq!(done["Status"], "SUCCESS");
    assert_eq!(done["IoFileName"], "");
    let io = get(&server.url(&format!("/webservicetasks/{id}/IoFile")));
    assert_eq!(io.error(404), "File is empty or does not exist.");
}

#[test]
fn a_json_post_keeps_string_number_and_boolean_params_as_text() {
    let server = Server::start();
    let answer = post_json(
        &server.url("/webservicetasks"),
        &json!({"kind": "csv.export", "params": {"table": "x_y", "columns": "x y", "raw": true}}),
    );
    let data = answer.data(202);
    let id = id_of(&data);
    assert_eq!(
        answer.header("Location"),
        Some(format!("/webservicetasks/{id}").as_str())
    );
    assert_field_order(&answer);
    assert_eq!(data["Status"], "Pending");
    assert_eq!(data["Kind"], "csv.export");
    assert_eq!(
        data["Params"],
        json!({"columns": "x y", "raw": "true", "table": "x_y"})
    );
    assert_eq!(data["IoFileName"], "");
    // Every param is one its kind declares: numbers and false are kept as text too.
    let url = server.url("/webservicetasks");
    let off = json!({"kind": "csv.export", "params": {"table": "x_y", "raw": false}});
    assert_eq!(
        post_json(&url, &off).data(202)["Params"],
        json!({"raw": "false", "table": "x_y"})
    );
    let sleeps: Vec<i64> = [(json!(0), "0"), (json!(0.5), "0.5")]
        .into_iter()
        .map(|(seconds, text)| {
            let data = post_json(
                &url,
                &json!({"kind": "sleep", "params": {"seconds": seconds}}),
            )
            .data(202);
            assert_eq!(data["Params"], json!({ "seconds": text }));
            id_of(&data)
        })
        .collect();

    // params may be left out.
    let bare = post_json(&server.url("/webservicetasks"), &json!({"kind": "sleep"})).data(202);
    assert_eq!(bare["Params"], json!({}));
    for id in sleeps {
        assert_eq!(wait_finished(&server, id)["Status"], "SUCCESS");
    }
    wait_finished(&server, id);
    assert_eq!(wait_finished(&server, id_of(&bare))["Status"], "SUCCESS");
}

#[test]
fn a_multipart_post_takes_the_file_part_and_the_fields() {
    let server = Server::start();
    let csv = b"code,name\r\n1,one\r\n2,two\r\n";
    let body = multipart_body(
        &[
            ("kind", "csv.import"),
            ("table", "api_multipart"),
            ("key", "code"),
        ],
        Some(("rates.csv", csv)),
    );
    let answer = post_multipart(&server, &body);
    let data = answer.data(202);
    let id = id_of(&data);
    assert_eq!(
        answer.header("Location"),
        Some(format!("/webservicetasks/{id}").as_str())
    );
    assert_field_order(&answer);
    assert_eq!(data["Status"], "Pending");
    assert_eq!(data["Kind"], "csv.import");
    assert_eq!(data["IoFileName"], "rates.csv");
    assert_eq!(
        data["Params"],
        json!({"key": "code", "table": "api_multipart"})
    );

    let done = wait_finished(&server, id);
    assert_eq!(done["Status"], "SUCCESS", "{done}");
    assert_eq!(done["TotalRecords"], 2);
    assert_eq!(done["SucceededRecords"], 2);
    let io = get(&server.url(&format!("/webservicetasks/{id}/IoFile")));
    assert_eq!(io.status, 200);
    assert_eq!(io.body, csv);

    // A browser sends a non-ASCII file name as raw UTF-8.
    let utf8 = post_multipart(
        &server,
        &multipart_body(&[("kind", "sleep")], Some(("Prix été.csv", b"p"))),
    )
    .data(202);
    assert_eq!(utf8["IoFileName"], "Prix été.csv");
    assert_eq!(
        wait_finished(&server, id_of(&utf8))["LogFileName"],
        "Prix été-log.txt"
    );

    // A form without a file part is a task without IO file.
    let no_file = post_multipart(
        &server,
        &multipart_body(&[("kind", "sleep"), ("seconds", "0")], None),
    )
    .data(202);
    assert_eq!(no_file["IoFileName"], "");
    assert_eq!(no_file["Params"], json!({"seconds": "0"}));
    assert_eq!(wait_finished(&server, id_of(&no_file))["Status"], "SUCCESS");
}

#[test]
fn get_one_task_returns_it_and_unknown_ids_are_404() {
    let server = Server::start();
    let id = submit(&server, "sleep", json!({"seconds": 0}));
    let done = wait_finished(&server, id);
    let answer = get(&server.url(&format!("/webservicetasks/{id}")));
    let data = answer.data(200);
    assert!(answer
        .header("Content-Type")
        .unwrap_or_default()
        .starts_with("application/json"));
    assert_eq!(data["WebServiceTaskId"], id);
    assert_eq!(data, done);
    let missing = get(&server.url(&format!("/webservicetasks/{}", id + 1000)));
    assert!(!missing.error(404).is_empty());
}

#[test]
fn the_list_is_newest_first_and_counts_in_x_total_count() {
    let server = Server::start();
    let (empty, total) = list(&server, "");
    assert!(empty.is_empty());
    assert_eq!(total, 0);

    let a = submit(&server, "sleep", json!({"seconds": 0}));
    let b = submit(&server, "sleep", json!({"seconds": 0}));
    let c = submit(&server, "sleep", json!({"seconds": 0}));
    for id in [a, b, c] {
        wait_finished(&server, id);
    }
    assert!(a < b && b < c);
    let answer = get(&server.url("/webservicetasks"));
    let data = answer.data(200);
    assert_eq!(ids(&data), vec![c, b, a]);
    assert_eq!(answer.header("X-Total-Count"), Some("3"));
    for task in data.as_array().unwrap() {
        let keys: Vec<&str> = task
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, FIELDS);
    }

    assert_eq!(list(&server, "?limit=2"), (vec![c, b], 3));
    assert_eq!(list(&server, "?limit=2&offset=2"), (vec![a], 3));
    assert_eq!(list(&server, "?offset=1"), (vec![b, a], 3));
    assert_eq!(list(&server, "?offset=10"), (vec![], 3));
    assert_eq!(list(&server, "?limit=1000&offset=0"), (vec![c, b, a], 3));
}

#[test]
fn the_list_filters_by_status_kind_and_user() {
    let server = Server::start();
    let ok1 = submit(&server, "sleep", json!({"seconds": 0}));
    // A well-formed table name with no dataset: the export ends ERROR.
    let failed = submit(
        &server,
        "csv.export",
        json!({"table": "api_no_such_dataset"}),
    );
    let ok2 = submit(&server, "sleep", json!({"seconds": 0}));
    for id in [ok1, failed, ok2] {
        wait_finished(&server, id);
    }
    assert_eq!(task(&server, failed)["Status"], "ERROR");

    assert_eq!(list(&server, "?status=SUCCESS"), (vec![ok2, ok1], 2));
    assert_eq!(list(&server, "?status=success"), (vec![ok2, ok1], 2));
    assert_eq!(list(&server, "?status=Error"), (vec![failed], 1));
    assert_eq!(list(&server, "?status=pending"), (vec![], 0));
    assert_eq!(list(&server, "?status=in+progress"), (vec![], 0));
    assert_eq!(list(&server, "?status=In%20Progress"), (vec![], 0));
    assert_eq!(list(&server, "?status=canceled"), (vec![], 0));
    assert_eq!(list(&server, "?kind=sleep"), (vec![ok2, ok1], 2));
    assert_eq!(list(&server, "?kind=csv.export"), (vec![failed], 1));
    assert_eq!(list(&server, "?kind=csv.import"), (vec![], 0));
    assert_eq!(list(&server, "?userid=0"), (vec![ok2, failed, ok1], 3));
    assert_eq!(list(&server, "?userid=5"), (vec![], 0));
    assert_eq!(
        list(&server, "?kind=sleep&status=success&limit=1"),
        (vec![ok2], 2)
    );
    assert_eq!(
        list(&server, "?kind=sleep&status=success&limit=1&offset=1"),
        (vec![ok1], 2)
    );
}

#[test]
fn files_download_with_type_length_and_disposition() {
    let server = Server::start();
    let csv = b"id,name,price\n1,a,10\n2,b\n3,c,30\n";
    let data = post_file(
        &server,
        "kind=csv.import&filename=Sample%20Rate%20Plan.csv&table=api_files&key=id",
        csv,
    )
    .data(202);
    let id = id_of(&data);
    let done = wait_finished(&server, id);
    assert_eq!(done["Status"], "ERROR", "{done}");
    assert_eq!(done["IoFileName"], "Sample Rate Plan.csv");
    assert_eq!(done["LogFileName"], "Sample Rate Plan-log.txt");
    assert_eq!(done["ErrFileName"], "Sample Rate Plan-err.txt");

    let io = get(&server.url(&format!("/webservicetasks/{id}/IoFile")));
    assert_eq!(io.status, 200);
    assert_eq!(io.body, csv);
    assert_eq!(io.header("Content-Type"), Some("text/csv; charset=utf-8"));
    assert_eq!(
        io.header("Content-Length"),
        Some(csv.len().to_string().as_str())
    );
    assert_eq!(
        io.header("Content-Disposition"),
        Some("attachment; filename=\"Sample Rate Plan.csv\"")
    );

    let err = get(&server.url(&format!("/webservicetasks/{id}/ErrorFile")));
    assert_eq!(err.status, 200);
    assert_eq!(
        err.header("Content-Type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(
        err.header("Content-Length"),
        Some(err.body.len().to_string().as_str())
    );
    assert_eq!(
        err.header("Content-Disposition"),
        Some("attachment; filename=\"Sample Rate Plan-err.txt\"")
    );
    assert_eq!(
        err.text(),
        "id,name,price,error\r\n2,b,\"expected 3 fields, found 2\"\r\n"
    );

    let log = get(&server.url(&format!("/webservicetasks/{id}/LogFile")));
    assert_eq!(log.status, 200);
    assert_eq!(
        log.header("Content-Type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(
        log.header("Content-Length"),
        Some(log.body.len().to_string().as_str())
    );
    assert_eq!(
        log.header("Content-Disposition"),
        Some("attachment; filename=\"Sample Rate Plan-log.txt\"")
    );
    assert!(
        log.text().contains("Sample Rate Plan.csv"),
        "{}",
        log.text()
    );

    // An extension that is neither .csv nor .txt/.log is octet-stream.
    let blob = post_file(&server, "kind=sleep&filename=data.bin", b"\x00\x01\x02").data(202);
    wait_finished(&server, id_of(&blob));
    let blob_io = get(&server.url(&format!("/webservicetasks/{}/IoFile", id_of(&blob))));
    assert_eq!(blob_io.status, 200);
    assert_eq!(
        blob_io.header("Content-Type"),
        Some("application/octet-stream")
    );
    assert_eq!(blob_io.header("Content-Length"), Some("3"));
    assert_eq!(
        blob_io.header("Content-Disposition"),
        Some("attachment; filename=\"data.bin\"")
    );
    let dot_log = post_file(&server, "kind=sleep&filename=notes.log", b"hello").data(202);
    wait_finished(&server, id_of(&dot_log));
    let dot_log_io = get(&server.url(&format!("/webservicetasks/{}/IoFile", id_of(&dot_log))));
    assert_eq!(
        dot_log_io.header("Content-Type"),
        Some("text/plain; charset=utf-8")
    );
}

#[test]
fn a_non_ascii_file_name_is_sent_with_filename_star() {
    let server = Server::start();
    let data = post_file(
        &server,
        "kind=sleep&filename=Pr%C3%A9f%C3%A9r%C3%A9.csv",
        b"a\r\n",
    )
    .data(202);
    assert_eq!(data["IoFileName"], "Préféré.csv");
    let id = id_of(&data);
    let done = wait_finished(&server, id);
    assert_eq!(done["LogFileName"], "Préféré-log.txt");
    let io = get(&server.url(&format!("/webservicetasks/{id}/IoFile")));
    assert_eq!(io.status, 200);
    assert_eq!(io.body, b"a\r\n");
    let disposition = io
        .header("Content-Disposition")
        .expect("Content-Disposition");
    assert!(
        disposition.starts_with("attachment; filename=\""),
        "{disposition}"
    );
    assert!(
        disposition.contains("filename*=UTF-8''Pr%C3%A9f%C3%A9r%C3%A9.csv"),
        "{disposition}"
    );
    assert!(disposition.is_ascii(), "{disposition}");
    let log = get(&server.url(&format!("/webservicetasks/{id}/LogFile")));
    let disposition = log
        .header("Content-Disposition")
        .expect("Content-Disposition");
    assert!(
        disposition.contains("filename*=UTF-8''Pr%C3%A9f%C3%A9r%C3%A9-log.txt"),
        "{disposition}"
    );
}

#[test]
fn paths_are_case_insensitive_with_the_ivrapi_prefix_and_a_trailing_slash() {
    let server = Server::start();
    let data = post_file(&server, "kind=sleep&filename=p.csv", b"x,y\r\n").data(202);
    let id = id_of(&data);
    wait_finished(&server, id);

    for path in [
        format!("/webservicetasks/{id}"),
        format!("/WebServiceTasks/{id}"),
        format!("/WEBSERVICETASKS/{id}/"),
        format!("/ivrapi/webservicetasks/{id}"),
        format!("/IvrApi/WebServiceTasks/{id}/"),
    ] {
        let got = get(&server.url(&path)).data(200);
        assert_eq!(got["WebServiceTaskId"], id, "{path}");
    }
    for path in [
        format!("/webservicetasks/{id}/IoFile"),
        format!("/WebServiceTasks/{id}/iofile"),
        format!("/webservicetasks/{id}/IOFILE/"),
        format!("/ivrapi/webservicetasks/{id}/IoFile"),
        format!("/IVRAPI/WEBSERVICETASKS/{id}/ioFile/"),
    ] {
        let got = get(&server.url(&path));
        assert_eq!(got.status, 200, "{path}");
        assert_eq!(got.body, b"x,y\r\n", "{path}");
    }
    for path in [
        format!("/webservicetasks/{id}/logfile"),
        format!("/ivrapi/WebServiceTasks/{id}/LOGFILE/"),
    ] {
        assert_eq!(get(&server.url(&path)).status, 200, "{path}");
    }
    for path in [
        "/webservicetasks/",
        "/WebServiceTasks",
        "/ivrapi/webservicetasks",
        "/IvrApi/WebServiceTasks/",
    ] {
        let answer = get(&server.url(path));
        assert_eq!(ids(&answer.data(200)), vec![id], "{path}");
        assert_eq!(answer.header("X-Total-Count"), Some("1"), "{path}");
    }
    // Creating under the prefix, and deleting with another case.
    let created = post_json(
        &server.url("/ivrapi/WebServiceTasks/"),
        &json!({"kind": "sleep"}),
    );
    let other = id_of(&created.data(202));
    wait_finished(&server, other);
    assert_eq!(
        delete(&server.url(&format!("/IVRAPI/webservicetasks/{other}/"))).data(200),
        Value::Null
    );
}

#[test]
fn a_sleep_task_keeps_its_uploaded_file_byte_for_byte() {
    let server = Server::start();
    // Every byte value, CR, LF, NUL and invalid UTF-8 included.
    let mut bytes: Vec<u8> = (0..=255u8).cycle().take(256 * 40 + 17).collect();
    bytes.extend_from_slice(b"\r\n\r\xff\xfe\x00end");
    let data = post_file(&server, "kind=sleep&seconds=0&filename=blob.dat", &bytes).data(202);
    let id = id_of(&data);
    let done = wait_finished(&server, id);
    assert_eq!(done["Status"], "SUCCESS", "{done}");
    assert_eq!(done["IoFileName"], "blob.dat");
    let io = get(&server.url(&format!("/webservicetasks/{id}/IoFile")));
    assert_eq!(io.status, 200);
    assert_eq!(
        io.header("Content-Length"),
        Some(bytes.len().to_string().as_str())
    );
    assert!(io.body == bytes, "the IO file changed");

    // The same through a multipart form.
    let form = post_multipart(
        &server,
        &multipart_body(&[("kind", "sleep")], Some(("form.dat", &bytes))),
    )
    .data(202);
    let form_id = id_of(&form);
    assert_eq!(form["IoFileName"], "form.dat");
    wait_finished(&server, form_id);
    let io = get(&server.url(&format!("/webservicetasks/{form_id}/IoFile")));
    assert_eq!(io.status, 200);
    assert!(io.body == bytes, "the IO file of the form changed");
}

#[test]
fn deleting_a_finished_task_removes_it_and_its_files() {
    let server = Server::start();
    let data = post_file(&server, "kind=sleep&filename=gone.csv", b"a,b\r\n").data(202);
    let id = id_of(&data);
    let keep = submit(&server, "sleep", json!({}));
    wait_finished(&server, id);
    wait_finished(&server, keep);
    assert_eq!(
        get(&server.url(&format!("/webservicetasks/{id}/IoFile"))).status,
        200
    );
    assert_eq!(
        get(&server.url(&format!("/webservicetasks/{id}/LogFile"))).status,
        200
    );

    let answer = delete(&server.url(&format!("/webservicetasks/{id}")));
    assert_eq!(answer.data(200), Value::Null);
    assert!(answer.json().as_object().unwrap().contains_key("data"));

    assert!(!get(&server.url(&format!("/webservicetasks/{id}")))
        .error(404)
        .is_empty());
    for file in ["IoFile", "LogFile", "ErrorFile"] {
        let answer = get(&server.url(&format!("/webservicetasks/{id}/{file}")));
        assert_eq!(
            answer.error(404),
            "File is empty or does not exist.",
            "{file}"
        );
    }
    assert_eq!(list(&server, ""), (vec![keep], 1));
    // A second delete finds nothing.
    assert!(!delete(&server.url(&format!("/webservicetasks/{id}")))
        .error(404)
        .is_empty());
    // The other task is untouched.
    assert_eq!(task(&server, keep)["Status"], "SUCCESS");

    // Ids are never reused, not even the highest one after it was deleted.
    assert_eq!(
        delete(&server.url(&format!("/webservicetasks/{keep}"))).data(200),
        Value::Null
    );
    let next = submit(&server, "sleep", json!({}));
    assert!(
        next > keep && next > id,
        "id {next} reused (deleted {id} and {keep})"
    );
    wait_finished(&server, next);
}

#[test]
fn an_idempotency_key_replays_the_first_task_and_refuses_other_params() {
    let server = Server::start();
    let url = server.url("/webservicetasks");
    let body = json!({"kind": "sleep", "params": {"seconds": 0}}).to_string();
    let headers = [
        ("Content-Type", "application/json"),
        ("Idempotency-Key", "order-42"),
    ];
    let first = send("POST", &url, &headers, Some(body.as_bytes()));
    let id = id_of(&first.data(202));

    let again = send("POST", &url, &headers, Some(body.as_bytes()));
    let replay = again.data(200);
    assert_eq!(id_of(&replay), id);
    assert_eq!(replay["Kind"], "sleep");
    assert_eq!(list(&server, ""), (vec![id], 1));

    // After the task ended, the retry still finds it.
    wait_finished(&server, id);
    let later = send("POST", &url, &headers, Some(body.as_bytes())).data(200);
    assert_eq!(id_of(&later), id);
    assert_eq!(later["Status"], "SUCCESS");

    let other = json!({"kind": "sleep", "params": {"seconds": 1}}).to_string();
    let conflict = send("POST", &url, &headers, Some(other.as_bytes()));
    let message = conflict.error(409);
    assert!(message.contains("Idempotency-Key"), "{message}");
    let other_kind = json!({"kind": "csv.export", "params": {"table": "api_idem"}}).to_string();
    let message = send("POST", &url, &headers, Some(other_kind.as_bytes())).error(409);
    assert!(message.contains("Idempotency-Key"), "{message}");
    assert_eq!(list(&server, ""), (vec![id], 1));

    // A key of 200 characters is fine.
    let long_key = "k".repeat(200);
    let long = send(
        "POST",
        &url,
        &[
            ("Content-Type", "application/json"),
            ("Idempotency-Key", long_key.as_str()),
        ],
        Some(body.as_bytes()),
    );
    let long_id = id_of(&long.data(202));
    let long_again = send(
        "POST",
        &url,
        &[
            ("Content-Type", "application/json"),
            ("Idempotency-Key", long_key.as_str()),
        ],
        Some(body.as_bytes()),
    );
    assert_eq!(id_of(&long_again.data(200)), long_id);
    wait_finished(&server, long_id);
    assert_eq!(
        delete(&server.url(&format!("/webservicetasks/{long_id}"))).data(200),
        Value::Null
    );

    // Another key is another task.
    let fresh = send(
        "POST",
        &url,
        &[
            ("Content-Type", "application/json"),
            ("Idempotency-Key", "order-43"),
        ],
        Some(body.as_bytes()),
    );
    let fresh_id = id_of(&fresh.data(202));
    assert_ne!(fresh_id, id);
    wait_finished(&server, fresh_id);

    // Raw uploads retry the same way.
    let raw_url = server.url("/webservicetasks?kind=sleep&filename=r.csv");
    let raw_headers = [
        ("Content-Type", "text/csv"),
        ("Idempotency-Key", "upload-1"),
    ];
    let raw = id_of(&send("POST", &raw_url, &raw_headers, Some(b"a\r\n")).data(202));
    let raw_again = send("POST", &raw_url, &raw_headers, Some(b"a\r\n")).data(200);
    assert_eq!(id_of(&raw_again), raw);
    assert_eq!(list(&server, "").1, 3);
    wait_finished(&server, raw);
    assert_eq!(
        get(&server.url(&format!("/webservicetasks/{raw}/IoFile"))).body,
        b"a\r\n"
    );
}

#[test]
fn log_and_err_file_names_follow_the_io_file_name_or_the_task_id() {
    let server = Server::start();
    // From JSON: no IO file name, so the files are named after the id.
    let id = submit(&server, "sleep", json!({"seconds": 0}));
    let done = wait_finished(&server, id);
    assert_eq!(done["IoFileName"], "");
    assert_eq!(done["LogFileName"], format!("task-{id}-log.txt"));
    assert_eq!(done["ErrFileName"], "");
    let log = get(&server.url(&format!("/webservicetasks/{id}/LogFile")));
    assert_eq!(log.status, 200);
    assert_eq!(
        log.header("Content-Disposition"),
        Some(format!("attachment; filename=\"task-{id}-log.txt\"").as_str())
    );
    assert!(!log.body.is_empty());
    assert_eq!(
        get(&server.url(&format!("/webservicetasks/{id}/ErrorFile"))).error(404),
        "File is empty or does not exist."
    );

    // The stem drops only the last extension.
    let data = post_file(
        &server,
        "kind=csv.import&filename=rates.2026.csv&table=api_names",
        b"a,b\r\n1\r\n",
    )
    .data(202);
    let import = id_of(&data);
    let done = wait_finished(&server, import);
    assert_eq!(done["Status"], "ERROR", "{done}");
    assert_eq!(done["LogFileName"], "rates.2026-log.txt");
    assert_eq!(done["ErrFileName"], "rates.2026-err.txt");

    // A name without extension keeps all of it.
    let data = post_file(&server, "kind=sleep&filename=README", b"x").data(202);
    let done = wait_finished(&server, id_of(&data));
    assert_eq!(done["LogFileName"], "README-log.txt");

    // An export from JSON gets an IO file <table>.csv, and its log is named after it.
    let export = submit(&server, "csv.export", json!({"table": "api_names"}));
    let done = wait_finished(&server, export);
    assert_eq!(done["Status"], "SUCCESS", "{done}");
    assert_eq!(done["IoFileName"], "api_names.csv");
    assert_eq!(done["LogFileName"], "api_names-log.txt");
    assert_eq!(done["ErrFileName"], "");
}

#[test]
fn a_raw_post_with_curls_default_form_type_is_a_raw_file() {
    // `curl --data-binary @file` sends application/x-www-form-urlencoded: the contract takes
    // any type but JSON and multipart as the file itself. A web form sends that type too, so
    // such an upload says what it is with X-Taskbox-Upload (see tests/integration/origins.rs).
    let server = Server::start();
    let body = b"code,name\nA,x&y=z\n";
    let data = send(
        "POST",
        &server.url("/webservicetasks?kind=csv.import&table=curl_default&filename=c.csv"),
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("X-Taskbox-Upload", "file"),
        ],
        Some(body),
    )
    .data(202);
    let id = data["WebServiceTaskId"].as_i64().unwrap();
    let done = wait_finished(&server, id);
    assert_eq!(done["Status"], "SUCCESS", "{done}");
    assert_eq!(done["SucceededRecords"], 1, "{done}");
    let file = get(&server.url(&format!("/webservicetasks/{id}/IoFile")));
    assert_eq!(file.status, 200);
    assert_eq!(file.body, body);
}
