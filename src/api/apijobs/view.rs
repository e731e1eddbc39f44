//! How the bulk API shows a task: the api job object in the contract's field names, its
//! four status words (a mapping from the store's states), its two time formats, and the
//! `Retry-After` advice while the job is not finished.

use serde::Serialize;

use crate::http::Reply;
use crate::task::{State, Task};

/// Seconds a client is advised to wait before polling a job again: a waiting job may wait
/// behind others, a running one is polled for its end.
const RETRY_WAITING_SECS: u32 = 2;
const RETRY_RUNNING_SECS: u32 = 1;

/// The job object, fields in the contract's order.
#[derive(Serialize)]
struct JobView<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    company_id: &'a str,
    start_time: Option<String>,
    end_time: Option<String>,
    status: &'static str,
    message: &'a str,
    total_records: u64,
    effected_records: u64,
    created_at: String,
    updated_at: String,
}

/// The job's status word: `pending` while it waits, `processing` while it runs,
/// `completed` once every record was processed (some may have failed: see `message`),
/// `failed` when the job as a whole could not run to its end (a cancelled one too).
pub fn status(state: State) -> &'static str {
    match state {
        State::Scheduled | State::Queued | State::Held | State::Retrying => "pending",
        State::Running => "processing",
        State::Succeeded => "completed",
        State::Failed | State::Canceled => "failed",
    }
}

/// The job as the contract shows it, with `Retry-After` while it is not finished.
pub fn job_reply(code: u16, task: &Task) -> Reply {
    let view = JobView {
        id: &task.uuid,
        kind: &task.kind,
        company_id: &task.client,
        start_time: task.start_time.as_deref().map(plain_time),
        end_time: task.end_time.as_deref().map(plain_time),
        status: status(task.state),
        message: message(task),
        total_records: task.counts.total,
        effected_records: task.counts.succeeded,
        created_at: rfc3339_micros(&task.created_at),
        updated_at: rfc3339_micros(&task.updated_at),
    };
    let body = serde_json::to_vec(&view).unwrap_or_default();
    let reply = Reply::json_text(code, body);
    match task.state {
        s if s.is_finished() => reply,
        State::Running => reply.with_header("Retry-After", RETRY_RUNNING_SECS.to_string()),
        _ => reply.with_header("Retry-After", RETRY_WAITING_SECS.to_string()),
    }
}

/// "" while the job waits or runs, and for a completed job none of whose records failed;
/// otherwise the task's message (a completed job's: one block per failed record).
fn message(task: &Task) -> &str {
    match task.state {
        State::Succeeded if task.counts.failed == 0 => "",
        s if s.is_finished() => &task.message,
        _ => "",
    }
}

/// `YYYY-MM-DDTHH:MM:SS` (the store's) as `YYYY-MM-DD HH:MM:SS`.
fn plain_time(stored: &str) -> String {
    stored.replacen('T', " ", 1)
}

/// `YYYY-MM-DDTHH:MM:SS` (the store's, UTC) as RFC 3339 with microseconds and Z.
fn rfc3339_micros(stored: &str) -> String {
    format!("{stored}.000000Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_take_the_contract_s_two_forms() {
        assert_eq!(plain_time("2024-02-21T10:21:31"), "2024-02-21 10:21:31");
        assert_eq!(
            rfc3339_micros("2024-02-21T10:21:31"),
            "2024-02-21T10:21:31.000000Z"
        );
    }

    #[test]
    fn every_state_has_a_status_word() {
        let words: Vec<&str> = State::ALL.iter().map(|s| status(*s)).collect();
        assert_eq!(
            words,
            [
                "pending",
                "pending",
                "pending",
                "pending",
                "processing",
                "completed",
                "failed",
                "failed"
            ]
        );
    }
}
