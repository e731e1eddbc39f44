//! The shortest path through the service: submit, poll, finish.

use crate::common::*;
use serde_json::json;

#[test]
fn a_sleep_task_runs_to_success() {
    let server = Server::start();
    let id = submit(&server, "sleep", json!({"seconds": 0}));
    let task = wait_finished(&server, id);
    assert_eq!(task["Status"], "SUCCESS", "{task}");
    assert_eq!(task["PercentComplete"], 100);
}
