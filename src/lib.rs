//! taskbox: an embedded background-task service. One process, one SQLite file, one HTTP
//! port. A client submits a long operation (import a CSV, export a dataset, sleep), gets a
//! task id at once, and polls the task for its progress, status, record counts, message and
//! files (IO, LOG, ERR).
//!
//! The map of the house (its layers, and where each coming capability goes) is
//! ARCHITECTURE.md at the repository's root. In short:
//!
//! - [`Service`] starts the pieces in order and stops them in reverse;
//! - the embedder's API ([`Handler`], [`Registry`], [`TaskContext`], [`TaskError`]) is
//!   what a kind is written against, the built-in kinds included;
//! - the store alone speaks SQL; the engine claims and runs tasks; the HTTP core serves the
//!   API families, each in a module of its own; they meet in the store.
//!
//! Embedding: register a kind of your own and start the service (see `examples/embed.rs`).
//!
//! ```no_run
//! use taskbox::{Config, Handler, Param, Params, Registry, Service, TaskContext, TaskError};
//!
//! struct Greet;
//!
//! impl Handler for Greet {
//!     fn kind(&self) -> &'static str {
//!         "greet"
//!     }
//!     fn params(&self) -> &[Param] {
//!         const PARAMS: [Param; 1] = [Param::new("name", 100, "whom to greet")];
//!         &PARAMS
//!     }
//!     fn validate(&self, _params: &Params, _has_input: bool) -> Result<(), String> {
//!         Ok(())
//!     }
//!     fn run(&self, ctx: &mut TaskContext<'_>) -> Result<String, TaskError> {
//!         ctx.log("hello");
//!         Ok("Greeted.".into())
//!     }
//! }
//!
//! let config = Config::default();
//! let mut kinds = Registry::builtin_with(&config);
//! kinds.register(Greet);
//! let service = Service::start_with(config, kinds).unwrap();
//! let task = service.submit(&taskbox::NewTask::new("greet", Params::new())).unwrap();
//! println!("task {} is {:?}", task.task.id, task.task.state);
//! ```

#![warn(missing_docs)]

mod api;
mod change_counter;
pub mod clock;
pub mod config;
mod engine;
mod error;
#[cfg(any(test, feature = "internals"))]
#[doc(hidden)]
pub mod fuzz_api;
mod handlers;
mod http;
mod kind;
mod records;
mod retention;
mod service;
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod store;
#[cfg(not(feature = "internals"))]
mod store;
mod task;
mod task_service;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::Config;
pub use error::{Error, Result};
pub use kind::{Handler, Param, Registry, TaskContext, TaskError};
pub use service::Service;
pub use store::{Durability, FileReader, FileWriter, ListFilter, Submitted, INTERRUPTED};
pub use task::{Counts, FileRole, Identity, NewTask, Params, Role, Scope, State, Task, TaskId};
