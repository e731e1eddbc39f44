//! The tiny_http server on taskbox's listening socket, started again when its accept loop
//! ends. tiny_http 0.12 ends that loop for good on the first error of `accept` (running out
//! of file descriptors in a flood of connections is one), and its accept thread panics when
//! it cannot clone an accepted socket (no descriptor left either); either way the socket is
//! closed with it: the process would live on, refusing everyone. An error reaches the HTTP
//! threads through `recv`; a panic does not, so the connection guard also watches for
//! tiny_http's descriptor of the socket to disappear and calls `lost`. taskbox keeps a descriptor of its own of the
//! socket, so the socket stays open (connections wait in its backlog), and starts a new
//! tiny_http server on it. The old server's connections still send their requests to the
//! old server's queue: one thread serves them until none has come for longer than the read
//! timeout (by then the connection guard has closed its idle connections).

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tiny_http::{HeadLimits, Server};

/// How long a restart waits before it accepts again: descriptors free up as connections
/// close, and a loop that failed at once would fail again at once.
const RESTART_PAUSE: Duration = Duration::from_millis(200);

pub struct Servers {
    /// Taskbox's own descriptor of the listening socket, and its address.
    listener: TcpListener,
    local: SocketAddr,
    /// Set by `lost` until a restart: the accept thread is gone.
    is_lost: AtomicBool,
    current: Mutex<Arc<Server>>,
    generation: AtomicU64,
    /// What every server started on the socket keeps of each request's head.
    head: HeadLimits,
}

impl Servers {
    pub fn start(listener: TcpListener, head: HeadLimits) -> std::io::Result<Servers> {
        let local = listener.local_addr()?;
        let server = Server::from_listener_with_limits(listener.try_clone()?, None, head)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(Servers {
            listener,
            local,
            is_lost: AtomicBool::new(false),
            current: Mutex::new(Arc::new(server)),
            generation: AtomicU64::new(0),
            head,
        })
    }

    /// The server to take requests from, and its generation (for `restart`).
    pub fn current(&self) -> (Arc<Server>, u64) {
        let current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        (current.clone(), self.generation.load(Ordering::SeqCst))
    }

    /// The accept thread is gone (seen by the guard): wakes one HTTP thread to restart.
    pub fn lost(&self) {
        if !self.is_lost.swap(true, Ordering::SeqCst) {
            self.current().0.unblock();
        }
    }

    pub fn is_lost(&self) -> bool {
        self.is_lost.load(Ordering::SeqCst)
    }

    /// Whether a restart happened since `generation`.
    pub fn moved_since(&self, generation: u64) -> bool {
        self.generation.load(Ordering::SeqCst) != generation
    }

    /// Starts a new server on the socket after the accept loop of generation `seen` ended,
    /// unless another thread did already. `threads` threads wait on the old server: each is
    /// woken to move to the new one, and `serve_old` is given the old server to drain.
    pub fn restart(
        &self,
        seen: u64,
        threads: usize,
        stopping: &AtomicBool,
        serve_old: impl FnOnce(Arc<Server>),
    ) {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if self.moved_since(seen) {
            return;
        }
        // The accept thread drops its descriptor of the socket as it ends: wait for that,
        // briefly, so that a restart never runs two accept loops on one socket.
        let waited = Instant::now();
        while super::guard::listening_fds(self.local) > 1 {
            if waited.elapsed() > Duration::from_secs(2) {
                log::warn!("the accept thread still holds the socket: no restart");
                self.is_lost.store(false, Ordering::SeqCst);
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let new = loop {
            if stopping.load(Ordering::SeqCst) {
                return;
            }
            std::thread::sleep(RESTART_PAUSE);
            let started = self.listener.try_clone().and_then(|listener| {
                Server::from_listener_with_limits(listener, None, self.head)
                    .map_err(|e| std::io::Error::other(e.to_string()))
            });
            match started {
                Ok(server) => break Arc::new(server),
                Err(e) => log::error!("accepting connections again failed, retrying: {e}"),
            }
        };
        let old = std::mem::replace(&mut *current, new);
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.is_lost.store(false, Ordering::SeqCst);
        log::warn!("accepting connections again on the same socket");
        for _ in 0..threads {
            old.unblock();
        }
        serve_old(old);
    }

    /// Wakes every thread waiting on the current server (at shutdown).
    pub fn unblock(&self, threads: usize) {
        let (server, _) = self.current();
        for _ in 0..threads {
            server.unblock();
        }
    }
}

/// Takes the requests still coming to an old server, until none has come for `quiet` or
/// the service stops.
pub fn drain_old(
    server: &Server,
    quiet: Duration,
    stopping: &AtomicBool,
    mut serve: impl FnMut(tiny_http::Request),
) {
    let mut last = Instant::now();
    while !stopping.load(Ordering::SeqCst) && last.elapsed() < quiet {
        // Nothing (or a stale wake-up) within the wait: look at the clock and the flag.
        if let Ok(Some(request)) = server.recv_timeout(Duration::from_millis(250)) {
            serve(request);
            last = Instant::now();
        }
    }
}
