//! The limits on what a request may send and on the connections that send them, as the
//! HTTP core enforces them (the settings of the same names in `Config`), and the part of
//! them the HTTP library keeps itself: the bounds of a request's head.

use std::time::Duration;

use crate::config::Config;

/// The longest URL (path and query string). It bounds the query parameters too, which
/// become a task's params.
pub const MAX_URL_BYTES: usize = 16 * 1024;

/// The longest request line the HTTP library reads (a longer one it refuses, 414, without
/// the envelope): room for a URL over `MAX_URL_BYTES`, which taskbox refuses in the
/// envelope naming the limit, with its method and version.
const MAX_REQUEST_LINE: usize = MAX_URL_BYTES + 1024;

/// The limits, copied from the settings.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_upload: u64,
    pub max_json: u64,
    pub max_list_bytes: usize,
    pub max_headers: usize,
    pub max_header_bytes: usize,
    pub read_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub transfer_threads: usize,
    pub min_transfer_rate: u64,
    pub transfer_timeout: Duration,
    pub max_drain_bytes: u64,
    pub max_import_task_ids: usize,
    /// The most tasks one bulk submission may hold.
    pub max_bulk_tasks: usize,
    /// The longest record of a JSON array of records (the bulk API's bodies).
    pub max_record_bytes: u64,
}

impl Limits {
    pub fn of(config: &Config) -> Limits {
        Limits {
            max_upload: config.max_upload,
            max_json: config.max_json,
            max_list_bytes: config.max_list_bytes,
            max_headers: config.max_headers,
            max_header_bytes: config.max_header_bytes,
            read_timeout: config.read_timeout,
            max_connections: config.max_connections,
            max_connections_per_ip: config.max_connections_per_ip,
            transfer_threads: config.transfer_threads,
            min_transfer_rate: config.min_transfer_rate,
            transfer_timeout: config.transfer_timeout,
            max_drain_bytes: config.max_drain_bytes,
            max_import_task_ids: config.max_import_task_ids,
            max_bulk_tasks: config.max_bulk_tasks,
            max_record_bytes: config.max_record_bytes,
        }
    }

    /// What the HTTP library keeps of them on every connection: a head of at most
    /// `max_header_bytes` of header lines (past it, taskbox answers 431), arriving whole
    /// within the read timeout; every other read waits at most the read timeout.
    pub fn head(&self) -> tiny_http::HeadLimits {
        tiny_http::HeadLimits {
            max_request_line: MAX_REQUEST_LINE,
            max_header_bytes: self.max_header_bytes,
            max_drain: usize::try_from(self.max_drain_bytes).unwrap_or(usize::MAX),
            head_timeout: Some(self.read_timeout),
            read_timeout: Some(self.read_timeout),
        }
    }

    /// The fewest bytes a transfer must move in each read timeout.
    pub fn min_bytes_per_window(&self) -> u64 {
        let secs = self.read_timeout.as_secs_f64();
        (self.min_transfer_rate as f64 * secs).ceil() as u64
    }
}
