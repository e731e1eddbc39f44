//! HTTP over a bare TcpStream, for what an HTTP client would not send or not let a test
//! see: requests written byte for byte, an answer's head read apart from its body, a
//! client that stalls.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;

use super::{Answer, Server, DEADLINE};

/// The server's `HOST:PORT`.
pub fn addr(server: &Server) -> String {
    server
        .base
        .strip_prefix("http://")
        .expect("http base")
        .to_string()
}

/// A new connection to the server, whose reads and writes fail after [`DEADLINE`].
pub fn connect(server: &Server) -> TcpStream {
    let stream = TcpStream::connect(addr(server)).expect("connect");
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    stream.set_write_timeout(Some(DEADLINE)).unwrap();
    stream
}

/// A new connection from the loopback address `source` (127.0.0.2, say: every 127.x.y.z is
/// this machine), with a receive buffer of `receive_buffer` bytes when given (a client that
/// reads slowly and wants the server to notice soon). Reads and writes fail after
/// [`DEADLINE`].
pub fn connect_from(server: &Server, source: &str, receive_buffer: Option<usize>) -> TcpStream {
    use socket2::{Domain, Socket, Type};
    let target: std::net::SocketAddr = addr(server).parse().expect("server address");
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    if let Some(size) = receive_buffer {
        socket.set_recv_buffer_size(size).expect("SO_RCVBUF");
    }
    let local: std::net::SocketAddr = format!("{source}:0").parse().expect("source address");
    socket.bind(&local.into()).expect("bind the source address");
    socket.connect(&target.into()).expect("connect");
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    stream.set_write_timeout(Some(DEADLINE)).unwrap();
    stream
}

/// A new connection that has sent `bytes` and says nothing more (the caller reads from it,
/// or stalls).
pub fn send_raw(server: &Server, bytes: &[u8]) -> TcpStream {
    let mut stream = connect(server);
    stream.write_all(bytes).expect("send");
    stream.flush().expect("flush");
    stream
}

/// The head of an answer read off a raw connection.
#[derive(Debug)]
pub struct Head {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// The head as sent, its status line first, without the blank line that ends it.
    pub text: String,
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The Content-Length, if the answer has one.
    pub fn content_length(&self) -> Option<usize> {
        self.header("Content-Length")
            .map(|v| v.parse().unwrap_or_else(|_| panic!("Content-Length {v:?}")))
    }
}

/// Reads an answer's head off `stream`; with it, the bytes read past it (the body's start).
/// None when the connection was closed (or reset) before the answer's first byte; the test
/// fails if it closes inside the head, or if a read fails otherwise (a timeout: a hung
/// connection).
pub fn read_head(stream: &mut impl Read) -> Option<(Head, Vec<u8>)> {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 8192];
    let end = loop {
        if let Some(at) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        match stream.read(&mut buf) {
            Ok(0) => {
                assert!(
                    bytes.is_empty(),
                    "closed inside an answer's head: {:?}",
                    String::from_utf8_lossy(&bytes)
                );
                return None;
            }
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) => {
                return None
            }
            Err(e) => panic!("reading the answer: {e} (a hung connection?)"),
        }
    };
    let text = String::from_utf8_lossy(&bytes[..end]).to_string();
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line in {text:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let rest = bytes[end + 4..].to_vec();
    Some((
        Head {
            status,
            headers,
            text,
        },
        rest,
    ))
}

/// Reads the body whose first bytes `start` came with the head: `length` bytes, or up to
/// the connection's end when None (an answer without Content-Length). The test fails if the
/// connection ends short of `length`, or a read fails.
pub fn read_body(stream: &mut impl Read, start: Vec<u8>, length: Option<usize>) -> Vec<u8> {
    let mut body = start;
    let mut buf = [0u8; 8192];
    loop {
        if length.is_some_and(|length| body.len() >= length) {
            break;
        }
        match stream.read(&mut buf) {
            Ok(0) if length.is_none() => break,
            Ok(0) => panic!(
                "the connection closed after {} of the body's {length:?} bytes",
                body.len()
            ),
            Ok(n) => body.extend_from_slice(&buf[..n]),
            Err(e) => panic!("reading the body after {} bytes: {e}", body.len()),
        }
    }
    if let Some(length) = length {
        body.truncate(length);
    }
    body
}

/// Sends `request` as is over a new connection and reads the answer whole (its body as
/// long as its Content-Length says, none without one).
pub fn raw_exchange(server: &Server, request: &[u8]) -> Answer {
    let mut stream = send_raw(server, request);
    let (head, start) = read_head(&mut stream).unwrap_or_else(|| {
        panic!(
            "the connection closed without an answer to {:?}",
            String::from_utf8_lossy(&request[..request.len().min(200)])
        )
    });
    let body = read_body(&mut stream, start, Some(head.content_length().unwrap_or(0)));
    Answer {
        status: head.status,
        headers: head.headers,
        body,
    }
}
