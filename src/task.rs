//! The task: its id, its status and the contract's strings for it, its params and counters,
//! and the identity of whoever submitted it. Plain data shared by the store, the engine and
//! the HTTP layer; nothing here does I/O.

use std::collections::BTreeMap;
use std::fmt;

/// A task's id: 64-bit, assigned by the store, never reused.
pub type TaskId = i64;

/// A stored file's id (an IO, LOG or ERR file, or an upload being received).
pub type FileId = i64;

/// The five states of the Web Service Tasks contract, with their exact strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    Pending,
    InProgress,
    Success,
    Error,
    Canceled,
}

impl Status {
    pub const ALL: [Status; 5] = [
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

    pub fn is_finished(self) -> bool {
        matches!(self, Status::Success | Status::Error | Status::Canceled)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A task's parameters: string values by name, kept in name order.
pub type Params = BTreeMap<String, String>;

/// The record counters a handler reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub total: u64,
    pub succeeded: u64,
    pub duplicate: u64,
    pub failed: u64,
}

/// Who a request or a task belongs to. Until tokens exist every request is the open user:
/// user 0, no name, client `default`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user_id: i64,
    pub user_name: String,
    pub client: String,
}

impl Identity {
    pub const DEFAULT_CLIENT: &'static str = "default";

    /// The identity of a request when the service runs without tokens.
    pub fn open() -> Identity {
        Identity {
            user_id: 0,
            user_name: String::new(),
            client: Identity::DEFAULT_CLIENT.to_string(),
        }
    }
}

/// Which tasks a caller may see: one client's, or (an administrator's) all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Client(String),
    All,
}

/// A task as submitted, before the store gives it an id.
#[derive(Debug, Clone)]
pub struct NewTask {
    pub kind: String,
    pub params: Params,
    pub owner: Identity,
    /// The IO file's name, "" when there is none.
    pub io_filename: String,
    /// An upload already stored (see `Store::upload`), to become the task's IO file.
    pub io_file: Option<FileId>,
    /// The client's `Idempotency-Key`, if it sent one.
    pub idempotency_key: Option<String>,
}

impl NewTask {
    pub fn new(kind: impl Into<String>, params: Params) -> NewTask {
        NewTask {
            kind: kind.into(),
            params,
            owner: Identity::open(),
            io_filename: String::new(),
            io_file: None,
            idempotency_key: None,
        }
    }
}

/// A stored task, as the API shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub id: TaskId,
    pub user_id: i64,
    pub user_name: String,
    pub client: String,
    /// UTC, `YYYY-MM-DDTHH:MM:SS`.
    pub created_at: String,
    pub kind: String,
    pub params: Params,
    pub io_filename: String,
    pub has_io_file: bool,
    pub has_log_file: bool,
    pub has_err_file: bool,
    pub percent_complete: u8,
    pub status: Status,
    pub message: String,
    pub start_time: Option<String>,
    pub end_time: Option<String>,
    pub counts: Counts,
    pub attempts: u32,
}

/// Which of a task's three files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileRole {
    Io,
    Log,
    Err,
}

impl Task {
    /// The name a file of this task is shown and downloaded under: the IO file keeps its own
    /// name; the LOG and ERR files are named after it (`<stem>-log.txt`, `<stem>-err.txt`), or
    /// after the task id when there is no IO file name.
    pub fn file_name(&self, role: FileRole) -> String {
        let suffix = match role {
            FileRole::Io => return self.io_filename.clone(),
            FileRole::Log => "log",
            FileRole::Err => "err",
        };
        if self.io_filename.is_empty() {
            format!("task-{}-{suffix}.txt", self.id)
        } else {
            format!("{}-{suffix}.txt", file_stem(&self.io_filename))
        }
    }
}

/// A file name without its last extension (`Sample Rate Plan.csv` → `Sample Rate Plan`).
/// A name that is only an extension (`.csv`) keeps it.
fn file_stem(name: &str) -> &str {
    match name.rfind('.') {
        Some(dot) if dot > 0 => &name[..dot],
        _ => name,
    }
}

/// Timestamps in the contract's format.
pub mod time {
    use chrono::{DateTime, Datelike, Timelike, Utc};

    /// Now, UTC, `YYYY-MM-DDTHH:MM:SS`.
    pub fn now_text() -> String {
        format(Utc::now())
    }

    pub fn format(at: DateTime<Utc>) -> String {
        // By hand rather than a strftime string, which is parsed anew on every call: this
        // runs several times per task on the writer's thread.
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            at.year(),
            at.month(),
            at.day(),
            at.hour(),
            at.minute(),
            at.second()
        )
    }

    /// Now as unix milliseconds (the engine's clock for due times and leases).
    pub fn now_ms() -> i64 {
        Utc::now().timestamp_millis()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_formatted_as_strftime_would() {
        use chrono::TimeZone;
        for secs in [0, 951_782_400, 1_764_115_199, 4_102_444_799] {
            let at = chrono::Utc.timestamp_opt(secs, 999_000_000).unwrap();
            assert_eq!(time::format(at), at.format("%Y-%m-%dT%H:%M:%S").to_string());
        }
    }

    #[test]
    fn status_strings_round_trip_case_insensitively() {
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()), Some(s));
            assert_eq!(Status::parse(&s.as_str().to_lowercase()), Some(s));
        }
        assert_eq!(Status::parse("done"), None);
    }

    #[test]
    fn file_names_follow_the_io_file_name_or_the_id() {
        let mut task = Task {
            id: 7,
            user_id: 0,
            user_name: String::new(),
            client: "default".into(),
            created_at: String::new(),
            kind: "csv.import".into(),
            params: Params::new(),
            io_filename: "Sample Rate Plan.csv".into(),
            has_io_file: true,
            has_log_file: true,
            has_err_file: true,
            percent_complete: 0,
            status: Status::Pending,
            message: String::new(),
            start_time: None,
            end_time: None,
            counts: Counts::default(),
            attempts: 0,
        };
        assert_eq!(task.file_name(FileRole::Log), "Sample Rate Plan-log.txt");
        assert_eq!(task.file_name(FileRole::Err), "Sample Rate Plan-err.txt");
        task.io_filename = "archive.tar.gz".into();
        assert_eq!(task.file_name(FileRole::Err), "archive.tar-err.txt");
        task.io_filename = String::new();
        assert_eq!(task.file_name(FileRole::Log), "task-7-log.txt");
    }
}
