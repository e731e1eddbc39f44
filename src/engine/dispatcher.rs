//! The dispatcher: the only thing that claims tasks. It claims as many due tasks as there
//! are idle workers (and, for tasks that take next to no time, more: see `claim_limit`),
//! in one statement, and hands them over the channel. It never polls: it
//! sleeps on the store's activity signal until a submission or a finished task rings it, or
//! until the next pending task falls due.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crossbeam_channel::Sender;

use super::Shared;
use crate::store::Claimed;

/// The most tasks claimed ahead of the workers (see `claim_limit`).
pub(super) const MAX_AHEAD: usize = 256;
/// How much work, in time, the tasks claimed ahead of each worker may add up to.
const AHEAD_MICROS: u64 = 10_000;

/// The longest sleep with nothing to do; a safety net, not a poll.
const IDLE_WAIT: Duration = Duration::from_secs(60);
/// The wait before trying again after the store failed.
const ERROR_BACKOFF: Duration = Duration::from_secs(1);

/// Runs until the engine stops. Dropping `tx` on return is what tells the workers to exit.
pub(super) fn run(shared: &Shared, tx: Sender<Claimed>) {
    let store = &shared.store;
    loop {
        let seen = store.activity().generation();
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let free = claim_limit(shared).saturating_sub(shared.busy.load(Ordering::SeqCst));
        let mut wait = IDLE_WAIT;
        if free > 0 {
            match store.claim_due(free) {
                Ok(claims) if !claims.tasks.is_empty() => {
                    for task in claims.tasks {
                        shared.busy.fetch_add(1, Ordering::SeqCst);
                        log::debug!("task {} claimed ({})", task.id, task.kind);
                        if tx.send(task).is_err() {
                            return;
                        }
                    }
                    continue;
                }
                Ok(claims) => {
                    if let Some(due) = claims.next_due_ms {
                        let ms = (due - store.clock().now_ms()).max(5) as u64;
                        wait = Duration::from_millis(ms).min(IDLE_WAIT);
                    }
                }
                Err(e) => {
                    log::error!("dispatcher: claiming tasks failed: {e}");
                    wait = ERROR_BACKOFF;
                }
            }
        }
        store.activity().wait_past(seen, wait);
    }
}

/// How many tasks may be claimed and unfinished at once. One per worker; and, when tasks
/// take next to no time, more waiting in the channel, so that one claim and one commit
/// serve many of them: up to `AHEAD_MICROS` of work per worker (by the moving average of
/// run times), at most `MAX_AHEAD`, and none while a worker's task has run longer than
/// that. A task claimed ahead stays Pending until a worker starts it.
fn claim_limit(shared: &Shared) -> usize {
    let micros = shared.task_micros.load(Ordering::Relaxed);
    // Never ahead of a worker held by a long task: what is claimed would wait behind it.
    if micros == 0 || shared.a_task_runs_longer_than(Duration::from_micros(AHEAD_MICROS)) {
        return shared.workers;
    }
    let ahead = ((AHEAD_MICROS / micros) as usize).saturating_mul(shared.workers);
    shared.workers + ahead.min(MAX_AHEAD)
}
