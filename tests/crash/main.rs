//! Crash and hang tests: the real taskbox binary killed at random moments under load, and a
//! handler that never returns. What they prove is the reliability promise of issue 5:
//!
//! - `crash`: every submission answered 2xx survives a SIGKILL; after a restart no task is
//!   left "In progress" (each one that was is ERROR with the Interrupted message), no
//!   dataset keeps rows of an import that did not finish, the rows of every finished import
//!   match its counts, and `PRAGMA integrity_check` is ok. Seeded: `TASKBOX_CRASH_SEED`
//!   replays a run, `TASKBOX_CRASH_KILLS` sets the number of kills (default 20).
//! - `hang`: a worker stuck in an endless loop (`debug.hang`) holds up neither a shutdown
//!   beyond its grace period nor a DELETE; its task is interrupted on the next start.
//!
//! The database file is read directly (rusqlite) only while no taskbox runs on it, or for
//! tasks that no running process can change any more, so no check races the server.

#[path = "../common/mod.rs"]
mod common;

mod crash;
mod db;
mod hang;
mod load;
mod rng;
