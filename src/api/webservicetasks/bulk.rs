//! POST /webservicetasks/bulk (*added*): many tasks in one request, all or none. The body is
//! a JSON array of the objects a single JSON submission takes (`kind`, `params`); every task
//! is checked against its kind before any is stored, then all are stored in one transaction.
//! For clients with many tasks at once: one request, one commit, instead of one of each per
//! task.

use serde_json::Value;

use super::envelope::success_text;
use super::submit::{
    check_declared_length, check_json_charset, idempotency_key, json_body, kind_and_params,
};
use super::view::write_task_json;
use crate::http::fields::MediaType;
use crate::http::{ApiError, PathArgs, Reply, Request, RequestContext};
use crate::task::NewTask;

/// POST /webservicetasks/bulk
pub(super) fn create_many(
    ctx: &RequestContext,
    request: &mut Request<'_>,
    _: &PathArgs,
) -> Result<Reply, ApiError> {
    let key = idempotency_key(request)?;
    let media = request.header("Content-Type").map(MediaType::parse);
    if media.as_ref().map(|m| m.essence.as_str()) != Some("application/json") {
        // Only JSON, which no web page of another site can send without the consent that
        // taskbox never gives (see `submit::check_raw_upload_says_what_it_is`).
        return Err(ApiError::unsupported_media_type(
            "The body of POST /webservicetasks/bulk must be a JSON array (Content-Type: \
             application/json).",
        ));
    }
    check_json_charset(media.as_ref())?;
    check_declared_length(request)?;
    let Value::Array(items) = json_body(ctx, request)? else {
        return Err(ApiError::bad_request(
            "The JSON body must be an array of tasks, each an object with kind and params.",
        ));
    };
    let most = ctx.limits.max_bulk_tasks;
    if items.is_empty() || items.len() > most {
        return Err(ApiError::bad_request(format!(
            "The array must hold 1 to {most} tasks (--max-bulk-tasks), not {}.",
            items.len()
        )));
    }
    let service = ctx.tasks();
    let mut tasks = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let at = |why: String| ApiError::bad_request(format!("The task at index {i}: {why}"));
        let parsed = match item {
            Value::Object(object) => kind_and_params(object).map_err(at),
            _ => Err(at("it must be an object with kind and params.".into())),
        };
        let (kind, params) = match parsed {
            Ok(parsed) => parsed,
            Err(malformed) => {
                // A task before it that does not fit its kind is named first: the first
                // task at fault in the array's order is the one named.
                service.validate_all(&tasks)?;
                return Err(malformed);
            }
        };
        tasks.push(NewTask {
            kind,
            params,
            owner: ctx.identity.clone(),
            io_filename: String::new(),
            io_file: None,
            // A retry of the same array matches task by task. The separator is a control
            // character, which a key sent in the header cannot hold: no single submission's
            // key can be one of these.
            idempotency_key: key.as_ref().map(|key| format!("{key}\u{1f}{i}")),
        });
    }
    let submitted = service.submit_many(&tasks)?;
    let status = if submitted.iter().any(|s| s.created) {
        202
    } else {
        200
    };
    Ok(success_text(status, |out| {
        out.push(b'[');
        for (i, s) in submitted.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_task_json(out, &s.task);
        }
        out.push(b']');
    }))
}
