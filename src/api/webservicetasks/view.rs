//! How Web Service Tasks shows a task: the task object in the contract's field names and
//! order, its five status words (a mapping from the store's states), and the family's
//! words for the task service's failures.

use serde::Serialize;
use serde_json::Value;

use super::{task_not_found, FILE_MISSING};
use crate::http::ApiError;
use crate::task::{FileRole, Params, State, Task, TaskId};
use crate::task_service::TaskServiceError;

/// The task object of the contract, fields in the contract's order.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct TaskView<'a> {
    web_service_task_id: TaskId,
    user_id: i64,
    user_name: &'a str,
    date_time: &'a str,
    io_file_name: &'a str,
    log_file_name: String,
    err_file_name: String,
    percent_complete: u8,
    status: &'static str,
    message: &'a str,
    kind: &'a str,
    params: &'a Params,
    start_time: Option<&'a str>,
    end_time: Option<&'a str>,
    total_records: u64,
    succeeded_records: u64,
    duplicate_records: u64,
    failed_records: u64,
    /// Not in the contract, after its fields: the task's UUID, by which the other families
    /// (api jobs) know it.
    uuid: &'a str,
}

/// A task as the API shows it.
pub fn task_json(task: &Task) -> Value {
    serde_json::to_value(view(task)).unwrap_or(Value::Null)
}

/// Appends a task as the API shows it, as JSON text: the bytes `task_json` serializes to.
pub fn write_task_json(out: &mut Vec<u8>, task: &Task) {
    // Writing to a Vec fails only if serializing does, and a TaskView always serializes.
    let _ = serde_json::to_writer(out, &view(task));
}

fn view(task: &Task) -> TaskView<'_> {
    let file_name = |has: bool, role| {
        if has {
            task.file_name(role)
        } else {
            String::new()
        }
    };
    TaskView {
        web_service_task_id: task.id,
        user_id: task.user_id,
        user_name: &task.user_name,
        date_time: &task.created_at,
        io_file_name: &task.io_filename,
        log_file_name: file_name(task.has_log_file, FileRole::Log),
        err_file_name: file_name(task.has_err_file, FileRole::Err),
        percent_complete: task.percent_complete,
        status: Status::of(task.state).as_str(),
        message: &task.message,
        kind: &task.kind,
        params: &task.params,
        start_time: task.start_time.as_deref(),
        end_time: task.end_time.as_deref(),
        total_records: task.counts.total,
        succeeded_records: task.counts.succeeded,
        duplicate_records: task.counts.duplicate,
        failed_records: task.counts.failed,
        uuid: &task.uuid,
    }
}

/// The five statuses of the Web Service Tasks contract, with their exact strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Status {
    Pending,
    InProgress,
    Success,
    Error,
    Canceled,
}

impl Status {
    pub(super) const ALL: [Status; 5] = [
        Status::Pending,
        Status::InProgress,
        Status::Success,
        Status::Error,
        Status::Canceled,
    ];

    /// The contract's string, as clients match on it.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "Pending",
            Status::InProgress => "In progress",
            Status::Success => "SUCCESS",
            Status::Error => "ERROR",
            Status::Canceled => "CANCELED",
        }
    }

    /// Parses a status string case-insensitively (`in progress`, `success`...).
    pub fn parse(text: &str) -> Option<Status> {
        Status::ALL
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(text.trim()))
    }

    /// How the contract shows a state: every state that waits to run is Pending.
    pub fn of(state: State) -> Status {
        match state {
            State::Scheduled | State::Queued | State::Held | State::Retrying => Status::Pending,
            State::Running => Status::InProgress,
            State::Succeeded => Status::Success,
            State::Failed => Status::Error,
            State::Canceled => Status::Canceled,
        }
    }

    /// The states this status shows.
    pub fn states(self) -> Vec<State> {
        State::ALL
            .into_iter()
            .filter(|&state| Status::of(state) == self)
            .collect()
    }
}

/// How a verb of the task service failing is told to this family's clients.
impl From<TaskServiceError> for ApiError {
    fn from(e: TaskServiceError) -> ApiError {
        match e {
            TaskServiceError::Invalid(message) => ApiError::bad_request(message),
            TaskServiceError::TaskNotFound(id) => task_not_found(id),
            TaskServiceError::FileMissing => ApiError::not_found(FILE_MISSING),
            TaskServiceError::Store(e) => e.into(),
        }
    }
}
