//! The connection guard: the limits on connections that tiny_http does not keep, kept from
//! outside it. tiny_http accepts every connection itself and offers no hook on accept, so
//! one thread looks at the process's own sockets a few times a second (`/proc/self/fd`):
//! every connected socket whose local address is the server's is a client connection. It
//! - closes (`shutdown`, which tiny_http's thread sees as the client gone; the descriptors
//!   stay tiny_http's to close) the newest connections of an IP address beyond
//!   `max_connections_per_ip`: that address is refused, the others are not;
//! - closes connections beyond `max_connections`, those least likely to be a client being
//!   served first: the ones that never had a request answered, oldest first (a slow head
//!   that got in is older than a client that just arrived), then the ones idle longest;
//!   never one with a request being handled (those are judged by their transfer);
//! - judges the transfer of every request being handled (see meter.rs) and shuts down the
//!   connection of one cut off as too slow or too long, which ends a read or a write
//!   blocked on that client;
//! - notices when tiny_http's accept thread has ended (its descriptor of the listening
//!   socket is gone: it ends on an error of `accept`, or panics when it cannot clone an
//!   accepted socket for lack of descriptors) and calls `on_lost` (see listener.rs).
//!
//! It also keeps the requests of each connection in order (`enter`): tiny_http reads
//! requests pipelined on one connection at once and hands them to any thread, but sends
//! their answers in order, each waiting for the one before; a thread that took one before
//! its turn would wait on another thread's answer (a long one, held by a client that does
//! not read; or one taken later than it, by a thread that took the later request first:
//! a deadlock). A request whose turn has not come (`Request::is_turn_to_answer`, a
//! patch: see vendor/tiny_http/PATCHES.md) is set aside, and released to the transfer
//! threads when the request before it is done; no thread ever waits for another's answer.
//!
//! A request's head, its size and its deadline, are kept by the HTTP library itself (see
//! vendor/tiny_http/PATCHES.md), which knows when a head is complete; the guard does not
//! time idle connections.
//!
//! It fails closed: `start` refuses (and so the server does not start) when it cannot list
//! the process's sockets. A spare descriptor kept open lets it list them when the process
//! has run out of descriptors, which is when it is needed most.
//!
//! A connection is known by its peer address (tiny_http holds two descriptors of each
//! socket). Which requests are being handled is told by the HTTP threads through
//! `Guard::enter`. An action on a descriptor number is taken right after reading its
//! addresses, in the same pass: a descriptor closed and reused by a new connection in
//! between (microseconds) is the one race left, and its cost would be that new connection
//! closed.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::os::fd::{BorrowedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use socket2::SockRef;

use super::limits::Limits;
use super::meter::{Cut, Meter};

/// The most requests of one connection set aside behind the one in hand: a client that
/// pipelines more without reading the answers has its connection closed. (The requests
/// set aside are still released in turn and run, as any request read whole; their answers
/// then fail at once on the closed connection.)
const MAX_SET_ASIDE: usize = 64;

/// Per peer (one connection): the meters of its requests in hand, the requests set aside
/// until their turn, and when the last one ended.
#[derive(Default)]
struct Peer {
    meters: Vec<Arc<Meter>>,
    set_aside: VecDeque<tiny_http::Request>,
    last_done: Option<Instant>,
}

impl Peer {
    /// Takes out the requests set aside whose turn has come, each with a meter of its own
    /// now in hand.
    fn take_turns(&mut self) -> Vec<(tiny_http::Request, Arc<Meter>)> {
        let mut turns = Vec::new();
        let mut waiting = VecDeque::with_capacity(self.set_aside.len());
        for request in self.set_aside.drain(..) {
            if request.is_turn_to_answer() {
                let meter = Arc::new(Meter::default());
                self.meters.push(meter.clone());
                turns.push((request, meter));
            } else {
                waiting.push_back(request);
            }
        }
        self.set_aside = waiting;
        turns
    }
}

/// Where a request set aside goes when its turn comes.
pub type Release = Box<dyn Fn(tiny_http::Request, Busy) + Send + Sync>;

struct Shared {
    local: SocketAddr,
    limits: Limits,
    peers: Mutex<HashMap<SocketAddr, Peer>>,
    stopping: AtomicBool,
    /// Called when only taskbox's own descriptor of the listening socket is left.
    on_lost: Box<dyn Fn() + Send + Sync>,
    release: Release,
}

pub struct Guard {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// Held while a request of `peer` is being handled, by whichever thread handles it; its
/// drop releases the request set aside behind it.
pub struct Busy {
    shared: Arc<Shared>,
    peer: Option<SocketAddr>,
    meter: Arc<Meter>,
}

impl Busy {
    fn new(shared: &Arc<Shared>, peer: Option<SocketAddr>, meter: Arc<Meter>) -> Busy {
        Busy {
            shared: shared.clone(),
            peer,
            meter,
        }
    }

    pub fn meter(&self) -> &Arc<Meter> {
        &self.meter
    }

    pub fn peer(&self) -> Option<SocketAddr> {
        self.peer
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let Some(addr) = self.peer else { return };
        let turns = {
            let mut peers = self.shared.peers.lock().unwrap_or_else(|e| e.into_inner());
            let peer = peers.entry(addr).or_default();
            peer.meters.retain(|m| !Arc::ptr_eq(m, &self.meter));
            peer.last_done = Some(Instant::now());
            // The request's answer was sent (or given up) before this drop: the next one's
            // turn has come.
            peer.take_turns()
        };
        release(&self.shared, addr, turns);
    }
}

/// Hands each request whose turn came to `Shared::release`.
fn release(shared: &Arc<Shared>, addr: SocketAddr, turns: Vec<(tiny_http::Request, Arc<Meter>)>) {
    for (request, meter) in turns {
        (shared.release)(request, Busy::new(shared, Some(addr), meter));
    }
}

impl Guard {
    /// Starts guarding the connections accepted on `local`; fails when the process's
    /// sockets cannot be listed (no `/proc`): the limits could not be kept.
    pub fn start(
        local: SocketAddr,
        limits: Limits,
        on_lost: Box<dyn Fn() + Send + Sync>,
        release: Release,
    ) -> std::io::Result<Guard> {
        let mut spare = Spare::open()?;
        let listening = spare
            .open_fds()
            .map_err(|e| refusal(format!("it cannot list /proc/self/fd ({e})")))?
            .into_iter()
            .filter(|&fd| is_listening(fd, local))
            .count();
        if listening == 0 {
            return Err(refusal(
                "it does not find the listening socket among /proc/self/fd".into(),
            ));
        }
        let shared = Arc::new(Shared {
            on_lost,
            release,
            local,
            limits,
            peers: Mutex::new(HashMap::new()),
            stopping: AtomicBool::new(false),
        });
        let inner = shared.clone();
        let thread = std::thread::Builder::new()
            .name("http-guard".into())
            .spawn(move || watch(&inner, spare))?;
        Ok(Guard {
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Takes `request` in hand until the returned `Busy` is dropped; or, when an answer
    /// before it on its connection is still to be sent, sets it aside (None) until then.
    pub fn enter(&self, request: tiny_http::Request) -> Option<(tiny_http::Request, Busy)> {
        let meter = Arc::new(Meter::default());
        let Some(addr) = request.remote_addr().copied() else {
            return Some((request, Busy::new(&self.shared, None, meter)));
        };
        // Under the lock: the request before it is done sending before its `Busy` drops,
        // and that drop looks for the requests set aside under the same lock.
        let mut peers = self.shared.peers.lock().unwrap_or_else(|e| e.into_inner());
        let peer = peers.entry(addr).or_default();
        if request.is_turn_to_answer() {
            peer.meters.push(meter.clone());
            drop(peers);
            return Some((request, Busy::new(&self.shared, Some(addr), meter)));
        }
        peer.set_aside.push_back(request);
        let too_many = peer.set_aside.len() > MAX_SET_ASIDE;
        drop(peers);
        if too_many {
            log::info!(
                "closed the connection of {addr}: more than {MAX_SET_ASIDE} requests pipelined behind an answer it does not read"
            );
            self.close(Some(addr));
        }
        None
    }

    /// Closes the connection from `peer` now (an answer cut short must not be followed by
    /// another on the same connection).
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

fn refusal(why: String) -> std::io::Error {
    std::io::Error::other(format!(
        "the connection guard cannot see the process's sockets: {why}; taskbox does not \
         serve without its connection limits (is /proc mounted?)"
    ))
}

/// A client connection as the guard knows it.
struct Conn {
    fd: RawFd,
    opened: Instant,
    /// Shut down by the guard: no longer counted (tiny_http closes it when it notices).
    shut: bool,
    seen: bool,
}

/// How often the guard looks: often enough that a limit is kept within a tenth of the read
/// timeout (a quarter of a second at most), seldom enough to cost nothing.
fn tick(limits: &Limits) -> Duration {
    (limits.read_timeout / 10).clamp(Duration::from_millis(20), Duration::from_millis(250))
}

fn watch(shared: &Arc<Shared>, mut spare: Spare) {
    let mut conns: HashMap<SocketAddr, Conn> = HashMap::new();
    while !shared.stopping.load(Ordering::SeqCst) {
        std::thread::sleep(tick(&shared.limits));
        if let Err(e) = pass(shared, &mut conns, &mut spare) {
            log::error!("the connection guard could not list the open sockets: {e}");
        }
    }
}

/// A descriptor held open to be given back when the process has run out of them, so that
/// the guard can still open `/proc/self/fd`.
struct Spare(Option<File>);

impl Spare {
    fn open() -> std::io::Result<Spare> {
        Ok(Spare(Some(File::open("/dev/null")?)))
    }

    /// The process's open descriptors.
    fn open_fds(&mut self) -> std::io::Result<Vec<RawFd>> {
        match open_fds() {
            Err(e) if matches!(e.raw_os_error(), Some(23 | 24)) => {
                // ENFILE, EMFILE: the spare makes room for the listing.
                self.0 = None;
                let listed = open_fds();
                self.0 = File::open("/dev/null").ok();
                listed
            }
            listed => listed,
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

fn pass(
    shared: &Arc<Shared>,
    conns: &mut HashMap<SocketAddr, Conn>,
    spare: &mut Spare,
) -> std::io::Result<()> {
    let local = shared.local;
    let now = Instant::now();
    for conn in conns.values_mut() {
        conn.seen = false;
    }
    let mut listening = 0;
    for fd in spare.open_fds()? {
        let Some(peer) = client_of(fd, local) else {
            listening += usize::from(is_listening(fd, local));
            continue;
        };
        let conn = conns.entry(peer).or_insert(Conn {
            fd,
            opened: now,
            shut: false,
            seen: false,
        });
        conn.fd = fd;
        conn.seen = true;
    }
    if listening == 1 {
        (shared.on_lost)();
    }
    // Forget the connections gone, and the peers of connections gone (or never seen: closed
    // within a tick) unless a request of theirs is still being handled.
    conns.retain(|_, conn| conn.seen);
    let mut peers = shared.peers.lock().unwrap_or_else(|e| e.into_inner());
    peers.retain(|addr, peer| {
        !peer.meters.is_empty() || !peer.set_aside.is_empty() || conns.contains_key(addr)
    });
    // Requests set aside are released as the request before them ends; this catches one
    // whose turn came another way (the request before it dropped unanswered).
    let turns: Vec<_> = peers
        .iter_mut()
        .map(|(addr, peer)| (*addr, peer.take_turns()))
        .filter(|(_, turns)| !turns.is_empty())
        .collect();
    cut_off_transfers(&peers, conns, now, shared);
    let busy = |addr: &SocketAddr| peers.get(addr).is_some_and(|p| !p.meters.is_empty());
    refuse_over_ip_cap(conns, &busy, shared);
    close_over_cap(conns, &peers, &busy, shared);
    drop(peers);
    for (addr, turns) in turns {
        release(shared, addr, turns);
    }
    Ok(())
}

/// Judges every running transfer, and shuts down the connections of those cut off.
fn cut_off_transfers(
    peers: &HashMap<SocketAddr, Peer>,
    conns: &mut HashMap<SocketAddr, Conn>,
    now: Instant,
    shared: &Shared,
) {
    let limits = &shared.limits;
    for (addr, peer) in peers {
        for meter in &peer.meters {
            let Some(cut) = meter.judge(now, limits) else {
                continue;
            };
            if let Some(conn) = conns.get_mut(addr) {
                shut(conn, *addr, shared.local);
            }
            let why = match cut {
                Cut::TooSlow => format!(
                    "it moved less than {} bytes in {:?} (--min-transfer-rate {})",
                    limits.min_bytes_per_window(),
                    limits.read_timeout,
                    limits.min_transfer_rate
                ),
                Cut::TooLong => format!(
                    "it ran past --transfer-timeout-secs {}",
                    limits.transfer_timeout.as_secs()
                ),
            };
            log::info!(
                "cut off a transfer with {addr} after {} bytes: {why}",
                meter.bytes()
            );
        }
    }
}

/// Closes the newest connections of every IP address beyond `max_connections_per_ip`.
fn refuse_over_ip_cap(
    conns: &mut HashMap<SocketAddr, Conn>,
    busy: &impl Fn(&SocketAddr) -> bool,
    shared: &Shared,
) {
    let cap = shared.limits.max_connections_per_ip;
    let mut by_ip: HashMap<IpAddr, Vec<(Instant, SocketAddr)>> = HashMap::new();
    for (addr, conn) in conns.iter().filter(|(_, c)| !c.shut) {
        by_ip
            .entry(addr.ip())
            .or_default()
            .push((conn.opened, *addr));
    }
    for (ip, mut open) in by_ip {
        if open.len() <= cap {
            continue;
        }
        // Newest first: those beyond the cap are the ones refused.
        open.sort_by(|a, b| b.cmp(a));
        let over = open.len() - cap;
        let mut refused = 0;
        for (_, addr) in open.iter().filter(|(_, a)| !busy(a)).take(over) {
            if let Some(conn) = conns.get_mut(addr) {
                refused += usize::from(shut(conn, *addr, shared.local));
            }
        }
        log::warn!(
            "{} connections open from {ip}, over --max-connections-per-ip {cap}: closed {refused} new one(s)",
            open.len()
        );
    }
}

/// Closes connections beyond `max_connections`, those least likely to be a client being
/// served first (see the module notes).
fn close_over_cap(
    conns: &mut HashMap<SocketAddr, Conn>,
    peers: &HashMap<SocketAddr, Peer>,
    busy: &impl Fn(&SocketAddr) -> bool,
    shared: &Shared,
) {
    let cap = shared.limits.max_connections;
    let open = conns.values().filter(|c| !c.shut).count();
    if open <= cap {
        return;
    }
    // (answered before, since when it waits) for each connection with no request in hand.
    let mut idle: Vec<(bool, Instant, SocketAddr)> = conns
        .iter()
        .filter(|(addr, conn)| !conn.shut && !busy(addr))
        .map(|(addr, conn)| {
            let done = peers.get(addr).and_then(|p| p.last_done);
            (done.is_some(), done.unwrap_or(conn.opened), *addr)
        })
        .collect();
    idle.sort();
    let mut closed = 0;
    for (_, _, addr) in idle.into_iter().take(open - cap) {
        if let Some(conn) = conns.get_mut(&addr) {
            closed += usize::from(shut(conn, addr, shared.local));
        }
    }
    log::warn!(
        "{open} connections open, over --max-connections {cap}: closed {closed} that had no request being answered"
    );
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
