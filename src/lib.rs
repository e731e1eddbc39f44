//! taskbox: an embedded background-task service. One process, one SQLite file, one HTTP
//! port. A client submits a long operation (import a CSV, export a dataset, sleep), gets a
//! task id at once, and polls the task for its progress, status, record counts, message and
//! files (IO, LOG, ERR).
//!
//! ```text
//! HTTP (tiny_http, N threads)  ──submit──▶  store (SQLite, r2d2 pool, WAL)
//!         ▲        │                              ▲        │
//!    poll/files    └──rings──▶ dispatcher ──claims┘        │
//!                                  │ bounded crossbeam channel
//!                                  ▼                       │
//!                             worker pool (fixed N) ──progress, files
//!                                  │
//!                             handlers (csv.import, csv.export, sleep)
//! ```
//!
//! - [`store`] owns every SQL statement; nothing else speaks SQL.
//! - [`engine`]: the dispatcher claims due tasks in one statement and never polls; workers
//!   run them through their kind's [`handlers::Handler`], which sees only a
//!   [`engine::TaskContext`].
//! - [`http`] knows nothing of workers; the two meet in the store.
//! - [`Service`] starts them in order, recovering tasks a crash left running, and stops them
//!   in reverse.

pub mod config;
pub mod engine;
pub mod error;
#[doc(hidden)]
pub mod fuzz_api;
pub mod handlers;
pub mod http;
pub mod service;
pub mod signal;
pub mod store;
pub mod task;

pub use config::{Config, Durability};
pub use error::{Error, Result};
pub use service::Service;
