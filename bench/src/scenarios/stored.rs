//! Reads with many tasks stored (poll, list), and the server at rest (idle, memory).
//!
//! The stored tasks are `sleep` tasks of a day, preloaded before the server starts, which
//! runs with one worker: at most one of them runs (and a few wait claimed in the
//! dispatcher's queue), the rest stay Pending.

use std::io::Write;
use std::time::Duration;

use super::{total_count, Ctx};
use crate::load::{self, Conn, Outcome, Plan};
use crate::report::{mib, ms, rate, thousands, Row};

/// Connections polling, and connections submitting meanwhile, in the poll scenario.
const POLL_CONNECTIONS: usize = 8;
const POLL_SUBMITTERS: usize = 8;
/// The list scenario's connections: one, so that its percentiles are the query's own time
/// and not a queue's.
const LIST_CONNECTIONS: usize = 1;
/// A preloaded task's length: longer than any run.
const DAY: &str = "86400";

/// A pseudo-random id in `first..=last` for request `n` of connection `c`.
fn pick(first: i64, last: i64, c: usize, n: u64) -> i64 {
    let mut x = ((c as u64) << 40 ^ n).wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    first + (x % (last - first + 1) as u64) as i64
}

/// A fresh database of `ctx.stored()` tasks with taskbox started on it, one worker.
fn stored_server(
    ctx: &mut Ctx,
    name: &str,
) -> Result<(crate::server::TempDir, crate::server::Server, i64, i64, f64), String> {
    let dir = ctx.dir(name)?;
    let template = ctx.stored_db(&dir, DAY)?;
    let (first, last, preload_secs) = (template.first, template.last, template.preload_secs);
    let server = ctx.start_taskbox(&dir, Some(1))?;
    Ok((dir, server, first, last, preload_secs))
}

pub fn poll(ctx: &mut Ctx) -> Result<Row, String> {
    let (_dir, server, first, last, preload_secs) = stored_server(ctx, "poll")?;
    let addr = server.addr;
    let submit = load::submit_request(addr, "0");
    let duration = Some(ctx.duration());
    let (polls, submits) = std::thread::scope(|scope| {
        let submits = scope.spawn(|| {
            let plan = Plan {
                connections: POLL_SUBMITTERS,
                duration,
                count: None,
                expect: 202,
            };
            load::run(addr, &plan, |_, _, buf| buf.extend_from_slice(&submit))
        });
        let plan = Plan {
            connections: POLL_CONNECTIONS,
            duration,
            count: None,
            expect: 200,
        };
        let authorization = load::authorization_line();
        let polls = load::run(addr, &plan, |c, n, buf| {
            let id = pick(first, last, c, n);
            let _ = write!(
                buf,
                "GET /webservicetasks/{id} HTTP/1.1\r\nHost: {addr}\r\n{authorization}\r\n"
            );
        });
        (polls, submits.join().expect("the submit load panicked"))
    });
    server.stop()?;
    polls.check("poll")?;
    submits.check("poll: the submit load")?;
    let l = &polls.latencies;
    let mut row = Row::new("poll", l.ms(0.99), "ms (p99)");
    row.figure_text = format!("p99 {}", ms(l.ms(0.99)));
    row.summary = format!(
        "p50 {} p99 {} p999 {}, {} polls/s on {POLL_CONNECTIONS} connections while {} submits/s on {POLL_SUBMITTERS}, {} stored",
        ms(l.ms(0.5)),
        ms(l.ms(0.99)),
        ms(l.ms(0.999)),
        rate(polls.per_second()),
        rate(submits.per_second()),
        thousands(ctx.stored())
    );
    row.loadgen_cpu = Some(polls.cpu_share);
    row.num("p50_ms", l.ms(0.5))
        .num("p99_ms", l.ms(0.99))
        .num("p999_ms", l.ms(0.999))
        .num("polls_per_s", polls.per_second())
        .detail("polls", polls.ok)
        .detail("poll_connections", POLL_CONNECTIONS)
        .num("submits_per_s", submits.per_second())
        .num("submit_p99_ms", submits.latencies.ms(0.99))
        .detail("submit_connections", POLL_SUBMITTERS)
        .detail("stored", ctx.stored())
        .num("preload_seconds", preload_secs);
    Ok(row)
}

pub fn list(ctx: &mut Ctx) -> Result<Row, String> {
    let (_dir, server, _, _, preload_secs) = stored_server(ctx, "list")?;
    let addr = server.addr;
    let duration = ctx.duration();
    let mut runs: Vec<(&str, Outcome)> = Vec::new();
    for (label, query) in [
        ("all", ""),
        ("pending", "?status=pending"),
        ("success", "?status=success"),
    ] {
        let request = load::get(addr, &format!("/webservicetasks{query}"));
        let plan = Plan {
            connections: LIST_CONNECTIONS,
            duration: Some(duration),
            count: None,
            expect: 200,
        };
        let out = load::run(addr, &plan, |_, _, buf| buf.extend_from_slice(&request));
        runs.push((label, out));
    }
    // Counted after the runs: the dispatcher's first claim may come after the start.
    let mut conn = Conn::new(addr);
    let pending = total_count(&mut conn, addr, "status=pending");
    drop(conn);
    server.stop()?;
    let pending = pending?;
    for (label, out) in &runs {
        out.check(&format!("list ({label})"))?;
    }
    let all = &runs[0].1.latencies;
    let mut row = Row::new("list", all.ms(0.99), "ms (p99, no filter)");
    row.figure_text = format!("p99 {}", ms(all.ms(0.99)));
    row.summary = runs
        .iter()
        .map(|(label, out)| {
            format!(
                "{label}: p50 {} p99 {}",
                ms(out.latencies.ms(0.5)),
                ms(out.latencies.ms(0.99))
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    row.summary.push_str(&format!(
        "; first page of 100, {} stored ({} pending), {LIST_CONNECTIONS} connection",
        thousands(ctx.stored()),
        thousands(pending)
    ));
    row.loadgen_cpu = Some(runs[0].1.cpu_share);
    for (label, out) in &runs {
        row.num(&format!("{label}_p50_ms"), out.latencies.ms(0.5))
            .num(&format!("{label}_p99_ms"), out.latencies.ms(0.99))
            .num(&format!("{label}_per_s"), out.per_second());
    }
    row.detail("stored", ctx.stored())
        .detail("pending", pending)
        .detail("connections", LIST_CONNECTIONS)
        .num("preload_seconds", preload_secs);
    Ok(row)
}

pub fn idle(ctx: &mut Ctx) -> Result<Row, String> {
    let dir = ctx.dir("idle")?;
    let server = ctx.start_taskbox(&dir, None)?;
    // Let the start settle (the pool's connections, the threads).
    std::thread::sleep(Duration::from_millis(500));
    let window = if ctx.quick {
        Duration::from_secs(2)
    } else {
        Duration::from_secs(10)
    };
    let before = server.cpu_seconds();
    std::thread::sleep(window);
    let cpu = server.cpu_seconds() - before;
    let rss = server.rss_mib();
    server.stop()?;
    if !cpu.is_finite() {
        return Err("idle: cannot read the server's CPU time from /proc".into());
    }
    let mut row = Row::new("idle", cpu, "CPU s");
    row.figure_text = format!("{cpu:.3} s CPU");
    row.summary = format!(
        "over {} s with nothing due, RSS {}",
        window.as_secs(),
        mib(rss)
    );
    row.note = Some(
        "no tasks scheduled in the future: that needs scheduled starts (a later issue)".into(),
    );
    row.num("cpu_seconds", cpu)
        .detail("window_seconds", window.as_secs())
        .num("rss_mib", rss)
        .detail("scheduled_tasks", 0);
    Ok(row)
}

pub fn memory(ctx: &mut Ctx) -> Result<Row, String> {
    // At idle, just started on an empty database.
    let idle_rss = {
        let dir = ctx.dir("memory-idle")?;
        let server = ctx.start_taskbox(&dir, None)?;
        std::thread::sleep(Duration::from_millis(500));
        let rss = server.rss_mib();
        server.stop()?;
        rss
    };
    // With the tasks stored, after a few lists and polls.
    let (_dir, server, first, last, preload_secs) = stored_server(ctx, "memory")?;
    let addr = server.addr;
    let mut conn = Conn::new(addr);
    for query in ["", "?status=pending", "?status=success", "?offset=1000"] {
        for _ in 0..3 {
            let (status, _) = conn
                .fetch(&load::get(addr, &format!("/webservicetasks{query}")))
                .map_err(|e| format!("memory: listing: {e}"))?;
            if status != 200 {
                return Err(format!("memory: listing answered {status}"));
            }
        }
    }
    for n in 0..100 {
        let id = pick(first, last, 0, n);
        let (status, _) = conn
            .fetch(&load::get(addr, &format!("/webservicetasks/{id}")))
            .map_err(|e| format!("memory: polling: {e}"))?;
        if status != 200 {
            return Err(format!("memory: polling task {id} answered {status}"));
        }
    }
    std::thread::sleep(Duration::from_millis(200));
    let stored_rss = server.rss_mib();
    let stored_peak = server.peak_rss_mib();
    server.stop()?;
    if !idle_rss.is_finite() || !stored_rss.is_finite() {
        return Err("memory: cannot read the server's RSS from /proc".into());
    }
    let mut row = Row::new("memory", idle_rss, "MiB RSS (idle)");
    row.figure_text = format!("{} idle", mib(idle_rss));
    row.summary = format!(
        "{} with {} tasks stored after 12 lists and 100 polls (peak {})",
        mib(stored_rss),
        thousands(ctx.stored()),
        mib(stored_peak)
    );
    row.num("idle_rss_mib", idle_rss)
        .num("stored_rss_mib", stored_rss)
        .num("stored_peak_rss_mib", stored_peak)
        .detail("stored", ctx.stored())
        .num("preload_seconds", preload_secs);
    Ok(row)
}
