//! The HTTP layer: tiny_http behind this one module, a fixed pool of threads that take
//! requests, resolve who sent them, route them and answer. A route that panics answers 500
//! and the thread goes on. The HTTP layer meets the engine only in the store.
//!
//! Shutdown: `stop` sets the stop flag and unblocks every thread waiting in `recv`; each
//! finishes the request it is answering and exits; dropping the server closes the socket.

mod context;
mod error;
mod multipart;
mod reply;
mod request;
mod router;
mod webservicetasks;

use std::net::SocketAddr;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Instant;

use tiny_http::{Request, Server};

pub use context::{App, Limits, RequestContext};
pub use error::{ApiError, FILE_MISSING};
pub use router::{route, Endpoint};
pub use webservicetasks::task_json;

use crate::signal::Signal;
use reply::Reply;

pub struct HttpServer {
    server: Arc<Server>,
    addr: SocketAddr,
    /// Set by `stop`; each thread checks it after `recv` returns.
    stopping: Arc<AtomicBool>,
    /// Threads still running, and the signal each rings as it exits: `stop` waits on them
    /// until its deadline, no longer (a client stalled mid-body must not hold up shutdown).
    alive: Arc<AtomicUsize>,
    exited: Arc<Signal>,
    threads: Vec<JoinHandle<()>>,
}

impl HttpServer {
    /// Binds `listen` and starts `threads` request threads.
    pub fn start(listen: &str, threads: usize, app: Arc<App>) -> Result<HttpServer, String> {
        let listener = nodelay_listener(listen).map_err(|e| e.to_string())?;
        let server = Arc::new(Server::from_listener(listener, None).map_err(|e| e.to_string())?);
        let addr = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| "the listener has no IP address".to_string())?;
        let stopping = Arc::new(AtomicBool::new(false));
        let alive = Arc::new(AtomicUsize::new(0));
        let exited = Arc::new(Signal::default());
        let mut handles = Vec::with_capacity(threads);
        for n in 0..threads {
            let (server, app, stopping) = (server.clone(), app.clone(), stopping.clone());
            let (alive, exited) = (alive.clone(), exited.clone());
            alive.fetch_add(1, Ordering::SeqCst);
            let handle = std::thread::Builder::new()
                .name(format!("http-{n}"))
                .spawn(move || {
                    accept_loop(&server, &app, &stopping);
                    alive.fetch_sub(1, Ordering::SeqCst);
                    exited.ring();
                })
                .map_err(|e| e.to_string())?;
            handles.push(handle);
        }
        Ok(HttpServer {
            server,
            addr,
            stopping,
            alive,
            exited,
            threads: handles,
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
        for _ in &self.threads {
            self.server.unblock();
        }
        loop {
            let seen = self.exited.generation();
            if self.alive.load(Ordering::SeqCst) == 0 {
                break;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                log::warn!(
                    "{} HTTP request(s) still in flight at shutdown are abandoned",
                    self.alive.load(Ordering::SeqCst)
                );
                break;
            }
            self.exited.wait_past(seen, left);
        }
        for handle in self.threads {
            if handle.is_finished() {
                let _ = handle.join();
            }
        }
    }
}

/// Binds `listen` with TCP_NODELAY set on the listening socket, which the connections it
/// accepts inherit (Linux): tiny_http does not set it, and without it an answer written in
/// more than one piece waits for the client's delayed ACK (about 40 ms) on a kept-alive
/// connection.
fn nodelay_listener(listen: &str) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let addr = std::net::ToSocketAddrs::to_socket_addrs(listen)?
        .next()
        .ok_or_else(|| std::io::Error::other(format!("{listen} names no address")))?;
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_tcp_nodelay(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

fn accept_loop(server: &Server, app: &App, stopping: &AtomicBool) {
    while !stopping.load(Ordering::SeqCst) {
        match server.recv() {
            Ok(request) => serve(app, request),
            Err(e) => {
                if !stopping.load(Ordering::SeqCst) {
                    log::warn!("accepting a request failed: {e}");
                }
            }
        }
    }
}

/// The most header lines a request may carry, and their total size.
const MAX_HEADERS: usize = 100;
const MAX_HEADER_BYTES: usize = 64 * 1024;
/// The longest URL (path and query string). It bounds the query parameters too, which
/// become a task's params.
const MAX_URL_BYTES: usize = 16 * 1024;

/// Refuses a URL over its limit (414). Like the headers, tiny_http has read it whole by now.
fn check_url(request: &Request) -> Result<(), ApiError> {
    if request.url().len() > MAX_URL_BYTES {
        return Err(ApiError::uri_too_long(format!(
            "The request URL (path and query string) is longer than the limit of {MAX_URL_BYTES} bytes."
        )));
    }
    Ok(())
}

/// Refuses requests whose headers exceed the limits (431). tiny_http has read them whole by
/// now; this bounds what taskbox goes on to process, not what tiny_http buffered.
fn check_headers(request: &Request) -> Result<(), ApiError> {
    let headers = request.headers();
    let bytes: usize = headers
        .iter()
        .map(|h| h.field.as_str().as_str().len() + h.value.as_str().len() + 4)
        .sum();
    if headers.len() > MAX_HEADERS || bytes > MAX_HEADER_BYTES {
        return Err(ApiError::headers_too_large(format!(
            "The request headers are over their limit ({MAX_HEADERS} headers, {MAX_HEADER_BYTES} bytes)."
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

fn serve(app: &App, mut request: Request) {
    let started = Instant::now();
    let method = request.method().as_str().to_string();
    let url: String = request.url().chars().take(300).collect();
    let mut endpoint = None;
    let reply = panic::catch_unwind(AssertUnwindSafe(|| {
        handle(app, &mut request, &mut endpoint)
    }))
    .unwrap_or_else(|_| {
        Err(ApiError::internal(format!(
            "a route panicked on {method} {url}"
        )))
    })
    .unwrap_or_else(|e| Reply::error(&e));
    let status = reply.status;
    // Only an accepted submission has read its body to the end: a raw or JSON body is read
    // until it ends; a multipart body up to its closing boundary, and then its epilogue,
    // read and discarded up to a small bound (a longer one is refused, unread). Any other
    // answer may leave a body unread, as long as the client declared.
    let body_read = endpoint == Some(Endpoint::CreateTask) && status < 300;
    let result = if !body_read && request.body_length().is_some_and(|n| n > drain_limit()) {
        // tiny_http drains an unread body on drop into one buffer of its declared size: for
        // an absurd Content-Length the allocation fails and aborts the process. So the
        // status and headers go out through `upgrade` (which sends no body), and the
        // connection's reader is never dropped: the connection is abandoned (its socket and
        // tiny_http's thread for it leak) rather than the process lost.
        std::mem::forget(request.upgrade("close", reply.into_response()));
        Ok(())
    } else {
        request.respond(reply.into_response())
    };
    if let Err(e) = result {
        log::debug!("{method} {url}: the answer could not be sent: {e}");
    }
    log::debug!(
        "{method} {url} {status} {:.1} ms",
        started.elapsed().as_secs_f64() * 1000.0
    );
}

fn handle(
    app: &App,
    request: &mut Request,
    routed: &mut Option<Endpoint>,
) -> Result<Reply, ApiError> {
    check_url(request)?;
    check_headers(request)?;
    let ctx = RequestContext::resolve(request);
    let endpoint = route(request.method().as_str(), request::path_of(request.url()))?;
    *routed = Some(endpoint);
    match endpoint {
        Endpoint::ListTasks => webservicetasks::list(app, &ctx, request),
        Endpoint::CreateTask => webservicetasks::create(app, &ctx, request),
        Endpoint::GetTask(id) => webservicetasks::get(app, &ctx, id),
        Endpoint::DeleteTask(id) => webservicetasks::delete(app, &ctx, id),
        Endpoint::GetTaskFile(id, role) => webservicetasks::file(app, &ctx, id, role),
    }
}
