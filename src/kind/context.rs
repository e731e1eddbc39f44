//! What a handler sees of its task: its params and IO file, the three files it may write,
//! its progress, counters and message, whether it was asked to stop, and the datasets. It
//! never sees the pool, a connection or the channel.
//!
//! Progress is throttled: a handler may report as often as it likes; the store is written
//! at most every [`PROGRESS_INTERVAL`] (the same write tells whether a cancellation was
//! requested), and the LOG file is committed at most every [`LOG_INTERVAL`], so a running
//! task's log is readable a second or so behind.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::TaskError;
use crate::store::{
    Claimed, Dataset, DatasetError, FileReader, FileWriter, ImportSession, Liveness, Progress,
    Store, UpdateSession, INTERRUPTED,
};
use crate::task::{Counts, FileId, Params, TaskId};

pub(crate) const PROGRESS_INTERVAL: Duration = Duration::from_millis(250);
pub(crate) const LOG_INTERVAL: Duration = Duration::from_secs(1);
/// A LOG buffer this large is committed at once, whatever the interval.
const LOG_BUFFER_LIMIT: usize = 64 * 1024;
/// The most LOG bytes kept in memory while the store cannot take them (a full disk): past
/// this the oldest half is dropped, and the LOG says so.
const LOG_KEEP_LIMIT: usize = 1024 * 1024;

/// What a running handler sees of its task; see the module notes.
pub struct TaskContext<'a> {
    store: &'a Store,
    owner: &'a str,
    task: &'a Claimed,
    /// Set once the service is stopping (the engine's flag).
    stopping: &'a AtomicBool,
    progress: Progress,
    last_report: Instant,
    cancelled: bool,
    log_buf: Vec<u8>,
    log_file: Option<FileWriter>,
    log_failed: bool,
    last_log_flush: Instant,
    err: Option<FileWriter>,
    output: Option<(String, FileWriter)>,
    /// Whether an import was begun: its rows become visible with the task's end.
    began_import: bool,
}

/// The files a finished context hands back to be attached to the task.
pub(crate) struct ClosedFiles {
    pub output: Option<(FileId, String)>,
    pub log: Option<FileId>,
    /// LOG bytes not yet stored (stored with the task's end, in one transaction).
    pub log_tail: Vec<u8>,
    pub err: Option<FileId>,
    /// Whether the task began an import (see `Finish::began_import`).
    pub began_import: bool,
}

impl<'a> TaskContext<'a> {
    pub(crate) fn new(
        store: &'a Store,
        owner: &'a str,
        task: &'a Claimed,
        stopping: &'a AtomicBool,
    ) -> TaskContext<'a> {
        let now = Instant::now();
        TaskContext {
            store,
            owner,
            task,
            stopping,
            progress: Progress::default(),
            last_report: now,
            cancelled: false,
            log_buf: Vec::new(),
            log_file: None,
            log_failed: false,
            last_log_flush: now,
            err: None,
            output: None,
            began_import: false,
        }
    }

    /// The task's id.
    pub fn id(&self) -> TaskId {
        self.task.id
    }

    /// The task's params.
    pub fn params(&self) -> &Params {
        &self.task.params
    }

    /// A param's value, if given.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.task.params.get(name).map(String::as_str)
    }

    /// The IO file's name ("" when none).
    pub fn io_filename(&self) -> &str {
        &self.task.io_filename
    }

    /// The IO file as a stream, with its size; None when the task has no IO file.
    pub fn input(&self) -> Result<Option<(FileReader, u64)>, TaskError> {
        match self.task.io_file {
            Some(id) => {
                let reader = self.store.open_input(id)?;
                let size = reader.remaining();
                Ok(Some((reader, size)))
            }
            None => Ok(None),
        }
    }

    /// Appends a line to the LOG file, stamped with the time.
    pub fn log(&mut self, line: impl AsRef<str>) {
        let stamp = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ");
        let _ = writeln!(self.log_buf, "{stamp} {}", line.as_ref());
        // A LOG file the store could not create yet is retried at the interval, not at
        // every line.
        let retry_due = self.log_file.is_some() || self.last_log_flush.elapsed() >= LOG_INTERVAL;
        if self.log_buf.len() >= LOG_BUFFER_LIMIT && retry_due {
            self.flush_log();
        }
        if self.log_buf.len() > LOG_KEEP_LIMIT {
            self.drop_oldest_log_lines();
        }
    }

    /// Keeps the newest half of a LOG buffer that could not be stored for long (a full disk
    /// while the task runs), and says so in the LOG.
    fn drop_oldest_log_lines(&mut self) {
        let cut = self.log_buf.len() - LOG_KEEP_LIMIT / 2;
        let cut = match self.log_buf[cut..].iter().position(|&b| b == b'\n') {
            Some(newline) => cut + newline + 1,
            None => self.log_buf.len(),
        };
        let mut kept =
            b"[earlier LOG lines were dropped: the database could not store them]\n".to_vec();
        kept.extend_from_slice(&self.log_buf[cut..]);
        self.log_buf = kept;
    }

    /// The ERR file, created on first use.
    pub fn err_file(&mut self) -> Result<&mut FileWriter, TaskError> {
        if self.err.is_none() {
            self.err = Some(self.store.create_file(self.task.id)?);
        }
        Ok(self.err.as_mut().expect("just created"))
    }

    /// Starts the task's output: on success it replaces the IO file, under `name`.
    pub fn create_output(&mut self, name: &str) -> Result<&mut FileWriter, TaskError> {
        if let Some((_, old)) = self.output.take() {
            old.discard()?;
        }
        let writer = self.store.create_file(self.task.id)?;
        Ok(&mut self.output.insert((name.to_string(), writer)).1)
    }

    /// The output started with [`TaskContext::create_output`].
    pub fn output(&mut self) -> Result<&mut FileWriter, TaskError> {
        match self.output.as_mut() {
            Some((_, writer)) => Ok(writer),
            None => Err(TaskError::Permanent(
                "internal: the output was not started".into(),
            )),
        }
    }

    /// Sets the percentage shown (100 is kept for the task's end).
    pub fn set_percent(&mut self, percent: u8) {
        self.progress.percent = percent.min(100);
    }

    /// Sets the record counters shown.
    pub fn set_counts(&mut self, counts: Counts) {
        self.progress.counts = counts;
    }

    /// The record counters as last set.
    pub fn counts(&self) -> Counts {
        self.progress.counts
    }

    /// Sets the message shown while the task runs.
    pub fn set_message(&mut self, message: impl Into<String>) {
        self.progress.message = message.into();
    }

    /// Writes progress and the LOG file if their intervals have passed, and fails with
    /// `Cancelled` once a cancellation was requested (or the task was deleted). Cheap enough
    /// to call for every record.
    pub fn checkpoint(&mut self) -> Result<(), TaskError> {
        if !self.cancelled && self.last_report.elapsed() >= PROGRESS_INTERVAL {
            self.report();
        }
        if self.last_log_flush.elapsed() >= LOG_INTERVAL {
            self.flush_log();
        }
        if self.cancelled {
            Err(TaskError::Cancelled)
        } else {
            Ok(())
        }
    }

    fn report(&mut self) {
        self.last_report = Instant::now();
        match self
            .store
            .report_progress(self.task.id, self.owner, &self.progress)
        {
            Ok(Liveness::Running { cancel_requested }) => self.cancelled = cancel_requested,
            Ok(Liveness::Gone) => self.cancelled = true,
            // Progress is advisory: a busy or full database must not fail the task. The next
            // interval tries again; the task's end is recorded with retries.
            Err(e) => log::warn!("task {}: recording progress failed: {e}", self.task.id),
        }
    }

    fn flush_log(&mut self) {
        self.last_log_flush = Instant::now();
        if self.log_buf.is_empty() || self.log_failed {
            return;
        }
        if self.log_file.is_none() {
            match self.create_log_file() {
                Ok(file) => self.log_file = Some(file),
                Err(e) => {
                    // The lines stay buffered: the next interval tries again, and at worst
                    // they go with the task's end, whose recording is retried until the
                    // store takes it (a full disk must not cost the task its LOG).
                    log::warn!("task {}: creating its LOG file failed: {e}", self.task.id);
                    return;
                }
            }
        }
        let file = self.log_file.as_mut().expect("just created");
        let written = file.write_all(&self.log_buf).and_then(|()| file.flush());
        self.log_buf.clear();
        if let Err(e) = written {
            // A LOG file that cannot be written must not fail the task; say so once.
            log::warn!("task {}: writing its LOG file failed: {e}", self.task.id);
            self.log_failed = true;
        }
    }

    /// Creates the task's LOG file and attaches it, so it can be read while the task runs.
    fn create_log_file(&mut self) -> Result<FileWriter, TaskError> {
        let file = self.store.create_file(self.task.id)?;
        match self.store.attach_log(self.task.id, self.owner, file.id()) {
            Ok(true) => Ok(file),
            Ok(false) => {
                // Deleted or interrupted meanwhile: the next checkpoint stops the handler.
                self.cancelled = true;
                Ok(file)
            }
            Err(e) => {
                let _ = file.discard();
                Err(e.into())
            }
        }
    }

    /// Commits the files and hands them back; the output is kept only when `keep_output`.
    pub(crate) fn close(mut self, keep_output: bool) -> (Counts, ClosedFiles) {
        let finish = |w: FileWriter, what: &str, task: TaskId| match w.finish() {
            Ok(f) => Some(f.id),
            Err(e) => {
                log::warn!("task {task}: storing its {what} file failed: {e}");
                None
            }
        };
        let id = self.task.id;
        let log = self.log_file.take().map(|w| w.id());
        let log_tail = if self.log_failed {
            Vec::new()
        } else {
            std::mem::take(&mut self.log_buf)
        };
        let err = self.err.take().and_then(|w| finish(w, "ERR", id));
        let output = match self.output.take() {
            Some((name, w)) if keep_output => finish(w, "IO", id).map(|f| (f, name)),
            Some((_, w)) => {
                let _ = w.discard();
                None
            }
            None => None,
        };
        (
            self.progress.counts,
            ClosedFiles {
                output,
                log,
                log_tail,
                err,
                began_import: self.began_import,
            },
        )
    }

    /// A dataset's description, if it exists.
    pub(crate) fn dataset(&self, name: &str) -> Result<Option<Dataset>, TaskError> {
        Ok(self.store.dataset(&self.task.client, name)?)
    }

    /// Rows of a dataset after row `after`, in import order (see `Store::dataset_page`).
    pub(crate) fn dataset_page(
        &self,
        dataset: &Dataset,
        positions: &[usize],
        after: i64,
        limit: usize,
    ) -> Result<Vec<(i64, Vec<String>)>, TaskError> {
        Ok(self.store.dataset_page(dataset, positions, after, limit)?)
    }

    /// How many visible rows a dataset holds.
    pub(crate) fn dataset_len(&self, dataset: &Dataset) -> Result<u64, TaskError> {
        Ok(self.store.dataset_len(dataset)?)
    }

    /// Starts an import into a dataset for this task (see `Store::begin_import`). While
    /// another import into the dataset runs it waits, saying so in the LOG and the message,
    /// and reporting progress; the wait ends with the task's end once it is cancelled
    /// (`Cancelled`) or the service stops (interrupted: nothing was done yet). The outer
    /// error ends the task as it is (a store failure included); the inner one is the
    /// dataset refusing the file, for the handler to put in words.
    pub(crate) fn begin_import(
        &mut self,
        name: &str,
        header: &[String],
        key: &[String],
    ) -> Result<Result<ImportSession, DatasetError>, TaskError> {
        self.began_import = true;
        let (store, task, owner) = (self.store, self.task, self.owner);
        let waiting = format!("another import into dataset {name}");
        self.waiting_for_dataset(name, &waiting, "importing", |keep_waiting| {
            store.begin_import(
                task.id,
                owner,
                &task.client,
                name,
                header,
                key,
                keep_waiting,
            )
        })
    }

    /// Starts an update of a dataset's rows by `key` for this task (see
    /// `Store::begin_update`), waiting as [`TaskContext::begin_import`] does while an
    /// import or another update of it runs; the inner error is the dataset refusing the
    /// update (it does not exist, it lacks a key column).
    pub(crate) fn begin_update(
        &mut self,
        name: &str,
        key: &[String],
        upsert: bool,
    ) -> Result<Result<UpdateSession, DatasetError>, TaskError> {
        let (store, task, owner) = (self.store, self.task, self.owner);
        let waiting = format!("another import or update of dataset {name}");
        self.waiting_for_dataset(name, &waiting, "updating", |keep_waiting| {
            store.begin_update(
                task.id,
                owner,
                &task.client,
                name,
                key,
                upsert,
                keep_waiting,
            )
        })
    }

    /// Runs `begin`, which waits for dataset `name` as long as the closure it is given
    /// says: meanwhile the LOG and the message say the task waits for `waiting`, progress is
    /// reported, and a cancellation or the service stopping ends the wait (see
    /// [`TaskContext::begin_import`]); once the dataset is free, the LOG says the task goes on
    /// `doing`.
    fn waiting_for_dataset<T>(
        &mut self,
        name: &str,
        waiting: &str,
        doing: &str,
        begin: impl FnOnce(&mut dyn FnMut() -> bool) -> Result<T, DatasetError>,
    ) -> Result<Result<T, DatasetError>, TaskError> {
        let mut waited = false;
        let mut stopped = None;
        let started = begin(&mut || {
            if !waited {
                waited = true;
                self.log(format!("Waiting for {waiting} to end"));
                self.set_message(format!("Waiting for {waiting} to end."));
            }
            match self.go_on_waiting() {
                Ok(()) => true,
                Err(e) => {
                    stopped = Some(e);
                    false
                }
            }
        });
        if waited && stopped.is_none() {
            self.log(format!("Dataset {name} is free: {doing}"));
            self.set_message("");
        }
        match started {
            Ok(session) => Ok(Ok(session)),
            Err(DatasetError::Abandoned) => Err(stopped.unwrap_or(TaskError::Cancelled)),
            Err(DatasetError::Store(e)) => Err(e.into()),
            Err(refused) => Ok(Err(refused)),
        }
    }

    /// Whether a task that has not begun its work may go on waiting for it: not once it is
    /// cancelled (or deleted), nor once the service stops, which ends it interrupted rather
    /// than holding up the shutdown (its grace period is for work under way).
    fn go_on_waiting(&mut self) -> Result<(), TaskError> {
        if self.stopping.load(Ordering::SeqCst) {
            self.log("The service is stopping: the wait is given up");
            return Err(TaskError::Retryable(INTERRUPTED.into()));
        }
        self.checkpoint()
    }
}
