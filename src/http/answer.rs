//! Answering a request: the limits on its URL and headers, its route, who sends it, then
//! the route's handler. Every failure is rendered by the family of the route (or, before a
//! route is known, the fallback family); a handler that panics answers 500 and the thread
//! goes on. The server (serve.rs) and the fuzz harness both answer through `answer`.

use std::panic::{self, AssertUnwindSafe};

use super::app::App;
use super::error::ApiError;
use super::limits::{Limits, MAX_URL_BYTES};
use super::log_text::escaped;
use super::reply::Reply;
use super::request::Request;
use super::route::Family;

/// An answer to a request, and the family that renders the request's errors.
pub(crate) struct Answer {
    pub reply: Reply,
    pub family: &'static Family,
    /// How long to hold the answer back (a failed authentication's, see auth/throttle.rs).
    pub delay: Option<std::time::Duration>,
}

/// Refuses a URL over its limit (414). Like the headers, tiny_http has read it whole by now
/// (and refused, without the envelope, a request line far over it).
fn check_url(request: &Request<'_>) -> Result<(), ApiError> {
    if request.url().len() > MAX_URL_BYTES {
        return Err(ApiError::uri_too_long(format!(
            "The request URL (path and query string) is longer than the limit of {MAX_URL_BYTES} bytes."
        )));
    }
    Ok(())
}

/// Refuses requests whose headers exceed the limits (431). tiny_http stops reading headers
/// at `max_header_bytes` and hands such a request over marked; within that, the count of
/// lines and their bytes as taskbox counts them are checked here.
fn check_headers(request: &Request<'_>, limits: &Limits) -> Result<(), ApiError> {
    let headers = request.headers();
    let (count, size) = (limits.max_headers, limits.max_header_bytes);
    if request.head_too_large() {
        return Err(ApiError::headers_too_large(format!(
            "The request headers are over their limit ({count} headers, {size} bytes): \
             this one has more than {size} bytes."
        )));
    }
    let bytes: usize = headers.iter().map(|(n, v)| n.len() + v.len() + 4).sum();
    if headers.len() > count || bytes > size {
        return Err(ApiError::headers_too_large(format!(
            "The request headers are over their limit ({count} headers, {size} bytes): \
             this one has {} headers, {bytes} bytes.",
            headers.len()
        )));
    }
    Ok(())
}

/// Answers a request (see the module notes).
pub(crate) fn answer(app: &App, request: &mut Request<'_>) -> Answer {
    let mut family = app.router.fallback();
    let mut reads_body = false;
    let result = panic::catch_unwind(AssertUnwindSafe(|| -> Result<Reply, ApiError> {
        check_url(request)?;
        check_headers(request, &app.limits)?;
        app.hosts.check_host(request)?;
        let (route, args) =
            app.router
                .find(request.method(), request.path())
                .map_err(|(e, owner)| {
                    family = owner;
                    e
                })?;
        family = route.family;
        reads_body = route.reads_body;
        app.hosts.check_origin(request)?;
        let ctx = app.resolve(request)?;
        (route.handle)(&ctx, request, &args)
    }))
    .unwrap_or_else(|_| {
        Err(ApiError::internal(format!(
            "a route of {} panicked on {} {} from {}",
            family.name,
            escaped(request.method().as_str(), 32),
            escaped(request.url(), 300),
            request
                .remote_addr()
                .map_or_else(|| "an unknown peer".to_string(), |a| a.to_string())
        )))
    });
    // Whatever an answer left of the body, tiny_http drains or closes the connection on; a
    // route that reads bodies promises to have read an accepted one to its end.
    let left = request.body().left().unwrap_or(0);
    if reads_body && left > 0 && result.as_ref().is_ok_and(|r| r.status < 300) {
        log::warn!(
            "a route of {} accepted {} {} with {left} bytes of its body unread",
            family.name,
            escaped(request.method().as_str(), 32),
            escaped(request.url(), 300)
        );
    }
    let delay = result.as_ref().err().and_then(|e| e.delay);
    let reply = result.unwrap_or_else(|e| {
        let reply = (family.render_error)(&e);
        if e.status == 401 {
            reply.with_header("WWW-Authenticate", "Bearer".into())
        } else {
            reply
        }
    });
    Answer {
        reply,
        family,
        delay,
    }
}
