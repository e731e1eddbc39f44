//! Throughput over HTTP: the ceiling, submissions, tasks completed end to end, and bulk
//! submissions (arrays of tasks) completed end to end.

use std::time::{Duration, Instant};

use super::{total_count, wait_for_count, Ctx, CONNECTIONS};
use crate::load::{self, Conn, Outcome, Plan};
use crate::procfs;
use crate::report::{ms, rate, thousands, Row};
use crate::server::Server;

/// The most tasks the end-to-end scenarios submit (they stop earlier when the load's
/// duration is up).
pub(super) fn end_to_end_cap(ctx: &Ctx) -> u64 {
    if ctx.quick {
        2_000
    } else {
        200_000
    }
}

pub(super) fn latency_details(row: &mut Row, out: &Outcome, prefix: &str) {
    row.num(&format!("{prefix}p50_ms"), out.latencies.ms(0.50))
        .num(&format!("{prefix}p99_ms"), out.latencies.ms(0.99))
        .num(&format!("{prefix}p999_ms"), out.latencies.ms(0.999))
        .detail(&format!("{prefix}requests"), out.ok)
        .detail(&format!("{prefix}errors"), out.errors)
        .num(&format!("{prefix}seconds"), out.wall.as_secs_f64());
}

/// The server's CPU share over a load: its CPU seconds ÷ wall ÷ cores.
fn share(cpu: f64, wall: Duration) -> f64 {
    cpu / wall.as_secs_f64().max(1e-9) / procfs::cores() as f64
}

pub fn ceiling(ctx: &mut Ctx) -> Result<Row, String> {
    let row = measure_ceiling(ctx)?;
    ctx.ceiling = Some(row.figure);
    Ok(row)
}

/// Sends `submit`'s request (a `sleep` of 0 s, JSON) on `CONNECTIONS` keep-alive connections
/// for the scenario's duration, expecting status `expect`; returns the load's outcome and
/// the server's CPU share meanwhile.
fn drive_submissions(ctx: &Ctx, server: &Server, expect: u16) -> (Outcome, f64) {
    let request = load::submit_request(server.addr, "0");
    let cpu = server.cpu_seconds();
    let plan = Plan {
        connections: CONNECTIONS,
        duration: Some(ctx.duration()),
        count: None,
        expect,
    };
    let out = load::run(server.addr, &plan, |_, _, buf| {
        buf.extend_from_slice(&request)
    });
    let server_cpu = share(server.cpu_seconds() - cpu, out.wall);
    (out, server_cpu)
}

/// The same requests as `submit` (a JSON submission, 32 keep-alive connections), answered
/// by a bare tiny_http server with taskbox's number of HTTP threads.
fn measure_ceiling(ctx: &Ctx) -> Result<Row, String> {
    let server = Server::ceiling()?;
    let (out, server_cpu) = drive_submissions(ctx, &server, 200);
    server.stop()?;
    out.check("ceiling")?;
    let rps = out.per_second();
    let mut row = Row::new("ceiling", rps, "requests/s");
    row.figure_text = format!("{} requests/s", rate(rps));
    row.summary = format!(
        "p50 {} p99 {}, {CONNECTIONS} connections, server cpu {:.0}%",
        ms(out.latencies.ms(0.5)),
        ms(out.latencies.ms(0.99)),
        server_cpu * 100.0
    );
    row.loadgen_cpu = Some(out.cpu_share);
    latency_details(&mut row, &out, "");
    row.detail("connections", CONNECTIONS)
        .num("server_cpu", server_cpu);
    Ok(row)
}

pub fn submit(ctx: &mut Ctx) -> Result<Row, String> {
    let ceiling = match ctx.ceiling {
        Some(c) => c,
        None => {
            let c = measure_ceiling(ctx)?.figure;
            ctx.ceiling = Some(c);
            c
        }
    };
    let dir = ctx.dir("submit")?;
    let server = ctx.start_taskbox(&dir, None)?;
    let (out, server_cpu) = drive_submissions(ctx, &server, 202);
    server.stop()?;
    out.check("submit")?;
    let tps = out.per_second();
    let mut row = Row::new("submit", tps, "tasks/s");
    row.figure_text = format!("{} tasks/s", rate(tps));
    row.summary = format!(
        "p50 {} p99 {}, {CONNECTIONS} connections, server cpu {:.0}%",
        ms(out.latencies.ms(0.5)),
        ms(out.latencies.ms(0.99)),
        server_cpu * 100.0
    );
    row.ratio = Some((tps / ceiling, "ceiling"));
    row.loadgen_cpu = Some(out.cpu_share);
    row.note = Some(
        "workers running (the paused variant needs a pause switch, which comes with queues)".into(),
    );
    latency_details(&mut row, &out, "");
    row.detail("connections", CONNECTIONS)
        .num("server_cpu", server_cpu)
        .num("ceiling_requests_per_s", ceiling)
        .detail("workers", "running");
    Ok(row)
}

pub fn end_to_end(ctx: &mut Ctx) -> Result<Row, String> {
    let dir = ctx.dir("end-to-end")?;
    let server = ctx.start_taskbox(&dir, None)?;
    let addr = server.addr;
    let request = load::submit_request(addr, "0");
    let cpu = server.cpu_seconds();
    let plan = Plan {
        connections: CONNECTIONS,
        duration: Some(ctx.duration()),
        count: Some(end_to_end_cap(ctx)),
        expect: 202,
    };
    let out = load::run(addr, &plan, |_, _, buf| buf.extend_from_slice(&request));
    let submitted_at = out.started + out.wall;
    let mut conn = Conn::new(addr);
    let done = wait_for_count(out.ok, || total_count(&mut conn, addr, "status=success"));
    let failed = total_count(&mut conn, addr, "status=error");
    let wall = Instant::now().duration_since(out.started);
    let server_cpu = share(server.cpu_seconds() - cpu, wall);
    server.stop()?;
    out.check("end-to-end: submitting")?;
    let done = done.map_err(|e| format!("end-to-end: {e}"))?;
    let failed = failed?;
    if failed > 0 {
        return Err(format!("end-to-end: {failed} task(s) ended ERROR"));
    }
    let elapsed = done.duration_since(out.started);
    let tps = out.ok as f64 / elapsed.as_secs_f64();
    let mut row = Row::new("end-to-end", tps, "tasks/s");
    row.figure_text = format!("{} tasks/s", rate(tps));
    row.summary = format!(
        "{} tasks in {:.2} s (submitted at {}/s, p99 {}; last done {:.2} s after the last submission), server cpu {:.0}%",
        thousands(out.ok),
        elapsed.as_secs_f64(),
        rate(out.per_second()),
        ms(out.latencies.ms(0.99)),
        done.saturating_duration_since(submitted_at).as_secs_f64(),
        server_cpu * 100.0
    );
    row.loadgen_cpu = Some(out.cpu_share);
    latency_details(&mut row, &out, "submit_");
    row.detail("tasks", out.ok)
        .num("seconds", elapsed.as_secs_f64())
        .num("submit_per_s", out.per_second())
        .num(
            "drain_seconds",
            done.saturating_duration_since(submitted_at).as_secs_f64(),
        )
        .num("server_cpu", server_cpu)
        .detail("connections", CONNECTIONS);
    Ok(row)
}

/// Tasks per request of the bulk scenario.
const BULK_TASKS: usize = 100;
/// Connections of the bulk scenario: as many as `submit`'s.
const BULK_CONNECTIONS: usize = CONNECTIONS;

/// POST /webservicetasks/bulk of `BULK_TASKS` tasks per request on `BULK_CONNECTIONS`
/// keep-alive connections for the scenario's duration (or its cap of tasks): tasks accepted
/// per second, and the wait until all have completed.
pub fn bulk(ctx: &mut Ctx) -> Result<Row, String> {
    let dir = ctx.dir("bulk")?;
    let server = ctx.start_taskbox(&dir, None)?;
    let addr = server.addr;
    let request = load::bulk_request(addr, BULK_TASKS);
    let cpu = server.cpu_seconds();
    let plan = Plan {
        connections: BULK_CONNECTIONS,
        duration: Some(ctx.duration()),
        count: Some(end_to_end_cap(ctx).div_ceil(BULK_TASKS as u64)),
        expect: 202,
    };
    let out = load::run(addr, &plan, |_, _, buf| buf.extend_from_slice(&request));
    let submitted_at = out.started + out.wall;
    let tasks = out.ok * BULK_TASKS as u64;
    let mut conn = Conn::new(addr);
    let done = wait_for_count(tasks, || total_count(&mut conn, addr, "status=success"));
    let failed = total_count(&mut conn, addr, "status=error");
    let wall = Instant::now().duration_since(out.started);
    let server_cpu = share(server.cpu_seconds() - cpu, wall);
    server.stop()?;
    out.check("bulk: submitting")?;
    let done = done.map_err(|e| format!("bulk: {e}"))?;
    let failed = failed?;
    if failed > 0 {
        return Err(format!("bulk: {failed} task(s) ended ERROR"));
    }
    let accepted = tasks as f64 / out.wall.as_secs_f64().max(1e-9);
    let completed = tasks as f64 / done.duration_since(out.started).as_secs_f64();
    let mut row = Row::new("bulk", accepted, "tasks/s");
    row.figure_text = format!("{} tasks/s", rate(accepted));
    row.summary = format!(
        "{} tasks accepted in {:.2} s, {BULK_TASKS} per request on {BULK_CONNECTIONS} connections (p50 {} p99 {} a request); all completed at {}/s (last done {:.2} s after the last submission), server cpu {:.0}%",
        thousands(tasks),
        out.wall.as_secs_f64(),
        ms(out.latencies.ms(0.5)),
        ms(out.latencies.ms(0.99)),
        rate(completed),
        done.saturating_duration_since(submitted_at).as_secs_f64(),
        server_cpu * 100.0
    );
    row.loadgen_cpu = Some(out.cpu_share);
    latency_details(&mut row, &out, "request_");
    row.detail("tasks", tasks)
        .num("completed_per_s", completed)
        .num("server_cpu", server_cpu)
        .detail("tasks_per_request", BULK_TASKS)
        .detail("connections", BULK_CONNECTIONS);
    Ok(row)
}
