//! The integration tests: one binary, a module per area. Each test starts the real taskbox
//! binary on port 0 with a temporary database (see `common`) and drives it over HTTP.

mod api;
mod common;
mod csv;
mod errors;
mod files;
mod lifecycle;
mod smoke;
