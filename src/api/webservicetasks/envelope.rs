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

/// `{"status": "success", "message": "", "data": data}`, with `data` written as JSON text
/// by `write_data` (into the body itself, so a big page is never copied): the bytes
/// `success` sends for the same data.
pub fn success_text(status: u16, write_data: impl FnOnce(&mut Vec<u8>)) -> Reply {
    let mut body = br#"{"status":"success","message":"","data":"#.to_vec();
    write_data(&mut body);
    body.push(b'}');
    Reply::json_text(status, body)
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
