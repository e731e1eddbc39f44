//! The service's settings: one `Config`, its defaults as named constants, and `validate()`.
//! The command line (src/main.rs) fills it from flags and TASKBOX_* variables; a library user
//! fills it directly.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::Error;
pub use crate::store::Durability;

/// The database file when none is named.
pub const DEFAULT_DB: &str = "./taskbox.db";
/// The address served when none is named: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// 1 GiB: the largest file a client may upload.
pub const DEFAULT_MAX_UPLOAD: u64 = 1 << 30;
/// 1 MiB: the largest JSON body, and the most the non-file fields of a form may take.
pub const DEFAULT_MAX_JSON: u64 = 1 << 20;
/// Seconds a shutdown lets running tasks finish.
pub const DEFAULT_GRACE_SECS: u64 = 10;
/// The upper bounds `validate` enforces. Well above any sensible setting, and far enough
/// below the integer limits that no sum or deadline computed from a setting can overflow.
/// 1 TiB: the largest `max_upload`.
pub const MAX_MAX_UPLOAD: u64 = 1 << 40;
/// 1 GiB: the largest `max_json` (a JSON body is held in memory whole).
pub const MAX_MAX_JSON: u64 = 1 << 30;
/// One day: the longest grace period.
pub const MAX_GRACE_SECS: u64 = 86_400;
/// 100 header lines and 64 KiB of them in all: far above what any client sends (a browser
/// sends about 20 lines and 2 KiB), far below what would cost memory.
pub const DEFAULT_MAX_HEADERS: usize = 100;
/// The default of `max_header_bytes`.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 64 * 1024;
/// The bounds `validate` enforces on them.
pub const MAX_MAX_HEADERS: usize = 10_000;
/// The smallest `max_header_bytes`.
pub const MIN_MAX_HEADER_BYTES: usize = 1024;
/// The largest `max_header_bytes`.
pub const MAX_MAX_HEADER_BYTES: usize = 16 << 20;
/// 30 s: how long a client may take to send a request's head (from its connection, or the
/// end of its previous request's body, to the blank line after the headers), how long a
/// kept-alive connection may stay idle, the longest pause while it sends a body or reads an
/// answer, and the window over which `min_transfer_rate` is measured.
pub const DEFAULT_READ_TIMEOUT_SECS: u64 = 30;
/// One hour: the longest read timeout.
pub const MAX_READ_TIMEOUT_SECS: u64 = 3600;
/// Open client connections beyond which a new one is closed at once. Each costs the HTTP
/// library a thread and two file descriptors: at start the process's descriptor limit is
/// raised to what they need (see `descriptors_needed`), or the start is refused.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1000;
/// The largest `max_connections`.
pub const MAX_MAX_CONNECTIONS: usize = 100_000;
/// Threads that read and answer HTTP requests. Bounded so that a flood of slow requests
/// cannot start unbounded work.
pub const DEFAULT_HTTP_THREADS: usize = 16;
/// 30 days: how long a finished task and its files are kept.
pub const DEFAULT_RETENTION_SECS: u64 = 30 * 86_400;
/// 100 years: the longest retention (0 keeps finished tasks for ever).
pub const MAX_RETENTION_SECS: u64 = 100 * 365 * 86_400;
/// 1 PiB: the largest quota and free-space floor.
pub const MAX_QUOTA_BYTES: u64 = 1 << 50;
/// The most unfinished tasks a client's quota may allow.
pub const MAX_MAX_UNFINISHED: u64 = 1 << 40;
pub use crate::store::limits::{
    DEFAULT_MAX_SNAPSHOT_SECS, DEFAULT_MAX_UNFINISHED, DEFAULT_MIN_FREE_BYTES, DEFAULT_QUOTA_BYTES,
};
/// One hour: the longest `sleep` task accepted. Long enough for any demo or measurement,
/// short enough that a few sleeps cannot hold every worker for a day.
pub const DEFAULT_MAX_SLEEP_SECS: u64 = 3600;
/// One day: the largest `max_sleep_secs` (the most `sleep` ever took).
pub const MAX_MAX_SLEEP_SECS: u64 = 86_400;
/// 4 MiB: the most bytes of tasks one page of the list answers with (as JSON); a page is
/// cut short there, whatever its `limit`. A thousand tasks of usual size take about 600 KiB.
pub const DEFAULT_MAX_LIST_BYTES: usize = 4 << 20;
/// The bounds of `max_list_bytes`: 64 KiB to 1 GiB.
pub const MIN_MAX_LIST_BYTES: usize = 64 << 10;
/// The largest `max_list_bytes`.
pub const MAX_MAX_LIST_BYTES: usize = 1 << 30;
/// 1 MiB: the longest record of a JSON array of records (one object, `dataset.update`'s
/// input), as long as the largest JSON body. A record is parsed whole, into several times
/// its size, so this bounds what one costs; a longer one stops the reading.
pub const DEFAULT_MAX_RECORD_BYTES: u64 = 1 << 20;
/// The bounds of `max_record_bytes`: 1 KiB to 1 GiB.
pub const MIN_MAX_RECORD_BYTES: u64 = 1024;
/// The largest `max_record_bytes`.
pub const MAX_MAX_RECORD_BYTES: u64 = 1 << 30;
/// 64 KiB: the longest value a `dataset.update` record may set in a cell. A field of a case
/// or a contact (a name, an address, a note) is far shorter; this bounds what one record
/// writes into a dataset, and a longer value fails its record alone.
pub const DEFAULT_MAX_VALUE_BYTES: u64 = 64 << 10;
/// The largest `max_value_bytes`: 1 GiB.
pub const MAX_MAX_VALUE_BYTES: u64 = 1 << 30;
/// Open connections from one IP address beyond which a new one from it is closed at once: a
/// tenth of `max_connections`, so that one address cannot take every connection (every
/// local client shares 127.0.0.1: raise it on a machine with many local clients).
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 100;
/// Threads that read request bodies from the network and send long answers (files, long
/// lists). Only these wait for a client's bytes, so slow clients hold at most these, never
/// the HTTP threads; half as many as the HTTP threads.
pub const DEFAULT_TRANSFER_THREADS: usize = 8;
/// 1 KiB/s: the slowest a body or an answer may move, measured over each read timeout (so
/// 30 KiB in every 30 s by default). Any real network is far faster; a client trickling
/// bytes to hold a thread is far slower.
pub const DEFAULT_MIN_TRANSFER_RATE: u64 = 1024;
/// The largest `min_transfer_rate`: 1 GiB/s.
pub const MAX_MIN_TRANSFER_RATE: u64 = 1 << 30;
/// One hour: the longest a body may take to arrive, or an answer to be sent. A 1 GiB upload
/// (the default `max_upload`) needs 300 KB/s to fit.
pub const DEFAULT_TRANSFER_TIMEOUT_SECS: u64 = 3600;
/// One day: the longest `transfer_timeout`.
pub const MAX_TRANSFER_TIMEOUT_SECS: u64 = 86_400;
/// 1 MiB: the most of a request taskbox reads only to throw it away (a body its answer did
/// not need, the rest of a head over its limit), so that a client that sends its whole
/// request before reading sees the answer; past it the connection is closed after the
/// answer instead. Reading it costs a transfer thread a moment, never memory.
pub const DEFAULT_MAX_DRAIN_BYTES: u64 = 1 << 20;
/// The largest `max_drain_bytes`: 1 GiB.
pub const MAX_MAX_DRAIN_BYTES: u64 = 1 << 30;
/// 2 s: the longest a failed authentication's answer is held back (the delay grows from
/// 50 ms, doubling per failure of an address): long enough that guessing tokens from one
/// address gets nowhere, short enough that a person who mistyped waits a moment.
pub const DEFAULT_AUTH_MAX_DELAY_MS: u64 = 2000;
/// The largest `auth_max_delay`: one minute.
pub const MAX_AUTH_MAX_DELAY_MS: u64 = 60_000;
/// 10 minutes: how long an address's failed authentications count against it.
pub const DEFAULT_AUTH_FORGET_SECS: u64 = 600;
/// The largest `auth_forget`: one day.
pub const MAX_AUTH_FORGET_SECS: u64 = 86_400;
pub use crate::auth::AuthMode;

/// The most task ids one import-result query may name (`importTaskIds`): a page's worth
/// (a page holds at most 100 results). Each is one index lookup.
pub const DEFAULT_MAX_IMPORT_TASK_IDS: usize = 100;
/// The largest `max_import_task_ids`.
pub const MAX_MAX_IMPORT_TASK_IDS: usize = 10_000;
/// The most tasks one bulk submission (POST /webservicetasks/bulk) may hold: all are stored
/// in one write, which holds the writer (every other write waits) for about a millisecond
/// per 100 tasks.
pub const DEFAULT_MAX_BULK_TASKS: usize = 1000;
/// The largest `max_bulk_tasks`.
pub const MAX_MAX_BULK_TASKS: usize = 100_000;
/// File descriptors that are neither a connection's nor a pooled SQLite connection's: the
/// standard streams, the listening socket (twice), the lock file, the SQLite writer, the
/// connection guard's, SQLite's temporary files.
pub const OTHER_DESCRIPTORS: u64 = 64;

#[derive(Debug, Clone)]
/// The service's settings; see the constants of this module for their defaults and bounds.
pub struct Config {
    /// The SQLite database file (created if missing).
    pub db_path: PathBuf,
    /// Address to listen on; port 0 picks a free one (see `Service::addr`).
    pub listen: String,
    /// Worker threads running tasks.
    pub workers: usize,
    /// Threads answering HTTP requests.
    pub http_threads: usize,
    /// The largest file upload, in bytes.
    pub max_upload: u64,
    /// The largest JSON body (and the most a form's fields may take), in bytes.
    pub max_json: u64,
    /// The most header lines a request may carry, and their total size (431 beyond).
    pub max_headers: usize,
    /// The most bytes a request's header lines may take in all.
    pub max_header_bytes: usize,
    /// See `DEFAULT_READ_TIMEOUT_SECS`.
    pub read_timeout: Duration,
    /// See `DEFAULT_MAX_CONNECTIONS`.
    pub max_connections: usize,
    /// See `DEFAULT_MAX_CONNECTIONS_PER_IP`.
    pub max_connections_per_ip: usize,
    /// See `DEFAULT_TRANSFER_THREADS`.
    pub transfer_threads: usize,
    /// See `DEFAULT_MIN_TRANSFER_RATE` (bytes per second).
    pub min_transfer_rate: u64,
    /// See `DEFAULT_TRANSFER_TIMEOUT_SECS`.
    pub transfer_timeout: Duration,
    /// See `DEFAULT_MAX_DRAIN_BYTES`.
    pub max_drain_bytes: u64,
    /// How long a shutdown lets running tasks finish before marking them interrupted.
    pub grace: Duration,
    /// The most bytes of stored files one client may have (uploads past it get 413).
    pub quota_bytes: u64,
    /// The most tasks one client may have waiting or running (submissions past it get 429).
    pub max_unfinished_tasks: u64,
    /// The free space on the database's filesystem below which uploads and submissions get
    /// 507 (reads, downloads and deletes go on).
    pub min_free_bytes: u64,
    /// The longest a download reads from one snapshot of the database.
    pub max_snapshot: Duration,
    /// How long a finished task and its files are kept (0: for ever).
    pub retention: Duration,
    /// Host names (or addresses) requests may name besides the loopback ones and the
    /// address listened on; see `http::origin`.
    pub allowed_hosts: Vec<String>,
    /// How hard a commit is pushed to the disk.
    pub durability: Durability,
    /// The longest `sleep` task accepted, in seconds (used by [`crate::Registry::builtin_with`]).
    pub max_sleep_secs: u64,
    /// See `DEFAULT_MAX_LIST_BYTES`.
    pub max_list_bytes: usize,
    /// When requests must carry a token.
    pub auth: AuthMode,
    /// Whether the open mode (no token) may serve on an address other than loopback.
    pub allow_open_network: bool,
    /// See `DEFAULT_AUTH_MAX_DELAY_MS`.
    pub auth_max_delay: Duration,
    /// See `DEFAULT_AUTH_FORGET_SECS`.
    pub auth_forget: Duration,
    /// See `DEFAULT_MAX_IMPORT_TASK_IDS`.
    pub max_import_task_ids: usize,
    /// See `DEFAULT_MAX_BULK_TASKS`.
    pub max_bulk_tasks: usize,
    /// See `DEFAULT_MAX_RECORD_BYTES` (used by [`crate::Registry::builtin_with`]).
    pub max_record_bytes: u64,
    /// See `DEFAULT_MAX_VALUE_BYTES` (used by [`crate::Registry::builtin_with`]).
    pub max_value_bytes: u64,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            db_path: PathBuf::from(DEFAULT_DB),
            listen: DEFAULT_LISTEN.to_string(),
            workers: default_workers(),
            http_threads: DEFAULT_HTTP_THREADS,
            max_upload: DEFAULT_MAX_UPLOAD,
            max_json: DEFAULT_MAX_JSON,
            max_headers: DEFAULT_MAX_HEADERS,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            read_timeout: Duration::from_secs(DEFAULT_READ_TIMEOUT_SECS),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_ip: DEFAULT_MAX_CONNECTIONS_PER_IP,
            transfer_threads: DEFAULT_TRANSFER_THREADS,
            min_transfer_rate: DEFAULT_MIN_TRANSFER_RATE,
            transfer_timeout: Duration::from_secs(DEFAULT_TRANSFER_TIMEOUT_SECS),
            max_drain_bytes: DEFAULT_MAX_DRAIN_BYTES,
            grace: Duration::from_secs(DEFAULT_GRACE_SECS),
            allowed_hosts: Vec::new(),
            quota_bytes: DEFAULT_QUOTA_BYTES,
            max_unfinished_tasks: DEFAULT_MAX_UNFINISHED,
            min_free_bytes: DEFAULT_MIN_FREE_BYTES,
            max_snapshot: Duration::from_secs(DEFAULT_MAX_SNAPSHOT_SECS),
            retention: Duration::from_secs(DEFAULT_RETENTION_SECS),
            durability: Durability::Full,
            max_sleep_secs: DEFAULT_MAX_SLEEP_SECS,
            max_list_bytes: DEFAULT_MAX_LIST_BYTES,
            auth: AuthMode::Auto,
            allow_open_network: false,
            auth_max_delay: Duration::from_millis(DEFAULT_AUTH_MAX_DELAY_MS),
            auth_forget: Duration::from_secs(DEFAULT_AUTH_FORGET_SECS),
            max_import_task_ids: DEFAULT_MAX_IMPORT_TASK_IDS,
            max_bulk_tasks: DEFAULT_MAX_BULK_TASKS,
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
        }
    }
}

/// One worker per CPU: tasks are mostly CPU- or disk-bound, and the machine is small.
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

impl Config {
    /// Checks every setting against its bounds; the error names the setting at fault.
    pub fn validate(&self) -> Result<(), Error> {
        if self.workers == 0 || self.workers > 1024 {
            return Err(Error::Config(format!(
                "workers must be between 1 and 1024, not {}",
                self.workers
            )));
        }
        if self.http_threads == 0 || self.http_threads > 1024 {
            return Err(Error::Config(format!(
                "http threads must be between 1 and 1024, not {}",
                self.http_threads
            )));
        }
        if self.max_upload == 0 || self.max_upload > MAX_MAX_UPLOAD {
            return Err(Error::Config(format!(
                "max-upload must be at least 1 byte and at most {MAX_MAX_UPLOAD} bytes (1 TiB), not {}",
                self.max_upload
            )));
        }
        if self.max_json < 1024 || self.max_json > MAX_MAX_JSON {
            return Err(Error::Config(format!(
                "max-json must be at least 1024 bytes and at most {MAX_MAX_JSON} bytes (1 GiB), not {}",
                self.max_json
            )));
        }
        if self.max_headers == 0 || self.max_headers > MAX_MAX_HEADERS {
            return Err(Error::Config(format!(
                "max-headers must be between 1 and {MAX_MAX_HEADERS}, not {}",
                self.max_headers
            )));
        }
        if self.max_header_bytes < MIN_MAX_HEADER_BYTES
            || self.max_header_bytes > MAX_MAX_HEADER_BYTES
        {
            return Err(Error::Config(format!(
                "max-header-bytes must be at least {MIN_MAX_HEADER_BYTES} bytes and at most {MAX_MAX_HEADER_BYTES} bytes (16 MiB), not {}",
                self.max_header_bytes
            )));
        }
        if self.read_timeout < Duration::from_secs(1)
            || self.read_timeout > Duration::from_secs(MAX_READ_TIMEOUT_SECS)
        {
            return Err(Error::Config(format!(
                "read-timeout-secs must be between 1 and {MAX_READ_TIMEOUT_SECS} seconds, not {:?}",
                self.read_timeout
            )));
        }
        if self.max_connections == 0 || self.max_connections > MAX_MAX_CONNECTIONS {
            return Err(Error::Config(format!(
                "max-connections must be between 1 and {MAX_MAX_CONNECTIONS}, not {}",
                self.max_connections
            )));
        }
        if self.max_connections_per_ip == 0 || self.max_connections_per_ip > MAX_MAX_CONNECTIONS {
            return Err(Error::Config(format!(
                "max-connections-per-ip must be between 1 and {MAX_MAX_CONNECTIONS}, not {}",
                self.max_connections_per_ip
            )));
        }
        if self.transfer_threads == 0 || self.transfer_threads > 1024 {
            return Err(Error::Config(format!(
                "transfer-threads must be between 1 and 1024, not {}",
                self.transfer_threads
            )));
        }
        if self.min_transfer_rate == 0 || self.min_transfer_rate > MAX_MIN_TRANSFER_RATE {
            return Err(Error::Config(format!(
                "min-transfer-rate must be at least 1 and at most {MAX_MIN_TRANSFER_RATE} bytes per second, not {}",
                self.min_transfer_rate
            )));
        }
        if self.transfer_timeout < Duration::from_secs(1)
            || self.transfer_timeout > Duration::from_secs(MAX_TRANSFER_TIMEOUT_SECS)
        {
            return Err(Error::Config(format!(
                "transfer-timeout-secs must be between 1 and {MAX_TRANSFER_TIMEOUT_SECS} seconds, not {:?}",
                self.transfer_timeout
            )));
        }
        if self.max_drain_bytes > MAX_MAX_DRAIN_BYTES {
            return Err(Error::Config(format!(
                "max-drain-bytes must be at most {MAX_MAX_DRAIN_BYTES} bytes (1 GiB), not {}",
                self.max_drain_bytes
            )));
        }
        if self.grace > Duration::from_secs(MAX_GRACE_SECS) {
            return Err(Error::Config(format!(
                "grace-secs must be at most {MAX_GRACE_SECS} seconds (one day), not {:?}",
                self.grace
            )));
        }
        if let Some(bad) = self.allowed_hosts.iter().find(|h| {
            h.trim().is_empty()
                || h.len() > 253
                || h.contains(|c: char| c.is_whitespace() || c == '/')
        }) {
            return Err(Error::Config(format!(
                "allowed-hosts must list host names or addresses, not {bad:?}"
            )));
        }
        if self.quota_bytes == 0 || self.quota_bytes > MAX_QUOTA_BYTES {
            return Err(Error::Config(format!(
                "quota-bytes must be at least 1 byte and at most {MAX_QUOTA_BYTES} (1 PiB), not {}",
                self.quota_bytes
            )));
        }
        if self.max_unfinished_tasks == 0 || self.max_unfinished_tasks > MAX_MAX_UNFINISHED {
            return Err(Error::Config(format!(
                "max-unfinished-tasks must be between 1 and {MAX_MAX_UNFINISHED}, not {}",
                self.max_unfinished_tasks
            )));
        }
        if self.min_free_bytes > MAX_QUOTA_BYTES {
            return Err(Error::Config(format!(
                "min-free-bytes must be at most {MAX_QUOTA_BYTES} (1 PiB), not {}",
                self.min_free_bytes
            )));
        }
        if self.max_snapshot > Duration::from_secs(MAX_READ_TIMEOUT_SECS) {
            return Err(Error::Config(format!(
                "max-snapshot-secs must be at most {MAX_READ_TIMEOUT_SECS} seconds, not {:?}",
                self.max_snapshot
            )));
        }
        if self.retention > Duration::from_secs(MAX_RETENTION_SECS) {
            return Err(Error::Config(format!(
                "retention-secs must be at most {MAX_RETENTION_SECS} seconds (100 years), not {:?}",
                self.retention
            )));
        }
        if self.max_sleep_secs == 0 || self.max_sleep_secs > MAX_MAX_SLEEP_SECS {
            return Err(Error::Config(format!(
                "max-sleep-secs must be between 1 and {MAX_MAX_SLEEP_SECS} seconds (one day), not {}",
                self.max_sleep_secs
            )));
        }
        if self.max_list_bytes < MIN_MAX_LIST_BYTES || self.max_list_bytes > MAX_MAX_LIST_BYTES {
            return Err(Error::Config(format!(
                "max-list-bytes must be at least {MIN_MAX_LIST_BYTES} bytes and at most {MAX_MAX_LIST_BYTES} bytes (1 GiB), not {}",
                self.max_list_bytes
            )));
        }
        let delay_ms = self.auth_max_delay.as_millis();
        if delay_ms > u128::from(MAX_AUTH_MAX_DELAY_MS) {
            return Err(Error::Config(format!(
                "auth-max-delay-ms must be at most {MAX_AUTH_MAX_DELAY_MS} ms (one minute), not {delay_ms}"
            )));
        }
        let forget = self.auth_forget.as_secs();
        if forget == 0 || forget > MAX_AUTH_FORGET_SECS {
            return Err(Error::Config(format!(
                "auth-forget-secs must be between 1 and {MAX_AUTH_FORGET_SECS} seconds (one day), not {forget}"
            )));
        }
        if self.max_import_task_ids == 0 || self.max_import_task_ids > MAX_MAX_IMPORT_TASK_IDS {
            return Err(Error::Config(format!(
                "max-import-task-ids must be between 1 and {MAX_MAX_IMPORT_TASK_IDS}, not {}",
                self.max_import_task_ids
            )));
        }
        if self.max_bulk_tasks == 0 || self.max_bulk_tasks > MAX_MAX_BULK_TASKS {
            return Err(Error::Config(format!(
                "max-bulk-tasks must be between 1 and {MAX_MAX_BULK_TASKS}, not {}",
                self.max_bulk_tasks
            )));
        }
        if !(MIN_MAX_RECORD_BYTES..=MAX_MAX_RECORD_BYTES).contains(&self.max_record_bytes) {
            return Err(Error::Config(format!(
                "max-record-bytes must be at least {MIN_MAX_RECORD_BYTES} bytes and at most {MAX_MAX_RECORD_BYTES} bytes (1 GiB), not {}",
                self.max_record_bytes
            )));
        }
        if !(1..=MAX_MAX_VALUE_BYTES).contains(&self.max_value_bytes) {
            return Err(Error::Config(format!(
                "max-value-bytes must be at least 1 byte and at most {MAX_MAX_VALUE_BYTES} bytes (1 GiB), not {}",
                self.max_value_bytes
            )));
        }
        if self.db_path.as_os_str().is_empty() {
            return Err(Error::Config("db must name a file".into()));
        }
        Ok(())
    }

    /// SQLite connections in the pool: one for every thread that may hold one at once (an
    /// HTTP thread; a transfer thread sending a file, and an answer waiting for one; a
    /// worker), and a few to spare.
    pub fn pool_connections(&self) -> usize {
        self.http_threads + 2 * self.transfer_threads + self.workers + 4
    }

    /// The file descriptors the process needs at most: two per connection (the HTTP library
    /// holds a socket twice), three per pooled SQLite connection (the database, its WAL and
    /// its shared memory), and `OTHER_DESCRIPTORS`.
    pub fn descriptors_needed(&self) -> u64 {
        2 * self.max_connections as u64 + 3 * self.pool_connections() as u64 + OTHER_DESCRIPTORS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(config: Config) -> String {
        match config.validate() {
            Err(e) => e.to_string(),
            Ok(()) => panic!("accepted: {config:?}"),
        }
    }

    #[test]
    fn the_defaults_and_the_bounds_themselves_are_valid() {
        Config::default().validate().unwrap();
        Config {
            max_upload: MAX_MAX_UPLOAD,
            max_json: MAX_MAX_JSON,
            max_headers: MAX_MAX_HEADERS,
            max_header_bytes: MAX_MAX_HEADER_BYTES,
            read_timeout: Duration::from_secs(MAX_READ_TIMEOUT_SECS),
            max_connections: MAX_MAX_CONNECTIONS,
            max_connections_per_ip: MAX_MAX_CONNECTIONS,
            transfer_threads: 1024,
            min_transfer_rate: MAX_MIN_TRANSFER_RATE,
            transfer_timeout: Duration::from_secs(MAX_TRANSFER_TIMEOUT_SECS),
            max_drain_bytes: MAX_MAX_DRAIN_BYTES,
            grace: Duration::from_secs(MAX_GRACE_SECS),
            quota_bytes: MAX_QUOTA_BYTES,
            max_unfinished_tasks: MAX_MAX_UNFINISHED,
            min_free_bytes: MAX_QUOTA_BYTES,
            max_snapshot: Duration::from_secs(MAX_READ_TIMEOUT_SECS),
            retention: Duration::from_secs(MAX_RETENTION_SECS),
            ..Config::default()
        }
        .validate()
        .unwrap();
    }

    #[test]
    fn settings_beyond_the_bounds_are_refused_naming_them() {
        type Change = fn(&mut Config);
        let cases: [(Change, &str); 31] = [
            (|c| c.quota_bytes = 0, "quota-bytes"),
            (|c| c.quota_bytes = MAX_QUOTA_BYTES + 1, "quota-bytes"),
            (|c| c.max_unfinished_tasks = 0, "max-unfinished-tasks"),
            (|c| c.min_free_bytes = u64::MAX, "min-free-bytes"),
            (|c| c.max_snapshot = Duration::MAX, "max-snapshot-secs"),
            (|c| c.retention = Duration::MAX, "retention-secs"),
            (|c| c.max_connections_per_ip = 0, "max-connections-per-ip"),
            (
                |c| c.max_connections_per_ip = MAX_MAX_CONNECTIONS + 1,
                "max-connections-per-ip",
            ),
            (|c| c.transfer_threads = 0, "transfer-threads"),
            (|c| c.transfer_threads = 1025, "transfer-threads"),
            (|c| c.min_transfer_rate = 0, "min-transfer-rate"),
            (|c| c.min_transfer_rate = u64::MAX, "min-transfer-rate"),
            (
                |c| c.transfer_timeout = Duration::ZERO,
                "transfer-timeout-secs",
            ),
            (
                |c| c.transfer_timeout = Duration::MAX,
                "transfer-timeout-secs",
            ),
            (|c| c.max_drain_bytes = u64::MAX, "max-drain-bytes"),
            (|c| c.max_headers = 0, "max-headers"),
            (|c| c.max_headers = MAX_MAX_HEADERS + 1, "max-headers"),
            (|c| c.max_header_bytes = 1023, "max-header-bytes"),
            (|c| c.max_header_bytes = usize::MAX, "max-header-bytes"),
            (|c| c.read_timeout = Duration::ZERO, "read-timeout-secs"),
            (|c| c.read_timeout = Duration::MAX, "read-timeout-secs"),
            (|c| c.max_connections = 0, "max-connections"),
            (|c| c.max_connections = usize::MAX, "max-connections"),
            (|c| c.max_upload = 0, "max-upload"),
            (|c| c.max_upload = MAX_MAX_UPLOAD + 1, "max-upload"),
            (|c| c.max_upload = u64::MAX, "max-upload"),
            (|c| c.max_json = 1023, "max-json"),
            (|c| c.max_json = MAX_MAX_JSON + 1, "max-json"),
            (|c| c.max_json = u64::MAX, "max-json"),
            (
                |c| c.grace = Duration::from_secs(MAX_GRACE_SECS + 1),
                "grace-secs",
            ),
            (|c| c.grace = Duration::MAX, "grace-secs"),
        ];
        for (change, name) in cases {
            let mut config = Config::default();
            change(&mut config);
            let message = refused(config);
            assert!(message.contains(name), "{message:?} does not name {name}");
        }
    }

    #[test]
    fn the_sleep_and_list_bounds_are_valid_and_beyond_them_refused_naming_them() {
        for (sleep, list) in [
            (1, MIN_MAX_LIST_BYTES),
            (MAX_MAX_SLEEP_SECS, MAX_MAX_LIST_BYTES),
        ] {
            let config = Config {
                max_sleep_secs: sleep,
                max_list_bytes: list,
                ..Config::default()
            };
            config.validate().unwrap();
        }
        let sleeps = [0, MAX_MAX_SLEEP_SECS + 1].map(|max_sleep_secs| Config {
            max_sleep_secs,
            ..Config::default()
        });
        let lists = [MIN_MAX_LIST_BYTES - 1, usize::MAX].map(|max_list_bytes| Config {
            max_list_bytes,
            ..Config::default()
        });
        let named = sleeps.map(|c| (c, "max-sleep-secs"));
        for (config, name) in named
            .into_iter()
            .chain(lists.map(|c| (c, "max-list-bytes")))
        {
            let message = refused(config);
            assert!(message.contains(name), "{message:?} does not name {name}");
        }
    }

    #[test]
    fn the_import_task_ids_bounds_are_valid_and_beyond_them_refused_naming_it() {
        for max_import_task_ids in [1, MAX_MAX_IMPORT_TASK_IDS] {
            let config = Config {
                max_import_task_ids,
                ..Config::default()
            };
            config.validate().unwrap();
        }
        for max_import_task_ids in [0, MAX_MAX_IMPORT_TASK_IDS + 1] {
            let message = refused(Config {
                max_import_task_ids,
                ..Config::default()
            });
            assert!(message.contains("max-import-task-ids"), "{message:?}");
        }
    }

    #[test]
    fn the_bulk_tasks_bounds_are_valid_and_beyond_them_refused_naming_it() {
        for max_bulk_tasks in [1, MAX_MAX_BULK_TASKS] {
            let config = Config {
                max_bulk_tasks,
                ..Config::default()
            };
            config.validate().unwrap();
        }
        for max_bulk_tasks in [0, MAX_MAX_BULK_TASKS + 1] {
            let message = refused(Config {
                max_bulk_tasks,
                ..Config::default()
            });
            assert!(message.contains("max-bulk-tasks"), "{message:?}");
        }
    }

    #[test]
    fn the_record_bounds_are_valid_and_beyond_them_refused_naming_them() {
        for (record, value) in [
            (MIN_MAX_RECORD_BYTES, 1),
            (MAX_MAX_RECORD_BYTES, MAX_MAX_VALUE_BYTES),
        ] {
            let config = Config {
                max_record_bytes: record,
                max_value_bytes: value,
                ..Config::default()
            };
            config.validate().unwrap();
        }
        let cases = [
            (MIN_MAX_RECORD_BYTES - 1, 1, "max-record-bytes"),
            (MAX_MAX_RECORD_BYTES + 1, 1, "max-record-bytes"),
            (MIN_MAX_RECORD_BYTES, 0, "max-value-bytes"),
            (
                MIN_MAX_RECORD_BYTES,
                MAX_MAX_VALUE_BYTES + 1,
                "max-value-bytes",
            ),
        ];
        for (max_record_bytes, max_value_bytes, name) in cases {
            let message = refused(Config {
                max_record_bytes,
                max_value_bytes,
                ..Config::default()
            });
            assert!(message.contains(name), "{message:?} does not name {name}");
        }
    }
}
