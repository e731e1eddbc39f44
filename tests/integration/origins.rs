//! Who may address the server (issue 12): a foreign Host is refused (421, DNS rebinding),
//! a state-changing request from another site's page is refused (403), and a raw upload
//! must say what it is, so that no web form on another site can create a task.

use serde_json::json;

use crate::common::{get, raw_exchange, submit, task, Answer, Server};

/// A request with these extra header lines (each ending in \r\n) and body.
fn request(server: &Server, method: &str, path: &str, headers: &str, body: &str) -> Answer {
    let text = format!(
        "{method} {path} HTTP/1.1\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    raw_exchange(server, text.as_bytes())
}

/// The task list, asked for by the name `host`.
fn list_as(server: &Server, host: &str) -> Answer {
    request(
        server,
        "GET",
        "/webservicetasks",
        &format!("Host: {host}\r\n"),
        "",
    )
}

fn host_of(server: &Server) -> String {
    server
        .url("")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string()
}

#[test]
fn a_foreign_host_is_refused_and_loopback_names_are_served() {
    let server = Server::start();
    let port = host_of(&server).rsplit_once(':').unwrap().1.to_string();
    for host in ["evil.example", "evil.example:80", "localhost.evil.example"] {
        let answer = list_as(&server, host);
        let message = answer.error(421);
        assert!(message.contains("--allowed-hosts"), "{message}");
        let answer = request(
            &server,
            "POST",
            "/webservicetasks?kind=sleep&seconds=0",
            &format!("Host: {host}\r\nContent-Type: text/csv\r\n"),
            "",
        );
        answer.error(421);
    }
    for host in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
        "app.localhost".to_string(),
    ] {
        let answer = list_as(&server, &host);
        answer.data(200);
    }
    // Nothing was created by the refused POSTs.
    assert_eq!(
        get(&server.url("/webservicetasks")).header("X-Total-Count"),
        Some("0")
    );
}

#[test]
fn a_page_of_another_site_cannot_change_tasks() {
    let server = Server::start();
    let host = format!("Host: {}\r\n", host_of(&server));
    let id = submit(&server, "sleep", json!({"seconds": 0}));
    for origin in ["http://evil.example", "https://evil.example:8443", "null"] {
        let headers = format!("{host}Origin: {origin}\r\n");
        let post = request(
            &server,
            "POST",
            "/webservicetasks",
            &format!("{headers}Content-Type: application/json\r\n"),
            r#"{"kind":"sleep","params":{"seconds":0}}"#,
        );
        let message = post.error(403);
        assert!(message.contains("another site"), "{message}");
        let delete = request(
            &server,
            "DELETE",
            &format!("/webservicetasks/{id}"),
            &headers,
            "",
        );
        delete.error(403);
        // Reading is not changing: a page may read (the browser keeps the answer from it).
        request(
            &server,
            "GET",
            &format!("/webservicetasks/{id}"),
            &headers,
            "",
        )
        .data(200);
    }
    assert_eq!(
        task(&server, id)["WebServiceTaskId"],
        id,
        "the DELETEs removed it"
    );
    // The server's own origin may.
    let own = format!("{host}Origin: {}\r\n", server.url("").trim_end_matches('/'));
    request(
        &server,
        "DELETE",
        &format!("/webservicetasks/{id}"),
        &own,
        "",
    )
    .data(200);
}

#[test]
fn a_raw_upload_of_a_type_a_web_form_sends_must_say_what_it_is() {
    let server = Server::start();
    let host = format!("Host: {}\r\n", host_of(&server));
    let path = "/webservicetasks?kind=csv.import&table=forms&filename=f.csv";
    for (content_type, body) in [
        ("Content-Type: text/plain\r\n", "a,b\n1,2\n"),
        ("Content-Type: text/plain; charset=UTF-8\r\n", "a,b\n1,2\n"),
        (
            "Content-Type: application/x-www-form-urlencoded\r\n",
            "a,b\n1,2\n",
        ),
        ("", "a,b\n1,2\n"),
    ] {
        let answer = request(
            &server,
            "POST",
            path,
            &format!("{host}{content_type}"),
            body,
        );
        let message = answer.error(415);
        assert!(message.contains("X-Taskbox-Upload"), "{message}");
        // With the header, the same request is the file.
        let marked = format!("{host}{content_type}X-Taskbox-Upload: file\r\n");
        request(&server, "POST", path, &marked, body).data(202);
    }
    // A type of the file's own needs no header; a POST with neither type nor body is no upload.
    let csv = format!("{host}Content-Type: text/csv\r\n");
    request(&server, "POST", path, &csv, "a,b\n1,2\n").data(202);
    let bare = request(
        &server,
        "POST",
        "/webservicetasks?kind=sleep&seconds=0",
        &host,
        "",
    );
    bare.data(202);
}

#[test]
fn a_configured_name_is_answered_and_may_change_tasks() {
    let server = Server::start_with(&["--allowed-hosts", "tasks.example.org,other.example"]);
    let headers = "Host: tasks.example.org:8080\r\nOrigin: https://tasks.example.org\r\n";
    let answer = request(
        &server,
        "POST",
        "/webservicetasks?kind=csv.import&table=named&filename=n.csv",
        &format!("{headers}Content-Type: text/csv\r\n"),
        "a,b\n1,2\n",
    );
    let id = answer.data(202)["WebServiceTaskId"].as_i64().unwrap();
    request(
        &server,
        "DELETE",
        &format!("/webservicetasks/{id}"),
        headers,
        "",
    )
    .data(200);
    // Other names are still refused.
    request(
        &server,
        "GET",
        "/webservicetasks",
        "Host: evil.example\r\n",
        "",
    )
    .error(421);
}

#[test]
fn a_request_without_a_host_is_no_browser_s_and_is_served() {
    let server = Server::start();
    // HTTP/1.0 without Host: what a hand-written client may send; a browser always names one.
    let answer = raw_exchange(
        &server,
        b"GET /webservicetasks HTTP/1.0\r\nConnection: close\r\n\r\n",
    );
    answer.data(200);
}
