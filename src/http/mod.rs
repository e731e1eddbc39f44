//! The HTTP core: tiny_http behind this one module (patched, see
//! vendor/tiny_http/PATCHES.md), a fixed pool of HTTP threads that take requests, make them
//! into our own [`Request`], route them through the one table of every family's routes,
//! resolve who sent them and answer; a fixed pool of transfer threads for the requests that
//! wait on their client (a body to read from the network, a long answer to send); the
//! connection guard and the limits. The API families (in `api/`) own their routes,
//! envelopes and error rendering; they never name tiny_http. A route that panics answers
//! 500 and the thread goes on. The HTTP layer meets the engine only in the store.
//!
//! Shutdown: `stop` sets the stop flag, unblocks every HTTP thread waiting in `recv` and
//! closes the transfer queue; each thread finishes what it is answering and exits; dropping
//! the server closes the socket.

mod answer;
mod app;
mod context;
mod error;
mod fd_limit;
pub(crate) mod fields;
mod guard;
mod limits;
mod listener;
mod log_text;
mod meter;
pub(crate) mod multipart;
mod origin;
mod reply;
mod request;
mod route;
mod serve;
mod transfers;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

#[cfg(any(test, feature = "internals"))]
pub(crate) use answer::answer;
pub use app::App;
pub use context::RequestContext;
pub use error::ApiError;
pub use fd_limit::ensure_descriptors;
pub use limits::Limits;
pub use origin::AllowedHosts;
pub use reply::Reply;
pub use request::{Method, Request};
pub use route::{Family, PathArgs, Route, Router};

use crate::change_counter::ChangeCounter;
use guard::Guard;
use listener::Servers;
use transfers::Transfers;

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
    /// Keeps the connection caps and judges transfers (see guard.rs).
    guard: Arc<Guard>,
    transfers: Arc<Transfers>,
}

impl HttpServer {
    /// Binds `listen` and starts `threads` request threads and the transfer threads.
    pub fn start(listen: &str, threads: usize, app: Arc<App>) -> Result<HttpServer, String> {
        let limits = app.limits;
        let listener = nodelay_listener(listen, &limits).map_err(|e| e.to_string())?;
        let servers = Arc::new(Servers::start(listener, limits.head()).map_err(|e| e.to_string())?);
        let addr = servers
            .current()
            .0
            .server_addr()
            .to_ip()
            .ok_or_else(|| "the listener has no IP address".to_string())?;
        // The guard releases requests set aside to the transfer threads, started after it.
        let transfers_slot: Arc<OnceLock<Weak<Transfers>>> = Arc::default();
        let guard = Arc::new(
            Guard::start(
                addr,
                limits,
                {
                    let servers = servers.clone();
                    Box::new(move || servers.lost())
                },
                {
                    let slot = transfers_slot.clone();
                    Box::new(move |request, busy| {
                        // None when stopping: the request is dropped, tiny_http answers 500,
                        // before its `Busy`, whose drop releases the request behind it.
                        match slot.get().and_then(Weak::upgrade) {
                            Some(transfers) => transfers.serve(request, busy),
                            None => {
                                drop(request);
                                drop(busy);
                            }
                        }
                    })
                },
            )
            .map_err(|e| e.to_string())?,
        );
        let stopping = Arc::new(AtomicBool::new(false));
        let alive = Arc::new(AtomicUsize::new(limits.transfer_threads));
        let exited = Arc::new(ChangeCounter::default());
        let transfers = Arc::new(
            Transfers::start(
                limits.transfer_threads,
                limits.max_connections,
                {
                    let (app, guard) = (app.clone(), guard.clone());
                    let slot = transfers_slot.clone();
                    move |job| {
                        // Set before any request is taken; gone only while stopping.
                        if let Some(transfers) = slot.get().and_then(Weak::upgrade) {
                            serve::run(&app, &guard, &transfers, job);
                        }
                    }
                },
                {
                    let (alive, exited) = (alive.clone(), exited.clone());
                    move || {
                        alive.fetch_sub(1, Ordering::SeqCst);
                        exited.bump();
                    }
                },
            )
            .map_err(|e| e.to_string())?,
        );
        let _ = transfers_slot.set(Arc::downgrade(&transfers));
        let mut handles = Vec::with_capacity(threads);
        for n in 0..threads {
            let (servers, app, stopping) = (servers.clone(), app.clone(), stopping.clone());
            let (guard, transfers) = (guard.clone(), transfers.clone());
            let (alive, exited) = (alive.clone(), exited.clone());
            alive.fetch_add(1, Ordering::SeqCst);
            let handle = std::thread::Builder::new()
                .name(format!("http-{n}"))
                .spawn(move || {
                    accept_loop(&servers, threads, &app, &guard, &transfers, &stopping);
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
            transfers,
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
        self.transfers.stop();
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
    transfers: &Arc<Transfers>,
    stopping: &Arc<AtomicBool>,
) {
    while !stopping.load(Ordering::SeqCst) {
        let (server, generation) = servers.current();
        match server.recv() {
            Ok(request) => serve::dispatch(app, guard, transfers, request),
            // Woken by `stop`, or to move to a restarted server.
            Err(_) if stopping.load(Ordering::SeqCst) || servers.moved_since(generation) => {}
            // Neither an error of accept nor a lost accept thread: a stale wake-up.
            Err(e) if e.raw_os_error().is_none() && !servers.is_lost() => {}
            Err(e) => {
                log::error!("the HTTP library stopped accepting connections: {e}");
                let (app, guard, stopping) = (app.clone(), guard.clone(), stopping.clone());
                let transfers = transfers.clone();
                servers.restart(generation, threads, &stopping.clone(), move |old| {
                    let quiet = app.limits.read_timeout + Duration::from_secs(1);
                    let spawned =
                        std::thread::Builder::new()
                            .name("http-old".into())
                            .spawn(move || {
                                listener::drain_old(&old, quiet, &stopping, |request| {
                                    serve::dispatch(&app, &guard, &transfers, request)
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
