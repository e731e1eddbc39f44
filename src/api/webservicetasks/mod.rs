//! The Web Service Tasks API (contract: docs/api.md): create, list, read, download the
//! files of, and delete tasks. The family owns its routes (the table below), its envelope
//! (`envelope.rs`), how it shows a task and its status words (`view.rs`), and its
//! submissions (`submit.rs`); everything it does to tasks goes through the task service
//! over the request's scoped store.

mod bulk;
mod envelope;
mod page;
mod submit;
mod view;

use serde_json::Value;

use crate::http::{ApiError, Family, Method, PathArgs, Reply, Request, RequestContext, Route};
use crate::store::ListFilter;
use crate::task::{FileRole, TaskId};
use envelope::{success, success_text};
use view::{task_json, Status};

/// The message of every 404 on a task's file, exactly as clients of the original API match it.
pub const FILE_MISSING: &str = "File is empty or does not exist.";

const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;

/// The family: its paths may carry the `/ivrapi` prefix; its errors wear its envelope.
pub static FAMILY: Family = Family {
    name: "Web Service Tasks",
    prefixes: &["ivrapi"],
    render_error: envelope::error,
};

/// Its routes. For each path, the methods in the order a 405's Allow lists them.
pub fn routes() -> Vec<Route> {
    let route = |method, path, handle, reads_body| FAMILY.route(method, path, handle, reads_body);
    vec![
        route(Method::Get, "/webservicetasks", list, false),
        route(Method::Post, "/webservicetasks", submit::create, true),
        route(
            Method::Post,
            "/webservicetasks/bulk",
            bulk::create_many,
            true,
        ),
        route(Method::Get, "/webservicetasks/{id}", get, false),
        route(Method::Delete, "/webservicetasks/{id}", delete, false),
        route(Method::Get, "/webservicetasks/{id}/iofile", io_file, false),
        route(
            Method::Get,
            "/webservicetasks/{id}/errorfile",
            err_file,
            false,
        ),
        route(
            Method::Get,
            "/webservicetasks/{id}/logfile",
            log_file,
            false,
        ),
    ]
}

fn task_not_found(id: TaskId) -> ApiError {
    ApiError::not_found(format!("Task {id} does not exist."))
}

/// GET /webservicetasks
fn list(ctx: &RequestContext, request: &mut Request<'_>, _: &PathArgs) -> Result<Reply, ApiError> {
    let budget = ctx.limits.max_list_bytes;
    let mut filter = ListFilter {
        limit: DEFAULT_LIMIT,
        // The store stops reading where the page would be cut (a task's text takes no more
        // bytes than its JSON), so a page of big tasks is not read whole into memory.
        max_bytes: Some(budget),
        ..ListFilter::default()
    };
    for (name, value) in request.query_pairs()? {
        match name.as_str() {
            "status" => {
                filter.states = Status::parse(&value).map(Status::states).ok_or_else(|| {
                    let known: Vec<&str> = Status::ALL.iter().map(|s| s.as_str()).collect();
                    ApiError::bad_request(format!(
                        "The parameter status must be one of {}, not {value:?}.",
                        known.join(", ")
                    ))
                })?
            }
            "kind" => filter.kind = Some(value),
            "userid" => {
                filter.user_id = Some(value.parse().map_err(|_| {
                    ApiError::bad_request(format!(
                        "The parameter userid must be an integer, not {value:?}."
                    ))
                })?)
            }
            "limit" => {
                filter.limit = match value.parse::<u32>() {
                    Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
                    _ => {
                        return Err(ApiError::bad_request(format!(
                    "The parameter limit must be an integer from 1 to {MAX_LIMIT}, not {value:?}."
                )))
                    }
                }
            }
            "offset" => {
                filter.offset = match value.parse::<i64>() {
                    Ok(n) if n >= 0 => n as u64,
                    _ => {
                        return Err(ApiError::bad_request(format!(
                            "The parameter offset must be an integer from 0 to {}, not {value:?}.",
                            i64::MAX
                        )))
                    }
                }
            }
            _ => {}
        }
    }
    let (tasks, total) = ctx.store.list(&filter)?;
    let mut len = 0;
    let reply = success_text(200, |out| len = page::write_page(out, &tasks, budget))
        .with_header("X-Total-Count", total.to_string());
    // Cut short by the budget: more tasks follow, though the page holds fewer than `limit`.
    let next = filter.offset.saturating_add(len as u64);
    if len < filter.limit as usize && next < total {
        return Ok(reply.with_header("X-Next-Offset", next.to_string()));
    }
    Ok(reply)
}

/// GET /webservicetasks/{id}
fn get(ctx: &RequestContext, _: &mut Request<'_>, args: &PathArgs) -> Result<Reply, ApiError> {
    let task = ctx.tasks().task(args.id()?)?;
    Ok(success(200, task_json(&task)))
}

/// GET /webservicetasks/{id}/IoFile
fn io_file(ctx: &RequestContext, _: &mut Request<'_>, args: &PathArgs) -> Result<Reply, ApiError> {
    file(ctx, args.id()?, FileRole::Io)
}

/// GET /webservicetasks/{id}/ErrorFile
fn err_file(ctx: &RequestContext, _: &mut Request<'_>, args: &PathArgs) -> Result<Reply, ApiError> {
    file(ctx, args.id()?, FileRole::Err)
}

/// GET /webservicetasks/{id}/LogFile
fn log_file(ctx: &RequestContext, _: &mut Request<'_>, args: &PathArgs) -> Result<Reply, ApiError> {
    file(ctx, args.id()?, FileRole::Log)
}

fn file(ctx: &RequestContext, id: TaskId, role: FileRole) -> Result<Reply, ApiError> {
    let (task, reader) = ctx.tasks().task_with_file(id, role)?;
    let size = reader.remaining();
    // A task with an IO file always has its name (an upload's, "upload" at least, or an
    // export's): no file name here is empty.
    Ok(Reply::file(&task.file_name(role), size, Box::new(reader)))
}

/// DELETE /webservicetasks/{id}: a running task is cancelled first, then deleted.
fn delete(ctx: &RequestContext, _: &mut Request<'_>, args: &PathArgs) -> Result<Reply, ApiError> {
    ctx.tasks().cancel_and_delete(args.id()?)?;
    Ok(success(200, Value::Null))
}
