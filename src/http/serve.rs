//! Serving a request taken from the network, in the phases a slow client could stretch:
//! its body, read as the route reads it, and its answer (after which tiny_http reads what
//! the route left of the body, up to `--max-drain-bytes`, or closes the connection; see
//! vendor/tiny_http/PATCHES.md). An HTTP thread serves a request itself only when neither
//! phase waits for the client: its body came whole with its head (tiny_http reads a body of
//! at most 1024 bytes so) and its answer fits the socket's buffer at once. Anything else is
//! handed to the transfer threads (transfers.rs). A request pipelined behind another of
//! its connection waits, set aside by the guard, until that one's answer is sent (guard.rs).
//! Both phases are metered and judged by the connection guard (meter.rs).

use std::time::{Duration, Instant};

use super::answer::answer;
use super::app::App;
use super::error::ApiError;
use super::guard::{Busy, Guard};
use super::limits::Limits;
use super::log_text::escaped;
use super::reply::Reply;
use super::request::Request;
use super::route::Family;
use super::transfers::{Job, Transfers};

/// The longest body tiny_http reads whole with the head, when the client does not wait for
/// `100 Continue`; a longer or a chunked one is read from the network as the route reads it.
const BODY_READ_WITH_HEAD: usize = 1024;

/// The longest answer an HTTP thread sends itself. Linux gives a new connection's socket a
/// send buffer of 16 KiB by default (net.ipv4.tcp_wmem), which takes such an answer at once
/// whether or not the client reads: the HTTP thread does not wait for it (and should it,
/// the guard judges that answer as any other).
const QUICK_ANSWER_BYTES: usize = 16 * 1024;

/// An answer ready to be sent, with what its log line needs.
pub struct Answered {
    reply: Reply,
    family: &'static Family,
    /// How long to hold the answer back (a failed authentication's).
    delay: Option<Duration>,
    /// The method and URL, escaped for the log.
    method: String,
    url: String,
    started: Instant,
}

/// Serves a request an HTTP thread took, or hands it to the transfer threads.
pub fn dispatch(app: &App, guard: &Guard, transfers: &Transfers, tiny: tiny_http::Request) {
    let Some((mut tiny, busy)) = guard.enter(tiny) else {
        return;
    };
    if body_on_network(&tiny) {
        transfers.serve(tiny, busy);
        return;
    }
    let answered = answer_request(app, &mut tiny, &busy);
    if answered.delay.is_some() {
        return hold(guard, &app.limits, transfers, tiny, answered, busy);
    }
    let long = tiny.method() != &tiny_http::Method::Head
        && answered
            .reply
            .length
            .is_none_or(|length| length > QUICK_ANSWER_BYTES);
    if !long {
        return send(guard, &app.limits, tiny, answered, &busy);
    }
    if let Err(refused) = transfers.send(tiny, answered, busy) {
        let (tiny, answered, busy) = *refused;
        let refusal = ApiError::busy(format!(
            "Too many answers are waiting to be sent ({} transfer threads are busy): try again in a few seconds.",
            app.limits.transfer_threads
        ));
        let reply = (answered.family.render_error)(&refusal).with_header("Retry-After", "5".into());
        send(
            guard,
            &app.limits,
            tiny,
            Answered { reply, ..answered },
            &busy,
        );
    }
}

/// Runs a transfer thread's job.
pub fn run(app: &App, guard: &Guard, transfers: &Transfers, job: Job) {
    match job {
        Job::Serve(mut tiny, busy) => {
            let answered = answer_request(app, &mut tiny, &busy);
            if answered.delay.is_some() {
                return hold(guard, &app.limits, transfers, tiny, answered, busy);
            }
            send(guard, &app.limits, tiny, answered, &busy);
        }
        Job::Send(tiny, answered, busy) => send(guard, &app.limits, tiny, answered, &busy),
    }
}

/// Holds an answer back for its delay without holding this thread (see transfers.rs); when
/// too many are held already, sends it now.
fn hold(
    guard: &Guard,
    limits: &Limits,
    transfers: &Transfers,
    tiny: tiny_http::Request,
    answered: Answered,
    busy: Busy,
) {
    let due = Instant::now() + answered.delay.unwrap_or_default();
    if let Err(refused) = transfers.hold(tiny, answered, busy, due) {
        let (tiny, answered, busy) = *refused;
        send(guard, limits, tiny, answered, &busy);
    }
}

/// Answers `tiny`. When the connection cannot serve another request after this one (the
/// head was over its limit, or more of the body is left than tiny_http drains), the answer
/// says `Connection: close`.
fn answer_request(app: &App, tiny: &mut tiny_http::Request, busy: &Busy) -> Answered {
    let started = Instant::now();
    let mut request = Request::from_tiny(tiny, busy.meter().clone(), app.limits);
    let method = escaped(request.method().as_str(), 32);
    let url = escaped(request.url(), 300);
    let answer = answer(app, &mut request);
    busy.meter().stop();
    let left = request.body().left().unwrap_or(0) as u64;
    let mut reply = answer.reply;
    if request.head_too_large() || left > app.limits.max_drain_bytes {
        reply = reply.with_header("Connection", "close".into());
    }
    Answered {
        reply,
        family: answer.family,
        delay: answer.delay,
        method,
        url,
        started,
    }
}

/// Sends the answer, its transfer metered; an answer cut short (the client is gone, or too
/// slow) ends its connection, so that no answer follows it there.
fn send(guard: &Guard, limits: &Limits, tiny: tiny_http::Request, answered: Answered, busy: &Busy) {
    let Answered {
        reply,
        method,
        url,
        started,
        ..
    } = answered;
    let status = reply.status;
    let meter = busy.meter();
    meter.start();
    let result = tiny.respond(reply.into_response(meter.clone(), *limits));
    meter.stop();
    if let Err(e) = result.and_then(|()| meter.check(limits)) {
        guard.close(busy.peer());
        log::debug!("{method} {url}: the answer could not be sent: {e}");
    }
    log::debug!(
        "{method} {url} {status} {:.1} ms",
        started.elapsed().as_secs_f64() * 1000.0
    );
}

/// Whether reading the request's body waits for the client (see `BODY_READ_WITH_HEAD`), as
/// tiny_http frames it: chunked, a declared length over the bound or with `Expect`, or the
/// whole rest of an upgraded connection.
fn body_on_network(tiny: &tiny_http::Request) -> bool {
    let has = |name: &'static str| tiny.headers().iter().any(|h| h.field.equiv(name));
    has("Transfer-Encoding")
        || is_upgrade(tiny)
        || match tiny.body_length() {
            None | Some(0) => false,
            Some(length) => length > BODY_READ_WITH_HEAD || has("Expect"),
        }
}

/// `Connection: upgrade`: tiny_http gives the route the connection's whole stream as the
/// body, and ends the connection after the answer.
fn is_upgrade(tiny: &tiny_http::Request) -> bool {
    tiny.headers()
        .iter()
        .find(|h| h.field.equiv("Connection"))
        .is_some_and(|h| h.value.as_str().to_ascii_lowercase().contains("upgrade"))
}
