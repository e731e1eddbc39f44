//! Hostile bytes over every endpoint: malformed and deeply nested JSON, bodies far over the
//! limits, invalid UTF-8 and path traversal where names go, header floods, absurd numbers
//! and ids, and CSV files built to hurt a parser. Each is a 4xx in the envelope (or, for
//! what is not HTTP at all, tiny_http's bare 400 or a closed connection) and the server
//! serves normally afterwards; a CSV file is a task that ends, never a dead worker.

use std::io::Write;
use std::time::Duration;

use serde_json::json;

use crate::common::*;
use crate::raw::*;

fn post_body(server: &Server, query: &str, content_type: &str, body: &[u8]) -> Outcome {
    let length = format!("Content-Length: {}", body.len());
    let content_type = format!("Content-Type: {content_type}");
    exchange(
        server,
        &post(
            &format!("/webservicetasks{query}"),
            &[&content_type, &length],
            body,
        ),
    )
}

fn total(server: &Server) -> String {
    get(&server.url("/webservicetasks"))
        .header("X-Total-Count")
        .unwrap_or_default()
        .to_string()
}

#[test]
fn malformed_and_deeply_nested_json_is_400() {
    let server = Server::start();
    let deep = "[".repeat(100_000);
    let deep_params = format!(r#"{{"kind":"sleep","params":{{"a":{}"#, "{".repeat(100_000));
    let deep_closed = format!(
        r#"{{"kind":"sleep","params":{{"a":{}1{}}}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("100,000 [", deep.into_bytes()),
        ("nested params", deep_params.into_bytes()),
        ("nested and closed", deep_closed.into_bytes()),
        ("cut short", br#"{"kind":"sl"#.to_vec()),
        ("not UTF-8", b"\xff\xfe{\"kind\":\"sleep\"}".to_vec()),
        ("null", b"null".to_vec()),
        ("an array", b"[]".to_vec()),
        ("a string", b"\"sleep\"".to_vec()),
        ("empty", Vec::new()),
        (
            "a huge number",
            br#"{"kind":"sleep","params":{"seconds":1e999999}}"#.to_vec(),
        ),
        ("a NUL", b"{\"kind\":\"sleep\"}\0".to_vec()),
        ("kind not a string", br#"{"kind":["sleep"]}"#.to_vec()),
        (
            "a nested param",
            br#"{"kind":"sleep","params":{"a":{"b":1}}}"#.to_vec(),
        ),
    ];
    for (what, body) in cases {
        for path in ["", "/"] {
            let query = path.to_string();
            let outcome = post_body(&server, &query, "application/json", &body);
            match &outcome {
                Outcome::Envelope { status: 400, .. } => {}
                other => panic!("{what}: {other:?}"),
            }
        }
        // The same under the /ivrapi prefix.
        let length = format!("Content-Length: {}", body.len());
        exchange(
            &server,
            &post(
                "/ivrapi/WebServiceTasks",
                &["Content-Type: application/json", &length],
                &body,
            ),
        )
        .envelope(400, &[]);
    }
    assert_eq!(total(&server), "0");
    still_serving(&server);
}

#[test]
fn a_100_mb_json_body_is_413_before_it_is_read() {
    let server = Server::start_with(&["--read-timeout-secs", "2"]);
    let mut stream = connect(&server);
    // Declared, and only its first megabyte sent: the answer comes all the same.
    stream
        .write_all(
            b"POST /webservicetasks HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
              Content-Length: 104857600\r\n\r\n",
        )
        .unwrap();
    let mut first = b"{\"kind\":\"sleep\",\"params\":{\"a\":\"".to_vec();
    first.resize(1 << 20, b'a');
    stream.write_all(&first).unwrap();
    read_outcome(&mut stream).envelope(413, &["JSON", "1048576"]);
    // The rest never comes: the connection goes after the read timeout.
    wait_closed(&mut stream, Duration::from_secs(15));
    // Sent whole, chunked (no length to refuse up front): refused as it streams, and the
    // server holds no more of it than the limit.
    let mut stream = connect(&server);
    stream
        .write_all(
            b"POST /webservicetasks HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
              Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
    let writer = {
        let mut stream = stream.try_clone().unwrap();
        std::thread::spawn(move || {
            let chunk = vec![b'['; 1 << 20];
            for _ in 0..100 {
                let head = format!("{:x}\r\n", chunk.len());
                if stream.write_all(head.as_bytes()).is_err()
                    || stream.write_all(&chunk).is_err()
                    || stream.write_all(b"\r\n").is_err()
                {
                    return;
                }
            }
            let _ = stream.write_all(b"0\r\n\r\n");
        })
    };
    read_outcome(&mut stream).envelope(413, &["JSON"]);
    drop(stream);
    writer.join().unwrap();
    let peak = server.peak_rss();
    assert!(
        peak < 200 << 20,
        "the server's peak memory was {peak} bytes"
    );
    assert_eq!(total(&server), "0");
    still_serving(&server);
}

#[test]
fn invalid_utf8_in_paths_queries_and_file_names_is_refused() {
    let server = Server::start();
    // Raw bytes that are not ASCII in the request line: not HTTP; tiny_http closes.
    for path in [
        &b"/webservicetasks/\xff\xfe"[..],
        b"/ivrapi/webservicetasks?kind=\xff",
        b"/webservicetasks/1/IoFile\xc0\xaf",
    ] {
        exchange(&server, &get_raw(path)).refused();
    }
    // Percent-encoded bytes that are not UTF-8 once decoded: 400 in the envelope, on every
    // endpoint.
    for path in [
        "/webservicetasks/%FF",
        "/webservicetasks/%C0%AF/IoFile",
        "/ivrapi/webservicetasks/%ED%A0%80/LogFile",
        "/webservicetasks?status=%FF",
        "/webservicetasks?%FF=1",
    ] {
        exchange(&server, &get_raw(path.as_bytes())).envelope(400, &["UTF-8"]);
    }
    exchange(
        &server,
        b"DELETE /webservicetasks/%FF HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .envelope(400, &["UTF-8"]);
    post_body(&server, "?kind=sleep&filename=a%FF.csv", "text/csv", b"x").envelope(400, &["UTF-8"]);
    // A file name that is not UTF-8 in a multipart part's headers.
    let form = b"--XyZ\r\nContent-Disposition: form-data; name=\"kind\"\r\n\r\nsleep\r\n\
        --XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"\xff\xfe.csv\"\r\n\r\n\
        a,b\r\n--XyZ--\r\n";
    post_body(&server, "", "multipart/form-data; boundary=XyZ", form).envelope(400, &["UTF-8"]);
    // A request header with bytes that are not ASCII: not HTTP either.
    exchange(
        &server,
        b"POST /webservicetasks?kind=sleep HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/csv\r\n\
          Content-Disposition: attachment; filename=\"\xff.csv\"\r\nContent-Length: 1\r\n\r\nx",
    )
    .refused();
    assert_eq!(total(&server), "0");
    still_serving(&server);
}

#[test]
fn path_traversal_in_file_names_is_refused_or_kept_as_a_mere_name() {
    let server = Server::start();
    let traversal = [
        "../../etc/passwd",
        "..%2F..%2Fetc%2Fpasswd",
        "..\\..\\etc\\passwd",
        "/etc/passwd",
        "..",
        "....//....//etc/passwd",
        "a%00.csv",
    ];
    for name in traversal {
        let outcome = post_body(
            &server,
            &format!("?kind=sleep&filename={name}"),
            "text/csv",
            b"x",
        );
        assert!(
            matches!(outcome, Outcome::Envelope { status: 400, .. }),
            "{name} in the query: {outcome:?}"
        );
        let form = format!(
            "--XyZ\r\nContent-Disposition: form-data; name=\"kind\"\r\n\r\nsleep\r\n\
             --XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\r\n\
             a,b\r\n--XyZ--\r\n"
        );
        let outcome = post_body(
            &server,
            "",
            "multipart/form-data; boundary=XyZ",
            form.as_bytes(),
        );
        match outcome {
            // A part's plain `filename` is not percent-decoded (`%2F` is three characters of
            // a name) and a backslash in its quoted string escapes the next character: what
            // comes out may be a name with no separator, kept as such.
            Outcome::Other { status: 202, body } => {
                let data: serde_json::Value = serde_json::from_slice(&body).unwrap();
                let stored = data["data"]["IoFileName"].as_str().unwrap().to_string();
                assert!(
                    !stored.contains(['/', '\\']) && stored != ".." && stored != ".",
                    "{name} was stored as {stored:?}"
                );
                delete(&server.url(&format!(
                    "/webservicetasks/{}",
                    data["data"]["WebServiceTaskId"]
                )))
                .data(200);
            }
            outcome => {
                outcome.envelope(400, &["file name"]);
            }
        }
        let header = format!("Content-Disposition: attachment; filename*=UTF-8''{name}");
        let outcome = exchange(
            &server,
            &post(
                "/ivrapi/webservicetasks?kind=sleep",
                &["Content-Type: text/csv", "Content-Length: 1", &header],
                b"x",
            ),
        );
        assert!(
            matches!(outcome, Outcome::Envelope { status: 400, .. }),
            "{name} in Content-Disposition: {outcome:?}"
        );
    }
    assert_eq!(total(&server), "0");
    // A name that only looks like a path is a name: stored and served back as such.
    let data = post_file(&server, "kind=sleep&filename=..passwd", b"root:x:0:0").data(202);
    let id = data["WebServiceTaskId"].as_i64().unwrap();
    assert_eq!(data["IoFileName"], "..passwd");
    wait_finished(&server, id);
    let file = get(&server.url(&format!("/webservicetasks/{id}/IoFile")));
    assert_eq!(file.status, 200);
    assert_eq!(file.body, b"root:x:0:0");
    assert_eq!(
        file.header("Content-Disposition"),
        Some("attachment; filename=\"..passwd\"")
    );
    still_serving(&server);
}

#[test]
fn huge_limits_and_offsets_negative_and_oversized_ids_are_400() {
    let server = Server::start();
    for query in [
        "limit=99999999999999999999",
        "limit=-1",
        "limit=1001",
        "limit=1e3",
        "offset=99999999999999999999",
        "offset=9223372036854775808",
        "offset=-5",
        "userid=99999999999999999999",
    ] {
        let name = query.split('=').next().unwrap();
        exchange(
            &server,
            &get_raw(format!("/webservicetasks?{query}").as_bytes()),
        )
        .envelope(400, &[name]);
    }
    // The largest offset is fine: nothing there.
    let list = get(&server.url("/webservicetasks?offset=9223372036854775807&limit=1000"));
    assert_eq!(list.data(200), json!([]));
    for id in [
        "-1",
        "0",
        "18446744073709551616",
        "9223372036854775808",
        "99999999999999999999999999999999",
        "0x10",
        "1.0",
    ] {
        for (method, path) in [
            ("GET", format!("/webservicetasks/{id}")),
            ("DELETE", format!("/webservicetasks/{id}")),
            ("GET", format!("/ivrapi/webservicetasks/{id}/IoFile")),
            ("GET", format!("/webservicetasks/{id}/ErrorFile")),
            ("GET", format!("/webservicetasks/{id}/LogFile")),
        ] {
            let request =
                format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
            exchange(&server, request.as_bytes()).envelope(400, &["task id"]);
        }
    }
    // The largest id is well formed, and unknown.
    get(&server.url("/webservicetasks/9223372036854775807")).error(404);
    delete(&server.url("/webservicetasks/9223372036854775807")).error(404);
    still_serving(&server);
}

#[test]
fn header_floods_are_431_within_the_configured_limits() {
    let server = Server::start_with(&["--max-headers", "50", "--max-header-bytes", "4096"]);
    let request = |lines: usize, size: usize| {
        let mut text = String::from(
            "GET /webservicetasks?limit=1 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n",
        );
        for i in 0..lines {
            text.push_str(&format!("X-H{i}: v\r\n"));
        }
        if size > 0 {
            text.push_str(&format!("X-Big: {}\r\n", "b".repeat(size)));
        }
        text.push_str("\r\n");
        text.into_bytes()
    };
    // Within both limits (2 lines + 48): served.
    match exchange(&server, &request(48, 0)) {
        Outcome::Other { status: 200, .. } => {}
        other => panic!("{other:?}"),
    }
    exchange(&server, &request(49, 0)).envelope(431, &["50 headers", "4096 bytes"]);
    exchange(&server, &request(5000, 0)).envelope(431, &["50 headers"]);
    exchange(&server, &request(0, 5000)).envelope(431, &["4096 bytes"]);
    exchange(&server, &request(0, 1 << 20)).envelope(431, &["4096 bytes"]);
    // On a POST too, and nothing is created.
    let mut flood = post(
        "/webservicetasks?kind=sleep",
        &["Content-Type: text/csv", "Content-Length: 1"],
        b"",
    );
    flood.truncate(flood.len() - 2);
    for i in 0..2000 {
        flood.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
    }
    flood.extend_from_slice(b"\r\nx");
    exchange(&server, &flood).envelope(431, &["50 headers"]);
    assert_eq!(total(&server), "0");
    still_serving(&server);
}

/// Imports `file` into `table` and waits for the task's end: it ends, with a sentence.
fn import(server: &Server, table: &str, file: &[u8]) -> serde_json::Value {
    let data = post_file(
        server,
        &format!("kind=csv.import&table={table}&filename={table}.csv"),
        file,
    )
    .data(202);
    let done = wait_finished(server, data["WebServiceTaskId"].as_i64().unwrap());
    let message = done["Message"].as_str().unwrap_or_default();
    assert!(message.ends_with('.'), "{done}");
    done
}

#[test]
fn hostile_csv_files_end_their_task_and_the_server_keeps_serving() {
    let server = Server::start();
    // A 10 MB single field: within the 16 MiB record limit, imported whole.
    let mut big = b"a\r\n\"".to_vec();
    big.extend(std::iter::repeat_n(b'x', 10 << 20));
    big.extend_from_slice(b"\"\r\n");
    let done = import(&server, "big_field", &big);
    assert_eq!(done["Status"], "SUCCESS", "{done}");
    assert_eq!(done["SucceededRecords"], 1);
    // An unclosed quote: the record runs to the end of the file; refused, nothing imported.
    let mut unclosed = b"a,b\r\n1,\"".to_vec();
    unclosed.extend(std::iter::repeat_n(b'y', 17 << 20));
    let done = import(&server, "unclosed", &unclosed);
    assert_eq!(done["Status"], "ERROR", "{done}");
    assert_eq!(done["SucceededRecords"], 0);
    // NUL bytes in names and cells: cells are stored as written.
    let done = import(&server, "nuls", b"a,b\0c\r\n1,\0\0\r\n\0,2\r\n");
    assert!(
        matches!(done["Status"].as_str(), Some("SUCCESS" | "ERROR")),
        "{done}"
    );
    // A million columns in the header: over the column limit, nothing imported.
    let header: Vec<String> = (0..1_000_000).map(|i| format!("c{i}")).collect();
    let mut wide = header.join(",").into_bytes();
    wide.extend_from_slice(b"\r\n1\r\n");
    let done = import(&server, "wide", &wide);
    assert_eq!(done["Status"], "ERROR", "{done}");
    assert!(done["Message"].as_str().unwrap().contains("1998"), "{done}");
    // A million fields in a row: that row fails, the others are imported.
    let mut row = b"a,b\r\n1,2\r\n".to_vec();
    row.extend_from_slice(vec!["x"; 1_000_000].join(",").as_bytes());
    row.extend_from_slice(b"\r\n3,4\r\n");
    let done = import(&server, "wide_row", &row);
    assert_eq!(done["Status"], "ERROR", "{done}");
    assert_eq!(
        (
            done["SucceededRecords"].as_u64(),
            done["FailedRecords"].as_u64()
        ),
        (Some(2), Some(1)),
        "{done}"
    );
    still_serving(&server);
}
