//! The writer: one thread that owns the database's write connection and runs every write,
//! so that writes arriving together commit together (group commit).
//!
//! Under synchronous=FULL a commit costs an fsync, and the disk allows a few thousand of
//! those a second; rows cost almost nothing. So every write (a submission, a claim, a
//! task's progress or end, a file's chunks) is a job sent here; the writer takes all the
//! jobs waiting, runs them in one IMMEDIATE transaction, commits once, and only then answers
//! each job's caller. A job that fails is rolled back alone: the batch then runs again
//! without it, each job in a savepoint (see `run_batch`), so every job may run twice and
//! must do nothing outside the transaction that a second run would get wrong.
//! Nothing is acknowledged before its commit; a commit that fails fails every job in it.
//! One writer also means no two writers ever wait on each other for SQLite's lock.
//!
//! A job runs in a [`JobTx`], and reports there every task it inserts, deletes or moves to
//! another state, and every reserved task it takes out of the queue: the writer applies the
//! reports of a batch's jobs to what the store keeps in memory (`memory.rs`) with its
//! commit, and drops those of a job rolled back or run again.
//!
//! Shutdown flows through the channel: when the store's last handle drops, the sender
//! drops, `recv` fails, the writer finishes its batch and closes the connection.

use std::cell::{RefCell, RefMut};
use std::ops::Deref;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use rusqlite::{Connection, Statement};

use super::counts;
use super::memory::{Memory, Reports};
use super::{Result, StoreError};
use crate::task::{State, TaskId};

/// The most jobs committed in one transaction.
const MAX_BATCH: usize = 512;

/// After a batch had to run again (a job failed), how long the next batches run each job in
/// a savepoint from the start: writes that keep failing (a task deleted under its writes,
/// say; refusals are answers, not failures) cost what savepoints cost, never every batch
/// run twice.
const GUARDED_AFTER_A_FAILURE: Duration = Duration::from_secs(1);

/// What a job runs in: the batch's transaction (which it derefs to), and what the store
/// keeps in memory (see `memory`), to which it reports every change its statements make to
/// a task's state or existence (`moved`) and every reserved task they take out of the queue
/// (`released`): the writer applies a job's reports with its batch's commit, and drops them
/// with its rollback.
pub(super) struct JobTx<'a, 'c> {
    tx: &'a Connection,
    prepared: &'a Prepared<'c>,
    committed: &'a Memory,
    /// The reports of the batch's jobs before this one.
    batch: &'a Reports,
    job: RefCell<Reports>,
}

impl Deref for JobTx<'_, '_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.tx
    }
}

impl<'a, 'c> JobTx<'a, 'c> {
    fn new(
        tx: &'a Connection,
        prepared: &'a Prepared<'c>,
        committed: &'a Memory,
        batch: &'a Reports,
    ) -> Self {
        JobTx {
            tx,
            prepared,
            committed,
            batch,
            job: RefCell::default(),
        }
    }

    /// The statement that inserts a task (`submit::INSERT_TASK`), prepared once.
    pub(super) fn insert_task(&self) -> RefMut<'a, Statement<'c>> {
        self.prepared.insert_task.borrow_mut()
    }

    /// The statement that records a task's end (`finish::END_TASK`), prepared once.
    pub(super) fn end_task(&self) -> RefMut<'a, Statement<'c>> {
        self.prepared.end_task.borrow_mut()
    }

    /// The id of a task this job inserts (see `task_ids`).
    pub(super) fn new_task_id(&self) -> TaskId {
        self.committed.new_task_id()
    }

    /// One of `client`'s tasks went `from` one state `to` another (None: it was inserted,
    /// or deleted), by a statement of this job's that succeeded.
    pub(super) fn moved(&self, client: &str, from: Option<State>, to: Option<State>) {
        self.job.borrow_mut().counts.moved(client, from, to);
    }

    /// Reserved task `id` is out of the queue once this job commits (started, ended, or
    /// found gone): its reservation goes with the commit.
    pub(super) fn released(&self, id: TaskId) {
        self.job.borrow_mut().released.push(id);
    }

    /// Every reservation goes with this job's commit: see `Store::interrupt_running`.
    pub(super) fn release_all(&self) {
        self.job.borrow_mut().release_all = true;
    }

    /// Whether task `id` is reserved by a claim of this process: only such a task may
    /// start. Not once a job before this one in the batch (or this one) ended every
    /// reservation: the service stops, and a start queued behind that must not run.
    pub(super) fn is_reserved(&self, id: TaskId) -> bool {
        !self.batch.release_all && !self.job.borrow().release_all && self.committed.is_reserved(id)
    }

    /// `client`'s unfinished tasks as this job's transaction sees them.
    pub(super) fn unfinished(&self, client: &str) -> u64 {
        let committed = counts::unfinished(&self.committed.counts_of(Some(client)));
        let job = self.job.borrow().counts.unfinished(client);
        committed.saturating_add_signed(self.batch.counts.unfinished(client) + job)
    }

    fn into_reports(self) -> Reports {
        self.job.into_inner()
    }
}

/// The statements the writer runs for every batch or nearly every task, prepared once for
/// its connection. Through rusqlite's statement cache, each use hashed the statement's text
/// twice and compared it whole, and a `Transaction` prepared its BEGIN and COMMIT anew every
/// time: about 5,000 instructions per task between them.
pub(super) struct Prepared<'c> {
    begin: RefCell<Statement<'c>>,
    commit: RefCell<Statement<'c>>,
    insert_task: RefCell<Statement<'c>>,
    end_task: RefCell<Statement<'c>>,
}

impl<'c> Prepared<'c> {
    fn new(conn: &'c Connection) -> rusqlite::Result<Prepared<'c>> {
        Ok(Prepared {
            begin: RefCell::new(conn.prepare("BEGIN IMMEDIATE")?),
            commit: RefCell::new(conn.prepare("COMMIT")?),
            insert_task: RefCell::new(conn.prepare(super::submit::INSERT_TASK)?),
            end_task: RefCell::new(conn.prepare(super::finish::END_TASK)?),
        })
    }
}

/// A write waiting for the writer.
trait Job: Send {
    /// Runs the work within the batch's transaction: Ok if it succeeded (its changes stay),
    /// else its error. Called again when the batch runs again (see `run_batch`): the last
    /// run's result is the job's.
    fn run(&mut self, tx: &JobTx<'_, '_>) -> Result<()>;
    /// Answers the caller once the batch's fate is known.
    fn complete(self: Box<Self>, commit: &Result<()>);
}

struct Work<T, F> {
    work: F,
    result: Option<Result<T>>,
    /// Called with the answer once the batch's fate is known.
    reply: Box<dyn FnOnce(Result<T>) + Send>,
}

impl<T, F> Job for Work<T, F>
where
    T: Send,
    F: FnMut(&JobTx<'_, '_>) -> Result<T> + Send,
{
    fn run(&mut self, tx: &JobTx<'_, '_>) -> Result<()> {
        let work = &mut self.work;
        let result = panic::catch_unwind(AssertUnwindSafe(|| work(tx)))
            .unwrap_or_else(|_| Err(StoreError::Internal("a write panicked".into())));
        let outcome = match &result {
            Ok(_) => Ok(()),
            Err(e) => Err(e.clone()),
        };
        self.result = Some(result);
        outcome
    }

    fn complete(self: Box<Self>, commit: &Result<()>) {
        let Work {
            work,
            result,
            reply,
        } = *self;
        // Whatever the work holds (a store's handle, say) goes before its caller hears the
        // answer, as it would have had the work run only once.
        drop(work);
        let answer = match (commit, result) {
            // The job's own error says most; else the commit's.
            (_, Some(Err(e))) => Err(e),
            (Ok(()), Some(Ok(value))) => Ok(value),
            (Err(e), _) => Err((*e).clone()),
            (Ok(()), None) => Err(StoreError::Internal("a write was not run".into())),
        };
        reply(answer);
    }
}

/// Where a waiting caller gets its answer. Not a channel: a channel's receiver spins and
/// yields before it sleeps, and with a writer commit taking a millisecond, every HTTP thread
/// waiting on one burnt CPU the writer needed; this sleeps at once.
struct AnswerSlot<T> {
    answer: Mutex<Option<Result<T>>>,
    ready: Condvar,
}

impl<T> AnswerSlot<T> {
    fn put(&self, answer: Result<T>) {
        *self.answer.lock().unwrap_or_else(|e| e.into_inner()) = Some(answer);
        self.ready.notify_one();
    }

    fn wait(&self) -> Result<T> {
        let mut answer = self.answer.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(answer) = answer.take() {
                return answer;
            }
            answer = self.ready.wait(answer).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// The writer's side of an [`AnswerSlot`]: a job dropped unanswered (the writer stopped)
/// answers that the writer stopped, so no caller waits forever.
struct Answerer<T>(Option<Arc<AnswerSlot<T>>>);

impl<T> Answerer<T> {
    fn answer(mut self, answer: Result<T>) {
        if let Some(slot) = self.0.take() {
            slot.put(answer);
        }
    }
}

impl<T> Drop for Answerer<T> {
    fn drop(&mut self) {
        if let Some(slot) = self.0.take() {
            slot.put(Err(stopped()));
        }
    }
}

fn stopped() -> StoreError {
    StoreError::Unavailable("the database writer has stopped".into())
}

/// The handle through which the store sends writes.
pub(super) struct Writer {
    jobs: Sender<Box<dyn Job>>,
}

impl Writer {
    /// Starts the writer thread on `conn`, which it owns from now on, keeping `memory`.
    pub(super) fn start(conn: Connection, memory: Arc<Memory>) -> std::io::Result<Writer> {
        Writer::start_guarding_for(conn, memory, GUARDED_AFTER_A_FAILURE)
    }

    /// `start`, with batches run guarded for `guarded_for` after one had to run again.
    fn start_guarding_for(
        conn: Connection,
        memory: Arc<Memory>,
        guarded_for: Duration,
    ) -> std::io::Result<Writer> {
        // Its statements are prepared again on its thread; a schema they do not fit fails here.
        drop(Prepared::new(&conn).map_err(std::io::Error::other)?);
        let (jobs, queue) = crossbeam_channel::unbounded::<Box<dyn Job>>();
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || run(conn, &memory, queue, guarded_for))?;
        Ok(Writer { jobs })
    }

    /// Runs `work` in a write transaction and returns its result once committed.
    pub(super) fn write<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnMut(&JobTx<'_, '_>) -> Result<T> + Send + 'static,
    {
        let slot = Arc::new(AnswerSlot {
            answer: Mutex::new(None),
            ready: Condvar::new(),
        });
        let answerer = Answerer(Some(slot.clone()));
        self.write_then(work, move |result| answerer.answer(result));
        slot.wait()
    }

    /// Queues `work` and returns at once; `then` gets its result once the batch has
    /// committed (or failed). `then` runs on the writer thread: it must be quick and must
    /// not write.
    pub(super) fn write_then<T, F>(&self, work: F, then: impl FnOnce(Result<T>) + Send + 'static)
    where
        T: Send + 'static,
        F: FnMut(&JobTx<'_, '_>) -> Result<T> + Send + 'static,
    {
        let job = Work {
            work,
            result: None,
            reply: Box::new(then),
        };
        if let Err(refused) = self.jobs.send(Box::new(job)) {
            refused.into_inner().complete(&Err(stopped()));
        }
    }
}

#[cfg(test)]
impl Writer {
    /// Holds the writer inside a job of its own until the returned sender sends (or
    /// drops): the writes queued meanwhile then run as one batch. Returns once the writer
    /// is held.
    pub(super) fn hold(&self) -> crossbeam_channel::Sender<()> {
        let (release, hold) = crossbeam_channel::bounded::<()>(0);
        let (entered, held) = crossbeam_channel::bounded::<()>(1);
        self.write_then(
            move |_| {
                let _ = entered.try_send(());
                let _ = hold.recv();
                Ok(())
            },
            |_: Result<()>| {},
        );
        held.recv().expect("the writer takes the holding job");
        release
    }

    /// Queues a job that writes, counts its runs and answers whether it committed: a
    /// probe of whether the batch it lands in ran again.
    pub(super) fn probe(
        &self,
    ) -> (
        Arc<std::sync::atomic::AtomicUsize>,
        crossbeam_channel::Receiver<bool>,
    ) {
        let runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (done, answer) = crossbeam_channel::bounded(1);
        let counted = runs.clone();
        self.write_then(
            move |tx| {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Ok(tx.execute("CREATE TABLE IF NOT EXISTS probe (n)", [])?)
            },
            move |r| {
                let _ = done.send(r.is_ok());
            },
        );
        (runs, answer)
    }

    /// Waits until `n` jobs are queued behind the held writer (at most 30 s).
    pub(super) fn wait_queued(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.jobs.len() < n {
            assert!(Instant::now() < deadline, "{n} job(s) were never queued");
            std::thread::yield_now();
        }
    }
}

/// A caller's batches written one ahead (an import's rows, an update's records): a batch is
/// sent and the caller goes on reading the next while the writer writes it, so reading and
/// writing overlap; sending one first waits for the one before, so at most one is in
/// flight and outcomes come back in order.
pub(super) struct InFlight<T> {
    outcome: Option<crossbeam_channel::Receiver<Result<T>>>,
}

impl<T: Send + 'static> InFlight<T> {
    pub(super) fn new() -> InFlight<T> {
        InFlight { outcome: None }
    }

    /// Waits for the batch in flight, then sends `work`; returns the outcome of the one
    /// waited for (None when there was none). A failed batch fails this call, and `work` is
    /// not sent.
    pub(super) fn send<F>(&mut self, writer: &Writer, work: F) -> Result<Option<T>>
    where
        F: FnMut(&JobTx<'_, '_>) -> Result<T> + Send + 'static,
    {
        let earlier = self.wait()?;
        let (done, outcome) = crossbeam_channel::bounded(1);
        writer.write_then(work, move |result| {
            // The sender waits for it; it can only be gone if its thread died.
            let _ = done.send(result);
        });
        self.outcome = Some(outcome);
        Ok(earlier)
    }

    /// Waits for the batch in flight, if any, and returns its outcome.
    pub(super) fn wait(&mut self) -> Result<Option<T>> {
        match self.outcome.take() {
            None => Ok(None),
            Some(outcome) => outcome.recv().unwrap_or_else(|_| Err(stopped())).map(Some),
        }
    }
}

/// WAL pages past which the writer checkpoints after a commit: SQLite's own default.
const CHECKPOINT_PAGES: i32 = 1000;

thread_local! {
    /// The pages in the WAL after the writer's last commit, as SQLite's WAL hook reports
    /// them (on the writer's thread, which runs every commit).
    static WAL_PAGES: std::cell::Cell<i32> = const { std::cell::Cell::new(0) };
}

fn note_wal_pages(_: &rusqlite::hooks::Wal, pages: std::os::raw::c_int) -> rusqlite::Result<()> {
    WAL_PAGES.with(|p| p.set(pages));
    Ok(())
}

/// Checkpoints the WAL once it holds `CHECKPOINT_PAGES`, as SQLite's automatic checkpoint
/// would, but after the commit's lock (see `memory.rs`) is released: SQLite runs its own
/// inside COMMIT, and a list or a claim would wait for the checkpoint's writes and fsync.
fn checkpoint_if_due(conn: &Connection) {
    if WAL_PAGES.with(|p| p.get()) < CHECKPOINT_PAGES {
        return;
    }
    WAL_PAGES.with(|p| p.set(0));
    // PASSIVE: never waits for readers; what a reader still needs is copied next time.
    let done = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
    if let Err(e) = done {
        log::warn!("checkpointing the write-ahead log failed: {e}");
    }
}

fn run(conn: Connection, memory: &Memory, queue: Receiver<Box<dyn Job>>, guarded_for: Duration) {
    // The WAL hook replaces SQLite's automatic checkpoint on this connection, the only one
    // that writes; `checkpoint_if_due` takes its place.
    conn.wal_hook(Some(note_wal_pages));
    let prepared = Prepared::new(&conn).map_err(|e| StoreError::classify(&conn, e));
    let at = Batch {
        conn: &conn,
        memory,
    };
    let mut guarded_until: Option<Instant> = None;
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        batch.extend(queue.try_iter().take(MAX_BATCH - 1));
        let guarded = batch.len() > 1 && guarded_until.is_some_and(|until| Instant::now() < until);
        let outcome = match &prepared {
            // `start` prepared the same statements on the same connection.
            Err(e) => Err(e.clone()),
            Ok(prepared) if guarded => run_guarded(&at, prepared, &mut batch, None),
            Ok(prepared) => run_batch(&at, prepared, &mut batch, guarded_for, &mut guarded_until),
        };
        if let Err(e) = &outcome {
            log::warn!("a write transaction of {} job(s) failed: {e}", batch.len());
        }
        for job in batch {
            job.complete(&outcome);
        }
        checkpoint_if_due(&conn);
    }
}

/// Runs a batch in one IMMEDIATE transaction and commits it. The jobs run one after the
/// other with nothing between them: a savepoint around each, to roll back one that fails
/// alone, cost about a tenth of the writer's work per task (its two statements, and the
/// copy of every page a job touched first), and a job seldom fails. When one does, the
/// transaction is rolled back and the batch runs again without it, each job in a savepoint
/// (`run_guarded`); the job that failed is answered with its error. A lone job needs no
/// second run: its failure rolls the transaction back.
///
/// A failed BEGIN or COMMIT fails the batch and leaves the connection usable: SQLite rolls
/// back what it must and, once no statement is active, resets its pager after an I/O error
/// or a full disk (`pager_unlock`), so the next batch starts clean when the cause is gone.
fn run_batch<'c>(
    at: &Batch<'c>,
    prepared: &Prepared<'c>,
    batch: &mut [Box<dyn Job>],
    guarded_for: Duration,
    guarded_until: &mut Option<Instant>,
) -> Result<()> {
    let tx = begin(at.conn, prepared)?;
    let mut reports = Reports::default();
    for (i, job) in batch.iter_mut().enumerate() {
        let job_tx = JobTx::new(at.conn, prepared, at.memory, &reports);
        let ran = job.run(&job_tx);
        let reported = job_tx.into_reports();
        ensure_open(at.conn, &ran)?;
        if ran.is_err() {
            let rolled_back = tx.rollback();
            if batch.len() == 1 {
                // The job's own error answers it.
                return rolled_back;
            }
            rolled_back?;
            *guarded_until = Some(Instant::now() + guarded_for);
            return run_guarded(at, prepared, batch, Some(i));
        }
        reports.absorb(reported);
    }
    at.memory.commit_with(|| tx.commit(prepared), reports)
}

/// Runs the batch (again, but for the job at `failed`, which keeps the error it failed
/// with), each job in a savepoint of its own: one that fails now is rolled back alone.
fn run_guarded<'c>(
    at: &Batch<'c>,
    prepared: &Prepared<'c>,
    batch: &mut [Box<dyn Job>],
    failed: Option<usize>,
) -> Result<()> {
    let tx = begin(at.conn, prepared)?;
    let mut reports = Reports::default();
    for (i, job) in batch.iter_mut().enumerate() {
        if Some(i) == failed {
            continue;
        }
        statement(at.conn, "SAVEPOINT job")?;
        let job_tx = JobTx::new(at.conn, prepared, at.memory, &reports);
        let ran = job.run(&job_tx);
        let reported = job_tx.into_reports();
        ensure_open(at.conn, &ran)?;
        if ran.is_err() {
            statement(at.conn, "ROLLBACK TO job")?;
        } else {
            reports.absorb(reported);
        }
        statement(at.conn, "RELEASE job")?;
    }
    at.memory.commit_with(|| tx.commit(prepared), reports)
}

/// Where a batch runs: the write connection, and the memory its reports go to.
struct Batch<'c> {
    conn: &'c Connection,
    memory: &'c Memory,
}

/// A batch's transaction, rolled back if dropped still open (a failure on the way out).
struct Open<'c> {
    conn: &'c Connection,
}

fn begin<'c>(conn: &'c Connection, prepared: &Prepared<'c>) -> Result<Open<'c>> {
    let begun = prepared.begin.borrow_mut().execute([]);
    begun.map_err(|e| StoreError::classify(conn, e))?;
    Ok(Open { conn })
}

impl Open<'_> {
    fn commit(self, prepared: &Prepared<'_>) -> Result<()> {
        let committed = prepared.commit.borrow_mut().execute([]);
        // A COMMIT that failed may leave the transaction open (busy): dropping `self`
        // rolls it back.
        committed
            .map(|_| ())
            .map_err(|e| StoreError::classify(self.conn, e))
    }

    fn rollback(self) -> Result<()> {
        self.roll_back()
    }

    /// Rolls the transaction back, if SQLite has not already.
    fn roll_back(&self) -> Result<()> {
        if self.conn.is_autocommit() {
            return Ok(());
        }
        let rolled_back = self.conn.execute_batch("ROLLBACK");
        rolled_back.map_err(|e| StoreError::classify(self.conn, e))
    }
}

impl Drop for Open<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.roll_back() {
            log::warn!("rolling back a failed write transaction failed: {e}");
        }
    }
}

/// Runs one of the batch's own statements (cached: they run for every job).
fn statement(tx: &Connection, sql: &str) -> Result<()> {
    tx.prepare_cached(sql)
        .and_then(|mut s| s.execute([]))
        .map(|_| ())
        .map_err(|e| StoreError::classify(tx, e))
}

/// Fails the batch when its transaction is gone after a job. A full disk or an I/O error
/// makes SQLite roll back the whole transaction by itself, not just the statement: every
/// job of the batch is then lost, and each must hear that cause (not an error about a
/// savepoint that no longer exists), and nothing more may run, since it would run outside
/// any transaction and commit piecemeal.
fn ensure_open(tx: &Connection, ran: &Result<()>) -> Result<()> {
    if !tx.is_autocommit() {
        return Ok(());
    }
    Err(match ran {
        Err(e) => e.clone(),
        Ok(()) => StoreError::Unavailable("the write transaction was rolled back".into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Barrier};

    fn writer() -> (tempfile::TempDir, Arc<Writer>) {
        let (dir, writer, _) = writer_guarding_for(GUARDED_AFTER_A_FAILURE);
        (dir, writer)
    }

    /// A writer, with what it keeps in memory.
    fn writer_guarding_for(guarded_for: Duration) -> (tempfile::TempDir, Arc<Writer>, Arc<Memory>) {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("w.db")).unwrap();
        conn.execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE t (n INTEGER UNIQUE);")
            .unwrap();
        // The writer prepares the statements of the tasks' table.
        super::super::migrate::apply(&conn).unwrap();
        let memory = Arc::new(Memory::default());
        let writer = Writer::start_guarding_for(conn, memory.clone(), guarded_for).unwrap();
        (dir, Arc::new(writer), memory)
    }

    /// Client "c"'s queued tasks as the counts keep them (each job below moves one).
    fn counted(memory: &Memory) -> u64 {
        memory.counts_of(Some("c"))[counts::slot(State::Queued)]
    }

    fn count(w: &Writer) -> i64 {
        w.write(|tx| Ok(tx.query_row("SELECT count(*) FROM t", [], |r| r.get(0))?))
            .unwrap()
    }

    #[test]
    fn a_job_dropped_unanswered_answers_that_the_writer_stopped() {
        let slot = Arc::new(AnswerSlot::<()> {
            answer: Mutex::new(None),
            ready: Condvar::new(),
        });
        let answerer = Answerer(Some(slot.clone()));
        std::thread::spawn(move || drop(answerer)).join().unwrap();
        assert!(matches!(slot.wait(), Err(StoreError::Unavailable(_))));
    }

    #[test]
    fn concurrent_writes_each_get_their_own_answer_and_a_failure_stays_its_own() {
        let (_dir, w) = writer();
        let threads = 32;
        let barrier = Arc::new(Barrier::new(threads));
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let (w, barrier) = (w.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    // Every fourth write collides with the UNIQUE constraint: only it fails.
                    let n = if i % 4 == 0 { 0 } else { i as i64 };
                    w.write(move |tx| Ok(tx.execute("INSERT INTO t (n) VALUES (?1)", [n])?))
                })
            })
            .collect();
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let failed = results.iter().filter(|r| r.is_err()).count();
        // Eight writes of 0: one wins, seven fail; all the others succeed.
        assert_eq!(failed, 7, "{results:?}");
        assert_eq!(count(&w), (threads - 7) as i64);
    }

    /// A full disk or an I/O error in the middle of a batch makes SQLite roll back the whole
    /// transaction by itself (a job here does it by hand, which leaves the same state): every
    /// job of the batch is lost and must hear why, not an error about a savepoint that is
    /// gone, and nothing of it may be committed piecemeal; the next write works.
    #[test]
    fn a_batch_rolled_back_by_sqlite_fails_every_job_with_its_cause_and_the_writer_goes_on() {
        let (_dir, w, counts) = writer_guarding_for(GUARDED_AFTER_A_FAILURE);
        // A first write holds the writer until the batch under test is queued behind it.
        let release = w.hold();
        let answers: Vec<_> = (1..=3)
            .map(|n| {
                let slot = Arc::new(AnswerSlot {
                    answer: Mutex::new(None),
                    ready: Condvar::new(),
                });
                let answerer = Answerer(Some(slot.clone()));
                w.write_then(
                    move |tx| {
                        tx.execute("INSERT INTO t (n) VALUES (?1)", [n])?;
                        tx.moved("c", None, Some(State::Queued));
                        if n == 2 {
                            tx.execute_batch("ROLLBACK")?;
                            return Err(StoreError::DiskFull);
                        }
                        Ok(())
                    },
                    move |result| answerer.answer(result),
                );
                slot
            })
            .collect();
        release.send(()).unwrap();
        for (n, slot) in answers.iter().enumerate() {
            let answer = slot.wait();
            assert!(
                matches!(answer, Err(StoreError::DiskFull)),
                "job {}: {answer:?}",
                n + 1
            );
        }
        assert_eq!(count(&w), 0, "a job of the lost batch was committed");
        assert_eq!(
            counted(&counts),
            0,
            "a job of the lost batch moved the counts"
        );
        w.write(|tx| Ok(tx.execute("INSERT INTO t (n) VALUES (4)", [])?))
            .unwrap();
        assert_eq!(count(&w), 1);
    }

    /// Queues, as one batch behind a write that holds the writer, three jobs inserting
    /// `base`, `base + 1` and `base + 2`, the second then failing (it inserts `base` again);
    /// returns whether each succeeded and how many times each ran.
    fn a_batch_with_a_failing_job(w: &Writer, base: i64) -> (Vec<bool>, Vec<usize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let release = w.hold();
        let runs: Arc<Vec<AtomicUsize>> = Arc::new((0..3).map(|_| AtomicUsize::new(0)).collect());
        let answers: Vec<_> = (0..3)
            .map(|n| {
                let slot = Arc::new(AnswerSlot {
                    answer: Mutex::new(None),
                    ready: Condvar::new(),
                });
                let (answerer, runs) = (Answerer(Some(slot.clone())), runs.clone());
                w.write_then(
                    move |tx| {
                        runs[n].fetch_add(1, Ordering::SeqCst);
                        tx.execute("INSERT INTO t (n) VALUES (?1)", [base + n as i64])?;
                        tx.moved("c", None, Some(State::Queued));
                        if n == 1 {
                            // A second write of the same job fails: the first must go too.
                            tx.execute("INSERT INTO t (n) VALUES (?1)", [base])?;
                        }
                        Ok(())
                    },
                    move |result| answerer.answer(result),
                );
                slot
            })
            .collect();
        release.send(()).unwrap();
        let outcomes = answers.iter().map(|slot| slot.wait().is_ok()).collect();
        let runs = runs.iter().map(|r| r.load(Ordering::SeqCst)).collect();
        (outcomes, runs)
    }

    fn stored(w: &Writer) -> Vec<i64> {
        w.write(|tx| {
            let mut stmt = tx.prepare("SELECT n FROM t ORDER BY n")?;
            let rows = stmt.query_map([], |r| r.get(0))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .unwrap()
    }

    /// Jobs run with no savepoint between them; when one fails, the batch runs again
    /// without it, each job in a savepoint: its partial writes are gone, the others'
    /// writes are committed once, and each caller hears its own job's outcome.
    #[test]
    fn a_failed_job_in_a_batch_is_rolled_back_alone_and_the_others_run_again() {
        let (_dir, w, counts) = writer_guarding_for(GUARDED_AFTER_A_FAILURE);
        let (outcomes, runs) = a_batch_with_a_failing_job(&w, 10);
        assert_eq!(outcomes, [true, false, true]);
        assert_eq!(
            stored(&w),
            [10, 12],
            "the failed job's first insert was kept"
        );
        // The first job ran in both passes, the failed one once, the last in the second.
        assert_eq!(runs, [2, 1, 1]);
        // The counts moved by the jobs committed, once each: not by the failed one, nor by
        // the first pass.
        assert_eq!(counted(&counts), 2);
    }

    /// After a batch had to run again, the next ones run guarded from the start (for an
    /// hour here): a failing job costs no second run.
    #[test]
    fn after_a_failure_the_next_batches_run_guarded_and_nothing_runs_twice() {
        let (_dir, w, counts) = writer_guarding_for(Duration::from_secs(3600));
        assert_eq!(a_batch_with_a_failing_job(&w, 10).1, [2, 1, 1]);
        let (outcomes, runs) = a_batch_with_a_failing_job(&w, 20);
        assert_eq!(outcomes, [true, false, true]);
        assert_eq!(runs, [1, 1, 1]);
        assert_eq!(stored(&w), [10, 12, 20, 22]);
        assert_eq!(counted(&counts), 4);
    }

    #[test]
    fn a_panicking_write_is_an_error_and_the_writer_goes_on() {
        let (_dir, w) = writer();
        let panicked: Result<()> = w.write(|_| panic!("boom"));
        assert!(matches!(panicked, Err(StoreError::Internal(_))));
        w.write(|tx| Ok(tx.execute("INSERT INTO t (n) VALUES (1)", [])?))
            .unwrap();
        assert_eq!(count(&w), 1);
    }

    /// A COMMIT that fails with the transaction still open (a deferred constraint) fails
    /// its batch, and the transaction is rolled back: the next batch begins anew and the
    /// failed one left nothing.
    #[test]
    fn a_failed_commit_is_rolled_back_and_the_writer_goes_on() {
        let (_dir, w) = writer();
        w.write(|tx| {
            Ok(tx.execute_batch(
                "CREATE TABLE parent (id INTEGER PRIMARY KEY);
                 CREATE TABLE child (p INTEGER REFERENCES parent (id)
                     DEFERRABLE INITIALLY DEFERRED);",
            )?)
        })
        .unwrap();
        let orphan = w.write(|tx| Ok(tx.execute("INSERT INTO child (p) VALUES (7)", [])?));
        assert!(orphan.is_err(), "a child without its parent was committed");
        w.write(|tx| Ok(tx.execute("INSERT INTO t (n) VALUES (1)", [])?))
            .unwrap();
        let children: i64 = w
            .write(|tx| Ok(tx.query_row("SELECT count(*) FROM child", [], |r| r.get(0))?))
            .unwrap();
        assert_eq!((children, count(&w)), (0, 1));
    }

    /// The writer checkpoints the WAL itself (SQLite's automatic checkpoint is off on its
    /// connection): the log stays about `CHECKPOINT_PAGES` long, however much is written.
    #[test]
    fn the_log_is_checkpointed_as_it_grows() {
        use crate::store::{Durability, Store};
        use crate::task::Scope;
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let store = Store::open(&path, Durability::Normal).unwrap();
        // SQLite's own checkpoint (inside COMMIT, under the lock of memory.rs) is off on the
        // writer's connection: the pragma reports 0 once another WAL hook replaced it. So the
        // log kept short below is `checkpoint_if_due`'s doing.
        let automatic: i64 = store
            .write(|tx| Ok(tx.query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))?))
            .unwrap();
        assert_eq!(automatic, 0, "SQLite checkpoints inside COMMIT");
        let mut upload = store.scoped(Scope::All).create_upload().unwrap();
        let block = vec![7u8; 1 << 20];
        for _ in 0..24 {
            upload.write_all(&block).unwrap();
        }
        upload.finish().unwrap();
        let wal = std::fs::metadata(dir.path().join("t.db-wal"))
            .unwrap()
            .len();
        assert!(
            wal < 12 << 20,
            "the WAL grew to {wal} bytes for 24 MiB written"
        );
    }
}
