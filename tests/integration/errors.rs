//! Every error path of the contract: each answer has the right status code and the envelope
//! `{"status":"error","message":<a sentence naming the problem>,"data":null}`, and the
//! server goes on answering normally afterwards.

use std::io::Read;

use crate::common::*;
use serde_json::json;

const FILE_MISSING: &str = "File is empty or does not exist.";

/// Checks the error envelope and status of `answer`, that the message is a sentence, and
/// that it names each of `names`. Returns the message.
fn expect_error(answer: &Answer, status: u16, names: &[&str]) -> String {
    let message = answer.error(status);
    assert!(!message.trim().is_empty(), "empty message for {status}");
    assert!(message.ends_with('.'), "not a sentence: {message:?}");
    for name in names {
        assert!(message.contains(name), "{message:?} does not name {name:?}");
    }
    let content_type = answer.header("Content-Type").unwrap_or_default();
    assert!(
        content_type.starts_with("application/json"),
        "Content-Type {content_type:?}"
    );
    // Exactly the three fields of the envelope.
    let json = answer.json();
    let mut keys: Vec<&str> = json
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["data", "message", "status"], "{json}");
    message
}

/// The server still creates and runs tasks, and has no task it should not have.
fn assert_still_serving(server: &Server, tasks_before: u64) {
    let answer = get(&server.url("/webservicetasks"));
    answer.data(200);
    assert_eq!(
        answer.header("X-Total-Count"),
        Some(tasks_before.to_string().as_str()),
        "a refused request created a task"
    );
    let id = submit(server, "sleep", json!({"seconds": 0}));
    assert_eq!(wait_finished(server, id)["Status"], "SUCCESS");
}

fn post_raw(server: &Server, query: &str, content_type: &str, body: &[u8]) -> Answer {
    send(
        "POST",
        &server.url(&format!("/webservicetasks{query}")),
        &[("Content-Type", content_type)],
        Some(body),
    )
}

fn post_json_text(server: &Server, body: &str) -> Answer {
    post_raw(server, "", "application/json", body.as_bytes())
}

#[test]
fn a_missing_or_unknown_kind_is_400_listing_the_known_kinds() {
    let server = Server::start();
    let known = ["csv.export", "csv.import", "sleep"];
    let mut names = vec!["kind"];
    names.extend(known);

    expect_error(
        &post_json(&server.url("/webservicetasks"), &json!({"params": {}})),
        400,
        &names,
    );
    expect_error(&post_file(&server, "table=t", b"a\r\n"), 400, &names);
    expect_error(&post_file(&server, "kind=&table=t", b"a\r\n"), 400, &names);
    let mut unknown = names.clone();
    unknown.push("no.such.kind");
    expect_error(
        &post_json(
            &server.url("/webservicetasks"),
            &json!({"kind": "no.such.kind"}),
        ),
        400,
        &unknown,
    );
    expect_error(
        &post_file(&server, "kind=no.such.kind", b"a\r\n"),
        400,
        &unknown,
    );
    expect_error(
        &post_json(&server.url("/webservicetasks"), &json!({"kind": 5})),
        400,
        &["kind"],
    );
    assert_still_serving(&server, 0);
}

#[test]
fn params_a_kind_rejects_are_400_naming_the_param() {
    let server = Server::start();
    let url = server.url("/webservicetasks");
    for seconds in [
        json!(-1),
        json!("-1"),
        json!("abc"),
        json!(90000),
        json!("86400.5"),
        json!("NaN"),
        json!("inf"),
    ] {
        let answer = post_json(
            &url,
            &json!({"kind": "sleep", "params": {"seconds": seconds}}),
        );
        expect_error(&answer, 400, &["seconds"]);
    }
    // The same through the query string of a raw post.
    expect_error(
        &post_file(&server, "kind=sleep&seconds=abc", b""),
        400,
        &["seconds"],
    );

    for table in ["1abc", "bad-name", "has+space", "a.b", "", &"x".repeat(65)] {
        let answer = post_file(
            &server,
            &format!("kind=csv.import&table={table}"),
            b"a,b\r\n1,2\r\n",
        );
        expect_error(&answer, 400, &["table"]);
        let answer = post_json(
            &url,
            &json!({"kind": "csv.export", "params": {"table": table}}),
        );
        expect_error(&answer, 400, &["table"]);
    }
    expect_error(
        &post_file(&server, "kind=csv.import", b"a,b\r\n1,2\r\n"),
        400,
        &["table"],
    );
    expect_error(
        &post_json(&url, &json!({"kind": "csv.export"})),
        400,
        &["table"],
    );

    for raw in ["maybe", "TRUE", "1", ""] {
        let answer = post_json(
            &url,
            &json!({"kind": "csv.export", "params": {"table": "t", "raw": raw}}),
        );
        expect_error(&answer, 400, &["raw"]);
    }
    expect_error(
        &post_json(
            &url,
            &json!({"kind": "csv.export", "params": {"table": "t", "columns": ","}}),
        ),
        400,
        &["columns"],
    );
    expect_error(
        &post_file(&server, "kind=csv.import&table=t&key=,", b"a\r\n1\r\n"),
        400,
        &["key"],
    );
    assert_still_serving(&server, 0);
}

#[test]
fn csv_import_without_a_file_is_400_naming_file() {
    let server = Server::start();
    // An empty raw body.
    expect_error(
        &post_file(&server, "kind=csv.import&table=t", b""),
        400,
        &["file"],
    );
    // JSON cannot carry a file.
    expect_error(
        &post_json(
            &server.url("/webservicetasks"),
            &json!({"kind": "csv.import", "params": {"table": "t"}}),
        ),
        400,
        &["file"],
    );
    // A form without a file part, and one whose file part is empty.
    let boundary = "b0undary";
    let content_type = format!("multipart/form-data; boundary={boundary}");
    let no_file = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"kind\"\r\n\r\ncsv.import\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"table\"\r\n\r\nt\r\n--{boundary}--\r\n"
    );
    expect_error(
        &post_raw(&server, "", &content_type, no_file.as_bytes()),
        400,
        &["file"],
    );
    let empty_file = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"kind\"\r\n\r\ncsv.import\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"table\"\r\n\r\nt\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"e.csv\"\r\n\r\n\r\n--{boundary}--\r\n"
    );
    expect_error(
        &post_raw(&server, "", &content_type, empty_file.as_bytes()),
        400,
        &["file"],
    );
    assert_still_serving(&server, 0);
}

#[test]
fn a_file_name_with_a_path_separator_or_a_control_character_is_400() {
    let server = Server::start();
    for (query, shown) in [
        ("filename=a%2Fb.csv", "a/b.csv"),
        ("filename=..%2F..%2Fetc%2Fpasswd", "passwd"),
        ("filename=a%5Cb.csv", "b.csv"),
        ("filename=a%0Ab.csv", "b.csv"),
        ("filename=a%07b.csv", "b.csv"),
        ("filename=..", ".."),
    ] {
        let answer = post_file(&server, &format!("kind=sleep&{query}"), b"data");
        let message = expect_error(&answer, 400, &["file name", shown]);
        assert!(message.contains("not allowed"), "{message}");
    }
    // From a Content-Disposition header, and from a form's file part.
    let answer = send(
        "POST",
        &server.url("/webservicetasks?kind=sleep"),
        &[
            ("Content-Type", "application/octet-stream"),
            ("Content-Disposition", "attachment; filename=\"../x.csv\""),
        ],
        Some(b"data"),
    );
    expect_error(&answer, 400, &["file name"]);
    let form = "--zz\r\nContent-Disposition: form-data; name=\"kind\"\r\n\r\nsleep\r\n\
                --zz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"dir/x.csv\"\r\n\r\ndata\r\n--zz--\r\n";
    let answer = post_raw(
        &server,
        "",
        "multipart/form-data; boundary=zz",
        form.as_bytes(),
    );
    expect_error(&answer, 400, &["file name"]);
    assert_still_serving(&server, 0);
}

#[test]
fn bad_json_bodies_are_400_naming_the_problem() {
    let server = Server::start();
    expect_error(
        &post_json_text(&server, "{\"kind\": \"sleep\""),
        400,
        &["JSON"],
    );
    expect_error(&post_json_text(&server, "not json"), 400, &["JSON"]);
    expect_error(&post_json_text(&server, ""), 400, &["JSON"]);
    expect_error(
        &post_json_text(&server, "[{\"kind\": \"sleep\"}]"),
        400,
        &["object"],
    );
    expect_error(&post_json_text(&server, "\"sleep\""), 400, &["object"]);
    expect_error(
        &post_json_text(&server, "{\"kind\": \"sleep\", \"extra\": 1}"),
        400,
        &["extra"],
    );
    expect_error(
        &post_json_text(&server, "{\"kind\": \"sleep\", \"Params\": {}}"),
        400,
        &["Params"],
    );
    expect_error(
        &post_json_text(
            &server,
            "{\"kind\": \"sleep\", \"params\": {\"seconds\": [1]}}",
        ),
        400,
        &["seconds"],
    );
    expect_error(
        &post_json_text(
            &server,
            "{\"kind\": \"sleep\", \"params\": {\"seconds\": {\"v\": 1}}}",
        ),
        400,
        &["seconds"],
    );
    expect_error(
        &post_json_text(
            &server,
            "{\"kind\": \"sleep\", \"params\": {\"seconds\": null}}",
        ),
        400,
        &["seconds"],
    );
    expect_error(
        &post_json_text(&server, "{\"kind\": \"sleep\", \"params\": [1]}"),
        400,
        &["params"],
    );
    // The media type is matched case-insensitively, with parameters.
    let answer = post_raw(
        &server,
        "",
        "Application/JSON; charset=utf-8",
        b"{\"kind\": ",
    );
    expect_error(&answer, 400, &["JSON"]);
    assert_still_serving(&server, 0);
}

#[test]
fn malformed_multipart_is_400() {
    let server = Server::start();
    let content_type = "multipart/form-data; boundary=XyZ";
    // No boundary at all in the body.
    expect_error(
        &post_raw(&server, "", content_type, b"nothing here"),
        400,
        &["multipart"],
    );
    // A part that never ends.
    let unterminated = b"--XyZ\r\nContent-Disposition: form-data; name=\"kind\"\r\n\r\nsleep";
    expect_error(&post_raw(&server, "", content_type, unterminated), 400, &[]);
    // A part without a name.
    let nameless = b"--XyZ\r\nX-Other: 1\r\n\r\nv\r\n--XyZ--\r\n";
    expect_error(
        &post_raw(&server, "", content_type, nameless),
        400,
        &["multipart"],
    );
    // No closing boundary.
    let unclosed = b"--XyZ\r\nContent-Disposition: form-data; name=\"kind\"\r\n\r\nsleep\r\n--XyZ";
    expect_error(
        &post_raw(&server, "", content_type, unclosed),
        400,
        &["multipart"],
    );
    // The Content-Type has no boundary.
    let good =
        b"--XyZ\r\nContent-Disposition: form-data; name=\"kind\"\r\n\r\nsleep\r\n--XyZ--\r\n";
    expect_error(
        &post_raw(&server, "", "multipart/form-data", good),
        400,
        &["boundary"],
    );
    expect_error(
        &post_raw(&server, "", "multipart/form-data; boundary=", good),
        400,
        &["boundary"],
    );
    // Two file parts.
    let two_files = b"--XyZ\r\nContent-Disposition: form-data; name=\"kind\"\r\n\r\nsleep\r\n\
        --XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\n1\r\n\
        --XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"b\"\r\n\r\n2\r\n--XyZ--\r\n";
    expect_error(
        &post_raw(&server, "", content_type, two_files),
        400,
        &["file"],
    );
    // A file in a part not named file.
    let misnamed = b"--XyZ\r\nContent-Disposition: form-data; name=\"kind\"\r\n\r\nsleep\r\n\
        --XyZ\r\nContent-Disposition: form-data; name=\"upload\"; filename=\"a.csv\"\r\n\r\n1\r\n--XyZ--\r\n";
    expect_error(
        &post_raw(&server, "", content_type, misnamed),
        400,
        &["upload", "file"],
    );
    // The well-formed body is accepted.
    let id = post_raw(&server, "", content_type, good).data(202)["WebServiceTaskId"]
        .as_i64()
        .unwrap();
    wait_finished(&server, id);
    assert_still_serving(&server, 1);
}

#[test]
fn bad_list_parameters_are_400_naming_the_parameter() {
    let server = Server::start();
    for (query, name) in [
        ("limit=0", "limit"),
        ("limit=abc", "limit"),
        ("limit=1001", "limit"),
        ("limit=-1", "limit"),
        ("limit=", "limit"),
        ("offset=-1", "offset"),
        ("offset=abc", "offset"),
        ("offset=9223372036854775808", "offset"),
        ("status=bogus", "status"),
        ("status=", "status"),
        ("userid=x", "userid"),
        ("userid=1.5", "userid"),
    ] {
        let answer = get(&server.url(&format!("/webservicetasks?{query}")));
        let message = expect_error(&answer, 400, &[name]);
        assert!(
            answer.header("X-Total-Count").is_none(),
            "{query}: {message}"
        );
    }
    // The message for a bad status lists the good ones.
    let message = get(&server.url("/webservicetasks?status=bogus")).error(400);
    for status in ["Pending", "In progress", "SUCCESS", "ERROR", "CANCELED"] {
        assert!(message.contains(status), "{message}");
    }
    // The limits themselves are fine.
    for query in [
        "limit=1",
        "limit=1000",
        "offset=0",
        "offset=9223372036854775807",
        "userid=-3",
    ] {
        get(&server.url(&format!("/webservicetasks?{query}"))).data(200);
    }
    assert_still_serving(&server, 0);
}

#[test]
fn bad_task_ids_are_400() {
    let server = Server::start();
    for id in [
        "abc",
        "-1",
        "0",
        "1.5",
        "+5",
        "1e3",
        "99999999999999999999",
        "18446744073709551616",
        "9223372036854775808",
    ] {
        for path in [
            format!("/webservicetasks/{id}"),
            format!("/webservicetasks/{id}/IoFile"),
            format!("/webservicetasks/{id}/LogFile"),
            format!("/webservicetasks/{id}/ErrorFile"),
        ] {
            expect_error(&get(&server.url(&path)), 400, &["task id"]);
        }
        expect_error(
            &delete(&server.url(&format!("/webservicetasks/{id}"))),
            400,
            &["task id"],
        );
    }
    assert_still_serving(&server, 0);
}

#[test]
fn unknown_tasks_and_paths_are_404() {
    let server = Server::start();
    let id = submit(&server, "sleep", json!({}));
    wait_finished(&server, id);
    let unknown = id + 1000;
    expect_error(
        &get(&server.url(&format!("/webservicetasks/{unknown}"))),
        404,
        &[&unknown.to_string()],
    );
    expect_error(
        &delete(&server.url(&format!("/webservicetasks/{unknown}"))),
        404,
        &[&unknown.to_string()],
    );
    let max = i64::MAX.to_string();
    expect_error(
        &get(&server.url(&format!("/webservicetasks/{max}"))),
        404,
        &[&max],
    );
    for path in [
        "/",
        "/nothing",
        "/webservicetask",
        "/webservicetasks/1/other",
        "/webservicetasks/1/IoFile/extra",
        "/ivrapi",
        "/ivrapi/other",
        "/api/webservicetasks",
    ] {
        let answer = get(&server.url(path));
        let message = expect_error(&answer, 404, &[]);
        assert_ne!(message, FILE_MISSING, "{path}");
    }
    assert_still_serving(&server, 1);
}

#[test]
fn a_missing_file_is_404_file_is_empty_or_does_not_exist() {
    let server = Server::start();
    // A successful JSON sleep task: a log, no IO file, no ERR file.
    let id = submit(&server, "sleep", json!({"seconds": 0}));
    assert_eq!(wait_finished(&server, id)["Status"], "SUCCESS");
    assert_eq!(
        get(&server.url(&format!("/webservicetasks/{id}/LogFile"))).status,
        200
    );
    for file in ["IoFile", "ErrorFile"] {
        let message = expect_error(
            &get(&server.url(&format!("/webservicetasks/{id}/{file}"))),
            404,
            &[],
        );
        assert_eq!(message, FILE_MISSING, "{file}");
    }
    // A successful import has no ERR file.
    let import = post_file(
        &server,
        "kind=csv.import&table=errors_missing",
        b"a\r\n1\r\n",
    )
    .data(202);
    let import = import["WebServiceTaskId"].as_i64().unwrap();
    assert_eq!(wait_finished(&server, import)["Status"], "SUCCESS");
    let message = expect_error(
        &get(&server.url(&format!("/webservicetasks/{import}/ErrorFile"))),
        404,
        &[],
    );
    assert_eq!(message, FILE_MISSING);
    // No such task: every file is missing, with the same message.
    for file in ["IoFile", "ErrorFile", "LogFile", "iofile"] {
        let answer = get(&server.url(&format!("/webservicetasks/{}/{file}", import + 1000)));
        assert_eq!(expect_error(&answer, 404, &[]), FILE_MISSING, "{file}");
    }
    assert_still_serving(&server, 2);
}

#[test]
fn wrong_methods_are_405_with_an_allow_header() {
    let server = Server::start();
    let id = submit(&server, "sleep", json!({}));
    wait_finished(&server, id);
    for (method, path, allow) in [
        ("PUT", format!("/webservicetasks/{id}"), "GET, DELETE"),
        ("POST", format!("/webservicetasks/{id}"), "GET, DELETE"),
        ("PATCH", format!("/webservicetasks/{id}"), "GET, DELETE"),
        ("DELETE", "/webservicetasks".to_string(), "GET, POST"),
        ("PUT", "/webservicetasks".to_string(), "GET, POST"),
        ("PUT", "/ivrapi/WebServiceTasks/".to_string(), "GET, POST"),
        ("POST", format!("/webservicetasks/{id}/LogFile"), "GET"),
        ("DELETE", format!("/webservicetasks/{id}/IoFile"), "GET"),
    ] {
        let answer = send(method, &server.url(&path), &[], None);
        expect_error(&answer, 405, &[method]);
        assert_eq!(answer.header("Allow"), Some(allow), "{method} {path}");
    }
    // The task is still there.
    assert_eq!(task(&server, id)["Status"], "SUCCESS");
    assert_still_serving(&server, 1);
}

#[test]
fn a_post_with_a_content_type_and_no_length_is_411() {
    let server = Server::start();
    let request = "POST /webservicetasks?kind=sleep HTTP/1.1\r\nHost: localhost\r\n\
                   Content-Type: text/csv\r\nConnection: close\r\n\r\n";
    let answer = raw_exchange(&server, request.as_bytes());
    expect_error(&answer, 411, &["Content-Length"]);
    // With a Content-Length the same request is accepted.
    let request = "POST /webservicetasks?kind=sleep HTTP/1.1\r\nHost: localhost\r\n\
                   Content-Type: text/csv\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc";
    let answer = raw_exchange(&server, request.as_bytes());
    let id = answer.data(202)["WebServiceTaskId"].as_i64().unwrap();
    wait_finished(&server, id);
    assert_eq!(
        get(&server.url(&format!("/webservicetasks/{id}/IoFile"))).body,
        b"abc"
    );
    assert_still_serving(&server, 1);
}

#[test]
fn an_upload_over_max_upload_is_413_and_creates_no_task() {
    let server = Server::start_with(&["--max-upload", "1000"]);
    let big = vec![b'x'; 2000];
    let message = expect_error(
        &post_file(&server, "kind=sleep&filename=big.csv", &big),
        413,
        &["1000"],
    );
    assert!(message.contains("upload"), "{message}");
    // Through a form, the file part is counted as it streams.
    let mut form = b"--XyZ\r\nContent-Disposition: form-data; name=\"kind\"\r\n\r\nsleep\r\n\
        --XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.csv\"\r\n\r\n"
        .to_vec();
    form.extend_from_slice(&big);
    form.extend_from_slice(b"\r\n--XyZ--\r\n");
    expect_error(
        &post_raw(&server, "", "multipart/form-data; boundary=XyZ", &form),
        413,
        &["1000"],
    );
    // At the limit it is fine.
    let ok = post_file(&server, "kind=sleep&filename=ok.csv", &big[..1000]).data(202);
    let id = ok["WebServiceTaskId"].as_i64().unwrap();
    wait_finished(&server, id);
    assert_eq!(
        get(&server.url(&format!("/webservicetasks/{id}/IoFile")))
            .body
            .len(),
        1000
    );
    assert_still_serving(&server, 1);
}

#[test]
fn a_json_body_over_max_json_is_413() {
    let server = Server::start_with(&["--max-json", "2048"]);
    let padding = "p".repeat(4000);
    let body = json!({"kind": "sleep", "params": {"padding": padding}}).to_string();
    assert!(body.len() > 4000);
    let message = expect_error(&post_json_text(&server, &body), 413, &["2048"]);
    assert!(message.contains("JSON"), "{message}");
    // Form fields other than `file` share the JSON limit.
    let mut form = b"--XyZ\r\nContent-Disposition: form-data; name=\"kind\"\r\n\r\nsleep\r\n\
        --XyZ\r\nContent-Disposition: form-data; name=\"padding\"\r\n\r\n"
        .to_vec();
    form.extend_from_slice(padding.as_bytes());
    form.extend_from_slice(b"\r\n--XyZ--\r\n");
    expect_error(
        &post_raw(&server, "", "multipart/form-data; boundary=XyZ", &form),
        413,
        &["2048"],
    );
    // A small body is fine (with a param its kind declares).
    let small =
        json!({"kind": "csv.export", "params": {"table": "t", "columns": "p".repeat(1000)}})
            .to_string();
    let id = post_json_text(&server, &small).data(202)["WebServiceTaskId"]
        .as_i64()
        .unwrap();
    wait_finished(&server, id);
    assert_still_serving(&server, 1);
}

#[test]
fn unsupported_content_types_are_415() {
    let server = Server::start();
    let answer = post_raw(
        &server,
        "",
        "application/json; charset=utf-16",
        br#"{"kind":"sleep"}"#,
    );
    expect_error(&answer, 415, &["UTF-8", "utf-16"]);
    let answer = post_raw(
        &server,
        "?kind=sleep",
        "multipart/mixed; boundary=x",
        b"--x--\r\n",
    );
    expect_error(&answer, 415, &["multipart/mixed"]);
    assert_still_serving(&server, 0);
}

#[test]
fn the_server_answers_normally_after_a_run_of_errors() {
    let server = Server::start_with(&["--max-upload", "1000", "--max-json", "2048"]);
    let url = server.url("/webservicetasks");
    for _ in 0..3 {
        expect_error(&post_json_text(&server, "{"), 400, &["JSON"]);
        expect_error(&post_file(&server, "kind=nope", b"x"), 400, &["nope"]);
        expect_error(&post_file(&server, "kind=sleep", &[b'x'; 2000]), 413, &[]);
        expect_error(&post_json_text(&server, &"x".repeat(4000)), 413, &[]);
        expect_error(
            &post_raw(&server, "", "multipart/mixed; boundary=x", b"--x--\r\n"),
            415,
            &[],
        );
        expect_error(
            &get(&server.url("/webservicetasks?limit=0")),
            400,
            &["limit"],
        );
        expect_error(&get(&server.url("/webservicetasks/abc")), 400, &[]);
        expect_error(&get(&server.url("/webservicetasks/12345")), 404, &[]);
        expect_error(&get(&server.url("/nowhere")), 404, &[]);
        expect_error(&send("PUT", &url, &[], None), 405, &[]);
        let request = "POST /webservicetasks HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/csv\r\nConnection: close\r\n\r\n";
        expect_error(&raw_exchange(&server, request.as_bytes()), 411, &[]);
    }
    assert_still_serving(&server, 0);
    let data = post_file(
        &server,
        "kind=csv.import&table=errors_after&filename=a.csv",
        b"a,b\r\n1,2\r\n",
    )
    .data(202);
    let done = wait_finished(&server, data["WebServiceTaskId"].as_i64().unwrap());
    assert_eq!(done["Status"], "SUCCESS", "{done}");
    assert_eq!(done["SucceededRecords"], 1);
}

#[test]
fn chunked_bodies_over_the_limits_are_413() {
    let server = Server::start_with(&["--max-upload", "1000", "--max-json", "2048"]);
    // A chunked upload has no length to check up front: it is refused as it streams.
    let mut request =
        b"POST /webservicetasks?kind=sleep&filename=big.csv HTTP/1.1\r\nHost: localhost\r\n\
        Content-Type: text/csv\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            .to_vec();
    for _ in 0..4 {
        request.extend_from_slice(b"1f4\r\n");
        request.extend_from_slice(&[b'x'; 500]);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    expect_error(&raw_exchange(&server, &request), 413, &["1000"]);

    let json = json!({"kind": "sleep", "params": {"padding": "p".repeat(4000)}}).to_string();
    let mut request = b"POST /webservicetasks HTTP/1.1\r\nHost: localhost\r\n\
        Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        .to_vec();
    request.extend_from_slice(format!("{:x}\r\n", json.len()).as_bytes());
    request.extend_from_slice(json.as_bytes());
    request.extend_from_slice(b"\r\n0\r\n\r\n");
    expect_error(&raw_exchange(&server, &request), 413, &["2048"]);

    // Chunked bodies within the limits are fine.
    let request =
        b"POST /webservicetasks?kind=sleep&filename=small.csv HTTP/1.1\r\nHost: localhost\r\n\
        Content-Type: text/csv\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
        3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
    let id = raw_exchange(&server, request).data(202)["WebServiceTaskId"]
        .as_i64()
        .unwrap();
    wait_finished(&server, id);
    assert_eq!(
        get(&server.url(&format!("/webservicetasks/{id}/IoFile"))).body,
        b"abcde"
    );
    // An empty chunked body for csv.import is still "no file".
    let request = b"POST /webservicetasks?kind=csv.import&table=t HTTP/1.1\r\nHost: localhost\r\n\
        Content-Type: text/csv\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n";
    expect_error(&raw_exchange(&server, request), 400, &["file"]);
    assert_still_serving(&server, 1);
}

#[test]
fn invalid_utf8_in_the_path_or_query_is_400() {
    let server = Server::start();
    expect_error(&get(&server.url("/webservicetasks/%FF")), 400, &["UTF-8"]);
    expect_error(
        &get(&server.url("/webservicetasks?kind=%FF")),
        400,
        &["UTF-8"],
    );
    expect_error(
        &post_file(&server, "kind=sleep&filename=%FF.csv", b"x"),
        400,
        &["UTF-8"],
    );
    expect_error(
        &post_json_text(&server, "{\"kind\": \"sl\u{0}eep\"}"),
        400,
        &[],
    );
    let answer = post_raw(&server, "", "application/json", b"{\"kind\": \"\xff\"}");
    expect_error(&answer, 400, &["JSON"]);
    assert_still_serving(&server, 0);
}

#[test]
fn a_bad_idempotency_key_is_400() {
    let server = Server::start();
    let url = server.url("/webservicetasks");
    let body = json!({"kind": "sleep"}).to_string();
    let too_long = "k".repeat(201);
    let answer = send(
        "POST",
        &url,
        &[
            ("Content-Type", "application/json"),
            ("Idempotency-Key", too_long.as_str()),
        ],
        Some(body.as_bytes()),
    );
    expect_error(&answer, 400, &["Idempotency-Key", "200"]);
    let answer = send(
        "POST",
        &url,
        &[
            ("Content-Type", "application/json"),
            ("Idempotency-Key", ""),
        ],
        Some(body.as_bytes()),
    );
    expect_error(&answer, 400, &["Idempotency-Key"]);
    assert_still_serving(&server, 0);
}

#[test]
fn request_headers_over_their_limit_are_431() {
    let server = Server::start();
    let request = format!(
        "GET /webservicetasks HTTP/1.1\r\nHost: localhost\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(1 << 20)
    );
    expect_error(&raw_exchange(&server, request.as_bytes()), 431, &[]);
    assert_still_serving(&server, 0);
}

#[test]
fn multipart_field_names_count_against_max_json() {
    let server = Server::start_with(&["--max-json", "2048"]);
    let form = |fields: &[(String, &str)]| {
        let mut body = Vec::new();
        for (name, value) in fields {
            body.extend_from_slice(
                format!(
                    "--XyZ\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
                )
                .as_bytes(),
            );
        }
        body.extend_from_slice(b"--XyZ--\r\n");
        post_raw(&server, "", "multipart/form-data; boundary=XyZ", &body)
    };
    let kind = ("kind".to_string(), "sleep");
    // One name over the limit, with an empty value.
    let answer = form(&[kind.clone(), ("n".repeat(4000), "")]);
    let message = expect_error(&answer, 413, &["2048", "--max-json"]);
    assert!(message.contains("fields"), "{message}");
    // Names within the limit each, over it together.
    let names: Vec<(String, &str)> = (0..3)
        .map(|i| (format!("{i}{}", "n".repeat(799)), ""))
        .chain([kind.clone()])
        .collect();
    expect_error(&form(&names), 413, &["2048"]);
    // Names and values counted together: 1100 + 1000 bytes is over 2048.
    let answer = form(&[
        kind,
        ("a".repeat(1100), "v"),
        ("b".to_string(), &"v".repeat(1000)),
    ]);
    expect_error(&answer, 413, &["2048"]);
    // Within the limit, names included, it is fine (with params the kind declares: any
    // other is a 400).
    let data = form(&[
        ("kind".to_string(), "csv.export"),
        ("table".to_string(), "t"),
        ("columns".to_string(), &"v".repeat(1900)),
    ])
    .data(202);
    let id = data["WebServiceTaskId"].as_i64().unwrap();
    assert_eq!(
        data["Params"]["columns"].as_str().map(str::len),
        Some(1900),
        "{data}"
    );
    wait_finished(&server, id);
    assert_still_serving(&server, 1);
}

#[test]
fn a_url_over_16_kib_is_414() {
    const LIMIT: usize = 16 * 1024;
    let server = Server::start();
    // Exactly at the limit: fine (an unknown list parameter is ignored).
    let path = "/webservicetasks?padding=";
    let at_limit = format!("{path}{}", "p".repeat(LIMIT - path.len()));
    assert_eq!(at_limit.len(), LIMIT);
    get(&server.url(&at_limit)).data(200);
    // One byte more: 414 with the envelope, naming the limit.
    let over = format!("{at_limit}p");
    let message = expect_error(&get(&server.url(&over)), 414, &["16384"]);
    assert!(message.contains("URL"), "{message}");
    // A long path is refused the same way.
    let long_path = format!("/webservicetasks/{}", "1".repeat(LIMIT));
    expect_error(&get(&server.url(&long_path)), 414, &["16384"]);
    // A POST whose query is too long creates nothing, whatever its body.
    let query = format!("?kind=sleep&filename=a.csv&note={}", "n".repeat(LIMIT));
    expect_error(
        &post_raw(&server, &query, "text/csv", b"a,b\r\n"),
        414,
        &["16384"],
    );
    let form =
        b"--XyZ\r\nContent-Disposition: form-data; name=\"kind\"\r\n\r\nsleep\r\n--XyZ--\r\n";
    expect_error(
        &post_raw(&server, &query, "multipart/form-data; boundary=XyZ", form),
        414,
        &["16384"],
    );
    assert_still_serving(&server, 0);
}

#[test]
fn a_multipart_body_that_goes_on_after_its_closing_boundary_is_413() {
    // An upload limit larger than the machine's memory, as --max-upload allows.
    let server = Server::start_with(&["--max-upload", "1099511627776"]);
    let form =
        b"--XyZ\r\nContent-Disposition: form-data; name=\"kind\"\r\n\r\nsleep\r\n--XyZ--\r\n";
    // A short epilogue is ignored.
    let mut body = form.to_vec();
    body.extend_from_slice(b"this is the epilogue\r\n");
    let data = post_raw(&server, "", "multipart/form-data; boundary=XyZ", &body).data(202);
    wait_finished(&server, data["WebServiceTaskId"].as_i64().unwrap());
    // A form that declares 600 GB, ends early and goes on after its closing boundary: were
    // it accepted, the unread rest would be drained through a buffer of its declared size,
    // an allocation that aborts the process.
    let mut request = b"POST /webservicetasks HTTP/1.1\r\nHost: localhost\r\n\
        Content-Type: multipart/form-data; boundary=XyZ\r\nContent-Length: 600000000000\r\n\r\n"
        .to_vec();
    request.extend_from_slice(form);
    request.extend_from_slice(&vec![b'e'; 200 * 1024]);
    let mut stream = send_raw(&server, &request);
    let mut status = [0u8; 12];
    stream
        .read_exact(&mut status)
        .expect("the answer's status line");
    assert_eq!(
        &status,
        b"HTTP/1.1 413",
        "{}",
        String::from_utf8_lossy(&status)
    );
    assert_still_serving(&server, 1);
    drop(stream);
    assert_still_serving(&server, 2);
}
