//! `TaskError`: how a handler's run ends other than successfully. Whether a failure is
//! worth another attempt is the handler's to say (a queue with attempts retries only the
//! retryable ones); today every failure ends the task ERROR with its message.

use crate::store::{Refusal, StoreError};

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

/// The message of a task whose database ran out of disk space.
pub(crate) const DISK_FULL: &str = "The disk holding the database is full, so the task could \
    not store its work. Free some space, then submit the task again.";
/// The message of a task whose database could not be used for a while.
pub(crate) const DATABASE_UNAVAILABLE: &str = "The database could not be used (it was busy, \
    read-only or its disk was failing), so the task stopped. Submit it again later.";
/// The message of a task that met anything else going wrong in the database.
pub(crate) const DATABASE_FAILED: &str = "The task stopped on an internal error of the \
    database; the server log has the details. Submit it again, and report it if it recurs.";

/// Whether `message` is one of those a task ends with when the database fails it.
#[cfg(any(test, feature = "internals"))]
pub(crate) fn is_database_failure(message: &str) -> bool {
    [DISK_FULL, DATABASE_UNAVAILABLE, DATABASE_FAILED].contains(&message)
}

/// A store failure in a task: a message saying what failed and what to do, without the
/// database's own words, which go to the server log only (they mean nothing to the person
/// reading the task, and may show its internals).
impl From<StoreError> for TaskError {
    fn from(e: StoreError) -> TaskError {
        log::warn!("a task's use of the database failed: {e}");
        let message = match e {
            StoreError::DiskFull | StoreError::Refused(Refusal::FreeSpace { .. }) => DISK_FULL,
            // A task's own files are held to no quota; should one ever be, it is no fault
            // of the database's but the same for the person reading the task: it failed.
            StoreError::Refused(_) => DATABASE_FAILED,
            StoreError::Unavailable(_) | StoreError::Locked(_) => DATABASE_UNAVAILABLE,
            StoreError::NotFound | StoreError::IdempotencyConflict | StoreError::Internal(_) => {
                DATABASE_FAILED
            }
        };
        TaskError::Retryable(message.into())
    }
}

/// An I/O failure in a task: reading its IO file or writing one of its files, all of which
/// live in the database, so the failure is the database's (said as such, see above) unless
/// the error is one of taskbox's own words.
impl From<std::io::Error> for TaskError {
    fn from(e: std::io::Error) -> TaskError {
        match store_error_in(&e) {
            Some(store) => store.into(),
            None => {
                log::warn!("a task's file failed: {e}");
                TaskError::Retryable(format!("The task failed reading or writing a file: {e}."))
            }
        }
    }
}

/// The store's error behind an I/O error (the store's files report theirs so), if any.
pub(crate) fn store_error_in(e: &std::io::Error) -> Option<StoreError> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<StoreError>())
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_failure_says_what_to_do_without_the_database_s_words() {
        let sqlite = "disk I/O error: SQLITE_IOERR_WRITE in ds_7 near \"c1\"";
        let cases = [
            (StoreError::DiskFull, DISK_FULL),
            (StoreError::Unavailable(sqlite.into()), DATABASE_UNAVAILABLE),
            (StoreError::Locked(sqlite.into()), DATABASE_UNAVAILABLE),
            (StoreError::Internal(sqlite.into()), DATABASE_FAILED),
            (StoreError::NotFound, DATABASE_FAILED),
        ];
        for (store, expected) in cases {
            let message = TaskError::from(store).message();
            assert_eq!(message, expected);
            assert!(is_database_failure(&message));
            assert!(!message.contains("SQLITE") && !message.contains("ds_7"));
        }
        // Read through a stored file, the store's error comes wrapped in an I/O error.
        let wrapped = std::io::Error::other(StoreError::Internal(sqlite.into()));
        assert_eq!(TaskError::from(wrapped).message(), DATABASE_FAILED);
        // An I/O error of taskbox's own keeps its words.
        let own = std::io::Error::new(std::io::ErrorKind::InvalidData, "the record is too long");
        assert_eq!(
            TaskError::from(own).message(),
            "The task failed reading or writing a file: the record is too long."
        );
    }
}
