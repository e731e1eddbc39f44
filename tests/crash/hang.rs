//! A handler that never returns (`debug.hang`: an endless loop that never looks at
//! cancellation) must not hold up a shutdown beyond the grace period, nor a DELETE; the
//! task it held is interrupted, and says so after the next start.

use std::time::{Duration, Instant};

use serde_json::json;
use taskbox::INTERRUPTED;

use crate::common::{get, submit, task, wait_finished, wait_running, Server};
use crate::db;

/// What a stop may take beyond the grace period: the stop itself, a slow shared machine.
const MARGIN: Duration = Duration::from_secs(5);

#[test]
fn a_hung_task_does_not_hold_up_shutdown_and_is_interrupted() {
    let temp = tempfile::tempdir().expect("temp dir");
    let grace = Duration::from_secs(1);
    let mut server = Server::start_in(temp.path(), &["--grace-secs", "1", "--workers", "2"]);
    let hung = submit(&server, "debug.hang", json!({}));
    wait_running(&server, hung);
    // The other worker still runs tasks.
    let other = submit(&server, "sleep", json!({"seconds": "0"}));
    assert_eq!(wait_finished(&server, other)["Status"], "SUCCESS");

    let stopping = Instant::now();
    let status = server.signal_and_wait("TERM", grace + MARGIN);
    let took = stopping.elapsed();
    assert!(status.success(), "exit status {status}");
    // It waited for the grace period (the hung task might have ended in it), no longer.
    assert!(
        took >= grace,
        "stopped after {took:?}, before the grace period ended"
    );
    let log = server.log();
    assert!(
        log.contains("interrupted 1 task(s) still running after the grace period")
            && log.contains("1 worker thread(s) still running a handler are abandoned"),
        "{log}"
    );

    // The stop itself recorded the interruption.
    {
        let conn = db::open(&server.db_path());
        let tasks = db::tasks(&conn);
        assert_eq!(tasks[&hung].status, "ERROR");
        assert_eq!(tasks[&hung].message, INTERRUPTED);
    }
    let server = Server::start_in(temp.path(), &["--grace-secs", "1"]);
    let t = task(&server, hung);
    assert_eq!(t["Status"], "ERROR", "{t}");
    assert_eq!(t["Message"], INTERRUPTED, "{t}");
    assert_eq!(t["PercentComplete"], 100, "{t}");
    let running = get(&server.url("/webservicetasks?status=In%20progress")).data(200);
    assert_eq!(running, json!([]));
}

#[test]
fn a_hung_task_killed_is_interrupted_at_the_next_start() {
    let temp = tempfile::tempdir().expect("temp dir");
    let mut server = Server::start_in(temp.path(), &["--grace-secs", "1"]);
    let hung = submit(&server, "debug.hang", json!({}));
    wait_running(&server, hung);
    server.kill();
    let server = Server::start_in(temp.path(), &[]);
    let t = task(&server, hung);
    assert_eq!(t["Status"], "ERROR", "{t}");
    assert_eq!(t["Message"], INTERRUPTED, "{t}");
}

#[test]
fn deleting_a_hung_task_answers_and_the_service_goes_on() {
    let temp = tempfile::tempdir().expect("temp dir");
    let mut server = Server::start_in(temp.path(), &["--grace-secs", "1", "--workers", "2"]);
    let hung = submit(&server, "debug.hang", json!({}));
    wait_running(&server, hung);

    // DELETE asks the task to stop, waits for it a while, then deletes it anyway. A client
    // waiting longer than this would be a DELETE that hangs.
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .build();
    let asked = Instant::now();
    let answer = agent
        .delete(&server.url(&format!("/webservicetasks/{hung}")))
        .call()
        .unwrap_or_else(|e| panic!("DELETE of a hung task did not answer: {e}"));
    assert_eq!(answer.status(), 200);
    println!("DELETE of a hung task answered in {:?}", asked.elapsed());
    let gone = get(&server.url(&format!("/webservicetasks/{hung}")));
    assert_eq!(gone.error(404), format!("Task {hung} does not exist."));

    // The thread is still stuck in the handler; the other worker runs tasks.
    let other = submit(&server, "sleep", json!({"seconds": "0"}));
    assert_eq!(wait_finished(&server, other)["Status"], "SUCCESS");

    // And the stuck thread does not keep the process alive.
    let status = server.signal_and_wait("TERM", Duration::from_secs(1) + MARGIN);
    assert!(status.success(), "exit status {status}");
    let log = server.log();
    assert!(
        log.contains("1 worker thread(s) still running a handler are abandoned"),
        "{log}"
    );
}
