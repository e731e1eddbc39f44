//! The scoped view: the only way to read or change a client's objects. Everything a client
//! may ask for (its tasks, their files, its uploads, its idempotency keys through its
//! submissions) is reached through [`Scoped`], whose every statement carries the scope's
//! client; the store's own unscoped versions are private to the store. So a route that
//! forgets a check still cannot reach another client's row.

use rusqlite::types::Value;

use super::{
    CampaignImport, CampaignQuery, DeleteOutcome, FileReader, FileWriter, ListFilter, Result,
    Store, StoreError, StoredFile, Submitted,
};
use crate::change_counter::ChangeCounter;
use crate::task::{FileId, FileRole, Identity, NewTask, Scope, Task, TaskId};

/// The store as one caller may see it: one client's objects, or (an administrator's) all.
#[derive(Clone)]
pub struct Scoped {
    store: Store,
    scope: Scope,
    /// The client new objects belong to, when the scope is every client's.
    acting: Option<String>,
}

impl Store {
    /// The store within `scope`.
    pub fn scoped(&self, scope: Scope) -> Scoped {
        Scoped {
            store: self.clone(),
            scope,
            acting: None,
        }
    }
}

impl Scoped {
    /// This view, its new objects belonging to `client` when its scope is every client's
    /// (an administrator's own client); a client's view keeps its own client.
    pub fn acting_as(mut self, client: &str) -> Scoped {
        self.acting = Some(client.to_string());
        self
    }

    /// The client that new objects of this view belong to: the scope's, or for an
    /// administrator's view, the one it acts as (by default, the default client).
    fn acting_client(&self) -> &str {
        match &self.scope {
            Scope::Client(client) => client,
            Scope::All => self.acting.as_deref().unwrap_or(Identity::DEFAULT_CLIENT),
        }
    }

    /// This view narrowed to `client`: an administrator's view becomes that client's; a
    /// client's view is itself for its own client and `None` for any other, which callers
    /// answer exactly as they answer an object that does not exist.
    pub fn for_client(&self, client: &str) -> Option<Scoped> {
        self.covers(client).then(|| Scoped {
            store: self.store.clone(),
            scope: Scope::Client(client.to_string()),
            acting: None,
        })
    }

    /// Whether `client` is within this scope.
    fn covers(&self, client: &str) -> bool {
        match &self.scope {
            Scope::Client(own) => own == client,
            Scope::All => true,
        }
    }

    /// Refuses a new task owned by a client outside the scope.
    fn check_owner(&self, new: &NewTask) -> Result<()> {
        if self.covers(&new.owner.client) {
            Ok(())
        } else {
            Err(StoreError::Internal(format!(
                "a task of client {:?} submitted within {:?}",
                new.owner.client, self.scope
            )))
        }
    }

    /// Stores a new task; see [`Store::submit`]. Its owner must be within the scope, and
    /// so must the upload it names.
    pub fn submit(&self, new: &NewTask) -> Result<Submitted> {
        self.check_owner(new)?;
        self.store.check_free_space(0)?;
        let mut submitted = self.store.submit(new)?;
        submitted.task = self.with_uuid(submitted.task);
        Ok(submitted)
    }

    /// Stores many tasks in one transaction (all or none), and returns each as `submit`
    /// does, in order; see [`Store::submit_all`].
    pub fn submit_many(&self, tasks: &[NewTask]) -> Result<Vec<Submitted>> {
        for new in tasks {
            self.check_owner(new)?;
        }
        self.store.check_free_space(0)?;
        let submitted = self.store.submit_all(tasks)?;
        Ok(submitted
            .into_iter()
            .map(|mut s| {
                s.task = self.with_uuid(s.task);
                s
            })
            .collect())
    }

    /// One task, if it exists within the scope.
    pub fn task(&self, id: TaskId) -> Result<Task> {
        self.store.task(&self.scope, id).map(|t| self.with_uuid(t))
    }

    /// The task whose UUID `uuid` is, if it exists within the scope (`NotFound` for text
    /// that is no UUID of this installation's, as for one of a task deleted).
    pub fn task_by_uuid(&self, uuid: &str) -> Result<Task> {
        let id = self
            .store
            .inner
            .uuids
            .id_of(uuid)
            .ok_or(StoreError::NotFound)?;
        self.task(id)
    }

    /// Tasks within the scope, newest first, and the total count of those matching.
    pub fn list(&self, filter: &ListFilter) -> Result<(Vec<Task>, u64)> {
        let (tasks, total) = self.store.list(&self.scope, filter)?;
        Ok((
            tasks.into_iter().map(|t| self.with_uuid(t)).collect(),
            total,
        ))
    }

    /// The task with its UUID filled in.
    fn with_uuid(&self, mut task: Task) -> Task {
        task.uuid = self.store.inner.uuids.of(task.id);
        task
    }

    /// The csv.import tasks of a campaign within the scope, newest first, a page, and the
    /// count of all that match; see [`Store::campaign_imports`].
    pub fn campaign_imports(&self, query: &CampaignQuery) -> Result<(Vec<CampaignImport>, u64)> {
        let (mut imports, count) = self.store.campaign_imports(&self.scope, query)?;
        for import in &mut imports {
            import.uuid = self.store.inner.uuids.of(import.id);
        }
        Ok((imports, count))
    }

    /// Asks a running task within the scope to stop.
    pub fn request_cancel(&self, id: TaskId) -> Result<bool> {
        self.store.request_cancel(&self.scope, id)
    }

    /// Deletes a task within the scope; see [`Store::delete`].
    pub fn delete(&self, id: TaskId, force: bool) -> Result<DeleteOutcome> {
        self.store.delete(&self.scope, id, force)
    }

    /// A task's file, if the task is within the scope and has one.
    pub fn task_file(&self, task: TaskId, role: FileRole) -> Result<Option<StoredFile>> {
        self.store.task_file(&self.scope, task, role)
    }

    /// A reader over a task's LOG kept in its row, if the task is within the scope and has
    /// one (a short LOG: see finish.rs).
    pub fn task_log_text(&self, task: TaskId) -> Result<Option<FileReader>> {
        self.store.task_log_text(&self.scope, task)
    }

    /// A reader over a snapshot of a file within the scope; see [`Store::open_file`].
    pub fn open_file(&self, id: FileId) -> Result<FileReader> {
        self.store.open_file(&self.scope, id)
    }

    /// Starts an upload: a file of the acting client that a submission then attaches.
    pub fn create_upload(&self) -> Result<FileWriter> {
        self.store.create_upload(self.acting_client())
    }

    /// Refuses an upload of `length` bytes that would take the acting client past its quota
    /// or the disk under its floor, before any of it is received.
    pub fn check_upload(&self, length: u64) -> Result<()> {
        self.store.check_upload_room(self.acting_client(), length)
    }

    /// Deletes an upload of this scope that no task refers to.
    pub fn discard_upload(&self, id: FileId) -> Result<()> {
        self.store.discard_upload(&self.scope, id)
    }

    /// Changes that let a waiter proceed (a task finished, deleted); see [`Store::activity`].
    pub fn activity(&self) -> &ChangeCounter {
        self.store.activity()
    }
}

/// A statement on one row within a scope: the extra WHERE clause (the client is parameter
/// 2) and the values to bind (the id, then the client when there is one).
pub(super) fn one_in_scope(scope: &Scope, id: i64, client_column: &str) -> (String, Vec<Value>) {
    match scope {
        Scope::Client(c) => (
            format!("AND {client_column} = ?2"),
            vec![Value::Integer(id), Value::Text(c.clone())],
        ),
        Scope::All => (String::new(), vec![Value::Integer(id)]),
    }
}
