//! The HTTP library's own flaws (tiny_http 0.12), each shown fixed here against the real
//! binary: taskbox carries a patched copy (vendor/tiny_http/PATCHES.md names each change
//! and the test here that shows it) and mitigates the rest from outside (the restart of the
//! accept loop, below).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::common::*;
use crate::raw::*;

#[test]
fn a_declared_content_length_of_10_pow_14_with_no_body_is_answered_and_dropped() {
    let server = Server::start_with(&["--read-timeout-secs", "1"]);
    for request in [
        // Refused before its body is read (413): tiny_http would drain the unread body into
        // one buffer of the declared size, an allocation that aborts the process.
        &b"POST /webservicetasks HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
           Content-Length: 100000000000000\r\n\r\n"[..],
        // Refused for its kind (400), with the body declared as a raw upload.
        b"POST /webservicetasks?kind=nope HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/csv\r\n\
          Content-Length: 100000000000000\r\n\r\n",
        // A GET that declares a body it never sends.
        b"GET /webservicetasks HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000000000000\r\n\r\n",
    ] {
        let mut stream = connect(&server);
        stream.write_all(request).unwrap();
        match read_outcome(&mut stream) {
            Outcome::Envelope { status, .. } => assert!(status == 413 || status == 400),
            Outcome::Other { status: 200, .. } => {}
            other => panic!("{other:?}"),
        }
        // The connection does not linger past the read timeout.
        wait_closed(&mut stream, Duration::from_secs(10));
        still_serving(&server);
    }
}

/// How many requests `requests_declaring_absurd_bodies_leak_nothing` sends.
const ABSURD_BODIES: usize = 2000;

/// tiny_http drained an unread body on drop into one buffer of its declared size (an
/// allocation that aborts the process for 10^14 bytes), so taskbox used to abandon such a
/// connection, leaking its thread and its descriptors for good. The patched library drains
/// through a small buffer within --max-drain-bytes, or closes the connection.
#[test]
fn requests_declaring_absurd_bodies_leak_nothing() {
    let _alone = one_at_a_time();
    let server = Server::start_with(&["--read-timeout-secs", "1"]);
    let head: &[u8] = b"POST /webservicetasks HTTP/1.1\r\nHost: 127.0.0.1\r\n\
        Content-Type: application/json\r\nContent-Length: 100000000000000\r\n\r\n";
    // One first, so that what a request costs once (a pooled connection) is in the levels.
    exchange(&server, head).envelope(413, &[]);
    served_now(&server);
    let before = steady_levels(&server);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for client in 0..4 {
            let server = &server;
            scope.spawn(move || {
                for n in 0..ABSURD_BODIES / 4 {
                    let mut stream = connect(server);
                    stream.write_all(head).unwrap();
                    // Half read their answer, half close at once.
                    if (client + n) % 2 == 0 {
                        read_outcome(&mut stream).envelope(413, &[]);
                    }
                }
            });
        }
    });
    eprintln!(
        "{ABSURD_BODIES} requests in {:?}; threads and descriptors before {before:?}, just after {:?}",
        started.elapsed(),
        levels(&server)
    );
    assert!(
        back_to(&server, before),
        "threads and descriptors {before:?} before {ABSURD_BODIES} requests declaring 10^14 \
         bytes, {:?} {DEADLINE:?} after",
        levels(&server)
    );
    let asked = Instant::now();
    served_now(&server);
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "answered after {:?}",
        asked.elapsed()
    );
}

/// tiny_http answered a request line of a version past HTTP/1.1 with a 505 written through
/// the next answer's writer, which waited for the request's own, held by the same thread:
/// the connection's thread and its two descriptors hung for good, one per such request.
/// Patched: the 505 goes through the request's own writer, and the connection ends.
#[test]
fn requests_of_a_version_past_1_1_are_505_and_leak_nothing() {
    const REQUESTS: usize = 200;
    let _alone = one_at_a_time();
    let server = Server::start_with(&["--read-timeout-secs", "1"]);
    let request: &[u8] = b"GET /webservicetasks HTTP/2.0\r\nHost: 127.0.0.1\r\n\r\n";
    let mut first = connect(&server);
    first.write_all(request).unwrap();
    let (head, _) = read_head(&mut first).expect("an answer");
    assert_eq!(head.status, 505, "{}", head.text);
    drop(first);
    served_now(&server);
    let before = steady_levels(&server);
    for _ in 0..REQUESTS {
        let mut stream = connect(&server);
        stream.write_all(request).unwrap();
        let (head, start) = read_head(&mut stream).expect("an answer");
        assert_eq!(head.status, 505, "{}", head.text);
        read_body(&mut stream, start, head.content_length());
        wait_closed(&mut stream, Duration::from_secs(10));
    }
    assert!(
        back_to(&server, before),
        "threads and descriptors {before:?} before {REQUESTS} requests of HTTP/2.0, {:?} \
         {DEADLINE:?} after",
        levels(&server)
    );
    still_serving(&server);
}

/// tiny_http's thread pool queued a new connection when it saw an idle thread, a count
/// that is stale during a burst: connections queued behind threads held by other (kept-
/// alive) connections, unread until one of those closed. Patched: a connection is queued
/// only for a thread that will take it.
#[test]
fn every_connection_of_a_burst_is_served_while_the_others_stay_open() {
    let server = Server::start();
    let mut burst: Vec<TcpStream> = (0..30).map(|_| connect(&server)).collect();
    let started = Instant::now();
    for stream in burst.iter_mut() {
        stream
            .write_all(b"GET /webservicetasks?limit=1 HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
    }
    for (n, stream) in burst.iter_mut().enumerate() {
        let mut line = String::new();
        let read = BufReader::new(&*stream).read_line(&mut line);
        assert!(
            read.is_ok() && line.starts_with("HTTP/1.1 200"),
            "connection {n} of the burst got no answer in {:?}: {read:?}",
            started.elapsed()
        );
    }
}

/// tiny_http read a request line or a header line into memory whole, with no limit: an
/// endless one grew the server's memory until the process was killed. Patched: a request
/// line stops at 17 KiB (414) and the headers at --max-header-bytes (431), within the read
/// timeout.
#[test]
fn an_endless_header_line_is_refused_and_costs_no_memory() {
    let server = Server::start();
    for (start, statuses) in [
        (
            &b"GET /webservicetasks HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Endless: "[..],
            &[431][..],
        ),
        (b"GET /webservicetasks?endless=", &[414]),
    ] {
        let grown = endless(&server, start, b'a');
        match grown.outcome {
            Outcome::Envelope { status, .. } | Outcome::Bare { status }
                if statuses.contains(&status) => {}
            Outcome::Closed => {}
            other => panic!("{other:?}"),
        }
        grown.within(4 << 20);
    }
    still_serving(&server);
}

/// tiny_http's chunked decoder (chunked_transfer 1.5) collected a chunk-size line in memory
/// with no limit. Patched: a size line stops at 4 KiB, and the body is refused.
#[test]
fn an_endless_chunk_size_line_is_refused_and_costs_no_memory() {
    let server = Server::start();
    let grown = endless(
        &server,
        b"POST /webservicetasks?kind=sleep&filename=a.bin HTTP/1.1\r\nHost: 127.0.0.1\r\n\
          Content-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n",
        b'f',
    );
    match &grown.outcome {
        Outcome::Envelope {
            status: 400,
            message,
        } => {
            assert!(message.contains("chunk-size line"), "{message}")
        }
        Outcome::Closed => {}
        other => panic!("{other:?}"),
    }
    grown.within(4 << 20);
    assert_eq!(total(&server), "0");
    still_serving(&server);
}

/// What an endless line did to the server.
struct Endless {
    outcome: Outcome,
    rss: u64,
    peak: u64,
}

impl Endless {
    /// Checks the server's memory (VmRSS, and VmHWM, its peak) grew by less than `bytes`.
    fn within(&self, bytes: u64) {
        assert!(
            self.rss < bytes && self.peak < bytes,
            "an endless line grew the server's memory by {} bytes (peak {})",
            self.rss,
            self.peak
        );
    }
}

/// Sends `start` and then `byte` after byte until the server stops taking them (256 MiB or
/// 20 s at most, which fails the test), and reads what it answers.
fn endless(server: &Server, start: &[u8], byte: u8) -> Endless {
    served_now(server);
    let (rss, peak) = (server.rss(), server.peak_rss());
    let mut stream = connect(server);
    stream.write_all(start).unwrap();
    let chunk = vec![byte; 1 << 20];
    let started = Instant::now();
    let mut sent = 0;
    while sent < 256 && started.elapsed() < Duration::from_secs(20) {
        if stream.write_all(&chunk).is_err() {
            break;
        }
        sent += 1;
    }
    assert!(sent < 256, "the server took 256 MiB of one line");
    let outcome = read_outcome(&mut stream);
    let grown = Endless {
        outcome,
        rss: server.rss().saturating_sub(rss),
        peak: server.peak_rss().saturating_sub(peak),
    };
    eprintln!(
        "{:?}: sent {sent} MiB; {:?}; VmRSS grew {} bytes, VmHWM {}",
        String::from_utf8_lossy(&start[..start.len().min(40)]),
        grown.outcome,
        grown.rss,
        grown.peak
    );
    grown
}

/// The number of tasks the server lists.
fn total(server: &Server) -> String {
    get(&server.url("/webservicetasks"))
        .header("X-Total-Count")
        .unwrap_or_default()
        .to_string()
}

/// A taskbox whose file descriptors are limited to `nofile`, for the accept loop's test: with
/// few threads, so that its database needs few descriptors, and `--max-connections` as high
/// as the rest allows (the start refuses more), so that a flood finds the limit.
fn start_limited(nofile: u32) -> Server {
    Server::builder()
        .wrapped_by(&["prlimit", &format!("--nofile={nofile}:{nofile}")])
        .args(&[
            "--http-threads",
            "2",
            "--transfer-threads",
            "1",
            "--workers",
            "1",
            "--max-connections",
            "16",
        ])
        .start()
}

/// tiny_http 0.12 ends its accept loop for good on the first error of accept(), and running
/// out of file descriptors (EMFILE) is one; or its accept thread panics when it cannot clone
/// an accepted socket for the same reason. Either way it closes the socket. Mitigated in
/// src/http/listener.rs (and the guard, which notices the panic): taskbox keeps a
/// descriptor of the socket and starts a new server on it. Which of the two happens depends
/// on where the flood finds the limit; both end here.
#[test]
fn the_server_accepts_again_after_running_out_of_file_descriptors() {
    let server = start_limited(128);
    let flood: Vec<TcpStream> = (0..200)
        .filter_map(|_| TcpStream::connect(addr(&server)).ok())
        .collect();
    // The server accepts the flood until it runs out of descriptors: held until then.
    let ran_out = poll_until(DEADLINE, || {
        server
            .log()
            .contains("stopped accepting connections")
            .then_some(())
    });
    assert!(
        ran_out.is_some(),
        "a flood of 200 connections did not exhaust 128 descriptors; the log:\n{}",
        server.log()
    );
    drop(flood);
    let answered = poll_until(DEADLINE, || {
        let Ok(mut stream) = TcpStream::connect(addr(&server)) else {
            return None;
        };
        stream
            .set_read_timeout(Some(Duration::from_secs(1)))
            .unwrap();
        stream
            .write_all(
                b"GET /webservicetasks HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
            )
            .unwrap();
        let mut line = String::new();
        let ok = BufReader::new(&stream).read_line(&mut line).is_ok()
            && line.starts_with("HTTP/1.1 200");
        ok.then_some(())
    })
    .is_some();
    let log = server.log();
    assert!(
        answered,
        "the server no longer accepts connections; its log:\n{log}"
    );
    // The flood did end tiny_http's accept loop: what is tested is the recovery.
    assert!(
        log.contains("stopped accepting connections")
            && log.contains("accepting connections again"),
        "{log}"
    );
}

/// The server's threads and open descriptors.
fn levels(server: &Server) -> (usize, usize) {
    (server.threads(), server.open_fds())
}

/// The server's levels once they hold still for half a second (tiny_http ends a spare
/// connection thread after 5 idle seconds).
fn steady_levels(server: &Server) -> (usize, usize) {
    poll_until(DEADLINE, || {
        let now = levels(server);
        std::thread::sleep(Duration::from_millis(500));
        (levels(server) == now).then_some(now)
    })
    .expect("steady levels")
}

/// Whether the server's levels come back to `before` (or below) within `DEADLINE`.
fn back_to(server: &Server, before: (usize, usize)) -> bool {
    poll_until(DEADLINE, || {
        let now = levels(server);
        (now.0 <= before.0 && now.1 <= before.1).then_some(now)
    })
    .is_some()
}
