//! Hostile input, over every endpoint, against the real taskbox binary: each request gets a
//! 4xx in the envelope or a closed connection, and after each the server still serves a
//! normal request. Most requests are written with raw TcpStream writes, since an HTTP client
//! would refuse to send them. The limits here are the ones `serve` takes as settings
//! (`--max-headers`, `--read-timeout-secs`, ...), set small so that the tests are quick.
//!
//! What tiny_http 0.12 did and taskbox fixed in its patched copy of it is shown in
//! tiny_http_limits.rs (see vendor/tiny_http/PATCHES.md).

#[path = "../common/mod.rs"]
mod common;

mod connections;
mod inputs;
mod log_lines;
mod per_address;
mod raw;
mod tiny_http_limits;
