//! Hostile input, over every endpoint, against the real taskbox binary: each request gets a
//! 4xx in the envelope or a closed connection, and after each the server still serves a
//! normal request. Most requests are written with raw TcpStream writes, since an HTTP client
//! would refuse to send them. The limits here are the ones `serve` takes as settings
//! (`--max-headers`, `--read-timeout-secs`, ...), set small so that the tests are quick.
//!
//! Tests that reproduce what tiny_http 0.12 does and taskbox cannot fix from outside it are
//! `#[ignore]`d with the reason; run them with `cargo test --test hostile -- --ignored`.

#[path = "../common/mod.rs"]
mod common;

mod connections;
mod inputs;
mod raw;
mod tiny_http_limits;
