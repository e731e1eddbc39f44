//! The embedder's API: what a task kind is and what it sees. A kind implements [`Handler`];
//! a [`Registry`] maps kind names to handlers; a running handler sees only its
//! [`TaskContext`] (params, IO file, the LOG/ERR/output files, progress, cancellation) and
//! ends with a message or a [`TaskError`].
//!
//! The built-in kinds (`csv.import`, `csv.export`, `sleep`) are written against this same
//! API, in `handlers`; the engine runs any of them the same way.

mod context;
mod error;
mod registry;

pub use context::TaskContext;
pub use error::TaskError;
pub use registry::Registry;

use crate::task::Params;

/// A task kind: validates submissions of its kind and runs them.
pub trait Handler: Send + Sync {
    /// The kind's name, as clients submit it (`csv.import`).
    fn kind(&self) -> &'static str;

    /// Checks a submission before it is stored: the params, and whether an IO file came
    /// with it. The error is a sentence for the client that names the param at fault.
    fn validate(&self, params: &Params, has_input: bool) -> Result<(), String>;

    /// Runs the task. `Ok` ends it successfully with the given message; see
    /// [`TaskError`] for the other ends.
    fn run(&self, ctx: &mut TaskContext<'_>) -> Result<String, TaskError>;
}
