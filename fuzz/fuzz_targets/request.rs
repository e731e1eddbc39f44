//! Fuzz target: arbitrary bytes as a raw HTTP request (request line, headers, body), made
//! into a real tiny_http request without a socket and answered by the function the HTTP
//! threads call, against a real store on a temporary database created once per process (on
//! /dev/shm when there is one); the same bytes also go through the request parsers directly.
//! See `taskbox::fuzz_api::RequestHarness` for what is checked.
#![no_main]

use std::sync::Mutex;

use libfuzzer_sys::fuzz_target;
use taskbox::fuzz_api::{scratch_dir, RequestHarness};

static HARNESS: Mutex<Option<RequestHarness>> = Mutex::new(None);

fuzz_target!(|data: &[u8]| {
    let mut harness = HARNESS.lock().unwrap_or_else(|e| e.into_inner());
    harness
        .get_or_insert_with(|| RequestHarness::new(&scratch_dir("request")))
        .request(data);
});
