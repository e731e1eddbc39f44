//! The task service: the domain verbs every API family shares, on top of the scoped store
//! and the registry. Validate a submission against its kind and store it; read a task with
//! one of its files; cancel a running task, then delete it. HTTP families and the in-process
//! API ([`crate::Service::submit`]) both go through it, so both validate the same way.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::kind::{check_params, Registry};
use crate::store::{DeleteOutcome, FileReader, Scoped, StoreError, Submitted};
use crate::task::{FileRole, NewTask, Params, Task, TaskId};

/// How long a delete waits for a running task to stop before deleting it regardless.
pub(crate) const CANCEL_WAIT: Duration = Duration::from_secs(10);

/// Why a verb of the task service refused or failed. Each family renders it in its own
/// words and envelope.
#[derive(Debug)]
pub(crate) enum TaskServiceError {
    /// The submission does not fit its kind: the sentence names what is wrong.
    Invalid(String),
    /// No such task within the caller's scope.
    TaskNotFound(TaskId),
    /// The task exists but has no such file, or the file is empty.
    FileMissing,
    Store(StoreError),
}

impl From<StoreError> for TaskServiceError {
    fn from(e: StoreError) -> TaskServiceError {
        TaskServiceError::Store(e)
    }
}

type Result<T> = std::result::Result<T, TaskServiceError>;

/// The shared verbs, for one caller's scope.
pub(crate) struct TaskService<'a> {
    store: &'a Scoped,
    registry: &'a Arc<Registry>,
}

impl<'a> TaskService<'a> {
    pub fn new(store: &'a Scoped, registry: &'a Arc<Registry>) -> TaskService<'a> {
        TaskService { store, registry }
    }

    /// Checks a kind and its params before anything is stored: the kind is known, every
    /// param is one it declares and within its length, then the kind's own checks.
    pub fn validate(&self, kind: &str, params: &Params, has_input: bool) -> Result<()> {
        let known = || self.registry.kinds().join(", ");
        if kind.is_empty() {
            return Err(TaskServiceError::Invalid(format!(
                "The parameter kind is required; known kinds: {}.",
                known()
            )));
        }
        let handler = self.registry.get(kind).ok_or_else(|| {
            TaskServiceError::Invalid(format!(
                "The kind {kind:?} is unknown; known kinds: {}.",
                known()
            ))
        })?;
        check_params(kind, handler.params(), params).map_err(TaskServiceError::Invalid)?;
        handler
            .validate(params, has_input)
            .map_err(TaskServiceError::Invalid)
    }

    /// Validates a task against its kind and stores it.
    pub fn submit(&self, new: &NewTask) -> Result<Submitted> {
        self.validate(&new.kind, &new.params, new.io_file.is_some())?;
        Ok(self.store.submit(new)?)
    }

    /// Validates every task, then stores them all in one transaction (all or none). A task
    /// that does not fit its kind is named by its place in `tasks`, counted from 0 (as in
    /// the JSON array a client sends).
    pub fn submit_many(&self, tasks: &[NewTask]) -> Result<Vec<Submitted>> {
        self.validate_all(tasks)?;
        Ok(self.store.submit_many(tasks)?)
    }

    /// Checks every task as `validate` does, in order: the first that does not fit its kind
    /// is named by its place, counted from 0.
    pub fn validate_all(&self, tasks: &[NewTask]) -> Result<()> {
        for (i, new) in tasks.iter().enumerate() {
            self.validate(&new.kind, &new.params, new.io_file.is_some())
                .map_err(|e| match e {
                    TaskServiceError::Invalid(why) => {
                        TaskServiceError::Invalid(format!("The task at index {i}: {why}"))
                    }
                    other => other,
                })?;
        }
        Ok(())
    }

    /// One task within the scope.
    pub fn task(&self, id: TaskId) -> Result<Task> {
        match self.store.task(id) {
            Err(StoreError::NotFound) => Err(TaskServiceError::TaskNotFound(id)),
            other => Ok(other?),
        }
    }

    /// A task with a reader over one of its files, from a snapshot taken when it is opened,
    /// so the length promised is the length sent even if the task is deleted meanwhile.
    pub fn task_with_file(&self, id: TaskId, role: FileRole) -> Result<(Task, FileReader)> {
        // The file's id is looked up just before it is opened: should the file be replaced
        // in between, look again.
        let missing = |e: TaskServiceError| match e {
            TaskServiceError::TaskNotFound(_) => TaskServiceError::FileMissing,
            other => other,
        };
        let mut attempts = 0;
        loop {
            let task = self.task(id).map_err(missing)?;
            // Most LOGs are short and kept in their task's row (see store/finish.rs), never
            // empty: looked for first.
            if role == FileRole::Log {
                if let Some(reader) = self.store.task_log_text(id)? {
                    return Ok((task, reader));
                }
            }
            let file = self
                .store
                .task_file(id, role)?
                .ok_or(TaskServiceError::FileMissing)?;
            match self.store.open_file(file.id) {
                Ok(reader) if reader.remaining() == 0 => return Err(TaskServiceError::FileMissing),
                Ok(reader) => return Ok((task, reader)),
                Err(StoreError::NotFound) if attempts < 2 => attempts += 1,
                Err(StoreError::NotFound) => return Err(TaskServiceError::FileMissing),
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Deletes a task; a running one is asked to stop first, and deleted regardless once
    /// `CANCEL_WAIT` has passed.
    pub fn cancel_and_delete(&self, id: TaskId) -> Result<()> {
        let deadline = Instant::now() + CANCEL_WAIT;
        let mut cancel_sent = false;
        loop {
            let seen = self.store.activity().generation();
            let force = Instant::now() >= deadline;
            match self.store.delete(id, force)? {
                DeleteOutcome::Deleted => return Ok(()),
                DeleteOutcome::NotFound => return Err(TaskServiceError::TaskNotFound(id)),
                DeleteOutcome::Running => {
                    if !cancel_sent {
                        self.store.request_cancel(id)?;
                        cancel_sent = true;
                        log::info!("task {id}: cancellation requested by DELETE");
                    }
                    self.store
                        .activity()
                        .wait_past(seen, deadline.saturating_duration_since(Instant::now()));
                }
            }
        }
    }
}
