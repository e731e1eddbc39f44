//! Raw HTTP over a TcpStream, for requests an HTTP client would not send, and the checks
//! every hostile test ends with: what the server answered, and that it still serves.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::*;

/// Held by the tests that load the machine or measure a latency, so that no two of them run
/// at once (the test harness runs tests in parallel, on a machine of two cores).
pub fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static HEAVY: std::sync::Mutex<()> = std::sync::Mutex::new(());
    HEAVY.lock().unwrap_or_else(|e| e.into_inner())
}

/// What a hostile request got.
#[derive(Debug)]
pub enum Outcome {
    /// An answer with taskbox's JSON envelope.
    Envelope { status: u16, message: String },
    /// An answer without a body: tiny_http's own refusal of what is not HTTP (a malformed
    /// request line or header), sent before taskbox sees the request, the connection closed.
    Bare { status: u16 },
    /// Any other answer (a success, a file).
    Other { status: u16, body: Vec<u8> },
    /// The connection was closed (or reset) without an answer.
    Closed,
}

impl Outcome {
    /// Checks the outcome is a refusal: a 4xx in the envelope, tiny_http's own bare 4xx, or
    /// a closed connection.
    pub fn refused(&self) -> &Outcome {
        match self {
            Outcome::Envelope { status, message } => {
                assert!((400..500).contains(status), "not a 4xx: {self:?}");
                assert!(message.ends_with('.'), "not a sentence: {message:?}");
            }
            Outcome::Bare { status } => assert!((400..500).contains(status), "{self:?}"),
            Outcome::Closed => {}
            Outcome::Other { .. } => panic!("not refused: {self:?}"),
        }
        self
    }

    /// Checks the outcome is a 4xx in the envelope with `status`, naming each of `names`.
    pub fn envelope(&self, want: u16, names: &[&str]) -> String {
        match self {
            Outcome::Envelope { status, message } if *status == want => {
                for name in names {
                    assert!(message.contains(name), "{message:?} does not name {name:?}");
                }
                message.clone()
            }
            other => panic!("expected {want} in the envelope, got {other:?}"),
        }
    }
}

/// Sends `request` over a fresh connection (a write the server cuts short is fine) and
/// reads what comes back.
pub fn exchange(server: &Server, request: &[u8]) -> Outcome {
    let mut stream = connect(server);
    // The server may answer and close before it has read everything: that is a refusal too.
    let _ = stream.write_all(request);
    read_outcome(&mut stream)
}

/// Reads one answer from `stream`, or notices it closed.
pub fn read_outcome(stream: &mut TcpStream) -> Outcome {
    let Some((head, start)) = read_head(stream) else {
        return Outcome::Closed;
    };
    // Without a Content-Length the body ends with the connection.
    let body = read_body(stream, start, head.content_length());
    let status = head.status;
    if body.is_empty() {
        return Outcome::Bare { status };
    }
    match serde_json::from_slice::<Value>(&body) {
        Ok(json) if json["status"] == "error" && json["data"].is_null() => Outcome::Envelope {
            status,
            message: json["message"].as_str().unwrap_or_default().to_string(),
        },
        _ => Outcome::Other { status, body },
    }
}

/// Waits until the server closes `stream` (EOF or reset), reading and discarding what it
/// sends; fails after `within`. Returns how long it took.
pub fn wait_closed(stream: &mut TcpStream, within: Duration) -> Duration {
    let started = Instant::now();
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return started.elapsed(),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return started.elapsed(),
        }
        assert!(
            started.elapsed() < within,
            "the server did not close the connection within {within:?}"
        );
    }
}

/// Whether the server has closed `stream`, checked without waiting long.
pub fn is_closed(stream: &TcpStream) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let mut buf = [0u8; 1];
    let closed = match stream.peek(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => false,
        Err(_) => true,
    };
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    closed
}

/// The server still answers a list, creates a task and runs it to SUCCESS.
pub fn still_serving(server: &Server) {
    get(&server.url("/webservicetasks?limit=1")).data(200);
    let id = submit(server, "sleep", json!({"seconds": 0}));
    assert_eq!(wait_finished(server, id)["Status"], "SUCCESS");
}

/// A GET on a connection of its own, with a short deadline: the server answers it now.
pub fn served_now(server: &Server) {
    let mut stream = connect(server);
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"GET /webservicetasks?limit=1 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .expect("send");
    match read_outcome(&mut stream) {
        Outcome::Other { status: 200, .. } => {}
        other => panic!("a normal request was not served: {other:?}"),
    }
    let _ = stream.shutdown(Shutdown::Both);
}

/// `POST /webservicetasks` with the given head lines and body, Connection: close.
pub fn post(path: &str, headers: &[&str], body: &[u8]) -> Vec<u8> {
    let mut request = format!("POST {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for h in headers {
        request.push_str(h);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    let mut bytes = request.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// `GET path` as raw bytes (the path may be anything).
pub fn get_raw(path: &[u8]) -> Vec<u8> {
    let mut bytes = b"GET ".to_vec();
    bytes.extend_from_slice(path);
    bytes.extend_from_slice(b" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    bytes
}
