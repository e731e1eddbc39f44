//! POST /engine/api/bulk/{type}: the body, a JSON array of records, is checked as it
//! streams into the store (never held whole), and becomes the IO file (`records.json`) of
//! one task of kind `{type}`, whose params are the query's (`table`, `key`, `upsert` for
//! dataset.update). Accepted at once: 202 with the job, `pending`.

use std::io::{BufReader, Read};

use crate::http::fields::{body_error, MediaType};
use crate::http::{ApiError, PathArgs, Reply, Request, RequestContext};
use crate::records;
use crate::store::{FileWriter, StoredFile};
use crate::task::{NewTask, Params};
use crate::task_service::TaskServiceError;

use super::view::job_reply;

/// The IO file's name: the records as they were sent.
pub const RECORDS_FILENAME: &str = "records.json";
/// Bytes read from the client at a time, through the check into the store.
const READ_BUFFER: usize = 64 * 1024;

/// POST /engine/api/bulk/{type}
pub(super) fn create(
    ctx: &RequestContext,
    request: &mut Request<'_>,
    args: &PathArgs,
) -> Result<Reply, ApiError> {
    let kind = args.text("type")?.to_string();
    let media = request.header("Content-Type").map(MediaType::parse);
    // A web page of another site cannot send this type without the consent (CORS) taskbox
    // never gives, so no visitor's browser can be made to post records.
    if media.as_ref().map(|m| m.essence.as_str()) != Some("application/json") {
        return Err(ApiError::bad_request(
            "The body must be a JSON array of records, sent with Content-Type: application/json.",
        ));
    }
    let mut params = Params::new();
    for (name, value) in request.query_pairs()? {
        params.insert(name, value);
    }
    check_type(ctx, &kind)?;
    ctx.tasks()
        .validate(&kind, &params, true)
        .map_err(service_error)?;
    if let Some(length) = request.body_length() {
        if length as u64 > ctx.limits.max_upload {
            return Err(too_large(ctx));
        }
        ctx.store.check_upload(length as u64)?;
    }
    let upload = store_records(ctx, request.body())?;
    let new = NewTask {
        kind,
        params,
        owner: ctx.identity.clone(),
        io_filename: RECORDS_FILENAME.to_string(),
        io_file: Some(upload.id),
        idempotency_key: None,
    };
    match ctx.tasks().submit(&new) {
        Ok(submitted) => Ok(job_reply(202, &submitted.task).with_header(
            "Location",
            format!("/engine/api/api-jobs/{}", submitted.task.uuid),
        )),
        Err(e) => {
            let _ = ctx.store.discard_upload(upload.id);
            Err(service_error(e))
        }
    }
}

/// `{type}` must be a kind that takes records.
fn check_type(ctx: &RequestContext, kind: &str) -> Result<(), ApiError> {
    let takers: Vec<&str> = ctx
        .registry
        .kinds()
        .into_iter()
        .filter(|k| ctx.registry.get(k).is_some_and(|h| h.takes_records()))
        .collect();
    if takers.contains(&kind) {
        return Ok(());
    }
    let shown: String = kind.chars().take(64).collect();
    Err(ApiError::bad_request(format!(
        "The type {shown:?} is not a kind that takes records; bulk types: {}.",
        takers.join(", ")
    )))
}

fn service_error(e: TaskServiceError) -> ApiError {
    match e {
        TaskServiceError::Invalid(message) => ApiError::bad_request(message),
        TaskServiceError::Store(e) => e.into(),
        TaskServiceError::TaskNotFound(_) | TaskServiceError::FileMissing => {
            ApiError::internal("a bulk submission was answered as a missing task")
        }
    }
}

fn too_large(ctx: &RequestContext) -> ApiError {
    ApiError::too_large(format!(
        "The records are larger than the upload limit of {} bytes (--max-upload).",
        ctx.limits.max_upload
    ))
}

/// Streams the body into a new upload through the check that it is a JSON array of
/// records: one pass, nothing held but a buffer and the record being read.
fn store_records(ctx: &RequestContext, body: &mut dyn Read) -> Result<StoredFile, ApiError> {
    let mut writer = ctx.store.create_upload()?;
    let checked = {
        let mut tee = Tee {
            body,
            writer: &mut writer,
            limit: ctx.limits.max_upload,
            failure: None,
        };
        let counted = records::count_records(
            BufReader::with_capacity(READ_BUFFER, &mut tee),
            ctx.limits.max_record_bytes,
        );
        match (tee.failure.take(), counted) {
            (Some(failure), _) => Err(failure.into_api(ctx)),
            (None, Err(records::RecordsError::Read(e))) => Err(body_error(&e)),
            (None, Err(e)) => Err(ApiError::bad_request(format!(
                "The body must be a JSON array of records (objects): {e}."
            ))),
            (None, Ok(_)) => Ok(()),
        }
    };
    if let Err(e) = checked {
        if let Err(cleanup) = writer.discard() {
            log::warn!("could not remove refused records: {cleanup}");
        }
        return Err(e);
    }
    let id = writer.id();
    writer.finish().map_err(|e| {
        let _ = ctx.store.discard_upload(id);
        ApiError::from(e)
    })
}

/// Why the tee stopped the reading.
enum TeeFailure {
    TooLarge,
    Store(crate::store::StoreError),
}

impl TeeFailure {
    fn into_api(self, ctx: &RequestContext) -> ApiError {
        match self {
            TeeFailure::TooLarge => too_large(ctx),
            TeeFailure::Store(e) => e.into(),
        }
    }
}

/// Reads the body and stores every byte read, within the upload limit.
struct Tee<'a> {
    body: &'a mut dyn Read,
    writer: &'a mut FileWriter,
    limit: u64,
    failure: Option<TeeFailure>,
}

impl Read for Tee<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.body.read(buf)?;
        if self.writer.len() + n as u64 > self.limit {
            self.failure = Some(TeeFailure::TooLarge);
            return Err(std::io::Error::other("over the upload limit"));
        }
        if n > 0 {
            if let Err(e) = self.writer.append(&buf[..n]) {
                self.failure = Some(TeeFailure::Store(e));
                return Err(std::io::Error::other("the store refused the records"));
            }
        }
        Ok(n)
    }
}
