//! The errors of starting and running the service as a whole (configuration, opening the
//! database, binding the port). Each boundary inside has its own enum: `store::StoreError`
//! for the database, `http::ApiError` for what a client is told, `engine::TaskError` for
//! how a task ends.

use crate::store::StoreError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("the database failed")]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {reason}")]
    Listen { addr: String, reason: String },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
