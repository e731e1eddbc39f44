//! The scenarios, each a function that measures one thing on fresh state and returns its
//! row, and what they share: the run's settings, the preloading of a database, and the
//! polls that wait for tasks.

mod http;
mod in_process;
mod store_ceiling;
mod stored;
mod transfer;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use taskbox::store::{Store, StoreLimits, DEFAULT_POOL_SIZE};
use taskbox::Durability;
use taskbox::SystemClock;
use taskbox::{NewTask, Params, Scope, TaskId};

use crate::load::{self, Conn};
use crate::report::Row;
use crate::server::{Server, TaskboxOptions, TempDir, TempRoot};

pub type Scenario = fn(&mut Ctx) -> Result<Row, String>;

/// Every scenario: its name, what it measures, and the function.
pub const SCENARIOS: &[(&str, &str, Scenario)] = &[
    (
        "ceiling",
        "requests/s of a bare tiny_http server (the HTTP ceiling)",
        http::ceiling,
    ),
    (
        "submit",
        "tasks accepted/s over HTTP, p50/p99, ÷ the ceiling",
        http::submit,
    ),
    (
        "end-to-end",
        "tasks submitted over HTTP and completed per second",
        http::end_to_end,
    ),
    (
        "bulk",
        "tasks submitted over HTTP 100 per request (bulk) and accepted per second",
        http::bulk,
    ),
    (
        "store-ceiling",
        "tasks inserted, claimed and ended by the least SQL (the claim a write), batched as taskbox does",
        store_ceiling::store_ceiling,
    ),
    (
        "in-process",
        "tasks submitted through the library and completed per second, ÷ the store ceiling",
        in_process::in_process,
    ),
    (
        "in-process-many",
        "tasks submitted through the library 100 per call and completed per second",
        in_process::in_process_many,
    ),
    (
        "poll",
        "GET /webservicetasks/{id} p50/p99/p999 with 1M stored, under submit load",
        stored::poll,
    ),
    (
        "list",
        "first page of GET /webservicetasks p50/p99 with 1M stored",
        stored::list,
    ),
    (
        "files",
        "1 GiB upload and download: MB/s each way, server peak RSS",
        transfer::files,
    ),
    (
        "import",
        "csv.import of 1M rows: rows/s ÷ the sqlite3 shell's .import",
        transfer::import,
    ),
    (
        "idle",
        "server CPU time over 10 s with nothing due",
        stored::idle,
    ),
    (
        "memory",
        "server RSS at idle, and with 1M tasks stored",
        stored::memory,
    ),
];

/// Concurrent connections of the submit, end-to-end and ceiling loads.
pub const CONNECTIONS: usize = 32;
/// How often a scenario looks whether tasks have completed.
pub const POLL_EVERY: Duration = Duration::from_millis(50);
/// How long tasks may make no progress before a scenario gives up waiting.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(120);
/// Tasks stored per transaction when preloading.
const PRELOAD_BATCH: usize = 10_000;

/// The run's settings and what scenarios share.
pub struct Ctx {
    pub quick: bool,
    /// taskbox's `--durability`: full or normal.
    pub durability: String,
    pub temp: TempRoot,
    pub taskbox: Option<PathBuf>,
    /// The ceiling's requests/s, once measured in this run.
    pub ceiling: Option<f64>,
    /// The store ceiling's tasks/s, once measured in this run.
    pub store_ceiling: Option<f64>,
    /// The database of `stored()` tasks, preloaded once per run and copied for each
    /// scenario that needs it.
    pub stored_template: Option<Template>,
    /// Whether the servers started from now on get an access token, which every request
    /// then carries (the `+token` rows of `--token`).
    pub token: bool,
}

/// A preloaded database: its directory, the ids of its first and last task, and how long
/// preloading took.
pub struct Template {
    dir: TempDir,
    pub first: TaskId,
    pub last: TaskId,
    pub preload_secs: f64,
}

impl Ctx {
    /// How long a measuring load runs.
    pub fn duration(&self) -> Duration {
        if self.quick {
            Duration::from_millis(1500)
        } else {
            Duration::from_secs(10)
        }
    }

    /// How many tasks the "1,000,000 stored" scenarios store.
    pub fn stored(&self) -> u64 {
        if self.quick {
            20_000
        } else {
            1_000_000
        }
    }

    pub fn durability(&self) -> Durability {
        Durability::parse(&self.durability).unwrap_or(Durability::Full)
    }

    pub fn dir(&self, name: &str) -> Result<TempDir, String> {
        self.temp
            .dir(name)
            .map_err(|e| format!("cannot create a temporary directory: {e}"))
    }

    /// Puts a database of `stored()` pending `sleep` tasks of `seconds` at
    /// `dir/taskbox.db`: a copy of the run's template, preloaded on first use.
    pub fn stored_db(&mut self, dir: &TempDir, seconds: &str) -> Result<&Template, String> {
        if self.stored_template.is_none() {
            let template = self.dir("stored-template")?;
            let (first, last, took) =
                preload(&template.join("taskbox.db"), self.stored(), seconds)?;
            self.stored_template = Some(Template {
                dir: template,
                first,
                last,
                preload_secs: took.as_secs_f64(),
            });
        }
        let template = self.stored_template.as_ref().expect("set above");
        std::fs::copy(template.dir.join("taskbox.db"), dir.join("taskbox.db"))
            .map_err(|e| format!("copying the preloaded database: {e}"))?;
        Ok(template)
    }

    /// A taskbox child on `dir/taskbox.db`, its log in `dir/taskbox.log`.
    pub fn start_taskbox(&self, dir: &TempDir, workers: Option<usize>) -> Result<Server, String> {
        let exe = self
            .taskbox
            .as_deref()
            .ok_or("no taskbox binary: build it with cargo build --release")?;
        let db = dir.join("taskbox.db");
        let authorization = if self.token {
            Some(format!("Bearer {}", crate::server::create_token(exe, &db)?))
        } else {
            None
        };
        load::set_authorization(authorization);
        Server::taskbox(
            &TaskboxOptions {
                exe,
                db: &dir.join("taskbox.db"),
                durability: &self.durability,
                workers,
            },
            &dir.join("taskbox.log"),
        )
    }
}

/// Stores `n` `sleep` tasks of `seconds` into the database at `db` before any server
/// opens it, in transactions of `PRELOAD_BATCH`, through the store itself. Returns the
/// ids of the first and the last, and how long it took.
pub fn preload(db: &Path, n: u64, seconds: &str) -> Result<(TaskId, TaskId, Duration), String> {
    let started = Instant::now();
    // Past the default quota of unfinished tasks per client: the scenarios store a million.
    let limits = StoreLimits {
        max_unfinished: u64::MAX,
        ..StoreLimits::default()
    };
    let store = Store::open_with(
        db,
        Durability::Normal,
        DEFAULT_POOL_SIZE,
        Arc::new(SystemClock),
        limits,
    )
    .map_err(|e| format!("preload: opening {}: {e}", db.display()))?;
    let mut params = Params::new();
    params.insert("seconds".into(), seconds.into());
    let batch = vec![NewTask::new("sleep", params); PRELOAD_BATCH];
    let (mut first, mut last, mut done) = (None, 0, 0u64);
    while done < n {
        let k = (n - done).min(PRELOAD_BATCH as u64) as usize;
        let stored = store
            .scoped(Scope::All)
            .submit_many(&batch[..k])
            .map_err(|e| format!("preload: storing tasks: {e}"))?;
        first.get_or_insert(stored[0].task.id);
        last = stored.last().expect("a non-empty batch").task.id;
        done += k as u64;
    }
    drop(store);
    // The store's writer closes its connection on its own thread: wait until the last
    // connection has closed, which checkpoints the WAL and removes it, so that the file
    // is whole on its own (to copy, or for the server to open).
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    let wal = PathBuf::from(wal);
    let deadline = Instant::now() + Duration::from_secs(60);
    while wal.exists() {
        if Instant::now() > deadline {
            return Err(format!(
                "preload: {} is still there 60 s after the store closed",
                wal.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok((first.unwrap_or(0), last, started.elapsed()))
}

/// X-Total-Count of `GET /webservicetasks?QUERY&limit=1`.
pub fn total_count(conn: &mut Conn, addr: SocketAddr, query: &str) -> Result<u64, String> {
    let path = if query.is_empty() {
        "/webservicetasks?limit=1".to_string()
    } else {
        format!("/webservicetasks?{query}&limit=1")
    };
    let (status, _) = conn
        .fetch(&load::get(addr, &path))
        .map_err(|e| format!("GET {path}: {e}"))?;
    if status != 200 {
        return Err(format!("GET {path}: status {status}"));
    }
    conn.header("X-Total-Count")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("GET {path}: no X-Total-Count"))
}

/// Polls `count` every `POLL_EVERY` until it reaches `target`; returns when it did (the
/// time the answer that showed it arrived). Fails when the count stalls for
/// `STALL_TIMEOUT`.
pub fn wait_for_count(
    target: u64,
    mut count: impl FnMut() -> Result<u64, String>,
) -> Result<Instant, String> {
    let (mut last, mut moved) = (u64::MAX, Instant::now());
    loop {
        let n = count()?;
        let now = Instant::now();
        if n >= target {
            return Ok(now);
        }
        if n != last {
            (last, moved) = (n, now);
        } else if now.duration_since(moved) > STALL_TIMEOUT {
            return Err(format!(
                "stalled at {n} of {target} completed tasks for {STALL_TIMEOUT:?}"
            ));
        }
        std::thread::sleep(POLL_EVERY);
    }
}

/// A task's JSON (`data` of GET /webservicetasks/{id}).
pub fn get_task(
    conn: &mut Conn,
    addr: SocketAddr,
    id: TaskId,
) -> Result<serde_json::Value, String> {
    let path = format!("/webservicetasks/{id}");
    let (status, body) = conn
        .fetch(&load::get(addr, &path))
        .map_err(|e| format!("GET {path}: {e}"))?;
    if status != 200 {
        return Err(format!(
            "GET {path}: status {status}: {}",
            String::from_utf8_lossy(&body)
        ));
    }
    let value: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| format!("GET {path}: {e}"))?;
    Ok(value["data"].clone())
}

/// The task id in a 202 answer's body.
pub fn task_id_of(body: &[u8]) -> Result<TaskId, String> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        format!(
            "the answer is not JSON: {e}: {}",
            String::from_utf8_lossy(body)
        )
    })?;
    value["data"]["WebServiceTaskId"]
        .as_i64()
        .ok_or_else(|| format!("no task id in {value}"))
}

/// Polls a task until it has ended; returns its JSON and when that was seen.
pub fn wait_for_task(
    conn: &mut Conn,
    addr: SocketAddr,
    id: TaskId,
    timeout: Duration,
) -> Result<(serde_json::Value, Instant), String> {
    let deadline = Instant::now() + timeout;
    loop {
        let task = get_task(conn, addr, id)?;
        let now = Instant::now();
        if task["EndTime"].is_string() {
            return Ok((task, now));
        }
        if now > deadline {
            return Err(format!(
                "task {id} did not end within {timeout:?}: {}",
                task["Status"]
            ));
        }
        std::thread::sleep(POLL_EVERY);
    }
}
