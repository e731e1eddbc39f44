//! POST /webservicetasks: a submission in any of the contract's three forms (the raw body
//! as the file, a JSON object, a multipart form), its upload streamed into the store within
//! the limits, then validated and stored through the task service.

use std::io::Read;

use serde_json::Value;

use super::envelope::success;
use super::view::task_json;
use crate::http::fields::{
    body_error, check_filename, disposition_filename, read_limited, MediaType,
};
use crate::http::multipart::{Multipart, MultipartError};
use crate::http::{ApiError, PathArgs, Reply, Request, RequestContext};
use crate::store::StoredFile;
use crate::task::{NewTask, Params, TaskId};

/// The IO file name of a raw upload that names none.
const DEFAULT_FILENAME: &str = "upload";
/// The longest Idempotency-Key.
const MAX_IDEMPOTENCY_KEY: usize = 200;
/// The chunk in which an upload is copied from the socket to the store.
const COPY_BUFFER: usize = 64 * 1024;
/// The most a multipart body may carry after its closing boundary (its epilogue), beyond
/// what the form's reader had buffered.
const MAX_EPILOGUE: u64 = 64 * 1024;

/// What a POST asks for, whichever form it came in.
struct Submission {
    kind: String,
    params: Params,
    filename: String,
    upload: Option<StoredFile>,
}

/// POST /webservicetasks
pub(super) fn create(
    ctx: &RequestContext,
    request: &mut Request<'_>,
    _: &PathArgs,
) -> Result<Reply, ApiError> {
    let idempotency_key = idempotency_key(request)?;
    let media = request.header("Content-Type").map(MediaType::parse);
    if media.is_some() {
        check_declared_length(request)?;
    }
    let essence = media.as_ref().map(|m| m.essence.as_str()).unwrap_or("");
    let submission = match essence {
        "application/json" => {
            check_json_charset(media.as_ref())?;
            json_submission(ctx, request)?
        }
        "multipart/form-data" => {
            let boundary = media
                .as_ref()
                .and_then(|m| m.param("boundary"))
                .filter(|b| !b.is_empty() && b.len() <= 70)
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "The multipart Content-Type has no valid boundary parameter.",
                    )
                })?
                .to_string();
            multipart_submission(ctx, request, &boundary)?
        }
        e if e.starts_with("multipart/") => {
            return Err(ApiError::unsupported_media_type(format!(
                "The Content-Type {e} is not supported: use multipart/form-data."
            )))
        }
        _ => {
            check_raw_upload_says_what_it_is(request, essence)?;
            raw_submission(ctx, request)?
        }
    };
    let upload = submission.upload;
    let result = submit(ctx, submission, idempotency_key);
    if result.is_err() {
        if let Some(file) = upload {
            let _ = ctx.store.discard_upload(file.id);
        }
    }
    result
}

fn submit(ctx: &RequestContext, s: Submission, key: Option<String>) -> Result<Reply, ApiError> {
    if s.upload.is_some() {
        check_filename(&s.filename)?;
    }
    let new = NewTask {
        kind: s.kind,
        params: s.params,
        owner: ctx.identity.clone(),
        io_filename: if s.upload.is_some() {
            s.filename
        } else {
            String::new()
        },
        io_file: s.upload.map(|f| f.id),
        idempotency_key: key,
    };
    let submitted = ctx.tasks().submit(&new)?;
    let status = if submitted.created { 202 } else { 200 };
    Ok(success(status, task_json(&submitted.task))
        .with_header("Location", location(submitted.task.id)))
}

/// A request with a body (it has a Content-Type) says how long it is, or that it is chunked.
pub(super) fn check_declared_length(request: &Request<'_>) -> Result<(), ApiError> {
    if request.header("Content-Length").is_none() && request.header("Transfer-Encoding").is_none() {
        return Err(ApiError::length_required(
            "The request has a Content-Type but no Content-Length: send the length, or use \
             chunked transfer encoding.",
        ));
    }
    Ok(())
}

/// A JSON body is UTF-8: any other charset named is refused.
pub(super) fn check_json_charset(media: Option<&MediaType>) -> Result<(), ApiError> {
    let charset = media.and_then(|m| m.param("charset"));
    if let Some(charset) = charset.filter(|c| !c.eq_ignore_ascii_case("utf-8")) {
        return Err(ApiError::unsupported_media_type(format!(
            "The JSON body must be UTF-8, not charset {charset}."
        )));
    }
    Ok(())
}

pub(super) fn idempotency_key(request: &Request<'_>) -> Result<Option<String>, ApiError> {
    match request.header("Idempotency-Key") {
        None => Ok(None),
        Some(key) if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY || key.chars().any(char::is_control) => {
            Err(ApiError::bad_request(format!(
                "The Idempotency-Key header must be 1 to {MAX_IDEMPOTENCY_KEY} printable characters."
            )))
        }
        Some(key) => Ok(Some(key.to_string())),
    }
}

/// The fields of a raw or multipart submission: `kind`, `filename`, and params.
#[derive(Default)]
struct FormFields {
    kind: String,
    filename: Option<String>,
    params: Params,
}

impl FormFields {
    /// The query string's fields.
    fn from_query(request: &Request<'_>) -> Result<FormFields, ApiError> {
        let mut fields = FormFields::default();
        for (name, value) in request.query_pairs()? {
            fields.set(name, value);
        }
        Ok(fields)
    }

    fn set(&mut self, name: String, value: String) {
        match name.as_str() {
            "kind" => self.kind = value,
            "filename" => self.filename = Some(value),
            _ => {
                self.params.insert(name, value);
            }
        }
    }
}

/// The header that marks a raw upload sent with a type a web form could also send.
pub(super) const RAW_UPLOAD_HEADER: &str = "X-Taskbox-Upload";

/// A raw upload must say what it is, so that no web page of another site can create a task
/// through a visitor's browser: a browser sends a form's fields (and a page's plain fetch)
/// as text/plain, application/x-www-form-urlencoded or without a type, none of which needs
/// the server's consent. Such a request is taken only with the header [`RAW_UPLOAD_HEADER`],
/// which a page cannot add without the consent taskbox never gives (it answers no CORS
/// preflight). A POST with neither a type nor a body (a task without IO file, from curl) is
/// no upload.
fn check_raw_upload_says_what_it_is(request: &Request<'_>, essence: &str) -> Result<(), ApiError> {
    let has_body = request.body_length().is_some_and(|n| n > 0)
        || request.header("Transfer-Encoding").is_some();
    let form_type = matches!(essence, "text/plain" | "application/x-www-form-urlencoded")
        || (essence.is_empty() && has_body);
    if !form_type
        || request
            .header(RAW_UPLOAD_HEADER)
            .is_some_and(|v| !v.is_empty())
    {
        return Ok(());
    }
    let sent = if essence.is_empty() {
        "no Content-Type".to_string()
    } else {
        format!("the Content-Type {essence}")
    };
    Err(ApiError::unsupported_media_type(format!(
        "A raw upload must say what it is, and {sent} is what a web form sends: give the file's \
         own type (text/csv, application/octet-stream...) or add the header \
         {RAW_UPLOAD_HEADER}: file."
    )))
}

/// Form (a): the file is the body; kind, filename and params are in the query.
fn raw_submission(ctx: &RequestContext, request: &mut Request<'_>) -> Result<Submission, ApiError> {
    let FormFields {
        kind,
        filename,
        params,
    } = FormFields::from_query(request)?;
    let filename = filename
        .or_else(|| {
            request
                .header("Content-Disposition")
                .and_then(disposition_filename)
        })
        .filter(|f| !f.is_empty())
        .unwrap_or_else(|| DEFAULT_FILENAME.to_string());
    let may_have_body = request.body_length().is_some_and(|n| n > 0)
        || request.header("Transfer-Encoding").is_some();
    // Refuse what is wrong before receiving a (possibly large) body.
    ctx.tasks().validate(&kind, &params, may_have_body)?;
    if may_have_body {
        check_filename(&filename)?;
    }
    if let Some(length) = request.body_length() {
        if length as u64 > ctx.limits.max_upload {
            return Err(upload_too_large(ctx));
        }
        // The quota and the free-space floor, before receiving what would pass them.
        ctx.store.check_upload(length as u64)?;
    }
    let upload = store_upload(ctx, request.body())?;
    Ok(Submission {
        kind,
        params,
        filename,
        upload,
    })
}

/// Form (b): `{"kind": ..., "params": {...}}`.
fn json_submission(
    ctx: &RequestContext,
    request: &mut Request<'_>,
) -> Result<Submission, ApiError> {
    let Value::Object(object) = json_body(ctx, request)? else {
        return Err(ApiError::bad_request(
            "The JSON body must be an object with kind and params.",
        ));
    };
    let (kind, params) = kind_and_params(object).map_err(ApiError::bad_request)?;
    Ok(Submission {
        kind,
        params,
        filename: String::new(),
        upload: None,
    })
}

/// The JSON body, within `--max-json` (413 beyond, before it is read when its length is
/// declared).
pub(super) fn json_body(
    ctx: &RequestContext,
    request: &mut Request<'_>,
) -> Result<Value, ApiError> {
    if request
        .body_length()
        .is_some_and(|n| n as u64 > ctx.limits.max_json)
    {
        return Err(json_too_large(ctx));
    }
    let body = read_limited(request.body(), ctx.limits.max_json, "JSON body")?;
    serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("The JSON body is malformed: {e}.")))
}

/// A task as a JSON object: `kind` (a string) and `params` (an object whose values are
/// strings, numbers or booleans, kept as their text), nothing else. Else the sentence that
/// says what is wrong.
pub(super) fn kind_and_params(
    object: serde_json::Map<String, Value>,
) -> Result<(String, Params), String> {
    let mut kind = String::new();
    let mut params = Params::new();
    for (name, value) in object {
        match (name.as_str(), value) {
            ("kind", Value::String(k)) => kind = k,
            ("kind", _) => return Err("The field kind must be a string.".into()),
            ("params", Value::Object(map)) => {
                for (param, value) in map {
                    let text = match value {
                        Value::String(s) => s,
                        Value::Number(n) => n.to_string(),
                        Value::Bool(b) => b.to_string(),
                        _ => {
                            return Err(format!(
                                "The param {param} must be a string, a number or a boolean."
                            ))
                        }
                    };
                    params.insert(param, text);
                }
            }
            ("params", Value::Null) => {}
            ("params", _) => return Err("The field params must be an object.".into()),
            (other, _) => {
                return Err(format!(
                    "The JSON object has an unknown field {other:?}; it takes kind and params."
                ))
            }
        }
    }
    Ok((kind, params))
}

/// Form (c): multipart/form-data with an optional `file` part and fields for kind and params.
/// Query parameters count as fields too, so a form's action URL may carry the kind (they
/// are bounded by the URL's limit). The fields other than `file`, names and values
/// together, are limited to `max_json`.
fn multipart_submission(
    ctx: &RequestContext,
    request: &mut Request<'_>,
    boundary: &str,
) -> Result<Submission, ApiError> {
    let mut fields = FormFields::from_query(request)?;
    let max_upload = ctx.limits.max_upload;
    if request
        .body_length()
        .is_some_and(|n| n as u64 > max_upload.saturating_add(ctx.limits.max_json))
    {
        return Err(upload_too_large(ctx));
    }
    let mut upload: Option<StoredFile> = None;
    let mut field_bytes: u64 = 0;
    let result = (|| -> Result<(), ApiError> {
        let body = request.body();
        let mut form = Multipart::new(&mut *body, boundary);
        while let Some(part) = form.next_part().map_err(multipart_error)? {
            if part.name == "file" {
                if upload.is_some() {
                    return Err(ApiError::bad_request(
                        "The form has more than one file part.",
                    ));
                }
                if let Some(name) = part.filename.filter(|n| !n.is_empty()) {
                    fields.filename.get_or_insert(name);
                }
                upload = store_upload(ctx, &mut form.body())?;
                continue;
            }
            if part.filename.as_deref().is_some_and(|f| !f.is_empty()) {
                return Err(ApiError::bad_request(format!(
                    "The form part {:?} carries a file; send the file in the part named file.",
                    part.name
                )));
            }
            // A field's name is stored (as a param's name) as well as its value: both count.
            field_bytes += part.name.len() as u64;
            if field_bytes > ctx.limits.max_json {
                return Err(form_fields_too_large(ctx));
            }
            let left = ctx.limits.max_json - field_bytes;
            let value = read_limited(&mut form.body(), left, "form's fields").map_err(|e| {
                if e.status == 413 {
                    form_fields_too_large(ctx)
                } else {
                    e
                }
            })?;
            field_bytes += value.len() as u64;
            let value = String::from_utf8(value).map_err(|_| {
                ApiError::bad_request(format!("The form field {} is not valid UTF-8.", part.name))
            })?;
            fields.set(part.name, value);
        }
        drop(form);
        // The epilogue after the closing boundary means nothing, but it is read (and
        // discarded) here so that an accepted submission has read its body to the end:
        // dropped unread, the rest is drained within --max-drain-bytes or the connection
        // closed, which a client sending a long epilogue would see as a cut answer.
        let epilogue = std::io::copy(&mut body.take(MAX_EPILOGUE + 1), &mut std::io::sink())
            .map_err(|e| body_error(&e))?;
        if epilogue > MAX_EPILOGUE {
            return Err(ApiError::too_large(format!(
                "The multipart body goes on for more than {MAX_EPILOGUE} bytes after its closing boundary."
            )));
        }
        Ok(())
    })();
    if let Err(e) = result {
        if let Some(file) = upload {
            let _ = ctx.store.discard_upload(file.id);
        }
        return Err(e);
    }
    Ok(Submission {
        kind: fields.kind,
        params: fields.params,
        filename: fields
            .filename
            .filter(|f| !f.is_empty())
            .unwrap_or_else(|| DEFAULT_FILENAME.to_string()),
        upload,
    })
}

fn multipart_error(e: MultipartError) -> ApiError {
    match e {
        MultipartError::Io(e) => body_error(&e),
        e => ApiError::bad_request(format!("{e}.")),
    }
}

/// Streams a body into a new staged file, within the upload limit. None for an empty body.
fn store_upload(ctx: &RequestContext, body: &mut dyn Read) -> Result<Option<StoredFile>, ApiError> {
    let limit = ctx.limits.max_upload;
    let mut writer = ctx.store.create_upload()?;
    let mut buf = vec![0u8; COPY_BUFFER];
    let copied = loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => break Err(body_error(&e)),
        };
        if writer.len() + n as u64 > limit {
            break Err(upload_too_large(ctx));
        }
        if let Err(e) = writer.append(&buf[..n]) {
            break Err(e.into());
        }
    };
    match copied {
        Ok(()) if writer.is_empty() => {
            writer.discard()?;
            Ok(None)
        }
        Ok(()) => match writer.finish() {
            Ok(file) => Ok(Some(file)),
            Err(e) => Err(e.into()),
        },
        Err(e) => {
            if let Err(cleanup) = writer.discard() {
                log::warn!("could not remove a refused upload: {cleanup}");
            }
            Err(e)
        }
    }
}

fn upload_too_large(ctx: &RequestContext) -> ApiError {
    ApiError::too_large(format!(
        "The file is larger than the upload limit of {} bytes (--max-upload).",
        ctx.limits.max_upload
    ))
}

fn json_too_large(ctx: &RequestContext) -> ApiError {
    ApiError::too_large(format!(
        "The JSON body is larger than the limit of {} bytes (--max-json).",
        ctx.limits.max_json
    ))
}

fn form_fields_too_large(ctx: &RequestContext) -> ApiError {
    ApiError::too_large(format!(
        "The form's fields (names and values) are larger than the limit of {} bytes (--max-json).",
        ctx.limits.max_json
    ))
}

fn location(id: TaskId) -> String {
    format!("/webservicetasks/{id}")
}
