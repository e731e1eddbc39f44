//! The service's settings: one `Config`, its defaults as named constants, and `validate()`.
//! The command line (src/main.rs) fills it from flags and TASKBOX_* variables; a library user
//! fills it directly.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::Error;

pub const DEFAULT_DB: &str = "./taskbox.db";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// 1 GiB: the largest file a client may upload.
pub const DEFAULT_MAX_UPLOAD: u64 = 1 << 30;
/// 1 MiB: the largest JSON body, and the most the non-file fields of a form may take.
pub const DEFAULT_MAX_JSON: u64 = 1 << 20;
pub const DEFAULT_GRACE_SECS: u64 = 10;
/// Threads that read and answer HTTP requests. Bounded so that a flood of slow requests
/// cannot start unbounded work.
pub const DEFAULT_HTTP_THREADS: usize = 16;

/// How hard a commit is pushed to the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// `synchronous=FULL`: a commit survives a process crash and a power loss.
    Full,
    /// `synchronous=NORMAL`: a commit survives a process crash; a power loss may roll back
    /// the last commits (never corrupts the file).
    Normal,
}

impl Durability {
    pub fn parse(text: &str) -> Option<Durability> {
        match text.to_ascii_lowercase().as_str() {
            "full" => Some(Durability::Full),
            "normal" => Some(Durability::Normal),
            _ => None,
        }
    }

    /// The value of `PRAGMA synchronous` that SQLite reports for this setting.
    pub fn synchronous_level(self) -> i64 {
        match self {
            Durability::Full => 2,
            Durability::Normal => 1,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub db_path: PathBuf,
    /// Address to listen on; port 0 picks a free one (see `Service::addr`).
    pub listen: String,
    /// Worker threads running tasks.
    pub workers: usize,
    pub http_threads: usize,
    pub max_upload: u64,
    pub max_json: u64,
    /// How long a shutdown lets running tasks finish before marking them interrupted.
    pub grace: Duration,
    pub durability: Durability,
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
            grace: Duration::from_secs(DEFAULT_GRACE_SECS),
            durability: Durability::Full,
        }
    }
}

/// One worker per CPU: tasks are mostly CPU- or disk-bound, and the machine is small.
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

impl Config {
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
        if self.max_upload == 0 {
            return Err(Error::Config("max-upload must be at least 1 byte".into()));
        }
        if self.max_json < 1024 {
            return Err(Error::Config("max-json must be at least 1024 bytes".into()));
        }
        if self.db_path.as_os_str().is_empty() {
            return Err(Error::Config("db must name a file".into()));
        }
        Ok(())
    }
}
