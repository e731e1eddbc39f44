//! `ApiError`: what a client is told when a request fails, and the one place where failures
//! become HTTP status codes (each family renders it in its own envelope). Internal details
//! go to the server log, never to the client.

use crate::auth::AuthError;
use crate::store::{Refusal, StoreError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
    /// For 405: the methods the path allows.
    pub allow: Option<String>,
    /// For a failed authentication: how long its answer is held back (see auth/throttle.rs).
    pub delay: Option<std::time::Duration>,
}

impl ApiError {
    fn new(status: u16, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            allow: None,
            delay: None,
        }
    }

    /// No valid access token (401); its answer is held back `delay`, and says
    /// `WWW-Authenticate: Bearer`.
    pub fn unauthorized(message: impl Into<String>, delay: std::time::Duration) -> ApiError {
        ApiError {
            delay: (!delay.is_zero()).then_some(delay),
            ..ApiError::new(401, message)
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, message)
    }

    /// The request comes from a web page of another site.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(403, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(404, message)
    }

    pub fn method_not_allowed(method: &str, allow: &str) -> ApiError {
        ApiError {
            allow: Some(allow.to_string()),
            ..ApiError::new(
                405,
                format!("The method {method} is not allowed here; use {allow}."),
            )
        }
    }

    /// The client stopped sending its body for longer than the read timeout.
    pub fn request_timeout(message: impl Into<String>) -> ApiError {
        ApiError::new(408, message)
    }

    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(409, message)
    }

    pub fn length_required(message: impl Into<String>) -> ApiError {
        ApiError::new(411, message)
    }

    pub fn too_large(message: impl Into<String>) -> ApiError {
        ApiError::new(413, message)
    }

    /// A quota of the client's is reached: try again later.
    pub fn too_many(message: impl Into<String>) -> ApiError {
        ApiError::new(429, message)
    }

    pub fn uri_too_long(message: impl Into<String>) -> ApiError {
        ApiError::new(414, message)
    }

    /// The request names a host this server does not answer to.
    pub fn misdirected(message: impl Into<String>) -> ApiError {
        ApiError::new(421, message)
    }

    pub fn unsupported_media_type(message: impl Into<String>) -> ApiError {
        ApiError::new(415, message)
    }

    pub fn headers_too_large(message: impl Into<String>) -> ApiError {
        ApiError::new(431, message)
    }

    /// A fault of ours: the client gets a generic sentence, the log gets `detail`.
    pub fn internal(detail: impl std::fmt::Display) -> ApiError {
        log::error!("internal error: {detail}");
        ApiError::new(500, "Internal error: the request could not be completed. The details are in the server log.")
    }

    pub fn unavailable(detail: impl std::fmt::Display) -> ApiError {
        log::warn!("database unavailable: {detail}");
        ApiError::new(
            503,
            "The database cannot be used right now (it is busy, read-only or its disk is \
             failing): nothing was changed. Try again later.",
        )
    }

    /// The server cannot take this now for a reason of its own load; the message says what.
    pub fn busy(message: impl Into<String>) -> ApiError {
        ApiError::new(503, message)
    }

    pub fn disk_full() -> ApiError {
        ApiError::new(
            507,
            "The disk holding the database is full: nothing was stored. Free some space and try again.",
        )
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> ApiError {
        match e {
            AuthError::Refused { why, delay } => ApiError::unauthorized(
                format!(
                    "Authentication failed: {why}. Send a valid access token as \
                     `Authorization: Bearer <token>`; an administrator makes one with \
                     `taskbox token create`."
                ),
                delay,
            ),
            AuthError::Forbidden(message) => ApiError::forbidden(message),
            AuthError::Store(e) => e.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::NotFound => ApiError::not_found("Not found."),
            StoreError::DiskFull => ApiError::disk_full(),
            StoreError::Unavailable(detail) | StoreError::Locked(detail) => ApiError::unavailable(detail),
            StoreError::IdempotencyConflict => ApiError::conflict(
                "This Idempotency-Key was already used for a different task (another kind or other params); \
                 use a new key for a new task.",
            ),
            StoreError::Internal(detail) => ApiError::internal(detail),
            StoreError::Refused(Refusal::BytesQuota { limit }) => ApiError::too_large(format!(
                "This client's stored files would pass their quota of {limit} bytes \
                 (--quota-bytes): nothing was stored. Delete tasks it no longer needs, \
                 or ask for a larger quota."
            )),
            StoreError::Refused(Refusal::UnfinishedQuota { limit }) => ApiError::too_many(format!(
                "This client has {limit} tasks waiting or running, its quota \
                 (--max-unfinished-tasks): nothing was stored. Submit again once some \
                 have finished."
            )),
            StoreError::Refused(Refusal::FreeSpace { free, floor }) => ApiError::new(
                507,
                format!(
                    "The disk holding the database has {free} bytes free, under the floor of \
                     {floor} bytes (--min-free-bytes): nothing was stored. Reading, \
                     downloading and deleting tasks still work; free some space and try again."
                ),
            ),
        }
    }
}
