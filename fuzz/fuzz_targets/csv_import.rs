//! Fuzz target: arbitrary bytes as an uploaded CSV file, imported by the real engine into a
//! real store on a temporary database created once per process (on /dev/shm when there is
//! one). The first byte chooses the key and whether the file is imported twice; see
//! `taskbox::fuzz_api::ImportHarness` for what is checked.
#![no_main]

use std::sync::Mutex;

use libfuzzer_sys::fuzz_target;
use taskbox::fuzz_api::{scratch_dir, ImportHarness};
use taskbox::Durability;

static HARNESS: Mutex<Option<ImportHarness>> = Mutex::new(None);

fuzz_target!(|data: &[u8]| {
    let mut harness = HARNESS.lock().unwrap_or_else(|e| e.into_inner());
    harness
        .get_or_insert_with(|| ImportHarness::new(&scratch_dir("csv_import"), Durability::Normal))
        .import(data);
});
