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

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

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
}

impl Transfers {
    /// Starts `threads` threads that run each job with `run`; each calls `exited` as it
    /// ends (after `stop`, once the queue is empty).
    pub fn start(
        threads: usize,
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
        Ok(Transfers {
            queue: Mutex::new(Some(sender)),
            waiting_answers,
            max_waiting_answers: threads,
        })
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

    /// Ends the queue: each thread exits once it has no job left.
    pub fn stop(&self) {
        self.queue.lock().unwrap_or_else(|e| e.into_inner()).take();
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
