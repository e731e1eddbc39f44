//! A task's life beyond the happy path: a panicking handler, cancellation by DELETE of a
//! running or pending task, recovery after a crash (SIGKILL) and a graceful stop (SIGTERM),
//! the LOG file of a running task, and progress.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::*;

/// The message of a task that was running when the service stopped.
pub(crate) const INTERRUPTED: &str =
    "Interrupted: the service stopped while this task was running.";

fn task_url(server: &Server, id: i64) -> String {
    server.url(&format!("/webservicetasks/{id}"))
}

/// Waits until the server's log holds `needle`.
pub(crate) fn wait_log(server: &Server, needle: &str) {
    wait_until(&format!("the server log to say {needle:?}"), || {
        server.log().contains(needle).then_some(())
    });
}

/// Deletes task `id`, expecting 200 with `data: null`; returns how long it took.
pub(crate) fn delete_ok(server: &Server, id: i64) -> Duration {
    let started = Instant::now();
    let data = delete(&task_url(server, id)).data(200);
    let took = started.elapsed();
    assert_eq!(data, Value::Null);
    took
}

pub(crate) fn assert_gone(server: &Server, id: i64) {
    let message = get(&task_url(server, id)).error(404);
    assert!(message.contains(&id.to_string()), "{message}");
}

/// Checks a task was marked interrupted by a stop of the service.
pub(crate) fn assert_interrupted(task: &Value) {
    assert_eq!(task["Status"], "ERROR", "{task}");
    assert_eq!(task["PercentComplete"], 100, "{task}");
    assert_eq!(task["Message"], INTERRUPTED, "{task}");
    assert!(task["EndTime"].is_string(), "no EndTime: {task}");
    assert!(task["StartTime"].is_string(), "no StartTime: {task}");
}

#[test]
fn a_panicking_handler_ends_its_task_error_and_the_workers_go_on() {
    let server = Server::start_with(&["--workers", "2"]);
    // One panic per worker: both survive theirs.
    let panics: Vec<i64> = (0..2)
        .map(|_| submit(&server, "debug.panic", json!({})))
        .collect();
    for &id in &panics {
        let done = wait_finished(&server, id);
        assert_eq!(done["Status"], "ERROR", "{done}");
        assert_eq!(done["PercentComplete"], 100, "{done}");
        let message = done["Message"].as_str().expect("message");
        assert!(
            message.contains("panic"),
            "the message does not mention the panic: {message}"
        );
        assert!(done["EndTime"].is_string(), "{done}");
        let log = get(&server.url(&format!("/webservicetasks/{id}/LogFile")));
        assert_eq!(log.status, 200, "{}", log.text());
        let text = log.text();
        assert!(text.contains("about to panic, as asked"), "{text}");
        assert!(text.contains("Finished ERROR"), "{text}");
    }
    // More tasks than workers, all of which must still run.
    let sleeps: Vec<i64> = (0..5)
        .map(|_| submit(&server, "sleep", json!({"seconds": "0.1"})))
        .collect();
    for &id in &sleeps {
        let done = wait_finished(&server, id);
        assert_eq!(done["Status"], "SUCCESS", "{done}");
        assert_eq!(done["Message"], "Slept 0.1 s.", "{done}");
    }
    assert!(get(&server.url("/webservicetasks")).status == 200);
}

#[test]
fn a_held_task_runs_until_its_release_file_exists() {
    let server = Server::start();
    let release = server.dir.join("release-hold");
    let message = post_json(
        &server.url("/webservicetasks"),
        &json!({"kind": "debug.hold", "params": {"percent": 101}}),
    )
    .error(400);
    assert!(message.contains("percent"), "{message}");
    let id = submit(
        &server,
        "debug.hold",
        json!({"release": release, "percent": 40}),
    );
    // Held: its progress is reported while it waits.
    let held = wait_until("the held task to report its progress", || {
        let t = task(&server, id);
        (t["Status"] == "In progress" && t["PercentComplete"] == 40).then_some(t)
    });
    assert_eq!(held["Message"], "", "{held}");
    std::fs::write(&release, b"").expect("release the task");
    let done = wait_finished(&server, id);
    assert_eq!(done["Status"], "SUCCESS", "{done}");
    assert_eq!(done["Message"], "Released.", "{done}");
    let log = get(&server.url(&format!("/webservicetasks/{id}/LogFile"))).text();
    assert!(log.contains("Holding until"), "{log}");
    assert!(log.contains("Released: "), "{log}");
}

#[test]
fn deleting_a_running_task_cancels_it_promptly_and_leaves_the_others_alone() {
    let server = Server::start_with(&["--workers", "3"]);
    let victim = submit(&server, "sleep", json!({"seconds": 30}));
    let bystander = submit(&server, "sleep", json!({"seconds": 30}));
    wait_running(&server, victim);
    wait_running(&server, bystander);

    let took = delete_ok(&server, victim);
    assert!(
        took < Duration::from_secs(5),
        "DELETE of a running task took {took:?}"
    );
    assert_gone(&server, victim);
    wait_log(
        &server,
        &format!("task {victim}: cancellation requested by DELETE"),
    );
    wait_log(&server, &format!("task {victim} finished CANCELED"));
    // A second DELETE finds nothing.
    assert!(delete(&task_url(&server, victim))
        .error(404)
        .contains(&victim.to_string()));

    // The other running task goes on, and new work still runs.
    let other = task(&server, bystander);
    assert_eq!(other["Status"], "In progress", "{other}");
    let after = submit(&server, "sleep", json!({"seconds": 0}));
    assert_eq!(wait_finished(&server, after)["Status"], "SUCCESS");
    assert_eq!(task(&server, bystander)["Status"], "In progress");
    assert!(!server
        .log()
        .contains(&format!("task {bystander}: cancellation")));

    delete_ok(&server, bystander);
    assert_gone(&server, bystander);
}

#[test]
fn deleting_a_pending_task_removes_it_before_it_starts() {
    let server = Server::start_with(&["--workers", "1"]);
    let busy = submit(&server, "sleep", json!({"seconds": 30}));
    wait_running(&server, busy);
    let waiting = submit(&server, "sleep", json!({"seconds": 0}));
    assert_eq!(task(&server, waiting)["Status"], "Pending");

    let took = delete_ok(&server, waiting);
    assert!(
        took < Duration::from_secs(2),
        "DELETE of a pending task took {took:?}"
    );
    assert_gone(&server, waiting);

    delete_ok(&server, busy);
    assert_gone(&server, busy);
    // The worker is free again: a task submitted now runs, and the deleted one never did
    // (it was due before this one).
    let later = submit(&server, "sleep", json!({"seconds": 0}));
    assert_eq!(wait_finished(&server, later)["Status"], "SUCCESS");
    let log = server.log();
    assert!(log.contains(&format!("task {later} started")), "{log}");
    assert!(
        !log.contains(&format!("task {waiting} started")),
        "the deleted task ran:\n{log}"
    );
    assert_eq!(count_with_status(&server, "Pending"), 0);
    assert_eq!(count_with_status(&server, "In progress"), 0);
}

#[test]
fn after_a_crash_running_tasks_are_interrupted_and_the_rest_is_intact() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = Server::start_in(dir.path(), &["--workers", "2"]);
    let finished: Vec<i64> = (0..2)
        .map(|_| submit(&server, "sleep", json!({"seconds": 0})))
        .collect();
    let finished_before: Vec<Value> = finished
        .iter()
        .map(|&id| wait_finished(&server, id))
        .collect();
    for t in &finished_before {
        assert_eq!(t["Status"], "SUCCESS", "{t}");
    }
    let running: Vec<i64> = (0..2)
        .map(|_| submit(&server, "sleep", json!({"seconds": 30})))
        .collect();
    for &id in &running {
        wait_running(&server, id);
    }
    // Both workers are busy: this one waits.
    let pending = submit(&server, "sleep", json!({"seconds": "0.2"}));
    assert_eq!(task(&server, pending)["Status"], "Pending");

    server.kill();
    let server = Server::start_in(dir.path(), &["--workers", "2"]);

    for &id in &running {
        assert_interrupted(&task(&server, id));
    }
    for before in &finished_before {
        let id = before["WebServiceTaskId"].as_i64().expect("id");
        assert_eq!(
            &task(&server, id),
            before,
            "a finished task changed across the crash"
        );
    }
    let ran = wait_finished(&server, pending);
    assert_eq!(ran["Status"], "SUCCESS", "{ran}");

    // Every acknowledged task is there, and nothing is left running or waiting.
    let ids: Vec<i64> = list_all(&server)
        .0
        .iter()
        .map(|t| t["WebServiceTaskId"].as_i64().unwrap())
        .collect();
    let mut expected: Vec<i64> = finished
        .iter()
        .chain(&running)
        .copied()
        .chain([pending])
        .collect();
    expected.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(ids, expected);
    assert_eq!(count_with_status(&server, "In progress"), 0);
    assert_eq!(count_with_status(&server, "Pending"), 0);
    wait_log(&server, "recovery: 2 task(s) were running");
}

/// A CSV of `rows` data rows with columns id, name, amount.
pub(crate) fn big_csv(rows: usize) -> Vec<u8> {
    let mut csv = Vec::with_capacity(rows * 32);
    csv.extend_from_slice(b"id,name,amount\n");
    for i in 0..rows {
        csv.extend_from_slice(format!("{i},name {i},{}\n", i * 7 % 1000).as_bytes());
    }
    csv
}

/// Exports dataset `table`: None when there is no such dataset, else its data rows.
pub(crate) fn export_rows(server: &Server, table: &str) -> Option<usize> {
    let id = submit(server, "csv.export", json!({"table": table}));
    let done = wait_finished(server, id);
    if done["Status"] == "ERROR" {
        let message = done["Message"].as_str().unwrap_or_default();
        assert!(
            message.contains(table),
            "unexpected failure of the export: {done}"
        );
        return None;
    }
    assert_eq!(done["Status"], "SUCCESS", "{done}");
    let file = get(&server.url(&format!("/webservicetasks/{id}/IoFile")));
    if file.status == 404 {
        return Some(0);
    }
    assert_eq!(file.status, 200);
    let text = file.text();
    assert!(
        text.starts_with("id,name,amount\r\n"),
        "{}",
        &text[..text.len().min(200)]
    );
    Some(text.matches("\r\n").count() - 1)
}

/// Posts `csv` as a `debug.import` into `table` (a csv.import that holds, once the rows of
/// its first batch are stored, until it is cancelled or the service stops) and waits until
/// its progress shows those rows while more are still to come; returns the task's id.
/// `csv` needs more than two batches' worth of rows (4000).
fn start_import_under_way(server: &Server, csv: &[u8], table: &str) -> i64 {
    hold_import_under_way(server, csv, &format!("table={table}&filename={table}.csv"))
}

/// [`start_import_under_way`] with the params (and file name) of the query string `query`:
/// with `release=<path>`, the import holds until that file exists.
pub(crate) fn hold_import_under_way(server: &Server, csv: &[u8], query: &str) -> i64 {
    let query = format!("kind=debug.import&{query}");
    let import = post_file(server, &query, csv).data(202)["WebServiceTaskId"]
        .as_i64()
        .expect("id");
    wait_until("the import to be under way", || {
        let t = task(server, import);
        assert!(
            matches!(t["Status"].as_str(), Some("Pending" | "In progress")),
            "the import ended before it could be stopped: {t}"
        );
        let under_way = t["Status"] == "In progress"
            && t["PercentComplete"].as_u64() > Some(0)
            && t["SucceededRecords"].as_u64() > Some(0);
        under_way.then_some(())
    });
    import
}

#[test]
fn deleting_a_running_import_removes_the_rows_it_stored() {
    let server = Server::start_with(&["--workers", "1"]);
    let import = start_import_under_way(&server, &big_csv(20_000), "cancelled");
    let took = delete_ok(&server, import);
    assert!(
        took < Duration::from_secs(5),
        "DELETE of a running import took {took:?}"
    );
    assert_gone(&server, import);
    wait_log(&server, &format!("task {import} finished CANCELED"));
    if let Some(rows) = export_rows(&server, "cancelled") {
        assert_eq!(rows, 0, "the cancelled import left rows behind");
    }
}

#[test]
fn an_import_killed_midway_leaves_no_rows_behind() {
    const ROWS: usize = 20_000;
    let csv = big_csv(ROWS);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = Server::start_in(dir.path(), &["--workers", "1"]);
    let import = start_import_under_way(&server, &csv, "big");
    server.kill();

    let server = Server::start_in(dir.path(), &["--workers", "1"]);
    assert_interrupted(&task(&server, import));
    match export_rows(&server, "big") {
        None => {}
        Some(rows) => assert_eq!(rows, 0, "the killed import left rows behind"),
    }

    // The same file imports whole afterwards, as a plain csv.import.
    let answer = post_file(&server, "kind=csv.import&table=big&filename=big.csv", &csv);
    let again = answer.data(202)["WebServiceTaskId"].as_i64().expect("id");
    let done = wait_finished(&server, again);
    assert_eq!(done["Status"], "SUCCESS", "{done}");
    assert_eq!(done["TotalRecords"], ROWS);
    assert_eq!(done["SucceededRecords"], ROWS);
    assert_eq!(export_rows(&server, "big"), Some(ROWS));
}

/// Waits, after a SIGTERM, until the server's dispatcher thread (the only one that claims
/// tasks) has exited: the stop has begun, and no task that was not claimed starts any more.
fn wait_claiming_stopped(server: &Server) {
    wait_until("the server's dispatcher to stop", || {
        (!server.thread_names().iter().any(|n| n == "dispatcher")).then_some(())
    });
}

#[test]
fn sigterm_lets_a_short_task_finish_within_the_grace_period() {
    let dir = tempfile::tempdir().expect("temp dir");
    let release = dir.path().join("release-hold");
    let mut server = Server::start_in(dir.path(), &["--grace-secs", "5", "--workers", "1"]);
    // Running until the test releases it, once the stop has begun.
    let id = submit(&server, "debug.hold", json!({"release": release}));
    wait_running(&server, id);
    // Waits behind it: a stopping service starts nothing new.
    let queued = submit(&server, "sleep", json!({"seconds": 0}));
    assert_eq!(task(&server, queued)["Status"], "Pending");
    let started = Instant::now();
    server.signal("TERM");
    wait_claiming_stopped(&server);
    std::fs::write(&release, b"").expect("release the task");
    let status = server.wait_exit(Duration::from_secs(10), "SIGTERM");
    let took = started.elapsed();
    assert!(status.success(), "exit status {status}");
    assert!(
        took < Duration::from_secs(4),
        "the stop took {took:?} for a task released at once"
    );
    // Read before the restart, which may start it at once.
    let log = server.log();
    assert!(
        !log.contains(&format!("task {queued} started")),
        "the queued task was started during the shutdown:\n{log}"
    );

    let server = Server::start_in(dir.path(), &[]);
    let done = task(&server, id);
    assert_eq!(done["Status"], "SUCCESS", "{done}");
    assert_eq!(done["Message"], "Released.", "{done}");
    assert_eq!(done["PercentComplete"], 100, "{done}");
    // The next start runs it.
    assert_eq!(wait_finished(&server, queued)["Status"], "SUCCESS");
}

#[test]
fn sigterm_interrupts_a_long_task_when_the_grace_period_ends() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = Server::start_in(dir.path(), &["--grace-secs", "1"]);
    let id = submit(&server, "sleep", json!({"seconds": 60}));
    wait_running(&server, id);
    let started = Instant::now();
    let status = server.signal_and_wait("TERM", Duration::from_secs(10));
    let took = started.elapsed();
    assert!(status.success(), "exit status {status}");
    assert!(
        took < Duration::from_secs(4),
        "the stop took {took:?} with a 1 s grace period"
    );

    let server = Server::start_in(dir.path(), &[]);
    assert_interrupted(&task(&server, id));
    assert!(server
        .log()
        .contains("interrupted 1 task(s) still running after the grace period"));
}

#[test]
fn the_log_file_of_a_running_task_can_be_read_while_it_runs() {
    let server = Server::start();
    let id = submit(&server, "sleep", json!({"seconds": 30}));
    wait_running(&server, id);
    let started = Instant::now();
    let log = wait_until("the LOG file of the running task", || {
        let answer = get(&server.url(&format!("/webservicetasks/{id}/LogFile")));
        match answer.status {
            200 => Some(answer),
            404 => {
                assert_eq!(answer.error(404), "File is empty or does not exist.");
                None
            }
            other => panic!("LogFile answered {other}: {}", answer.text()),
        }
    });
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "the LOG file took {took:?} to appear"
    );
    let text = log.text();
    assert!(text.contains("Started sleep"), "{text}");
    assert!(text.contains("Sleeping 30 s"), "{text}");
    assert_eq!(
        log.header("Content-Type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(
        log.header("Content-Length"),
        Some(text.len().to_string().as_str())
    );
    let running = task(&server, id);
    assert_eq!(running["Status"], "In progress", "{running}");
    assert_eq!(
        running["LogFileName"],
        format!("task-{id}-log.txt"),
        "{running}"
    );

    delete_ok(&server, id);
    assert_gone(&server, id);
}

#[test]
fn progress_moves_between_0_and_100_while_a_task_runs() {
    let server = Server::start();
    let id = submit(&server, "sleep", json!({"seconds": 2}));
    let mut seen = Vec::new();
    let done = wait_until("the task to finish", || {
        let t = task(&server, id);
        let percent = t["PercentComplete"].as_u64().expect("percent");
        match t["Status"].as_str() {
            Some("In progress") => {
                seen.push(percent);
                None
            }
            Some("Pending") => {
                assert_eq!(percent, 0, "{t}");
                None
            }
            _ => Some(t),
        }
    });
    assert_eq!(done["Status"], "SUCCESS", "{done}");
    assert_eq!(done["PercentComplete"], 100, "{done}");
    assert!(
        seen.iter().any(|&p| p > 0 && p < 100),
        "no poll saw progress strictly between 0 and 100: {seen:?}"
    );
    assert!(
        seen.windows(2).all(|w| w[0] <= w[1]),
        "progress went backwards: {seen:?}"
    );
    assert!(
        seen.iter().all(|&p| p < 100),
        "100 while still running: {seen:?}"
    );
    // The LOG file written while it ran and its last lines make one whole story.
    let log = get(&server.url(&format!("/webservicetasks/{id}/LogFile")));
    assert_eq!(log.status, 200, "{}", log.text());
    let text = log.text();
    assert_eq!(text.matches("Started sleep").count(), 1, "{text}");
    assert_eq!(text.matches("Sleeping 2 s").count(), 1, "{text}");
    assert_eq!(text.matches("Finished SUCCESS").count(), 1, "{text}");
    assert!(text.ends_with("Slept 2 s.\n"), "{text}");
}

/// The bytes the database takes on disk, with its write-ahead log.
fn database_bytes(server: &Server) -> u64 {
    ["taskbox.db", "taskbox.db-wal"]
        .iter()
        .map(|f| std::fs::metadata(server.dir.join(f)).map_or(0, |m| m.len()))
        .sum()
}

#[test]
fn sigterm_exits_even_while_a_client_stalls_mid_upload() {
    let mut server = Server::start_with(&["--grace-secs", "1"]);
    let before = database_bytes(&server);
    let mut request =
        b"POST /webservicetasks?kind=sleep&filename=slow.bin HTTP/1.1\r\nHost: localhost\r\n\
        Content-Type: application/octet-stream\r\nContent-Length: 40000000\r\n\r\n"
            .to_vec();
    // Part of the body: enough for the server to commit some of it (it commits 8 MiB at a
    // time), then nothing more.
    request.resize(request.len() + 20_000_000, b'x');
    let stream = send_raw(&server, &request);
    wait_until("the server to store part of the upload", || {
        (database_bytes(&server) > before + 8_000_000).then_some(())
    });
    let status = server.signal_and_wait("TERM", Duration::from_secs(6));
    assert!(status.success(), "exit status {status}");
    drop(stream);
}

#[test]
fn sigterm_exits_even_while_a_client_stalls_mid_download() {
    use std::io::Read;
    let mut server = Server::start_with(&["--grace-secs", "1"]);
    // Larger than the socket buffers can absorb.
    let file = vec![b'x'; 32 << 20];
    let id = post_file(&server, "kind=sleep&filename=big.txt", &file).data(202)["WebServiceTaskId"]
        .as_i64()
        .expect("id");
    assert_eq!(wait_finished(&server, id)["Status"], "SUCCESS");
    let request = format!("GET /webservicetasks/{id}/IoFile HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let mut stream = send_raw(&server, request.as_bytes());
    // The answer has begun; the client reads no further.
    let mut start = [0u8; 12];
    stream
        .read_exact(&mut start)
        .expect("the answer's first bytes");
    assert_eq!(&start, b"HTTP/1.1 200");
    let status = server.signal_and_wait("TERM", Duration::from_secs(6));
    assert!(status.success(), "exit status {status}");
    drop(stream);
}

/// Runs `taskbox serve` on the database in `dir` with `args`, expecting it to refuse to
/// start: it must exit non-zero within a few seconds. Returns what it wrote to stderr.
fn start_expecting_failure(dir: &std::path::Path, args: &[&str]) -> String {
    let (status, text) = Server::builder()
        .dir(dir)
        .args(args)
        .run_to_exit(Duration::from_secs(10));
    assert!(
        !status.success(),
        "taskbox {args:?} exited successfully; its log:\n{text}"
    );
    text
}

#[test]
fn a_start_that_cannot_bind_its_port_claims_and_interrupts_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = Server::start_in(dir.path(), &["--workers", "1"]);
    let running = submit(&server, "sleep", json!({"seconds": 30}));
    wait_running(&server, running);
    let pending: Vec<i64> = (0..3)
        .map(|_| submit(&server, "sleep", json!({"seconds": "0.5"})))
        .collect();
    for &id in &pending {
        assert_eq!(task(&server, id)["Status"], "Pending");
    }
    server.kill();

    // Another process holds the port: the start must fail before any task is claimed.
    let holder = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = holder.local_addr().expect("addr").to_string();
    // Several attempts: before the HTTP port was bound first, whether the dispatcher got
    // to claim before the bind failed was a race.
    for _ in 0..5 {
        let log = start_expecting_failure(dir.path(), &["--listen", &addr, "--workers", "4"]);
        assert!(
            log.contains(&format!("cannot listen on {addr}")),
            "the error does not name {addr}:\n{log}"
        );
        assert!(
            !log.contains("claimed"),
            "a start that failed claimed tasks:\n{log}"
        );
    }
    drop(holder);

    let server = Server::start_in(dir.path(), &["--workers", "4"]);
    assert_interrupted(&task(&server, running));
    for &id in &pending {
        let done = wait_finished(&server, id);
        assert_eq!(done["Status"], "SUCCESS", "{done}");
        assert_eq!(done["Message"], "Slept 0.5 s.", "{done}");
    }
}

#[test]
fn settings_that_could_overflow_are_refused_at_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (flag, value, name) in [
        ("--max-json", "18446744073709551615", "max-json"),
        ("--max-json", "1073741825", "max-json"),
        ("--max-upload", "18446744073709551615", "max-upload"),
        ("--max-upload", "1099511627777", "max-upload"),
        ("--grace-secs", "99999999999", "grace-secs"),
        ("--grace-secs", "86401", "grace-secs"),
    ] {
        let log = start_expecting_failure(dir.path(), &["--listen", "127.0.0.1:0", flag, value]);
        assert!(
            log.contains(name) && log.contains("at most"),
            "the error for {flag} {value} does not name {name}:\n{log}"
        );
    }
    // The largest values allowed start.
    let server = Server::start_in(
        dir.path(),
        &[
            "--max-json",
            "1073741824",
            "--max-upload",
            "1099511627776",
            "--grace-secs",
            "86400",
        ],
    );
    let id = submit(&server, "sleep", json!({"seconds": 0}));
    assert_eq!(wait_finished(&server, id)["Status"], "SUCCESS");
}
