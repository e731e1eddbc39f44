//! `TaskError`: how a handler's run ends other than successfully. Whether a failure is
//! worth another attempt is the handler's to say (a queue with attempts retries only the
//! retryable ones); today every failure ends the task ERROR with its message.

use crate::store::StoreError;

/// How a task's run ended other than successfully. Each message is for the person who
/// reads the task: say what went wrong and what to do.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// A cancellation was requested (or the task was deleted) and the handler stopped.
    #[error("canceled")]
    Cancelled,
    /// The run failed for a reason that may pass (a busy database, a resource away for a
    /// while): another attempt may succeed.
    #[error("{0}")]
    Retryable(String),
    /// The run failed for a reason another attempt would meet again (bad input, a missing
    /// dataset).
    #[error("{0}")]
    Permanent(String),
}

impl TaskError {
    /// The message the task ends with.
    pub fn message(&self) -> String {
        self.to_string()
    }

    /// Whether another attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, TaskError::Retryable(_))
    }
}

impl From<StoreError> for TaskError {
    fn from(e: StoreError) -> TaskError {
        TaskError::Retryable(format!("The task could not use the database: {e}."))
    }
}

impl From<std::io::Error> for TaskError {
    fn from(e: std::io::Error) -> TaskError {
        TaskError::Retryable(format!("The task failed reading or writing a file: {e}."))
    }
}
