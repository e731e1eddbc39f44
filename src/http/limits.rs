//! The limits on what a request may send and on the connections that send them, as the
//! HTTP core enforces them (the settings of the same names in `Config`).

use std::time::Duration;

use crate::config::Config;

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
        }
    }
}
