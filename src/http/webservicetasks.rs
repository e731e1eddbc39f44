//! The Web Service Tasks API (contract: docs/api.md): create, list, read, download the
//! files of, and delete tasks. A thin adapter over the store; it never runs a task.

use std::io::Read;

use serde::Serialize;
use serde_json::Value;
use tiny_http::Request;

use super::context::RequestContext;
use super::error::{ApiError, FILE_MISSING};
use super::multipart::{Multipart, MultipartError};
use super::reply::Reply;
use super::request::{
    body_error, check_filename, disposition_filename, header, query_pairs, read_limited, Body,
    MediaType,
};
use crate::store::{ListFilter, StoredFile};
use crate::task::{FileRole, NewTask, Params, State, Task, TaskId};
use crate::task_service::TaskServiceError;

/// The IO file name of a raw upload that names none.
const DEFAULT_FILENAME: &str = "upload";
/// The longest Idempotency-Key.
const MAX_IDEMPOTENCY_KEY: usize = 200;
const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;
/// The chunk in which an upload is copied from the socket to the store.
const COPY_BUFFER: usize = 64 * 1024;
/// The most a multipart body may carry after its closing boundary (its epilogue), beyond
/// what the form's reader had buffered.
const MAX_EPILOGUE: u64 = 64 * 1024;

/// The task object of the contract, fields in the contract's order.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct TaskView<'a> {
    web_service_task_id: TaskId,
    user_id: i64,
    user_name: &'a str,
    date_time: &'a str,
    io_file_name: &'a str,
    log_file_name: String,
    err_file_name: String,
    percent_complete: u8,
    status: &'static str,
    message: &'a str,
    kind: &'a str,
    params: &'a Params,
    start_time: Option<&'a str>,
    end_time: Option<&'a str>,
    total_records: u64,
    succeeded_records: u64,
    duplicate_records: u64,
    failed_records: u64,
}

/// A task as the API shows it.
pub fn task_json(task: &Task) -> Value {
    let file_name = |has: bool, role| {
        if has {
            task.file_name(role)
        } else {
            String::new()
        }
    };
    let view = TaskView {
        web_service_task_id: task.id,
        user_id: task.user_id,
        user_name: &task.user_name,
        date_time: &task.created_at,
        io_file_name: &task.io_filename,
        log_file_name: file_name(task.has_log_file, FileRole::Log),
        err_file_name: file_name(task.has_err_file, FileRole::Err),
        percent_complete: task.percent_complete,
        status: Status::of(task.state).as_str(),
        message: &task.message,
        kind: &task.kind,
        params: &task.params,
        start_time: task.start_time.as_deref(),
        end_time: task.end_time.as_deref(),
        total_records: task.counts.total,
        succeeded_records: task.counts.succeeded,
        duplicate_records: task.counts.duplicate,
        failed_records: task.counts.failed,
    };
    serde_json::to_value(view).unwrap_or(Value::Null)
}

/// The five statuses of the Web Service Tasks contract, with their exact strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pending,
    InProgress,
    Success,
    Error,
    Canceled,
}

impl Status {
    const ALL: [Status; 5] = [
        Status::Pending,
        Status::InProgress,
        Status::Success,
        Status::Error,
        Status::Canceled,
    ];

    /// The contract's string, as clients match on it.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "Pending",
            Status::InProgress => "In progress",
            Status::Success => "SUCCESS",
            Status::Error => "ERROR",
            Status::Canceled => "CANCELED",
        }
    }

    /// Parses a status string case-insensitively (`in progress`, `success`...).
    pub fn parse(text: &str) -> Option<Status> {
        Status::ALL
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(text.trim()))
    }

    /// How the contract shows a state: every state that waits to run is Pending.
    pub fn of(state: State) -> Status {
        match state {
            State::Scheduled | State::Queued | State::Held | State::Retrying => Status::Pending,
            State::Running => Status::InProgress,
            State::Succeeded => Status::Success,
            State::Failed => Status::Error,
            State::Canceled => Status::Canceled,
        }
    }

    /// The states this status shows.
    pub fn states(self) -> Vec<State> {
        State::ALL
            .into_iter()
            .filter(|&state| Status::of(state) == self)
            .collect()
    }
}

/// How a verb of the task service failing is told to this family's clients.
impl From<TaskServiceError> for ApiError {
    fn from(e: TaskServiceError) -> ApiError {
        match e {
            TaskServiceError::Invalid(message) => ApiError::bad_request(message),
            TaskServiceError::TaskNotFound(id) => task_not_found(id),
            TaskServiceError::FileMissing => ApiError::not_found(FILE_MISSING),
            TaskServiceError::Store(e) => e.into(),
        }
    }
}

fn task_not_found(id: TaskId) -> ApiError {
    ApiError::not_found(format!("Task {id} does not exist."))
}

fn location(id: TaskId) -> String {
    format!("/webservicetasks/{id}")
}

/// GET /webservicetasks
pub fn list(ctx: &RequestContext, request: &Request) -> Result<Reply, ApiError> {
    let mut filter = ListFilter {
        limit: DEFAULT_LIMIT,
        ..ListFilter::default()
    };
    for (name, value) in query_pairs(request.url())? {
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
    let data = Value::Array(tasks.iter().map(task_json).collect());
    Ok(Reply::success(200, data).with_header("X-Total-Count", total.to_string()))
}

/// GET /webservicetasks/{id}
pub fn get(ctx: &RequestContext, id: TaskId) -> Result<Reply, ApiError> {
    let task = ctx.tasks().task(id)?;
    Ok(Reply::success(200, task_json(&task)))
}

/// GET /webservicetasks/{id}/IoFile, /ErrorFile, /LogFile
pub fn file(ctx: &RequestContext, id: TaskId, role: FileRole) -> Result<Reply, ApiError> {
    let (task, reader) = ctx.tasks().task_with_file(id, role)?;
    let size = reader.remaining();
    // A task with an IO file always has its name (an upload's, "upload" at least, or an
    // export's): no file name here is empty.
    Ok(Reply::file(&task.file_name(role), size, Box::new(reader)))
}

/// DELETE /webservicetasks/{id}: a running task is cancelled first, then deleted.
pub fn delete(ctx: &RequestContext, id: TaskId) -> Result<Reply, ApiError> {
    ctx.tasks().cancel_and_delete(id)?;
    Ok(Reply::success(200, Value::Null))
}

/// What a POST asks for, whichever form it came in.
struct Submission {
    kind: String,
    params: Params,
    filename: String,
    upload: Option<StoredFile>,
}

/// POST /webservicetasks
pub fn create(ctx: &RequestContext, request: &mut Request) -> Result<Reply, ApiError> {
    let idempotency_key = idempotency_key(request)?;
    let media = header(request, "Content-Type").map(MediaType::parse);
    let declares_length = header(request, "Content-Length").is_some()
        || header(request, "Transfer-Encoding").is_some();
    if media.is_some() && !declares_length {
        return Err(ApiError::length_required(
            "The request has a Content-Type but no Content-Length: send the length, or use \
             chunked transfer encoding.",
        ));
    }
    let essence = media.as_ref().map(|m| m.essence.as_str()).unwrap_or("");
    let submission = match essence {
        "application/json" => {
            let charset = media.as_ref().and_then(|m| m.param("charset"));
            if let Some(charset) = charset.filter(|c| !c.eq_ignore_ascii_case("utf-8")) {
                return Err(ApiError::unsupported_media_type(format!(
                    "The JSON body must be UTF-8, not charset {charset}."
                )));
            }
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
        _ => raw_submission(ctx, request)?,
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
    Ok(Reply::success(status, task_json(&submitted.task))
        .with_header("Location", location(submitted.task.id)))
}

fn idempotency_key(request: &Request) -> Result<Option<String>, ApiError> {
    match header(request, "Idempotency-Key") {
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
    fn from_query(url: &str) -> Result<FormFields, ApiError> {
        let mut fields = FormFields::default();
        for (name, value) in query_pairs(url)? {
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

/// Form (a): the file is the body; kind, filename and params are in the query.
fn raw_submission(ctx: &RequestContext, request: &mut Request) -> Result<Submission, ApiError> {
    let FormFields {
        kind,
        filename,
        params,
    } = FormFields::from_query(request.url())?;
    let filename = filename
        .or_else(|| header(request, "Content-Disposition").and_then(disposition_filename))
        .filter(|f| !f.is_empty())
        .unwrap_or_else(|| DEFAULT_FILENAME.to_string());
    let may_have_body = request.body_length().is_some_and(|n| n > 0)
        || header(request, "Transfer-Encoding").is_some();
    // Refuse what is wrong before receiving a (possibly large) body.
    ctx.tasks().validate(&kind, &params, may_have_body)?;
    if may_have_body {
        check_filename(&filename)?;
    }
    if let Some(length) = request.body_length() {
        if length as u64 > ctx.limits.max_upload {
            return Err(upload_too_large(ctx));
        }
    }
    let upload = store_upload(ctx, &mut Body::of(request))?;
    Ok(Submission {
        kind,
        params,
        filename,
        upload,
    })
}

/// Form (b): `{"kind": ..., "params": {...}}`.
fn json_submission(ctx: &RequestContext, request: &mut Request) -> Result<Submission, ApiError> {
    if request
        .body_length()
        .is_some_and(|n| n as u64 > ctx.limits.max_json)
    {
        return Err(json_too_large(ctx));
    }
    let body = read_limited(&mut Body::of(request), ctx.limits.max_json, "JSON body")?;
    let value: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("The JSON body is malformed: {e}.")))?;
    let Value::Object(object) = value else {
        return Err(ApiError::bad_request(
            "The JSON body must be an object with kind and params.",
        ));
    };
    let mut kind = String::new();
    let mut params = Params::new();
    for (name, value) in object {
        match (name.as_str(), value) {
            ("kind", Value::String(k)) => kind = k,
            ("kind", _) => return Err(ApiError::bad_request("The field kind must be a string.")),
            ("params", Value::Object(map)) => {
                for (param, value) in map {
                    let text = match value {
                        Value::String(s) => s,
                        Value::Number(n) => n.to_string(),
                        Value::Bool(b) => b.to_string(),
                        _ => {
                            return Err(ApiError::bad_request(format!(
                                "The param {param} must be a string, a number or a boolean."
                            )))
                        }
                    };
                    params.insert(param, text);
                }
            }
            ("params", Value::Null) => {}
            ("params", _) => {
                return Err(ApiError::bad_request("The field params must be an object."))
            }
            (other, _) => {
                return Err(ApiError::bad_request(format!(
                    "The JSON body has an unknown field {other:?}; it takes kind and params."
                )))
            }
        }
    }
    Ok(Submission {
        kind,
        params,
        filename: String::new(),
        upload: None,
    })
}

/// Form (c): multipart/form-data with an optional `file` part and fields for kind and params.
/// Query parameters count as fields too, so a form's action URL may carry the kind (they
/// are bounded by the URL's limit). The fields other than `file`, names and values
/// together, are limited to `max_json`.
fn multipart_submission(
    ctx: &RequestContext,
    request: &mut Request,
    boundary: &str,
) -> Result<Submission, ApiError> {
    let mut fields = FormFields::from_query(request.url())?;
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
        let mut body = Body::of(request);
        let mut form = Multipart::new(&mut body, boundary);
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
        // dropped unread, tiny_http would drain it through one buffer of its declared size.
        let epilogue = std::io::copy(
            &mut (&mut body).take(MAX_EPILOGUE + 1),
            &mut std::io::sink(),
        )
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
