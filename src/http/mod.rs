//! The HTTP core: tiny_http behind this one module, a fixed pool of threads that take
//! requests, make them into our own [`Request`], route them through the one table of every
//! family's routes, resolve who sent them and answer; the connection guard and the limits.
//! The API families (in `api/`) own their routes, envelopes and error rendering; they never
//! name tiny_http. A route that panics answers 500 and the thread goes on. The HTTP layer
//! meets the engine only in the store.
//!
//! Shutdown: `stop` sets the stop flag and unblocks every thread waiting in `recv`; each
//! finishes the request it is answering and exits; dropping the server closes the socket.

mod app;
mod context;
mod error;
pub(crate) mod fields;
mod guard;
mod limits;
mod listener;
pub(crate) mod multipart;
mod origin;
mod reply;
mod request;
mod route;

use std::io::Write;
use std::net::SocketAddr;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use app::App;
pub use context::RequestContext;
pub use error::ApiError;
pub use limits::Limits;
pub use origin::AllowedHosts;
pub use reply::Reply;
pub use request::{Method, Request};
pub use route::{Family, PathArgs, Route, Router};

use crate::change_counter::ChangeCounter;
use guard::Guard;
use listener::Servers;

pub struct HttpServer {
    /// The tiny_http server on the socket, restarted if its accept loop ends.
    servers: Arc<Servers>,
    addr: SocketAddr,
    /// Set by `stop`; each thread checks it after `recv` returns.
    stopping: Arc<AtomicBool>,
    /// Threads still running, and the signal each rings as it exits: `stop` waits on them
    /// until its deadline, no longer (a client stalled mid-body must not hold up shutdown).
    alive: Arc<AtomicUsize>,
    exited: Arc<ChangeCounter>,
    threads: Vec<JoinHandle<()>>,
    /// Keeps the read timeout and the connection cap (see guard.rs).
    guard: Arc<Guard>,
}

impl HttpServer {
    /// Binds `listen` and starts `threads` request threads.
    pub fn start(listen: &str, threads: usize, app: Arc<App>) -> Result<HttpServer, String> {
        let listener = nodelay_listener(listen, &app.limits).map_err(|e| e.to_string())?;
        let servers = Arc::new(Servers::start(listener).map_err(|e| e.to_string())?);
        let addr = servers
            .current()
            .0
            .server_addr()
            .to_ip()
            .ok_or_else(|| "the listener has no IP address".to_string())?;
        let guard = Arc::new(
            Guard::start(addr, app.limits, threads, {
                let servers = servers.clone();
                Box::new(move || servers.lost())
            })
            .map_err(|e| e.to_string())?,
        );
        let stopping = Arc::new(AtomicBool::new(false));
        let alive = Arc::new(AtomicUsize::new(0));
        let exited = Arc::new(ChangeCounter::default());
        let mut handles = Vec::with_capacity(threads);
        for n in 0..threads {
            let (servers, app, stopping) = (servers.clone(), app.clone(), stopping.clone());
            let guard = guard.clone();
            let (alive, exited) = (alive.clone(), exited.clone());
            alive.fetch_add(1, Ordering::SeqCst);
            let handle = std::thread::Builder::new()
                .name(format!("http-{n}"))
                .spawn(move || {
                    accept_loop(&servers, threads, &app, &guard, &stopping);
                    alive.fetch_sub(1, Ordering::SeqCst);
                    exited.bump();
                })
                .map_err(|e| e.to_string())?;
            handles.push(handle);
        }
        Ok(HttpServer {
            servers,
            addr,
            stopping,
            alive,
            exited,
            threads: handles,
            guard,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops taking requests and lets the threads finish the ones they answer, until
    /// `deadline`; a thread still busy then (a client stalled mid-request) is left to the
    /// process's exit.
    pub fn stop(self, deadline: Instant) {
        self.stopping.store(true, Ordering::SeqCst);
        self.servers.unblock(self.threads.len());
        let alive = &self.alive;
        if !self
            .exited
            .wait_until(deadline, || alive.load(Ordering::SeqCst) == 0)
        {
            log::warn!(
                "{} HTTP request(s) still in flight at shutdown are abandoned",
                alive.load(Ordering::SeqCst)
            );
        }
        for handle in self.threads {
            if handle.is_finished() {
                let _ = handle.join();
            }
        }
        self.guard.stop();
    }
}

/// Binds `listen` with TCP_NODELAY set on the listening socket, which the connections it
/// accepts inherit (Linux): tiny_http does not set it, and without it an answer written in
/// more than one piece waits for the client's delayed ACK (about 40 ms) on a kept-alive
/// connection. SO_SNDTIMEO (the read timeout) is inherited the same way, so that no answer
/// waits longer than that for a client that does not read it, from the first byte.
/// SO_RCVTIMEO cannot be set here: `accept` obeys it too, and tiny_http's accept loop ends
/// for good on the first error; the connection guard sets it on each connection instead.
fn nodelay_listener(listen: &str, limits: &Limits) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let addr = std::net::ToSocketAddrs::to_socket_addrs(listen)?
        .next()
        .ok_or_else(|| std::io::Error::other(format!("{listen} names no address")))?;
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_tcp_nodelay(true)?;
    socket.set_write_timeout(Some(limits.read_timeout))?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

fn accept_loop(
    servers: &Servers,
    threads: usize,
    app: &Arc<App>,
    guard: &Arc<Guard>,
    stopping: &Arc<AtomicBool>,
) {
    while !stopping.load(Ordering::SeqCst) {
        let (server, generation) = servers.current();
        match server.recv() {
            Ok(request) => {
                let _busy = guard.enter(request.remote_addr().copied());
                serve(app, guard, request);
            }
            // Woken by `stop`, or to move to a restarted server.
            Err(_) if stopping.load(Ordering::SeqCst) || servers.moved_since(generation) => {}
            // Neither an error of accept nor a lost accept thread: a stale wake-up.
            Err(e) if e.raw_os_error().is_none() && !servers.is_lost() => {}
            Err(e) => {
                log::error!("the HTTP library stopped accepting connections: {e}");
                let (app, guard, stopping) = (app.clone(), guard.clone(), stopping.clone());
                servers.restart(generation, threads, &stopping.clone(), move |old| {
                    let quiet = app.limits.read_timeout + Duration::from_secs(1);
                    let spawned =
                        std::thread::Builder::new()
                            .name("http-old".into())
                            .spawn(move || {
                                listener::drain_old(&old, quiet, &stopping, |request| {
                                    let _busy = guard.enter(request.remote_addr().copied());
                                    serve(&app, &guard, request);
                                })
                            });
                    if let Err(e) = spawned {
                        log::error!("no thread for the old server's connections: {e}");
                    }
                });
            }
        }
    }
}

/// The longest URL (path and query string). It bounds the query parameters too, which
/// become a task's params.
const MAX_URL_BYTES: usize = 16 * 1024;

/// Refuses a URL over its limit (414). Like the headers, tiny_http has read it whole by now.
fn check_url(request: &Request<'_>) -> Result<(), ApiError> {
    if request.url().len() > MAX_URL_BYTES {
        return Err(ApiError::uri_too_long(format!(
            "The request URL (path and query string) is longer than the limit of {MAX_URL_BYTES} bytes."
        )));
    }
    Ok(())
}

/// Refuses requests whose headers exceed the limits (431). tiny_http has read them whole by
/// now; this bounds what taskbox goes on to process, not what tiny_http buffered (the
/// connection guard bounds that by time: see guard.rs).
fn check_headers(request: &Request<'_>, limits: &Limits) -> Result<(), ApiError> {
    let headers = request.headers();
    let bytes: usize = headers.iter().map(|(n, v)| n.len() + v.len() + 4).sum();
    let (count, size) = (limits.max_headers, limits.max_header_bytes);
    if headers.len() > count || bytes > size {
        return Err(ApiError::headers_too_large(format!(
            "The request headers are over their limit ({count} headers, {size} bytes): \
             this one has {} headers, {bytes} bytes.",
            headers.len()
        )));
    }
    Ok(())
}

/// The largest unread request body tiny_http may drain after the answer (see `serve`): half
/// the machine's memory, since the drain allocates a buffer of the body's declared size
/// (untouched pages cost nothing, but an allocation beyond memory plus swap fails).
fn drain_limit() -> usize {
    static LIMIT: OnceLock<usize> = OnceLock::new();
    *LIMIT.get_or_init(|| {
        let total_kib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|text| {
                let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
                line.split_whitespace().nth(1)?.parse::<usize>().ok()
            });
        total_kib.map_or(256 << 20, |kib| kib.saturating_mul(1024) / 2)
    })
}

/// The most of an answer's body written to a connection that is abandoned (see `serve`): an
/// error's envelope, not a file.
const MAX_ABANDONED_BODY: u64 = 64 * 1024;

fn serve(app: &App, guard: &Guard, mut tiny: tiny_http::Request) {
    let started = Instant::now();
    let (reply, body_read, method, url) = {
        let mut request = Request::from_tiny(&mut tiny);
        let method = request.method().as_str().to_string();
        let url: String = request.url().chars().take(300).collect();
        let answer = answer(app, &mut request);
        (answer.reply, answer.body_read, method, url)
    };
    let status = reply.status;
    let result = if !body_read && tiny.body_length().is_some_and(|n| n > drain_limit()) {
        // tiny_http drains an unread body on drop into one buffer of its declared size: for
        // an absurd Content-Length the allocation fails and aborts the process. So the
        // status and headers go out through `upgrade` (which sends no body and no length),
        // the body is written after them into the stream it returns, the guard closes the
        // connection (which ends that body for the client), and the connection's reader is
        // never dropped: its descriptors and tiny_http's thread for it leak rather than the
        // process lost.
        let peer = tiny.remote_addr().copied();
        let (head, body) = reply.split(MAX_ABANDONED_BODY);
        let mut stream = tiny.upgrade("close", head.into_response());
        let written = stream.write_all(&body).and_then(|()| stream.flush());
        std::mem::forget(stream);
        guard.close(peer);
        written
    } else {
        tiny.respond(reply.into_response())
    };
    if let Err(e) = result {
        log::debug!("{method} {url}: the answer could not be sent: {e}");
    }
    log::debug!(
        "{method} {url} {status} {:.1} ms",
        started.elapsed().as_secs_f64() * 1000.0
    );
}

/// An answer to a request, and whether the request's body was read to its end.
pub(crate) struct Answer {
    pub reply: Reply,
    pub body_read: bool,
}

/// Answers a request: the limits on its URL and headers, its route, who sends it, then the
/// route's handler. Every failure is rendered by the family of the route (or, before a route
/// is known, the fallback family); a handler that panics answers 500 and the thread goes on.
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
            request.method().as_str(),
            request.url().chars().take(300).collect::<String>(),
            request
                .remote_addr()
                .map_or_else(|| "an unknown peer".to_string(), |a| a.to_string())
        )))
    });
    // Only an accepted submission has read its body to the end: a raw or JSON body is read
    // until it ends; a multipart body up to its closing boundary, and then its epilogue,
    // read and discarded up to a small bound (a longer one is refused, unread). Any other
    // answer may leave a body unread, as long as the client declared.
    match result {
        Ok(reply) => Answer {
            body_read: reads_body && reply.status < 300,
            reply,
        },
        Err(e) => Answer {
            reply: (family.render_error)(&e),
            body_read: false,
        },
    }
}
