//! What one client may store and leave waiting, and how long finished tasks are kept
//! (issue 12): a quota reached and freed by a delete, and retention removing only finished
//! tasks older than its age. The free-space floor is in tests/disk (it needs a small
//! filesystem).

use serde_json::json;

use crate::common::*;

#[test]
fn unfinished_tasks_past_the_quota_get_429_until_one_is_deleted() {
    let server = Server::start_with(&["--workers", "1", "--max-unfinished-tasks", "2"]);
    let release = server.dir.join("release-quota");
    let running = submit(&server, "debug.hold", json!({"release": release}));
    wait_running(&server, running);
    let waiting = submit(&server, "sleep", json!({"seconds": 0}));
    let message = post_task(&server, "sleep", json!({"seconds": 0})).error(429);
    assert!(message.contains("--max-unfinished-tasks"), "{message}");
    assert!(message.contains('2'), "{message}");
    // Deleting the waiting one makes room.
    delete(&server.url(&format!("/webservicetasks/{waiting}"))).data(200);
    let next = submit(&server, "sleep", json!({"seconds": 0}));
    std::fs::write(&release, b"").expect("release the held task");
    assert_eq!(wait_finished(&server, running)["Status"], "SUCCESS");
    assert_eq!(wait_finished(&server, next)["Status"], "SUCCESS");
}

#[test]
fn uploads_past_the_byte_quota_get_413_until_a_task_is_deleted() {
    let server = Server::start_with(&["--quota-bytes", "1000"]);
    let first = post_file(&server, "kind=sleep&filename=a.bin", &[b'a'; 800]).data(202);
    let first = first["WebServiceTaskId"].as_i64().unwrap();
    wait_finished(&server, first);
    // Declared in advance, and sent chunked (found out as it streams).
    let message = post_file(&server, "kind=sleep&filename=b.bin", &[b'b'; 300]).error(413);
    assert!(message.contains("--quota-bytes"), "{message}");
    let chunked = format!(
        "POST /webservicetasks?kind=sleep&filename=c.bin HTTP/1.1\r\nHost: localhost\r\n\
         Content-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\
         Connection: close\r\n\r\n12c\r\n{}\r\n0\r\n\r\n",
        "c".repeat(300)
    );
    let message = raw_exchange(&server, chunked.as_bytes()).error(413);
    assert!(message.contains("--quota-bytes"), "{message}");
    // The first task's files (its upload and its LOG) go with it.
    delete(&server.url(&format!("/webservicetasks/{first}"))).data(200);
    let again = post_file(&server, "kind=sleep&filename=b.bin", &[b'b'; 300]).data(202);
    let again = again["WebServiceTaskId"].as_i64().unwrap();
    let io = get(&server.url(&format!("/webservicetasks/{again}/IoFile")));
    assert_eq!(io.body, vec![b'b'; 300]);
}

#[test]
fn retention_removes_only_finished_tasks_older_than_its_age() {
    let server = Server::start_with(&["--workers", "2", "--retention-secs", "2"]);
    let release = |name: &str| server.dir.join(name);
    let hold = |name: &str| submit(&server, "debug.hold", json!({"release": release(name)}));
    // Two held tasks take both workers; two more wait behind them.
    let (running, ends_first) = (hold("run"), hold("first"));
    wait_running(&server, running);
    wait_running(&server, ends_first);
    let (next, waiting) = (
        hold("next"),
        submit(&server, "sleep", json!({"seconds": 0})),
    );
    // One ends; its worker takes the next, so the last still waits.
    std::fs::write(release("first"), b"").expect("release a task");
    assert_eq!(wait_finished(&server, ends_first)["Status"], "SUCCESS");
    wait_running(&server, next);
    // Once it has been finished for longer than the age, it goes, files and all. The pass
    // that removed it looked at the three others, all made before it ended: none is gone.
    wait_until("the finished task to be removed", || {
        let url = server.url(&format!("/webservicetasks/{ends_first}"));
        (get(&url).status == 404).then_some(())
    });
    assert_eq!(task(&server, running)["Status"], "In progress");
    assert_eq!(task(&server, next)["Status"], "In progress");
    assert_eq!(task(&server, waiting)["Status"], "Pending");
    assert!(
        server.log().contains("retention: removed 1 task"),
        "{}",
        server.log()
    );
    // They go too once they have ended and aged.
    std::fs::write(release("run"), b"").expect("release a task");
    std::fs::write(release("next"), b"").expect("release a task");
    for id in [running, next, waiting] {
        wait_until("every finished task to be removed", || {
            let url = server.url(&format!("/webservicetasks/{id}"));
            (get(&url).status == 404).then_some(())
        });
    }
}
