//! The task: its id, its status and the contract's strings for it, its params and counters,
//! and the identity of whoever submitted it. Plain data shared by the store, the engine and
//! the HTTP layer; nothing here does I/O.

use std::collections::BTreeMap;
use std::fmt;

/// A task's id: 64-bit, assigned by the store, never reused.
pub type TaskId = i64;

/// A stored file's id (an IO, LOG or ERR file, or an upload being received).
pub type FileId = i64;

/// A task's state. Each API family shows it in its own words (the Web Service Tasks
/// contract folds the four waiting states into "Pending"). The store keeps its number
/// (`code`): the numbers are in stored files and in the store's SQL, so they never change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Waiting for its start time.
    Scheduled = 0,
    /// Ready to run, waiting for a worker (or reserved by one, not yet started).
    Queued = 1,
    /// Ready, but held back by its queue's concurrency or rate limit.
    Held = 2,
    /// Waiting for its next attempt after a failed one.
    Retrying = 3,
    /// Running on a worker.
    Running = 4,
    /// Ended: its handler succeeded.
    Succeeded = 5,
    /// Ended: its handler failed, or the service stopped while it ran.
    Failed = 6,
    /// Ended: cancelled at a client's request.
    Canceled = 7,
}

impl State {
    /// Every state, in the order of a task's life.
    pub const ALL: [State; 8] = [
        State::Scheduled,
        State::Queued,
        State::Held,
        State::Retrying,
        State::Running,
        State::Succeeded,
        State::Failed,
        State::Canceled,
    ];

    /// The states of a task that waits to run.
    pub const WAITING: [State; 4] = [
        State::Scheduled,
        State::Queued,
        State::Held,
        State::Retrying,
    ];

    /// Its name: the store's own word for it, in logs and in the schema's comments.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Scheduled => "scheduled",
            State::Queued => "queued",
            State::Held => "held",
            State::Retrying => "retrying",
            State::Running => "running",
            State::Succeeded => "succeeded",
            State::Failed => "failed",
            State::Canceled => "canceled",
        }
    }

    /// The state named `name` (see `as_str`).
    pub fn parse(name: &str) -> Option<State> {
        State::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// The number the store keeps for it: its place in a task's life, as in [`State::ALL`]
    /// (migrations/008_narrow_task_keys.sql lists them).
    pub fn code(self) -> i64 {
        self as i64
    }

    /// The state the store numbers `code`.
    pub fn from_code(code: i64) -> Option<State> {
        State::ALL.get(usize::try_from(code).ok()?).copied()
    }

    /// Whether the task has ended (it will not run again).
    pub fn is_finished(self) -> bool {
        matches!(self, State::Succeeded | State::Failed | State::Canceled)
    }

    /// The word the server log uses for a task's end: the words operators have always
    /// searched the log for (`task 7 finished SUCCESS`).
    pub fn label(self) -> &'static str {
        match self {
            State::Succeeded => "SUCCESS",
            State::Failed => "ERROR",
            State::Canceled => "CANCELED",
            other => other.as_str(),
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A task's parameters: string values by name, kept in name order.
pub type Params = BTreeMap<String, String>;

/// The record counters a handler reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Records read.
    pub total: u64,
    /// Records stored.
    pub succeeded: u64,
    /// Records skipped as duplicates of one already seen.
    pub duplicate: u64,
    /// Records refused (each in the ERR file with its reason).
    pub failed: u64,
}

/// What a caller may see and do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The service runs without tokens: one client, `default`, and everyone is its user.
    Open,
    /// A token's user: its own client's objects only.
    User,
    /// A token's administrator: every client's objects.
    Admin,
}

/// Who a request or a task belongs to: a token's user, or (while the service runs without
/// tokens) the open user: user 0, no name, client `default`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The submitting user's id (0 for the open user).
    pub user_id: i64,
    /// The submitting user's name.
    pub user_name: String,
    /// The client it belongs to.
    pub client: String,
    /// What it may see and do.
    pub role: Role,
}

impl Identity {
    /// The client of the open user, and of everything stored before tenants.
    pub const DEFAULT_CLIENT: &'static str = "default";

    /// The identity of a request when the service runs without tokens.
    pub fn open() -> Identity {
        Identity {
            user_id: 0,
            user_name: String::new(),
            client: Identity::DEFAULT_CLIENT.to_string(),
            role: Role::Open,
        }
    }
}

/// Which tasks a caller may see: one client's, or (an administrator's) all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// One client's objects.
    Client(String),
    /// Every client's objects (an administrator).
    All,
}

/// A task as submitted, before the store gives it an id.
#[derive(Debug, Clone)]
pub struct NewTask {
    /// Its kind's name.
    pub kind: String,
    /// Its params.
    pub params: Params,
    /// Who submits it.
    pub owner: Identity,
    /// The IO file's name, "" when there is none.
    pub io_filename: String,
    /// An upload already stored (see `Store::upload`), to become the task's IO file.
    pub io_file: Option<FileId>,
    /// The client's `Idempotency-Key`, if it sent one.
    pub idempotency_key: Option<String>,
}

impl NewTask {
    /// A task of `kind` with `params`, submitted by the open user, with no IO file.
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
    /// Its id.
    pub id: TaskId,
    /// Its UUID (`8-4-4-4-12` hex), the same for as long as the task exists, unique to it
    /// and to this installation. Filled by the scoped store (what clients and embedders
    /// read through); empty in the engine's own reads.
    pub uuid: String,
    /// The submitting user's id (0 for the open user).
    pub user_id: i64,
    /// The submitting user's name.
    pub user_name: String,
    /// The client it belongs to.
    pub client: String,
    /// UTC, `YYYY-MM-DDTHH:MM:SS`.
    pub created_at: String,
    /// Its kind's name.
    pub kind: String,
    /// Its params.
    pub params: Params,
    /// The IO file's name ("" when there is none).
    pub io_filename: String,
    /// Whether it has an IO file.
    pub has_io_file: bool,
    /// Whether it has a LOG file.
    pub has_log_file: bool,
    /// Whether it has an ERR file.
    pub has_err_file: bool,
    /// 0 to 100; 100 once it has ended.
    pub percent_complete: u8,
    /// Where it is in its life.
    pub state: State,
    /// What happened, for a person: empty while it waits.
    pub message: String,
    /// When its (last) run started, UTC, `YYYY-MM-DDTHH:MM:SS`.
    pub start_time: Option<String>,
    /// When it ended, UTC, `YYYY-MM-DDTHH:MM:SS`.
    pub end_time: Option<String>,
    /// Its record counters.
    pub counts: Counts,
    /// How many times it was started.
    pub attempts: u32,
    /// When it last changed, UTC, `YYYY-MM-DDTHH:MM:SS`.
    pub updated_at: String,
}

/// Which of a task's three files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileRole {
    /// The IO file: the upload, or an export's output.
    Io,
    /// The LOG file: what happened, line by line.
    Log,
    /// The ERR file: the rejected records, each with its reason.
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The numbers the store keeps, which its SQL and files written by it hold
    /// (migrations/008_narrow_task_keys.sql), and its test of an ended task (from 5 up).
    #[test]
    fn state_codes_are_fixed() {
        let codes: Vec<i64> = State::ALL.iter().map(|s| s.code()).collect();
        assert_eq!(codes, [0, 1, 2, 3, 4, 5, 6, 7]);
        for s in State::ALL {
            assert_eq!(State::from_code(s.code()), Some(s));
            assert_eq!(s.is_finished(), s.code() >= 5, "{s}");
        }
        assert_eq!((State::Queued.code(), State::Running.code()), (1, 4));
        assert_eq!(State::from_code(8), None);
        assert_eq!(State::from_code(-1), None);
    }

    #[test]
    fn state_names_round_trip() {
        for s in State::ALL {
            assert_eq!(State::parse(s.as_str()), Some(s));
        }
        assert_eq!(State::parse("done"), None);
    }

    #[test]
    fn file_names_follow_the_io_file_name_or_the_id() {
        let mut task = Task {
            id: 7,
            uuid: String::new(),
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
            state: State::Queued,
            message: String::new(),
            start_time: None,
            end_time: None,
            counts: Counts::default(),
            attempts: 0,
            updated_at: "2026-01-01T00:00:00".into(),
        };
        assert_eq!(task.file_name(FileRole::Log), "Sample Rate Plan-log.txt");
        assert_eq!(task.file_name(FileRole::Err), "Sample Rate Plan-err.txt");
        task.io_filename = "archive.tar.gz".into();
        assert_eq!(task.file_name(FileRole::Err), "archive.tar-err.txt");
        task.io_filename = String::new();
        assert_eq!(task.file_name(FileRole::Log), "task-7-log.txt");
    }
}
