//! The family's envelope: every JSON answer is `{"status", "message", "data"}`.

use serde_json::{json, Value};

use crate::http::{ApiError, Reply};

/// `{"status": "success", "message": "", "data": data}`.
pub fn success(status: u16, data: Value) -> Reply {
    Reply::json(
        status,
        &json!({"status": "success", "message": "", "data": data}),
    )
}

/// `{"status": "error", "message": ..., "data": null}`, with Allow on a 405.
pub fn error(e: &ApiError) -> Reply {
    let reply = Reply::json(
        e.status,
        &json!({"status": "error", "message": e.message, "data": null}),
    );
    match &e.allow {
        Some(allow) => reply.with_header("Allow", allow.clone()),
        None => reply,
    }
}
