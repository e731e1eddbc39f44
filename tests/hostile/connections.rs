//! Clients that hold connections rather than send bad bytes: slowloris, idle connections by
//! the thousand, more connections than `--max-connections`, bodies that stop short or stall.
//! Each is dropped within `--read-timeout-secs` (or at once, over the cap) while the other
//! clients are served meanwhile.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::common::*;
use crate::raw::*;

/// How many idle connections `thousands_of_idle_connections...` opens; TASKBOX_HOSTILE_IDLE
/// sets more for a run by hand.
fn idle_count() -> usize {
    std::env::var("TASKBOX_HOSTILE_IDLE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
}

#[test]
fn a_slowloris_client_is_dropped_after_the_read_timeout_while_others_are_served() {
    let server = Server::start_with(&["--read-timeout-secs", "1"]);
    let mut slow = connect(&server);
    let head = b"GET /webservicetasks HTTP/1.1\r\nHost: localhost\r\nX-Slow: ";
    let started = Instant::now();
    let mut sent = 0;
    // One byte every 100 ms: each read of the server gets a byte long before a per-read
    // timeout, so only a deadline on the whole head can end it. Meanwhile, others are served.
    let closed_after = loop {
        let byte = head.get(sent).copied().unwrap_or(b'a');
        if slow.write_all(&[byte]).is_err() {
            break started.elapsed();
        }
        sent += 1;
        served_now(&server);
        if is_closed(&slow) {
            break started.elapsed();
        }
        std::thread::sleep(Duration::from_millis(100));
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the slow client was still connected after 10 s, with a read timeout of 1 s"
        );
    };
    assert!(
        closed_after >= Duration::from_millis(900),
        "closed after {closed_after:?}, before the read timeout"
    );
    still_serving(&server);
}

#[test]
fn a_client_that_connects_and_sends_nothing_is_dropped_after_the_read_timeout() {
    let server = Server::start_with(&["--read-timeout-secs", "1"]);
    let mut silent = connect(&server);
    let took = wait_closed(&mut silent, Duration::from_secs(10));
    assert!(took >= Duration::from_millis(900), "closed after {took:?}");
    // A kept-alive connection idle after its answer goes the same way.
    let mut kept = connect(&server);
    kept.write_all(b"GET /webservicetasks HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    match read_outcome(&mut kept) {
        Outcome::Other { status: 200, .. } => {}
        other => panic!("{other:?}"),
    }
    let took = wait_closed(&mut kept, Duration::from_secs(10));
    assert!(took >= Duration::from_millis(800), "closed after {took:?}");
    still_serving(&server);
}

#[test]
fn a_body_that_stalls_is_dropped_after_the_read_timeout_and_creates_nothing() {
    let server = Server::start_with(&["--read-timeout-secs", "1"]);
    for (content_type, declared) in [
        ("text/csv", "1000"),
        ("application/json", "1000"),
        ("multipart/form-data; boundary=XyZ", "1000"),
        // A client that declares 1 GB and stalls.
        ("text/csv", "1000000000"),
    ] {
        let started = Instant::now();
        let mut stream = connect(&server);
        let head = format!(
            "POST /webservicetasks?kind=sleep&filename=a.csv HTTP/1.1\r\nHost: localhost\r\n\
             Content-Type: {content_type}\r\nContent-Length: {declared}\r\n\r\n--XyZ\r\n"
        );
        stream.write_all(head.as_bytes()).unwrap();
        // 408 in the envelope, or the connection closed: either way within a few seconds.
        let outcome = read_outcome(&mut stream);
        match &outcome {
            Outcome::Envelope { status: 408, .. } | Outcome::Closed => {}
            other => panic!("{content_type} {declared}: {other:?}"),
        }
        wait_closed(&mut stream, Duration::from_secs(10));
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
    }
    let list = get(&server.url("/webservicetasks"));
    assert_eq!(
        list.header("X-Total-Count"),
        Some("0"),
        "a stalled body made a task"
    );
    still_serving(&server);
}

#[test]
fn a_body_that_keeps_moving_is_cut_off_at_the_transfer_timeout_and_creates_nothing() {
    // Every read gets bytes (10 KB/s, far above the minimum rate of 1 byte/s), so neither
    // the read timeout nor the rate ends it: only the total deadline of a transfer can.
    let server = Server::start_with(&[
        "--transfer-timeout-secs",
        "2",
        "--read-timeout-secs",
        "10",
        "--min-transfer-rate",
        "1",
    ]);
    let mut stream = connect(&server);
    stream
        .write_all(
            b"POST /webservicetasks?kind=sleep&filename=a.csv HTTP/1.1\r\nHost: localhost\r\n\
              Content-Type: text/csv\r\nContent-Length: 100000000\r\n\r\n",
        )
        .unwrap();
    let started = Instant::now();
    let chunk = [b'x'; 1024];
    let cut_after = loop {
        if stream.write_all(&chunk).is_err() || is_closed(&stream) {
            break started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "a body still moving after 15 s, with a transfer timeout of 2 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        cut_after >= Duration::from_millis(1800),
        "cut after {cut_after:?}, before the transfer timeout"
    );
    let list = get(&server.url("/webservicetasks"));
    assert_eq!(
        list.header("X-Total-Count"),
        Some("0"),
        "a cut body made a task"
    );
    still_serving(&server);
}

#[test]
fn a_body_shorter_than_its_content_length_is_400_and_creates_nothing() {
    let server = Server::start();
    for (content_type, body) in [
        ("text/csv", &b"a,b\r\n1,2\r\n"[..]),
        ("application/json", br#"{"kind":"sleep"}"#),
        (
            "multipart/form-data; boundary=XyZ",
            b"--XyZ\r\nContent-Disposition: form-data; name=\"kind\"\r\n\r\nsleep\r\n",
        ),
    ] {
        let mut stream = connect(&server);
        let head = format!(
            "POST /webservicetasks?kind=sleep&filename=a.csv HTTP/1.1\r\nHost: localhost\r\n\
             Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
            body.len() + 1000
        );
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(body).unwrap();
        // The client gives up: the body ends 1000 bytes short.
        stream.shutdown(std::net::Shutdown::Write).unwrap();
        let outcome = read_outcome(&mut stream);
        match &outcome {
            Outcome::Envelope {
                status: 400,
                message,
            } => {
                assert!(message.contains("could not be read"), "{message}")
            }
            Outcome::Closed => {}
            other => panic!("{content_type}: a cut-short body was taken: {other:?}"),
        }
    }
    let list = get(&server.url("/webservicetasks"));
    assert_eq!(
        list.header("X-Total-Count"),
        Some("0"),
        "a cut-short body made a task"
    );
    still_serving(&server);
}

#[test]
fn thousands_of_idle_connections_while_a_normal_client_is_still_served() {
    let _alone = one_at_a_time();
    let count = idle_count();
    let server = Server::start_with(&[
        "--read-timeout-secs",
        "5",
        "--max-connections",
        &(count + 100).to_string(),
        "--max-connections-per-ip",
        &(count + 100).to_string(),
    ]);
    let started = Instant::now();
    let mut idle: Vec<TcpStream> = (0..count).map(|_| connect(&server)).collect();
    eprintln!("{count} idle connections opened in {:?}", started.elapsed());
    served_now(&server);
    still_serving(&server);
    // None of them was dropped before its time. (Whether each is answered at once if it
    // asks depends on tiny_http's thread pool, which may have queued it behind the others:
    // see tiny_http_limits.rs.)
    if started.elapsed() < Duration::from_secs(4) {
        let closed = idle
            .iter()
            .filter(|s| {
                // A look without waiting: 2,000 waits would outlast the read timeout.
                s.set_nonblocking(true).unwrap();
                let closed = !matches!(
                    s.peek(&mut [0u8; 1]),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
                );
                s.set_nonblocking(false).unwrap();
                closed
            })
            .count();
        assert_eq!(closed, 0, "idle connections closed before the read timeout");
    }
    // And all are dropped after the read timeout.
    for stream in idle.iter_mut() {
        wait_closed(stream, Duration::from_secs(30));
    }
    served_now(&server);
}

#[test]
fn connections_over_max_connections_are_closed_at_once_and_the_others_are_served() {
    let server = Server::start_with(&["--max-connections", "20"]);
    let mut conns: Vec<TcpStream> = (0..30).map(|_| connect(&server)).collect();
    // Ten are closed, and only ten.
    wait_until("10 connections over the cap to be closed", || {
        let closed = conns.iter_mut().filter(|c| is_closed(c)).count();
        assert!(closed <= 10, "{closed} closed, with a cap of 20 for 30");
        (closed == 10).then_some(())
    });
    let mut open = conns;
    open.retain_mut(|c| !is_closed(c));
    assert_eq!(open.len(), 20);
    // The twenty still open are served. Each asks for its connection to be closed after the
    // answer: tiny_http may have queued a connection of this burst behind the others'
    // threads until one ends (see tiny_http_limits.rs).
    for stream in open.iter_mut() {
        stream
            .write_all(
                b"GET /webservicetasks?limit=1 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
            )
            .unwrap();
        match read_outcome(stream) {
            Outcome::Other { status: 200, .. } => {}
            other => panic!("{other:?}; the server's log:\n{}", server.log()),
        }
    }
    // Once they are gone, a new client is served again.
    open.clear();
    wait_until("a new connection to be served under the cap", || {
        let mut stream = connect(&server);
        stream
            .write_all(
                b"GET /webservicetasks?limit=1 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
            )
            .ok()?;
        match read_outcome(&mut stream) {
            Outcome::Other { status: 200, .. } => Some(()),
            Outcome::Closed => None,
            other => panic!("{other:?}"),
        }
    });
    drop(open);
    still_serving(&server);
}

#[test]
fn limits_out_of_bounds_stop_serve_naming_the_flag_from_flags_and_environment() {
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let taskbox = env
            .iter()
            .fold(Server::builder().args(args), |b, (name, value)| {
                b.env(name, value)
            });
        let (status, stderr) = taskbox.run_to_exit(DEADLINE);
        assert!(!status.success(), "{args:?} {env:?} was accepted");
        stderr
    };
    for (flag, value) in [
        ("--max-headers", "0"),
        ("--max-header-bytes", "10"),
        ("--read-timeout-secs", "0"),
        ("--max-connections", "0"),
    ] {
        let message = run(&[flag, value], &[]);
        assert!(message.contains(&flag[2..]), "{flag}: {message}");
        let variable = format!("TASKBOX_{}", flag[2..].replace('-', "_").to_uppercase());
        let message = run(&[], &[(&variable, value)]);
        assert!(message.contains(&flag[2..]), "{variable}: {message}");
    }
}

#[test]
fn a_client_that_does_not_read_its_answer_frees_its_thread_after_the_read_timeout() {
    // One HTTP thread: the next request is answered only once the stalled write gives up.
    let server = Server::start_with(&["--read-timeout-secs", "1", "--http-threads", "1"]);
    let file = vec![b'x'; 64 << 20];
    let id = post_file(&server, "kind=sleep&filename=big.bin", &file).data(202)["WebServiceTaskId"]
        .as_i64()
        .unwrap();
    wait_finished(&server, id);
    let mut stalled = connect(&server);
    stalled
        .write_all(
            format!("GET /webservicetasks/{id}/IoFile HTTP/1.1\r\nHost: localhost\r\n\r\n")
                .as_bytes(),
        )
        .unwrap();
    // It never reads: the server's write blocks once the socket buffers are full.
    let started = Instant::now();
    served_now(&server);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    drop(stalled);
    still_serving(&server);
}

#[test]
fn max_connections_beyond_a_descriptor_limit_that_cannot_be_raised_stops_serve_naming_both() {
    let (status, stderr) = Server::builder()
        .wrapped_by(&["prlimit", "--nofile=256:256"])
        .args(&["--max-connections", "1000"])
        .run_to_exit(DEADLINE);
    assert!(!status.success(), "started: {stderr}");
    let needed: u64 = stderr
        .split_once("needs ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number of descriptors needed in {stderr:?}"));
    assert!(needed > 2000, "{stderr}");
    assert!(
        stderr.contains("--max-connections 1000") && stderr.contains("at most 256"),
        "{stderr}"
    );
    // A soft limit under what is needed, with a hard limit above it: raised. (The hard limit
    // is this process's own: raising it takes a privilege.)
    let hard = hard_descriptor_limit();
    assert!(
        hard >= needed,
        "this machine's hard limit {hard} is below {needed}"
    );
    let server = Server::builder()
        .wrapped_by(&["prlimit", &format!("--nofile=256:{hard}")])
        .args(&["--max-connections", "1000"])
        .start();
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", server.pid())).unwrap();
    let soft: u64 = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|n| n.parse().ok())
        .expect("Max open files");
    assert_eq!(soft, needed, "{limits}");
    assert!(
        server.log().contains(&format!(
            "raised the file descriptor limit from 256 to {needed}"
        )),
        "{}",
        server.log()
    );
    still_serving(&server);
}

/// This process's hard limit on file descriptors.
fn hard_descriptor_limit() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(4))
        .and_then(|n| n.parse().ok())
        .unwrap_or(u64::MAX)
}

/// The connection guard fails closed: a process that cannot list its own sockets (no
/// `/proc`) does not serve at all, rather than serve without its connection limits.
#[test]
fn without_proc_the_server_refuses_to_start() {
    // A mount namespace of its own, with an empty /proc (as root; skipped where that fails).
    let hide_proc = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        "mount -t tmpfs none /proc && exec \"$0\" \"$@\"",
    ];
    let possible = std::process::Command::new("unshare")
        .args(["--mount", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !possible {
        eprintln!("SKIPPED: cannot make a mount namespace (unshare --mount) here");
        return;
    }
    let (status, stderr) = Server::builder()
        .wrapped_by(&hide_proc)
        .run_to_exit(DEADLINE);
    assert!(!status.success(), "started without /proc: {stderr}");
    assert!(
        stderr.contains("connection guard") && stderr.contains("/proc/self/fd"),
        "{stderr}"
    );
}

/// Clients that pipeline and read: every answer comes, in the order asked, whichever HTTP
/// or transfer thread took each request (long answers go to the transfer threads, the
/// requests behind them wait their turn there). Eight connections at once, each asking
/// for the tasks in its own order with downloads in between.
#[test]
fn pipelined_requests_are_answered_in_order_whatever_thread_takes_each() {
    const CONNECTIONS: usize = 8;
    const REQUESTS: usize = 40;
    let server = Server::start();
    let file = vec![b'x'; 256 << 10];
    let big = post_file(&server, "kind=sleep&filename=big.bin", &file).data(202)
        ["WebServiceTaskId"]
        .as_i64()
        .unwrap();
    let ids: Vec<i64> = (0..5)
        .map(|_| {
            post_file(&server, "kind=sleep&filename=small.txt", b"s").data(202)["WebServiceTaskId"]
                .as_i64()
                .unwrap()
        })
        .collect();
    for &id in ids.iter().chain([&big]) {
        wait_finished(&server, id);
    }
    std::thread::scope(|scope| {
        for c in 0..CONNECTIONS {
            let (server, ids, file) = (&server, &ids, &file);
            scope.spawn(move || {
                // Position i asks for the big file when i % 7 == c % 7, else for one task.
                let asked: Vec<Option<i64>> = (0..REQUESTS)
                    .map(|i| (i % 7 != c % 7).then(|| ids[(i + c) % ids.len()]))
                    .collect();
                let mut pipelined = String::new();
                for asked in &asked {
                    let path = match asked {
                        Some(id) => format!("/webservicetasks/{id}"),
                        None => format!("/webservicetasks/{big}/IoFile"),
                    };
                    pipelined.push_str(&format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n"));
                }
                let mut stream = connect(server);
                stream.write_all(pipelined.as_bytes()).unwrap();
                let mut answers = Answers::new(stream);
                for (i, asked) in asked.iter().enumerate() {
                    let (head, body) = answers
                        .next()
                        .unwrap_or_else(|| panic!("connection {c}: closed before answer {i}"));
                    assert_eq!(
                        head.status, 200,
                        "connection {c}, answer {i}: {}",
                        head.text
                    );
                    match asked {
                        Some(id) => {
                            let task: serde_json::Value = serde_json::from_slice(&body)
                                .unwrap_or_else(|e| {
                                    panic!(
                                        "connection {c}, answer {i}: {e}: {}\n{}",
                                        head.text,
                                        String::from_utf8_lossy(&body[..body.len().min(200)])
                                    )
                                });
                            assert_eq!(
                                task["data"]["WebServiceTaskId"].as_i64(),
                                Some(*id),
                                "connection {c}, answer {i} is another request's: {}\n{}",
                                head.text,
                                String::from_utf8_lossy(&body[..body.len().min(200)])
                            );
                        }
                        None => assert_eq!(body.len(), file.len(), "connection {c}, answer {i}"),
                    }
                }
            });
        }
    });
    still_serving(&server);
}

/// The answers read off one connection in turn, each with its Content-Length's body.
struct Answers {
    stream: TcpStream,
    /// Bytes read past the last answer.
    read: Vec<u8>,
}

impl Answers {
    fn new(stream: TcpStream) -> Answers {
        Answers {
            stream,
            read: Vec::new(),
        }
    }

    fn next(&mut self) -> Option<(Head, Vec<u8>)> {
        let mut reader =
            std::io::Cursor::new(std::mem::take(&mut self.read)).chain(&mut self.stream);
        let (head, mut bytes) = read_head(&mut reader)?;
        // What the cursor still holds came after what read_head read past the head.
        let (cursor, stream) = reader.into_inner();
        bytes.extend_from_slice(&cursor.get_ref()[cursor.position() as usize..]);
        let length = head.content_length().expect("a Content-Length");
        let mut buf = [0u8; 8192];
        while bytes.len() < length {
            match stream.read(&mut buf) {
                Ok(0) => panic!("closed after {} of {length} bytes", bytes.len()),
                Ok(n) => bytes.extend_from_slice(&buf[..n]),
                Err(e) => panic!("reading a body: {e}"),
            }
        }
        self.read = bytes.split_off(length);
        Some((head, bytes))
    }
}
