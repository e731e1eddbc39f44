//! Shared by every test binary (integration, crash, disk, hostile), each of which includes
//! it with `#[path = "../common/mod.rs"] mod common;`: start the real taskbox binary on port
//! 0 with its own database ([`Server`]), talk HTTP to it through a client ([`send`] and the
//! API's steps) or over a raw socket ([`raw_exchange`], [`read_head`]), and wait on
//! conditions with a deadline.

#![allow(dead_code)]

mod http;
mod raw;
mod server;
mod tokens;

use std::time::{Duration, Instant};

// A binary that uses none of a module's items would warn of its unused re-export.
#[allow(unused_imports)]
pub use http::*;
#[allow(unused_imports)]
pub use raw::*;
#[allow(unused_imports)]
pub use server::*;
#[allow(unused_imports)]
pub use tokens::*;

/// How long any wait in a test may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// Polls `check` until it gives a value, failing the test after `DEADLINE`.
pub fn wait_until<T>(what: &str, check: impl FnMut() -> Option<T>) -> T {
    poll_until(DEADLINE, check).unwrap_or_else(|| panic!("timed out waiting for {what}"))
}

/// Polls `check` until it gives a value, or `within` has passed (None: a caller that says
/// more than `wait_until` about a failure).
pub fn poll_until<T>(within: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
