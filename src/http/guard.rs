//! The connection guard: the limits tiny_http 0.12 does not keep on its connections, kept
//! from outside it. tiny_http accepts every connection itself, gives each a thread of its
//! own, and reads from and writes to it with no timeout; it offers no hook on accept. A
//! read timeout set on the listening socket would not help: Linux applies it to `accept`
//! too, and tiny_http ends its accept loop on the first error, for good.
//!
//! So one thread looks at the process's own sockets a few times a second (`/proc/self/fd`):
//! every connected socket whose local address is the server's is a client connection.
//! For each it
//! - sets SO_RCVTIMEO and SO_SNDTIMEO to the read timeout, once, when it first sees it: no
//!   read of a body and no write of an answer waits longer than that for the client;
//! - closes it (`shutdown`, which tiny_http's thread sees as the client gone; the file
//!   descriptor stays tiny_http's to close) when no taskbox thread is handling a request
//!   of it and it has been open, or idle since its last answer, longer than the read
//!   timeout: a client that sends nothing, or its request line and headers too slowly
//!   (slowloris), loses its connection and its tiny_http thread. Time during which every
//!   HTTP thread was busy is not counted: a request read whole may be waiting in tiny_http's
//!   queue then, and the guard cannot tell it from a head still coming;
//! - closes the newest connections beyond `max_connections`, at once;
//! - notices when tiny_http's accept thread has ended (its descriptor of the listening
//!   socket is gone: it ends on an error of `accept`, or panics when it cannot clone an
//!   accepted socket for lack of descriptors) and calls `on_lost` (see listener.rs).
//!
//! A connection is known by its peer address (tiny_http holds two descriptors of each
//! socket). Which requests are being handled is told by `serve` through `Guard::enter`.
//! An action on a descriptor number is taken right after reading its addresses, in the same
//! pass: a descriptor closed and reused by a new connection in between (microseconds) is
//! the one race left, and its cost would be that new connection closed.

use std::collections::HashMap;
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{BorrowedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use socket2::SockRef;

use super::limits::Limits;

/// Per peer: taskbox threads handling one of its requests now, when the last ended, and
/// whether its socket has its timeouts.
#[derive(Default)]
struct Peer {
    busy: usize,
    last_done: Option<Instant>,
    configured: bool,
}

struct Shared {
    local: SocketAddr,
    limits: Limits,
    /// The HTTP threads taking requests: when all are busy, a request tiny_http has read may
    /// wait in its queue, and the wait is not the client's.
    threads: usize,
    peers: Mutex<HashMap<SocketAddr, Peer>>,
    stopping: AtomicBool,
    /// Called when only taskbox's own descriptor of the listening socket is left.
    on_lost: Box<dyn Fn() + Send + Sync>,
}

pub struct Guard {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// Held by `serve` while it handles a request of `peer`.
pub struct Busy<'a> {
    shared: &'a Shared,
    peer: SocketAddr,
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        let mut peers = self.shared.peers.lock().unwrap_or_else(|e| e.into_inner());
        let peer = peers.entry(self.peer).or_default();
        peer.busy = peer.busy.saturating_sub(1);
        peer.last_done = Some(Instant::now());
    }
}

impl Guard {
    /// Starts guarding the connections accepted on `local`.
    pub fn start(
        local: SocketAddr,
        limits: Limits,
        threads: usize,
        on_lost: Box<dyn Fn() + Send + Sync>,
    ) -> std::io::Result<Guard> {
        let shared = Arc::new(Shared {
            on_lost,
            local,
            limits,
            threads,
            peers: Mutex::new(HashMap::new()),
            stopping: AtomicBool::new(false),
        });
        let inner = shared.clone();
        let thread = std::thread::Builder::new()
            .name("http-guard".into())
            .spawn(move || watch(&inner))?;
        Ok(Guard {
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Marks a request of `peer` as being handled until the returned value is dropped. A
    /// connection the guard has not configured yet (its first request came within a tick)
    /// gets its timeouts now, before the route reads its body: a read already blocked when
    /// SO_RCVTIMEO is set would not see it.
    pub fn enter(&self, peer: Option<SocketAddr>) -> Option<Busy<'_>> {
        let peer = peer?;
        let configured = {
            let mut peers = self.shared.peers.lock().unwrap_or_else(|e| e.into_inner());
            let entry = peers.entry(peer).or_default();
            entry.busy += 1;
            entry.configured
        };
        if !configured {
            if let Some(fd) = find(peer, self.shared.local) {
                configure(fd, &self.shared.limits);
            }
            let mut peers = self.shared.peers.lock().unwrap_or_else(|e| e.into_inner());
            peers.entry(peer).or_default().configured = true;
        }
        Some(Busy {
            shared: &self.shared,
            peer,
        })
    }

    /// Closes the connection from `peer` now (see `serve`'s abandoned connections).
    pub fn close(&self, peer: Option<SocketAddr>) {
        let Some(peer) = peer else { return };
        if let Some(fd) = find(peer, self.shared.local) {
            let borrowed = sock(fd);
            let _ = SockRef::from(&borrowed).shutdown(Shutdown::Both);
        }
    }

    /// Stops the guard's thread (within one tick).
    pub fn stop(&self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

/// A client connection as the guard knows it.
struct Conn {
    fd: RawFd,
    opened: Instant,
    /// Time spent, since `paused_from` (the start of its current deadline), while every
    /// HTTP thread was busy: not counted against the client.
    paused: Duration,
    paused_from: Instant,
    /// Shut down by the guard: no longer counted (tiny_http closes it when it notices).
    shut: bool,
    seen: bool,
}

/// How often the guard looks: often enough that a deadline is kept within a tenth of the
/// read timeout (a quarter of a second at most), seldom enough to cost nothing.
fn tick(limits: &Limits) -> Duration {
    (limits.read_timeout / 10).clamp(Duration::from_millis(20), Duration::from_millis(250))
}

fn watch(shared: &Shared) {
    let mut conns: HashMap<SocketAddr, Conn> = HashMap::new();
    let mut last = Instant::now();
    while !shared.stopping.load(Ordering::SeqCst) {
        std::thread::sleep(tick(&shared.limits));
        let step = last.elapsed();
        last = Instant::now();
        if let Err(e) = pass(shared, &mut conns, step) {
            log::warn!("the connection guard could not list the open sockets: {e}");
        }
    }
}

/// The peer address of `fd` if it is a client connection of the server on `local`.
#[allow(unsafe_code)] // the one call below, with its SAFETY note
fn client_of(fd: RawFd, local: SocketAddr) -> Option<SocketAddr> {
    // SAFETY: the descriptor is only borrowed for the calls below, which fail harmlessly
    // (ENOTSOCK, EBADF) when it is no socket or no longer open.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let socket = SockRef::from(&borrowed);
    let mine = socket.local_addr().ok()?.as_socket()?;
    let same =
        mine.port() == local.port() && (local.ip().is_unspecified() || mine.ip() == local.ip());
    if !same {
        return None;
    }
    // The listening socket has no peer.
    socket.peer_addr().ok()?.as_socket()
}

#[allow(unsafe_code)] // the one call below, with its SAFETY note
fn sock(fd: RawFd) -> BorrowedFd<'static> {
    // SAFETY: as in `client_of`; used right after `client_of` confirmed the descriptor.
    unsafe { BorrowedFd::borrow_raw(fd) }
}

/// The process's open descriptors.
fn open_fds() -> std::io::Result<Vec<RawFd>> {
    let mut fds = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd")? {
        if let Some(fd) = entry?.file_name().to_str().and_then(|n| n.parse().ok()) {
            fds.push(fd);
        }
    }
    Ok(fds)
}

/// Whether `fd` is a descriptor of the listening socket on `local`.
fn is_listening(fd: RawFd, local: SocketAddr) -> bool {
    let borrowed = sock(fd);
    let socket = SockRef::from(&borrowed);
    let Some(mine) = socket.local_addr().ok().and_then(|a| a.as_socket()) else {
        return false;
    };
    mine == local && socket.peer_addr().is_err()
}

/// How many descriptors of the listening socket on `local` are open: taskbox's own, and
/// tiny_http's while its accept thread runs.
pub fn listening_fds(local: SocketAddr) -> usize {
    open_fds().map_or(usize::MAX, |fds| {
        fds.into_iter()
            .filter(|&fd| is_listening(fd, local))
            .count()
    })
}

/// A descriptor of the connection from `peer`.
fn find(peer: SocketAddr, local: SocketAddr) -> Option<RawFd> {
    open_fds()
        .ok()?
        .into_iter()
        .find(|&fd| client_of(fd, local) == Some(peer))
}

/// The per-read and per-write timeouts of a connection.
fn configure(fd: RawFd, limits: &Limits) {
    let borrowed = sock(fd);
    let socket = SockRef::from(&borrowed);
    let _ = socket.set_read_timeout(Some(limits.read_timeout));
    let _ = socket.set_write_timeout(Some(limits.read_timeout));
}

fn pass(
    shared: &Shared,
    conns: &mut HashMap<SocketAddr, Conn>,
    step: Duration,
) -> std::io::Result<()> {
    let (local, limits) = (shared.local, &shared.limits);
    let now = Instant::now();
    for conn in conns.values_mut() {
        conn.seen = false;
    }
    let mut fresh = Vec::new();
    let mut listening = 0;
    for fd in open_fds()? {
        let Some(peer) = client_of(fd, local) else {
            listening += usize::from(is_listening(fd, local));
            continue;
        };
        let conn = conns.entry(peer).or_insert_with(|| {
            configure(fd, limits);
            fresh.push(peer);
            Conn {
                fd,
                opened: now,
                paused: Duration::ZERO,
                paused_from: now,
                shut: false,
                seen: false,
            }
        });
        conn.fd = fd;
        conn.seen = true;
    }
    if listening == 1 {
        (shared.on_lost)();
    }
    let mut peers = shared.peers.lock().unwrap_or_else(|e| e.into_inner());
    for peer in fresh {
        peers.entry(peer).or_default().configured = true;
    }
    // Forget the connections gone, and the peers of connections gone (or never seen: closed
    // within a tick) unless a request of theirs is still being handled.
    conns.retain(|_, conn| conn.seen);
    peers.retain(|addr, peer| peer.busy > 0 || conns.contains_key(addr));
    let busy = |addr: &SocketAddr| peers.get(addr).is_some_and(|p| p.busy > 0);
    let saturated = peers.values().map(|p| p.busy).sum::<usize>() >= shared.threads;
    // Too slow, or idle too long.
    let mut timed_out = 0;
    for (addr, conn) in conns.iter_mut() {
        if conn.shut || busy(addr) {
            continue;
        }
        let since = peers
            .get(addr)
            .and_then(|p| p.last_done)
            .map_or(conn.opened, |done| done.max(conn.opened));
        if conn.paused_from != since {
            conn.paused_from = since;
            conn.paused = Duration::ZERO;
        }
        if saturated {
            conn.paused += step;
        }
        let counted = now.duration_since(since).saturating_sub(conn.paused);
        if counted > limits.read_timeout && shut(conn, *addr, local) {
            timed_out += 1;
        }
    }
    if timed_out > 0 {
        log::debug!(
            "closed {timed_out} connection(s) that sent no complete request within the read timeout of {:?}",
            limits.read_timeout
        );
    }
    // Over the cap: the newest go.
    let mut open: Vec<(Instant, SocketAddr)> = conns
        .iter()
        .filter(|(_, c)| !c.shut)
        .map(|(a, c)| (c.opened, *a))
        .collect();
    if open.len() > limits.max_connections {
        open.sort();
        let mut refused = 0;
        for (_, addr) in open.iter().skip(limits.max_connections) {
            if !busy(addr) {
                if let Some(conn) = conns.get_mut(addr) {
                    if shut(conn, *addr, local) {
                        refused += 1;
                    }
                }
            }
        }
        log::warn!(
            "{} connections open, over the limit of {}: closed {refused} new one(s)",
            open.len(),
            limits.max_connections
        );
    }
    Ok(())
}

/// Shuts the connection down if its descriptor is still that connection.
fn shut(conn: &mut Conn, peer: SocketAddr, local: SocketAddr) -> bool {
    conn.shut = true;
    if client_of(conn.fd, local) != Some(peer) {
        return false;
    }
    let borrowed = sock(conn.fd);
    SockRef::from(&borrowed).shutdown(Shutdown::Both).is_ok()
}
