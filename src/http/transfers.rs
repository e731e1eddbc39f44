//! The transfer threads. A request whose body must be read from the network, or whose answer
//! is long (a file, a long list), is handed here by the HTTP thread that took it, so that
//! only these threads ever wait for a client's bytes: however many slow clients there are,
//! they hold at most `--transfer-threads` threads, each until its transfer is cut off (see
//! meter.rs), and the HTTP threads go on answering everyone else.
//!
//! A transfer waits its turn in one queue while every transfer thread is busy; its time
//! there is not counted against its client. A request waiting to be read costs nothing but
//! its connection; an answer waiting to be sent holds its file open in the store (a pooled
//! connection, a snapshot), so at most as many answers wait as there are transfer threads,
//! and one more is refused (503: try again).
//!
//! An answer that must be held back for a while (a failed authentication's: see
//! auth/throttle.rs) waits in a queue of its own, ordered by when it is due, and one thread
//! sends each at its time: a delay costs no thread per request, and a flood of bad tokens
//! holds no thread that a good client needs. A request pipelined behind it is set aside
//! until it is sent, as behind any answer (guard.rs), rather than wait on it.

use std::cmp::{Ordering as Order, Reverse};
use std::collections::BinaryHeap;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};

use super::guard::Busy;
use super::serve::Answered;

/// Work for a transfer thread.
pub enum Job {
    /// A request whose body is read from the network: answered whole by the thread.
    Serve(tiny_http::Request, Busy),
    /// An answer to send.
    Send(tiny_http::Request, Answered, Busy),
}

pub struct Transfers {
    queue: Mutex<Option<Sender<Job>>>,
    /// Answers queued and not yet taken by a thread.
    waiting_answers: Arc<AtomicUsize>,
    max_waiting_answers: usize,
    /// Answers held back until their time.
    held: Arc<HeldAnswers>,
}

impl Transfers {
    /// Starts `threads` threads that run each job with `run`; each calls `exited` as it
    /// ends (after `stop`, once the queue is empty).
    /// At most `max_held` answers are held back at once.
    pub fn start(
        threads: usize,
        max_held: usize,
        run: impl Fn(Job) + Send + Sync + 'static,
        exited: impl Fn() + Send + Sync + 'static,
    ) -> std::io::Result<Transfers> {
        let (sender, receiver) = crossbeam_channel::unbounded();
        let waiting_answers = Arc::new(AtomicUsize::new(0));
        let (run, exited) = (Arc::new(run), Arc::new(exited));
        for n in 0..threads {
            let (receiver, waiting) = (receiver.clone(), waiting_answers.clone());
            let (run, exited) = (run.clone(), exited.clone());
            std::thread::Builder::new()
                .name(format!("http-transfer-{n}"))
                .spawn(move || {
                    take_jobs(&receiver, &waiting, &*run);
                    exited();
                })?;
        }
        let held = Arc::new(HeldAnswers::new(max_held));
        {
            let (held, run) = (held.clone(), run.clone());
            std::thread::Builder::new()
                .name("http-held".into())
                .spawn(move || held.send_when_due(&*run))?;
        }
        Ok(Transfers {
            queue: Mutex::new(Some(sender)),
            waiting_answers,
            max_waiting_answers: threads,
            held,
        })
    }

    /// Holds an answer back until `due`, then sends it; gives it back when `max_held` wait
    /// already (the caller sends it at once).
    pub fn hold(
        &self,
        request: tiny_http::Request,
        answered: Answered,
        busy: Busy,
        due: Instant,
    ) -> Result<(), Box<(tiny_http::Request, Answered, Busy)>> {
        self.held.push(Job::Send(request, answered, busy), due)
    }

    /// Queues a request to be read and answered.
    pub fn serve(&self, request: tiny_http::Request, busy: Busy) {
        self.push(Job::Serve(request, busy));
    }

    /// Queues an answer to be sent, unless as many wait as there are transfer threads: then
    /// the answer is given back.
    pub fn send(
        &self,
        request: tiny_http::Request,
        answered: Answered,
        busy: Busy,
    ) -> Result<(), Box<(tiny_http::Request, Answered, Busy)>> {
        let waiting = self.waiting_answers.fetch_add(1, Ordering::SeqCst);
        if waiting >= self.max_waiting_answers {
            self.waiting_answers.fetch_sub(1, Ordering::SeqCst);
            return Err(Box::new((request, answered, busy)));
        }
        self.push(Job::Send(request, answered, busy));
        Ok(())
    }

    fn push(&self, job: Job) {
        let queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        match queue.as_ref() {
            // Dropped when stopping: tiny_http answers the request 500 as it drops it.
            Some(queue) => drop(queue.send(job)),
            None => drop(job),
        }
    }

    /// Ends the queue: each thread exits once it has no job left; the answers held back
    /// are sent at once.
    pub fn stop(&self) {
        self.queue.lock().unwrap_or_else(|e| e.into_inner()).take();
        self.held.close();
    }
}

/// An answer held back, ordered by when it is due (then by arrival).
struct Held {
    due: Instant,
    seq: u64,
    job: Job,
}

impl PartialEq for Held {
    fn eq(&self, other: &Held) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Held) -> Option<Order> {
        Some(self.cmp(other))
    }
}
impl Ord for Held {
    fn cmp(&self, other: &Held) -> Order {
        (self.due, self.seq).cmp(&(other.due, other.seq))
    }
}

#[derive(Default)]
struct HeldState {
    queue: BinaryHeap<Reverse<Held>>,
    seq: u64,
    closed: bool,
}

/// The answers held back, and the one thread that sends them when due.
struct HeldAnswers {
    state: Mutex<HeldState>,
    changed: Condvar,
    max: usize,
}

impl HeldAnswers {
    fn new(max: usize) -> HeldAnswers {
        HeldAnswers {
            state: Mutex::default(),
            changed: Condvar::new(),
            max,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HeldState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(
        &self,
        job: Job,
        due: Instant,
    ) -> Result<(), Box<(tiny_http::Request, Answered, Busy)>> {
        let mut state = self.lock();
        if state.closed || state.queue.len() >= self.max {
            return match job {
                Job::Send(request, answered, busy) => Err(Box::new((request, answered, busy))),
                Job::Serve(..) => unreachable!("only answers are held"),
            };
        }
        state.seq += 1;
        let seq = state.seq;
        state.queue.push(Reverse(Held { due, seq, job }));
        drop(state);
        self.changed.notify_one();
        Ok(())
    }

    /// Sends each answer when it is due (all at once after `close`), until closed and empty.
    fn send_when_due(&self, run: &dyn Fn(Job)) {
        loop {
            let job = {
                let mut state = self.lock();
                loop {
                    let now = Instant::now();
                    match state.queue.peek() {
                        Some(Reverse(next)) if state.closed || next.due <= now => {
                            break state.queue.pop().map(|Reverse(held)| held.job);
                        }
                        Some(Reverse(next)) => {
                            let wait = next.due - now;
                            state = self
                                .changed
                                .wait_timeout(state, wait)
                                .unwrap_or_else(|e| e.into_inner())
                                .0;
                        }
                        None if state.closed => return,
                        None => {
                            state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
                        }
                    }
                }
            };
            if let Some(job) = job {
                if panic::catch_unwind(AssertUnwindSafe(|| run(job))).is_err() {
                    log::error!("sending an answer held back panicked; the thread goes on");
                }
            }
        }
    }

    fn close(&self) {
        self.lock().closed = true;
        self.changed.notify_all();
    }
}

fn take_jobs(receiver: &Receiver<Job>, waiting_answers: &AtomicUsize, run: &dyn Fn(Job)) {
    while let Ok(job) = receiver.recv() {
        if matches!(job, Job::Send(..)) {
            waiting_answers.fetch_sub(1, Ordering::SeqCst);
        }
        // A route's panic is caught where the route runs; this keeps the thread for the rest.
        if panic::catch_unwind(AssertUnwindSafe(|| run(job))).is_err() {
            log::error!("a transfer panicked; the thread goes on");
        }
    }
}
