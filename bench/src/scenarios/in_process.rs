//! Throughput through the library, with no HTTP: tasks submitted by threads of the
//! embedder's own, one per call (`Service::submit`) or a hundred per call
//! (`Service::submit_many`), and completed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use taskbox::config::Config;
use taskbox::Service;
use taskbox::{ListFilter, NewTask, Params, State};

use super::http::end_to_end_cap;
use super::{wait_for_count, Ctx};
use crate::load::Latencies;
use crate::report::{ms, rate, thousands, Row};

/// Threads submitting.
const THREADS: usize = 8;

/// Tasks per call of `in-process-many`.
pub const MANY: usize = 100;

pub fn in_process(ctx: &mut Ctx) -> Result<Row, String> {
    run(ctx, "in-process", 1)
}

pub fn in_process_many(ctx: &mut Ctx) -> Result<Row, String> {
    run(ctx, "in-process-many", MANY)
}

/// `THREADS` threads each submitting `per_call` `sleep` tasks of 0 s per call, for the
/// scenario's duration (or its cap of tasks), then the wait until all have completed.
fn run(ctx: &mut Ctx, name: &'static str, per_call: usize) -> Result<Row, String> {
    let dir = ctx.dir(name)?;
    let config = Config {
        listen: "127.0.0.1:0".into(),
        db_path: dir.join("taskbox.db"),
        durability: ctx.durability(),
        ..Config::default()
    };
    let service = Service::start(config).map_err(|e| format!("{name}: starting: {e}"))?;
    let batch = vec![NewTask::new("sleep", Params::new()); per_call];
    let calls = end_to_end_cap(ctx).div_ceil(per_call as u64);
    let tickets = AtomicU64::new(0);
    let first_error = Mutex::new(None::<String>);
    let started = Instant::now();
    let deadline = started + ctx.duration();
    let per_thread: Vec<(u64, Vec<u64>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                let (service, batch, tickets, first_error) =
                    (&service, &batch, &tickets, &first_error);
                scope.spawn(move || {
                    let (mut ok, mut latencies) = (0u64, Vec::new());
                    while Instant::now() < deadline
                        && tickets.fetch_add(1, Ordering::Relaxed) < calls
                    {
                        let sent = Instant::now();
                        let submitted = if per_call == 1 {
                            service.submit(&batch[0]).map(|_| 1)
                        } else {
                            service.submit_many(batch).map(|ids| ids.len() as u64)
                        };
                        match submitted {
                            Ok(n) => {
                                latencies.push(sent.elapsed().as_nanos() as u64);
                                ok += n;
                            }
                            Err(e) => {
                                first_error.lock().unwrap().get_or_insert(e.to_string());
                                break;
                            }
                        }
                    }
                    (ok, latencies)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a submitting thread panicked"))
            .collect()
    });
    let submitted_at = Instant::now();
    let submitted: u64 = per_thread.iter().map(|(ok, _)| ok).sum();
    let latencies = Latencies::new(per_thread.into_iter().flat_map(|(_, l)| l).collect());
    let filter = |state| ListFilter {
        states: vec![state],
        limit: 1,
        ..ListFilter::default()
    };
    let done = wait_for_count(submitted, || {
        service
            .tasks(&filter(State::Succeeded))
            .map(|(_, total)| total)
            .map_err(|e| format!("listing: {e}"))
    });
    let failed = service
        .tasks(&filter(State::Failed))
        .map(|(_, total)| total);
    service.shutdown();
    if let Some(e) = first_error.into_inner().unwrap() {
        return Err(format!("{name}: a submission failed: {e}"));
    }
    let done = done.map_err(|e| format!("{name}: {e}"))?;
    match failed {
        Ok(0) => {}
        Ok(n) => return Err(format!("{name}: {n} task(s) ended ERROR")),
        Err(e) => return Err(format!("{name}: listing: {e}")),
    }
    let elapsed = done.duration_since(started);
    let submit_secs = submitted_at.duration_since(started).as_secs_f64();
    let tps = submitted as f64 / elapsed.as_secs_f64();
    let mut row = Row::new(name, tps, "tasks/s");
    row.figure_text = format!("{} tasks/s", rate(tps));
    let calls = if per_call == 1 {
        String::new()
    } else {
        format!(", {per_call} per call")
    };
    row.summary = format!(
        "{} tasks in {:.2} s (submitted at {}/s by {THREADS} threads{calls}, p99 {} a call; last done {:.2} s after the last submission)",
        thousands(submitted),
        elapsed.as_secs_f64(),
        rate(submitted as f64 / submit_secs),
        ms(latencies.ms(0.99)),
        done.saturating_duration_since(submitted_at).as_secs_f64(),
    );
    // The store ceiling submits one task per call: a ratio only for the same.
    if let Some(ceiling) = ctx.store_ceiling.filter(|_| per_call == 1) {
        row.ratio = Some((tps / ceiling, "store ceiling"));
    }
    row.detail("tasks", submitted)
        .num("seconds", elapsed.as_secs_f64())
        .num("submit_per_s", submitted as f64 / submit_secs)
        .num("submit_p50_ms", latencies.ms(0.5))
        .num("submit_p99_ms", latencies.ms(0.99))
        .num(
            "drain_seconds",
            done.saturating_duration_since(submitted_at).as_secs_f64(),
        )
        .detail("threads", THREADS)
        .detail("tasks_per_call", per_call);
    Ok(row)
}
