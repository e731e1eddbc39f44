//! The errors of starting and running the service as a whole (configuration, opening the
//! database, binding the port) and of the calls an embedder makes. Each boundary inside
//! has its own enum: `store::StoreError` for the database, `http::ApiError` for what a
//! client is told, `kind::TaskError` for how a task ends.

use crate::store::StoreError;

/// The result of the service's own API.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong starting the service, or in a call an embedder made.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting is out of its bounds; the message names it.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The database failed (it is full, busy, locked by another process...).
    #[error("the database failed")]
    Store(#[from] StoreError),
    /// The HTTP port could not be bound.
    #[error("cannot listen on {addr}: {reason}")]
    Listen {
        /// The address asked for.
        addr: String,
        /// Why it could not be bound.
        reason: String,
    },
    /// A submission does not fit its kind; the message names what is wrong.
    #[error("{0}")]
    Invalid(String),
    /// No task has this id.
    #[error("task {0} does not exist")]
    TaskNotFound(crate::task::TaskId),
    /// The task has no such file, or it is empty.
    #[error("the file is empty or does not exist")]
    FileMissing,
    /// An I/O error of the service itself (starting a thread).
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
