//! The store's ceiling, as issue 14 defines it: the least SQL a task needs (its insert, its
//! claim, its end) in one process, on the same SQLite with the same durability and the same
//! batching as taskbox (one writer thread committing every write waiting, callers waiting
//! for the commit), and nothing else: no params, no files, no counts, no indexes but the
//! queue's. Its claim is a write, as a store shared by several processes needs; taskbox's
//! own is a read (one process owns its file), so taskbox may pass it. What `in-process` is
//! divided by.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};
use rusqlite::{params, Connection};

use super::http::end_to_end_cap;
use super::{Ctx, STALL_TIMEOUT};
use crate::report::{rate, thousands, Row};

/// Threads submitting, one task per call, as `in-process`.
const THREADS: usize = 8;
/// The most tasks claimed at once, as taskbox's dispatcher at most claims ahead.
const CLAIM: i64 = 256;

/// A write for the writer thread.
enum Write {
    /// Insert a task; answer when committed.
    Insert(Sender<()>),
    /// Claim up to `CLAIM` waiting tasks; answer their ids when committed.
    Claim(Sender<Vec<i64>>),
    /// End these tasks (no answer needed).
    End(Vec<i64>),
}

pub fn store_ceiling(ctx: &mut Ctx) -> Result<Row, String> {
    let dir = ctx.dir("store-ceiling")?;
    let path = dir.join("ceiling.db");
    let conn = Connection::open(&path).map_err(|e| format!("store-ceiling: {e}"))?;
    let sync = ctx.durability().synchronous_level();
    conn.execute_batch(&format!(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous={sync};
         CREATE TABLE t (id INTEGER PRIMARY KEY, state INTEGER NOT NULL);
         CREATE INDEX t_waiting ON t (id) WHERE state = 0;"
    ))
    .map_err(|e| format!("store-ceiling: {e}"))?;
    let (writes, queue) = crossbeam_channel::unbounded::<Write>();
    let ended = Arc::new(AtomicU64::new(0));
    let writer = {
        let ended = ended.clone();
        std::thread::spawn(move || write_all(conn, queue, &ended))
    };
    // Rung by every committed insert, so the claimer sleeps while nothing waits.
    let inserted = Arc::new((Mutex::new(0u64), Condvar::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let claimer = {
        let (writes, inserted, stop) = (writes.clone(), inserted.clone(), stop.clone());
        std::thread::spawn(move || claim_and_end(&writes, &inserted, &stop))
    };
    let cap = end_to_end_cap(ctx);
    let tickets = AtomicU64::new(0);
    let started = Instant::now();
    let deadline = started + ctx.duration();
    let submitted: u64 = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                let (writes, tickets, inserted) = (&writes, &tickets, &inserted);
                scope.spawn(move || {
                    let mut ok = 0u64;
                    while Instant::now() < deadline && tickets.fetch_add(1, Ordering::Relaxed) < cap
                    {
                        let (done, answer) = crossbeam_channel::bounded(1);
                        if writes.send(Write::Insert(done)).is_err() || answer.recv().is_err() {
                            break;
                        }
                        ok += 1;
                        let (count, ring) = &**inserted;
                        *count.lock().unwrap() += 1;
                        ring.notify_one();
                    }
                    ok
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
    });
    let submitted_at = Instant::now();
    // Wakes the claimer to see that it is to stop.
    let stop_claiming = || {
        stop.store(true, Ordering::SeqCst);
        inserted.1.notify_all();
    };
    let mut last = (0, Instant::now());
    let done = loop {
        let n = ended.load(Ordering::SeqCst);
        if n >= submitted {
            break Instant::now();
        }
        if n != last.0 {
            last = (n, Instant::now());
        } else if last.1.elapsed() > STALL_TIMEOUT {
            stop_claiming();
            return Err(format!(
                "store-ceiling: stalled at {n} of {submitted} tasks"
            ));
        }
        std::thread::sleep(super::POLL_EVERY / 10);
    };
    stop_claiming();
    let _ = claimer.join();
    drop(writes);
    let _ = writer.join();
    let elapsed = done.duration_since(started);
    let tps = submitted as f64 / elapsed.as_secs_f64();
    ctx.store_ceiling = Some(tps);
    let mut row = Row::new("store-ceiling", tps, "tasks/s");
    row.figure_text = format!("{} tasks/s", rate(tps));
    row.summary = format!(
        "{} tasks inserted, claimed and ended in {:.2} s (inserted at {}/s by {THREADS} threads, one commit for all the writes waiting)",
        thousands(submitted),
        elapsed.as_secs_f64(),
        rate(submitted as f64 / submitted_at.duration_since(started).as_secs_f64()),
    );
    row.detail("tasks", submitted)
        .num("seconds", elapsed.as_secs_f64())
        .detail("threads", THREADS);
    Ok(row)
}

/// The writer: takes every write waiting, runs them in one transaction, commits, answers.
fn write_all(conn: Connection, queue: Receiver<Write>, ended: &AtomicU64) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        batch.extend(queue.try_iter().take(511));
        let mut answers: Vec<Box<dyn FnOnce()>> = Vec::with_capacity(batch.len());
        let mut ending = 0u64;
        let ran = (|| -> rusqlite::Result<()> {
            conn.execute_batch("BEGIN IMMEDIATE")?;
            for write in batch {
                match write {
                    Write::Insert(done) => {
                        conn.prepare_cached("INSERT INTO t (state) VALUES (0)")?
                            .execute([])?;
                        answers.push(Box::new(move || {
                            let _ = done.send(());
                        }));
                    }
                    Write::Claim(done) => {
                        let ids: Vec<i64> = conn
                            .prepare_cached(
                                "UPDATE t SET state = 1 WHERE id IN \
                                 (SELECT id FROM t WHERE state = 0 ORDER BY id LIMIT ?1) \
                                 RETURNING id",
                            )?
                            .query_map([CLAIM], |r| r.get(0))?
                            .collect::<rusqlite::Result<_>>()?;
                        answers.push(Box::new(move || {
                            let _ = done.send(ids);
                        }));
                    }
                    Write::End(ids) => {
                        let mut end =
                            conn.prepare_cached("UPDATE t SET state = 2 WHERE id = ?1")?;
                        for id in &ids {
                            end.execute(params![id])?;
                        }
                        ending += ids.len() as u64;
                    }
                }
            }
            conn.execute_batch("COMMIT")
        })();
        if ran.is_err() {
            let _ = conn.execute_batch("ROLLBACK");
            continue;
        }
        ended.fetch_add(ending, Ordering::SeqCst);
        for answer in answers {
            answer();
        }
    }
}

/// The dispatcher and the workers in one: claims what waits, ends it at once.
fn claim_and_end(writes: &Sender<Write>, inserted: &(Mutex<u64>, Condvar), stop: &AtomicBool) {
    let mut seen = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let (done, answer) = crossbeam_channel::bounded(1);
        if writes.send(Write::Claim(done)).is_err() {
            return;
        }
        let Ok(ids) = answer.recv() else { return };
        if !ids.is_empty() {
            if writes.send(Write::End(ids)).is_err() {
                return;
            }
            continue;
        }
        let (count, ring) = inserted;
        let mut count = count.lock().unwrap();
        while *count == seen && !stop.load(Ordering::SeqCst) {
            count = ring.wait(count).unwrap();
        }
        seen = *count;
    }
}
