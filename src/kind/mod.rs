//! The embedder's API: what a task kind is and what it sees. A kind implements [`Handler`];
//! a [`Registry`] maps kind names to handlers; a running handler sees only its
//! [`TaskContext`] (params, IO file, the LOG/ERR/output files, progress, cancellation) and
//! ends with a message or a [`TaskError`].
//!
//! Every kind declares its params ([`Handler::params`]): a submission naming any other
//! param, or a value longer than its declared maximum, is refused (400) before the kind's own
//! `validate` sees it, whichever way it came (HTTP or [`crate::Service::submit`]).
//!
//! The built-in kinds (`csv.import`, `csv.export`, `sleep`) are written against this same
//! API, in `handlers`; the engine runs any of them the same way.

mod context;
mod error;
mod param;
mod registry;

pub use context::TaskContext;
#[cfg(any(test, feature = "internals"))]
pub(crate) use error::is_database_failure;
pub(crate) use error::store_error_in;
pub use error::TaskError;
pub(crate) use param::check_params;
pub use param::Param;
pub use registry::Registry;

use crate::task::Params;

/// A task kind: declares and validates submissions of its kind and runs them.
pub trait Handler: Send + Sync {
    /// The kind's name, as clients submit it (`csv.import`).
    fn kind(&self) -> &'static str;

    /// Every param the kind accepts. Required (there is no default): each value a client
    /// sends is stored with its task, so a kind says which it takes and how long each may
    /// be. Any other param is refused at submission with a message listing these; an empty
    /// slice means the kind takes none.
    fn params(&self) -> &[Param];

    /// Checks a submission before it is stored: the params, and whether an IO file came
    /// with it. The error is a sentence for the client that names the param at fault. Only
    /// called once every param is one of [`Handler::params`], within its length.
    fn validate(&self, params: &Params, has_input: bool) -> Result<(), String>;

    /// Whether the kind's IO file is a JSON array of records (objects), so that it may be
    /// submitted through the bulk API (`POST /engine/api/bulk/{kind}`). No, by default.
    fn takes_records(&self) -> bool {
        false
    }

    /// Runs the task. `Ok` ends it successfully with the given message; see
    /// [`TaskError`] for the other ends.
    fn run(&self, ctx: &mut TaskContext<'_>) -> Result<String, TaskError>;
}
