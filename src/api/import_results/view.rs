//! How the family shows an import: the result object in the contract's field names and
//! order, its four status words (a mapping from the store's states) and its time format.

use serde::Serialize;

use crate::store::CampaignImport;
use crate::task::{Counts, State};

/// The contract's four statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Status {
    /// `"0"`: waiting to run, in any of the store's waiting states.
    Preparing,
    /// `"1"`: running.
    Importing,
    /// `"2"`: the file was read to its end; rows may have failed (`failNum`).
    Imported,
    /// `"3"`: nothing was imported (the task failed, was interrupted or was cancelled).
    Failed,
}

impl Status {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Status::Preparing => "0",
            Status::Importing => "1",
            Status::Imported => "2",
            Status::Failed => "3",
        }
    }

    /// How the contract shows an import in `state` with `counts`.
    pub(super) fn of(state: State, counts: &Counts) -> Status {
        match state {
            State::Scheduled | State::Queued | State::Held | State::Retrying => Status::Preparing,
            State::Running => Status::Importing,
            State::Succeeded => Status::Imported,
            // An import that refused some rows ends failed, its good rows stored and every
            // row counted: imported, as the contract sees it (failNum says how many failed).
            // One that stops short stores and counts nothing.
            State::Failed if counts.failed > 0 => Status::Imported,
            State::Failed | State::Canceled => Status::Failed,
        }
    }
}

/// One result, in the contract's field order.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ImportView<'a> {
    id: String,
    begin_time: String,
    end_time: String,
    status: &'static str,
    succ_num: u64,
    repeat_num: u64,
    fail_num: u64,
    err_msg: &'a str,
    /// Not in the contract, after its fields: the task's UUID, as every family shows it.
    uuid: &'a str,
}

/// An import as the family shows it.
pub(super) fn view(import: &CampaignImport) -> ImportView<'_> {
    let status = Status::of(import.state, &import.counts);
    ImportView {
        id: import.id.to_string(),
        begin_time: time(import.start_time.as_deref()),
        end_time: time(import.end_time.as_deref()),
        status: status.as_str(),
        succ_num: import.counts.succeeded,
        repeat_num: import.counts.duplicate,
        fail_num: import.counts.failed,
        err_msg: if status == Status::Failed {
            &import.message
        } else {
            ""
        },
        uuid: &import.uuid,
    }
}

/// A stored time (UTC, to the second: `2022-03-11T07:27:09`) in the contract's format,
/// `2022-03-11T07:27:09.000+00:00`; `""` before the task starts (or ends), as a string
/// field without a value is in the vendor's answers.
fn time(stored: Option<&str>) -> String {
    stored.map_or_else(String::new, |t| format!("{t}.000+00:00"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn import(state: State, failed: u64) -> CampaignImport {
        let ended = state.is_finished();
        CampaignImport {
            id: 1646983628943,
            uuid: "0b1e3a4c-5d6e-4f70-8a9b-0c1d2e3f4a5b".into(),
            state,
            message: "Canceled by request.".into(),
            start_time: (state == State::Running || ended).then(|| "2022-03-11T07:27:09".into()),
            end_time: ended.then(|| "2022-03-11T07:28:10".into()),
            counts: Counts {
                total: 10 + failed,
                succeeded: 7,
                duplicate: 3,
                failed,
            },
        }
    }

    fn json(import: &CampaignImport) -> serde_json::Value {
        serde_json::to_value(view(import)).unwrap()
    }

    #[test]
    fn every_state_has_its_status_word() {
        let expected = [
            (State::Scheduled, 0, "0"),
            (State::Queued, 0, "0"),
            (State::Held, 0, "0"),
            (State::Retrying, 0, "0"),
            (State::Running, 0, "1"),
            (State::Succeeded, 0, "2"),
            (State::Failed, 2, "2"),
            (State::Failed, 0, "3"),
            (State::Canceled, 0, "3"),
        ];
        for (state, failed, word) in expected {
            assert_eq!(json(&import(state, failed))["status"], word, "{state}");
        }
        assert!(State::ALL
            .iter()
            .all(|s| expected.iter().any(|e| e.0 == *s)));
    }

    #[test]
    fn a_result_has_the_contract_s_fields_times_and_message() {
        let cancelled = json(&import(State::Canceled, 0));
        assert_eq!(
            cancelled.to_string(),
            r#"{"id":"1646983628943","beginTime":"2022-03-11T07:27:09.000+00:00","endTime":"2022-03-11T07:28:10.000+00:00","status":"3","succNum":7,"repeatNum":3,"failNum":0,"errMsg":"Canceled by request.","uuid":"0b1e3a4c-5d6e-4f70-8a9b-0c1d2e3f4a5b"}"#
        );
        // The message only with status 3; the times "" until they are.
        let waiting = json(&import(State::Queued, 0));
        for field in ["beginTime", "endTime", "errMsg"] {
            assert_eq!(waiting[field], json!(""), "{field}");
        }
        let running = json(&import(State::Running, 0));
        assert_eq!(running["beginTime"], "2022-03-11T07:27:09.000+00:00");
        assert_eq!(running["endTime"], "");
        let rows_failed = json(&import(State::Failed, 2));
        assert_eq!(
            (&rows_failed["failNum"], &rows_failed["errMsg"]),
            (&json!(2), &json!(""))
        );
    }
}
