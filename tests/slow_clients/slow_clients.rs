//! Slow clients all at once: heads, bodies and downloads trickled at a byte a second from
//! one address, while a valid client polls from another. Each slow connection is cut off
//! within its deadline (a head by the read timeout; a body or a download by the minimum
//! rate, once a transfer thread takes it), and the valid client gets every answer as fast
//! as without them: slow clients hold only the transfer threads, never the HTTP threads.
//! Whether the server still holds a connection is read from its own descriptors
//! (`Server::peer_ports`), since a client reading a byte a second would see the end of its
//! connection only once it has read what the kernel buffered for it.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::common::*;
use crate::raw::{one_at_a_time, served_now, still_serving};

const HEADS: usize = 64;
const BODIES: usize = 16;
const DOWNLOADS: usize = 16;
/// The slow clients' address; the valid client uses 127.0.0.1.
const SLOW: &str = "127.0.0.2";
/// The download: far more than the socket buffers take at once.
const FILE_BYTES: usize = 8 << 20;
/// --read-timeout-secs in this test: the head's deadline and the rate's window.
const READ_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Kind {
    Head,
    Body,
    Download,
}

struct Slow {
    kind: Kind,
    stream: TcpStream,
    port: u16,
    opened: Instant,
    /// Whether the server's descriptors showed it yet, and when they stopped.
    seen: bool,
    cut: Option<Instant>,
}

#[test]
fn slow_heads_bodies_and_downloads_cannot_keep_a_valid_client_waiting() {
    let _alone = one_at_a_time();
    let (server, id) = server_with_a_big_file();
    let poll = format!("GET /webservicetasks/{id} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    let mut poller = Poller::new(&server, poll.into_bytes());
    let unloaded: Vec<Duration> = (0..300).map(|_| poller.poll()).collect();

    let started = Instant::now();
    let mut slow = open_slow(&server, id);
    let done = AtomicBool::new(false);
    let loaded = std::thread::scope(|scope| {
        let polling = scope.spawn(|| {
            let mut times = Vec::new();
            while !done.load(Ordering::SeqCst) {
                times.push(poller.poll());
                std::thread::sleep(Duration::from_millis(5));
            }
            times
        });
        // A byte a second from (or to) every slow client, until the server has let all go.
        let mut last_byte = Instant::now() - Duration::from_secs(1);
        while slow.iter().any(|s| s.cut.is_none()) && started.elapsed() < DEADLINE {
            if last_byte.elapsed() >= Duration::from_secs(1) {
                last_byte = Instant::now();
                trickle(&mut slow);
            }
            let held = server.peer_ports();
            for s in slow.iter_mut().filter(|s| s.cut.is_none()) {
                if held.contains(&s.port) {
                    s.seen = true;
                } else if s.seen {
                    s.cut = Some(Instant::now());
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        done.store(true, Ordering::SeqCst);
        polling.join().unwrap()
    });

    let mut longest: HashMap<Kind, Duration> = HashMap::new();
    for s in &slow {
        let held = s
            .cut
            .unwrap_or_else(|| panic!("a slow {:?} was still connected after {DEADLINE:?}", s.kind))
            .duration_since(s.opened);
        let longest = longest.entry(s.kind).or_default();
        *longest = (*longest).max(held);
    }
    let (p99_unloaded, p99_loaded) = (p99(&unloaded), p99(&loaded));
    eprintln!(
        "longest held: {longest:?}; polls: {} unloaded, p99 {p99_unloaded:?}; {} under load, p99 {p99_loaded:?}",
        unloaded.len(),
        loaded.len()
    );
    // A head has the read timeout (and a tick of the guard) whatever else happens.
    assert!(
        longest[&Kind::Head] < READ_TIMEOUT + Duration::from_millis(1500),
        "{longest:?}"
    );
    // A body or a download is cut off within two windows of its start, but waits for one of
    // the 8 transfer threads first: 32 transfers, 4 rounds at most.
    for kind in [Kind::Body, Kind::Download] {
        assert!(
            longest[&kind] < 4 * (2 * READ_TIMEOUT + Duration::from_millis(1500)),
            "{longest:?}"
        );
    }
    assert!(loaded.len() >= 50, "only {} polls under load", loaded.len());
    assert!(
        p99_loaded < p99_unloaded + Duration::from_millis(10),
        "the valid client's p99 went from {p99_unloaded:?} to {p99_loaded:?} under the slow clients"
    );
    // Nothing of theirs was stored; the server serves as before.
    let list = get(&server.url("/webservicetasks"));
    assert_eq!(
        list.header("X-Total-Count"),
        Some("1"),
        "a slow body made a task"
    );
    still_serving(&server);
}

/// A server with a read timeout of `READ_TIMEOUT`, and a task whose IO file is
/// `FILE_BYTES` long (its id), to download.
fn server_with_a_big_file() -> (Server, i64) {
    let server = Server::start_with(&["--read-timeout-secs", &READ_TIMEOUT.as_secs().to_string()]);
    let file = vec![b'x'; FILE_BYTES];
    let id = post_file(&server, "kind=sleep&filename=big.bin", &file).data(202)["WebServiceTaskId"]
        .as_i64()
        .unwrap();
    wait_finished(&server, id);
    (server, id)
}

/// Opens the slow connections, each with the first bytes of its request sent.
fn open_slow(server: &Server, id: i64) -> Vec<Slow> {
    let mut slow = Vec::new();
    let mut open = |kind: Kind, first: String, receive_buffer: Option<usize>| {
        let mut stream = connect_from(server, SLOW, receive_buffer);
        stream.write_all(first.as_bytes()).unwrap();
        let port = stream.local_addr().unwrap().port();
        slow.push(Slow {
            kind,
            stream,
            port,
            opened: Instant::now(),
            seen: false,
            cut: None,
        });
    };
    for _ in 0..HEADS {
        open(
            Kind::Head,
            "GET /webservicetasks HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ".into(),
            None,
        );
    }
    for _ in 0..BODIES {
        open(
            Kind::Body,
            "POST /webservicetasks?kind=sleep&filename=slow.bin HTTP/1.1\r\nHost: 127.0.0.1\r\n\
             Content-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\n"
                .into(),
            None,
        );
    }
    for _ in 0..DOWNLOADS {
        open(
            Kind::Download,
            format!("GET /webservicetasks/{id}/IoFile HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"),
            Some(4096),
        );
    }
    slow
}

/// One byte more from every slow head and body, one byte read by every slow download.
fn trickle(slow: &mut [Slow]) {
    for s in slow.iter_mut().filter(|s| s.cut.is_none()) {
        match s.kind {
            Kind::Head | Kind::Body => drop(s.stream.write(b"a")),
            Kind::Download => {
                s.stream.set_nonblocking(true).unwrap();
                drop(s.stream.read(&mut [0u8; 1]));
                s.stream.set_nonblocking(false).unwrap();
            }
        }
    }
}

/// The valid client: one kept-alive connection from 127.0.0.1 (a new one when the server
/// closed it), asking for one task.
pub(crate) struct Poller<'a> {
    server: &'a Server,
    request: Vec<u8>,
    stream: Option<TcpStream>,
}

impl<'a> Poller<'a> {
    pub(crate) fn new(server: &'a Server, request: Vec<u8>) -> Poller<'a> {
        Poller {
            server,
            request,
            stream: None,
        }
    }

    /// One poll, answered 200 (the test fails otherwise): how long it took.
    pub(crate) fn poll(&mut self) -> Duration {
        for _ in 0..2 {
            let stream = self
                .stream
                .get_or_insert_with(|| connect_from(self.server, "127.0.0.1", None));
            let started = Instant::now();
            if stream.write_all(&self.request).is_ok() {
                if let Some((head, start)) = read_head(stream) {
                    assert_eq!(head.status, 200, "{}", head.text);
                    read_body(stream, start, head.content_length());
                    return started.elapsed();
                }
            }
            // Closed while idle (the head's deadline): poll again on a new connection.
            self.stream = None;
        }
        panic!("the valid client's poll was not answered");
    }
}

pub(crate) fn p99(times: &[Duration]) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort();
    sorted[(sorted.len() * 99 / 100).min(sorted.len() - 1)]
}

/// Connections that pipeline requests behind a download they do not read: each answer
/// waits for the one before it. They wait on transfer threads, never on HTTP threads, and
/// in their order whichever thread took each first (several connections at once, as the
/// HTTP threads take their requests in whatever order they run: a request taken before the
/// one ahead of it must not wait on it).
#[test]
fn requests_pipelined_behind_an_unread_download_hold_no_http_thread() {
    const CONNECTIONS: usize = 4;
    let _alone = one_at_a_time();
    let (server, id) = server_with_a_big_file();
    let mut pipelined =
        format!("GET /webservicetasks/{id}/IoFile HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    // More small requests than there are HTTP threads (16).
    for _ in 0..40 {
        pipelined.push_str(&format!(
            "GET /webservicetasks/{id} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        ));
    }
    let mut streams = Vec::new();
    let mut ports = Vec::new();
    for _ in 0..CONNECTIONS {
        let mut stream = connect_from(&server, SLOW, Some(4096));
        stream.write_all(pipelined.as_bytes()).unwrap();
        ports.push(stream.local_addr().unwrap().port());
        streams.push(stream);
    }
    // While they are held, another client is answered at once, again and again.
    let started = Instant::now();
    let mut polls = 0;
    while polls == 0 || ports.iter().any(|port| server.peer_ports().contains(port)) {
        let asked = Instant::now();
        served_now(&server);
        assert!(
            asked.elapsed() < Duration::from_secs(1),
            "a valid client waited {:?} behind a pipelining one",
            asked.elapsed()
        );
        polls += 1;
        assert!(
            started.elapsed() < DEADLINE,
            "a pipelining client was still connected after {DEADLINE:?}"
        );
    }
    eprintln!(
        "the pipelining connections were cut off after {:?}; {polls} polls meanwhile",
        started.elapsed()
    );
    still_serving(&server);
}
