//! The bulk API ("API jobs", contract: docs/api.md): a JSON array of records posted to
//! `/engine/api/bulk/{type}` becomes one task of that kind, its IO file the records; the
//! client polls `/engine/api/api-jobs/{uuid}` (or `/api-jobs/{uuid}`) for the job. The
//! family owns its routes (below), its job object and status words (`view.rs`), its
//! submissions (`bulk.rs`) and its error form, `{"error": "<message>"}`.

mod bulk;
mod view;

use serde_json::json;

use crate::http::{ApiError, Family, Method, PathArgs, Reply, Request, RequestContext, Route};
use crate::store::StoreError;

/// The family: no prefixes; its errors are `{"error": ...}`.
pub static FAMILY: Family = Family {
    name: "API jobs",
    prefixes: &[],
    render_error: error,
};

/// Its routes.
pub fn routes() -> Vec<Route> {
    let route = |method, path, handle, reads_body| FAMILY.route(method, path, handle, reads_body);
    vec![
        route(Method::Post, "/engine/api/bulk/{type}", bulk::create, true),
        route(Method::Get, "/engine/api/api-jobs/{uuid}", get, false),
        route(Method::Get, "/api-jobs/{uuid}", get, false),
    ]
}

/// `{"error": message}`, with the status of the failure (and Allow on a 405).
fn error(e: &ApiError) -> Reply {
    let reply = Reply::json(e.status, &json!({ "error": e.message }));
    match &e.allow {
        Some(allow) => reply.with_header("Allow", allow.clone()),
        None => reply,
    }
}

/// The one 404 of the family: an id that is no job, or another client's, alike.
fn job_not_found(uuid: &str) -> ApiError {
    let shown: String = uuid.chars().take(40).collect();
    ApiError::not_found(format!("API job {shown} does not exist."))
}

/// GET /engine/api/api-jobs/{uuid}
fn get(ctx: &RequestContext, _: &mut Request<'_>, args: &PathArgs) -> Result<Reply, ApiError> {
    let uuid = args.text("uuid")?;
    let task = match ctx.store.task_by_uuid(uuid) {
        Err(StoreError::NotFound) => return Err(job_not_found(uuid)),
        other => other?,
    };
    Ok(view::job_reply(200, &task))
}
