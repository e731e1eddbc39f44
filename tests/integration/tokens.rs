//! Access tokens and tenants against the real binary: every route of every family behind
//! authentication, the open mode and its loopback rule, tokens made and revoked by the CLI
//! while the server runs, what each tenant sees, and failures answered later without
//! slowing a valid token.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::*;

/// A request with `Authorization: <authorization>` (none when None).
fn call(
    server: &Server,
    method: &str,
    path: &str,
    authorization: Option<&str>,
    body: Option<&[u8]>,
) -> Answer {
    let mut headers: Vec<(&str, &str)> = vec![("Content-Type", "application/json")];
    if let Some(auth) = authorization {
        headers.push(("Authorization", auth));
    }
    send(method, &server.url(path), &headers, body)
}

fn submit_as(server: &Server, token: &Token, kind: &str, params: Value) -> Value {
    let body = json!({"kind": kind, "params": params}).to_string();
    let answer = call(
        server,
        "POST",
        "/webservicetasks",
        Some(&token.bearer()),
        Some(body.as_bytes()),
    );
    answer.data(202)
}

fn task_as(server: &Server, token: &Token, id: i64) -> Answer {
    call(
        server,
        "GET",
        &format!("/webservicetasks/{id}"),
        Some(&token.bearer()),
        None,
    )
}

fn wait_finished_as(server: &Server, token: &Token, id: i64) -> Value {
    wait_until("the task to finish", || {
        let task = task_as(server, token, id).data(200);
        matches!(
            task["Status"].as_str(),
            Some("SUCCESS" | "ERROR" | "CANCELED")
        )
        .then_some(task)
    })
}

/// The route's path with its placeholders filled: `{id}` and `{uuid}` name `task`.
fn fill(path: &str, id: i64, uuid: &str) -> String {
    path.split('/')
        .map(|segment| match segment {
            "{id}" => id.to_string(),
            "{uuid}" => uuid.to_string(),
            "{type}" => "dataset.update".to_string(),
            s if s.starts_with('{') => "1".to_string(),
            s => s.to_string(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn assert_refused(answer: &Answer, what: &str) {
    assert_eq!(answer.status, 401, "{what}: {}", answer.text());
    assert_eq!(answer.header("WWW-Authenticate"), Some("Bearer"), "{what}");
}

#[test]
fn every_route_of_every_family_refuses_bad_tokens_and_hides_other_clients_objects() {
    // No delay on failures here: this test fails on purpose, many times, from one address.
    let server = Server::start_with(&["--auth-max-delay-ms", "0"]);
    let alice = create_token(&server, 1, "Alice", "client-a");
    let bob = create_token(&server, 2, "Bob", "client-b");
    let expired = create_token(&server, 3, "Old", "client-a");
    expire_token(&server, &expired);
    let revoked = create_token(&server, 4, "Gone", "client-a");
    revoke_token(&server, &revoked);

    // Bob's task (with its three files), and a task of Alice's deleted: a missing id.
    let csv = b"code,name\n1,one\n1,dup\n";
    let bearer = bob.bearer();
    let bobs = send(
        "POST",
        &server.url("/webservicetasks?kind=csv.import&table=bobs&key=code&filename=b.csv"),
        &[("Authorization", &bearer), ("Content-Type", "text/csv")],
        Some(csv),
    );
    let bobs = bobs.data(202);
    let (bob_id, bob_uuid) = (
        bobs["WebServiceTaskId"].as_i64().unwrap(),
        bobs["Uuid"].as_str().unwrap().to_string(),
    );
    let done = wait_finished_as(&server, &bob, bob_id);
    assert_eq!(done["Status"], "SUCCESS", "{done}");
    let gone = submit_as(&server, &alice, "sleep", json!({"seconds": "0"}));
    let (gone_id, gone_uuid) = (
        gone["WebServiceTaskId"].as_i64().unwrap(),
        gone["Uuid"].as_str().unwrap().to_string(),
    );
    wait_finished_as(&server, &alice, gone_id);
    assert_eq!(
        call(
            &server,
            "DELETE",
            &format!("/webservicetasks/{gone_id}"),
            Some(&alice.bearer()),
            None
        )
        .status,
        200
    );

    let routes = routes();
    assert!(routes.len() >= 10, "{routes:?}");
    let bad = format!("Bearer tbx_{}_{}", bob.id, "0".repeat(64));
    let credentials: [(&str, Option<String>); 5] = [
        ("no token", None),
        (
            "a token of another scheme",
            Some(format!("Basic {}", bob.text)),
        ),
        ("a wrong secret", Some(bad)),
        ("an expired token", Some(expired.bearer())),
        ("a revoked token", Some(revoked.bearer())),
    ];
    for (method, pattern) in &routes {
        let path = fill(pattern, bob_id, &bob_uuid);
        let body = (method == "POST").then_some(&b"[]"[..]);
        for (what, authorization) in &credentials {
            let answer = call(&server, method, &path, authorization.as_deref(), body);
            assert_refused(&answer, &format!("{method} {path} with {what}"));
        }
        // Alice on Bob's objects: exactly what a missing one answers.
        let answer = call(&server, method, &path, Some(&alice.bearer()), body);
        assert_ne!(answer.status, 401, "{method} {path}: {}", answer.text());
        // (A 404 may repeat the id it was asked for; anything else naming Bob's task leaks.)
        assert!(
            path.contains(&bob_uuid) || !answer.text().contains(&bob_uuid),
            "{method} {path} showed Bob's task: {}",
            answer.text()
        );
        if pattern.contains("{id}") || pattern.contains("{uuid}") {
            let missing = call(
                &server,
                method,
                &fill(pattern, gone_id, &gone_uuid),
                Some(&alice.bearer()),
                body,
            );
            assert_eq!(answer.status, 404, "{method} {path}: {}", answer.text());
            let shown = |a: &Answer, id: i64, uuid: &str| {
                a.text()
                    .replace(uuid, "UUID")
                    .replace(&id.to_string(), "ID")
            };
            assert_eq!(
                (answer.status, shown(&answer, bob_id, &bob_uuid)),
                (missing.status, shown(&missing, gone_id, &gone_uuid)),
                "{method} {pattern}: another client's object answers otherwise than a missing one"
            );
        }
    }
    // Alice's DELETE did not touch Bob's task, and Bob still sees it.
    let still = task_as(&server, &bob, bob_id).data(200);
    assert_eq!(still["Uuid"], bob_uuid.as_str());
    let log = server.log();
    assert!(
        log.contains("authentication failed from 127.0.0.1"),
        "{log}"
    );
}

#[test]
fn a_token_made_or_revoked_while_the_server_runs_counts_from_the_next_request() {
    let server = Server::start();
    // No token yet: open, on loopback.
    assert_eq!(get(&server.url("/webservicetasks")).status, 200);
    let token = create_token(&server, 5, "Smith, John", "acme");
    // The first token ends the open mode at once.
    assert_refused(
        &get(&server.url("/webservicetasks")),
        "no token, once one exists",
    );
    let task = submit_as(&server, &token, "sleep", json!({"seconds": "0"}));
    assert_eq!(
        (task["UserId"].as_i64(), task["UserName"].as_str()),
        (Some(5), Some("Smith, John"))
    );
    let listed = list_tokens(&server);
    assert!(
        listed.contains("\tactive\tuser\tacme\t5\tSmith, John\t"),
        "{listed}"
    );
    assert!(
        !listed.contains(&token.text[20..]),
        "token list shows a secret: {listed}"
    );

    let said = revoke_token(&server, &token);
    assert!(said.contains("revoked"), "{said}");
    let answer = call(
        &server,
        "GET",
        "/webservicetasks",
        Some(&token.bearer()),
        None,
    );
    assert_refused(&answer, "a revoked token");
    assert!(answer.text().contains("revoked"), "{}", answer.text());
}

#[test]
fn tenants_see_their_own_client_and_an_administrator_sees_or_acts_for_any() {
    let server = Server::start();
    let a = create_token(&server, 1, "Ann", "a");
    let b = create_token(&server, 2, "Ben", "b");
    let admin = create_admin_token(&server, 9, "ops");
    let at = submit_as(&server, &a, "sleep", json!({"seconds": "0"}));
    let bt = submit_as(&server, &b, "sleep", json!({"seconds": "0"}));
    let (a_id, b_id) = (
        at["WebServiceTaskId"].as_i64().unwrap(),
        bt["WebServiceTaskId"].as_i64().unwrap(),
    );

    let ids = |token: &Token, headers: &[(&str, &str)]| -> Vec<i64> {
        let mut all: Vec<(&str, &str)> = headers.to_vec();
        let bearer = token.bearer();
        all.push(("Authorization", &bearer));
        let answer = send("GET", &server.url("/webservicetasks"), &all, None);
        answer
            .data(200)
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["WebServiceTaskId"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(ids(&a, &[]), vec![a_id]);
    assert_eq!(ids(&b, &[]), vec![b_id]);
    assert_eq!(ids(&admin, &[]), vec![b_id, a_id]);
    assert_eq!(ids(&admin, &[("X-Taskbox-Client", "b")]), vec![b_id]);
    assert_eq!(task_as(&server, &a, b_id).status, 404);

    // The administrator acting for b creates b's task, in the administrator's name.
    let bearer = admin.bearer();
    let made = send(
        "POST",
        &server.url("/webservicetasks"),
        &[
            ("Authorization", &bearer),
            ("X-Taskbox-Client", "b"),
            ("Content-Type", "application/json"),
        ],
        Some(
            json!({"kind": "sleep", "params": {"seconds": "0"}})
                .to_string()
                .as_bytes(),
        ),
    )
    .data(202);
    assert_eq!(made["UserId"], 9);
    let made_id = made["WebServiceTaskId"].as_i64().unwrap();
    assert_eq!(task_as(&server, &b, made_id).status, 200);
    assert_eq!(task_as(&server, &a, made_id).status, 404);

    // A user's token may not act for another client.
    let bearer = a.bearer();
    let refused = send(
        "GET",
        &server.url("/webservicetasks"),
        &[("Authorization", &bearer), ("X-Taskbox-Client", "b")],
        None,
    );
    assert!(
        refused.error(403).contains("administrator"),
        "{}",
        refused.text()
    );
}

#[test]
fn the_open_mode_listens_on_loopback_only_unless_told_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let (status, output) = Server::builder()
        .dir(dir.path())
        .args(&["--listen", "0.0.0.0:0"])
        .run_to_exit(Duration::from_secs(30));
    assert!(!status.success());
    assert!(
        output.contains("not loopback") && output.contains("taskbox token create"),
        "{output}"
    );

    // Reached by a loopback address: 0.0.0.0 is no name a client may use (421).
    let on_loopback =
        |server: &Server, path: &str| server.url(path).replace("0.0.0.0", "127.0.0.1");
    let open = Server::start_with(&["--listen", "0.0.0.0:0", "--allow-open-network"]);
    assert_eq!(get(&on_loopback(&open, "/webservicetasks")).status, 200);

    // With a token, a network address needs no flag, and a request no token is refused.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("taskbox.db");
    let token = create_token_in(&db, 1, "ops", "default", &[]);
    let guarded = Server::builder()
        .dir(dir.path())
        .args(&["--listen", "0.0.0.0:0"])
        .start();
    assert_refused(&get(&on_loopback(&guarded, "/webservicetasks")), "no token");
    let bearer = token.bearer();
    let answer = send(
        "GET",
        &on_loopback(&guarded, "/webservicetasks"),
        &[("Authorization", &bearer)],
        None,
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
}

#[test]
fn auth_required_refuses_every_request_even_before_the_first_token() {
    let server = Server::start_with(&["--auth", "required"]);
    let answer = get(&server.url("/webservicetasks"));
    assert_refused(&answer, "no token, --auth required");
    assert!(
        answer.error(401).contains("no access token"),
        "{}",
        answer.text()
    );
    let token = create_token(&server, 1, "ops", "default");
    let answer = call(
        &server,
        "GET",
        "/webservicetasks",
        Some(&token.bearer()),
        None,
    );
    assert_eq!(answer.status, 200);
}

#[test]
fn failures_are_answered_later_and_later_while_a_valid_token_never_waits() {
    let server = Server::start();
    let token = create_token(&server, 1, "ops", "default");
    let wrong = format!("Bearer tbx_{}_{}", token.id, "1".repeat(64));
    let mut took = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let answer = call(&server, "GET", "/webservicetasks", Some(&wrong), None);
        took.push(started.elapsed());
        assert_refused(&answer, "a wrong secret");
    }
    // Two free failures, then 50, 100, 200 ms held back (at least: never less).
    assert!(took[2] >= Duration::from_millis(50), "{took:?}");
    assert!(took[3] >= Duration::from_millis(100), "{took:?}");
    assert!(took[4] >= Duration::from_millis(200), "{took:?}");
    // The valid token, from the same address, is not held: far under the 400 ms the next
    // failure would wait.
    let started = Instant::now();
    let answer = call(
        &server,
        "GET",
        "/webservicetasks",
        Some(&token.bearer()),
        None,
    );
    assert_eq!(answer.status, 200);
    assert!(
        started.elapsed() < Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
}
