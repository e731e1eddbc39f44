//! The integration tests: one binary, a module per area. Each test starts the real taskbox
//! binary on port 0 with a temporary database (see `common`, shared with the other test
//! binaries) and drives it over HTTP.

#[path = "../common/mod.rs"]
mod common;

mod api;
mod api_jobs;
mod bulk;
mod csv;
mod dataset_update;
mod errors;
mod files;
mod import_results;
mod inputs;
mod lifecycle;
mod origins;
mod quotas;
mod smoke;
mod tokens;
