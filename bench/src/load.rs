//! The load generator: a minimal HTTP/1.1 client over `std::net::TcpStream` (keep-alive,
//! Content-Length and chunked bodies, `Connection: close`), and `run`, which drives a
//! server from several threads, one connection each, for a fixed time or a fixed number of
//! requests, and records every request's latency.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::procfs;

/// How many bytes a response head may take before the client gives up on it.
const MAX_HEAD: usize = 64 * 1024;

/// One keep-alive connection, opened on first use and again after the server closed it.
pub struct Conn {
    addr: SocketAddr,
    stream: Option<BufReader<TcpStream>>,
    /// The header lines of the last response, raw.
    head: Vec<u8>,
    line: Vec<u8>,
}

impl Conn {
    pub fn new(addr: SocketAddr) -> Conn {
        Conn {
            addr,
            stream: None,
            head: Vec::with_capacity(1024),
            line: Vec::with_capacity(256),
        }
    }

    fn stream(&mut self) -> io::Result<&mut BufReader<TcpStream>> {
        if self.stream.is_none() {
            let stream = TcpStream::connect(self.addr)?;
            stream.set_nodelay(true)?;
            stream.set_read_timeout(Some(Duration::from_secs(120)))?;
            self.stream = Some(BufReader::with_capacity(64 * 1024, stream));
        }
        Ok(self.stream.as_mut().expect("connected above"))
    }

    /// Sends a whole request (head and body) and reads the answer, giving the body's bytes
    /// to `sink` as they come. Returns the status.
    pub fn request(&mut self, request: &[u8], sink: &mut dyn FnMut(&[u8])) -> io::Result<u16> {
        let result = self
            .stream()
            .and_then(|s| s.get_mut().write_all(request))
            .and_then(|()| self.read_response(sink));
        if result.is_err() {
            self.stream = None;
        }
        result
    }

    /// Sends `head`, then `body_len` bytes read from `body`, then reads the answer.
    pub fn request_streaming(
        &mut self,
        head: &[u8],
        body: &mut dyn Read,
        body_len: u64,
        sink: &mut dyn FnMut(&[u8]),
    ) -> io::Result<u16> {
        let result = (|| {
            let stream = self.stream()?.get_mut();
            stream.write_all(head)?;
            let mut buf = vec![0u8; 256 * 1024];
            let mut left = body_len;
            while left > 0 {
                let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                let n = body.read(&mut buf[..want])?;
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the request body ended early",
                    ));
                }
                stream.write_all(&buf[..n])?;
                left -= n as u64;
            }
            self.read_response(sink)
        })();
        if result.is_err() {
            self.stream = None;
        }
        result
    }

    /// A GET or POST whose whole answer is wanted: the status and the body.
    pub fn fetch(&mut self, request: &[u8]) -> io::Result<(u16, Vec<u8>)> {
        let mut body = Vec::new();
        let status = self.request(request, &mut |b| body.extend_from_slice(b))?;
        Ok((status, body))
    }

    /// A header of the last response (the first of that name), trimmed.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.split(|&b| b == b'\n').find_map(|line| {
            let colon = line.iter().position(|&b| b == b':')?;
            if !line[..colon].eq_ignore_ascii_case(name.as_bytes()) {
                return None;
            }
            std::str::from_utf8(&line[colon + 1..]).ok().map(str::trim)
        })
    }

    fn read_line(&mut self) -> io::Result<()> {
        self.line.clear();
        let stream = self.stream.as_mut().expect("connected");
        let n = stream
            .by_ref()
            .take(MAX_HEAD as u64)
            .read_until(b'\n', &mut self.line)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection",
            ));
        }
        if self.line.last() != Some(&b'\n') {
            return Err(bad("a response line is too long or cut short"));
        }
        Ok(())
    }

    fn read_response(&mut self, sink: &mut dyn FnMut(&[u8])) -> io::Result<u16> {
        // Informational answers (100 Continue) precede the real one.
        let (status, minor) = loop {
            self.read_line()?;
            let line = std::str::from_utf8(&self.line).map_err(|_| bad("status line"))?;
            let mut parts = line.split_ascii_whitespace();
            let version = parts.next().unwrap_or("");
            let minor = match version {
                "HTTP/1.1" => 1,
                "HTTP/1.0" => 0,
                _ => return Err(bad(&format!("status line {line:?}"))),
            };
            let status: u16 = parts
                .next()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| bad(&format!("status line {line:?}")))?;
            self.head.clear();
            loop {
                self.read_line()?;
                if self.line == b"\r\n" || self.line == b"\n" {
                    break;
                }
                if self.head.len() + self.line.len() > MAX_HEAD {
                    return Err(bad("the response head is too long"));
                }
                self.head.extend_from_slice(&self.line);
            }
            if !(100..200).contains(&status) {
                break (status, minor);
            }
        };
        let close = match self.header("connection") {
            Some(v) if v.eq_ignore_ascii_case("close") => true,
            Some(v) if v.eq_ignore_ascii_case("keep-alive") => false,
            _ => minor == 0,
        };
        let chunked = self
            .header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        let length = match self.header("content-length") {
            Some(v) => Some(v.parse::<u64>().map_err(|_| bad("Content-Length"))?),
            None => None,
        };
        let stream = self.stream.as_mut().expect("connected");
        let mut to_eof = false;
        if status == 204 || status == 304 {
            // No body.
        } else if chunked {
            read_chunked(stream, &mut self.line, sink)?;
        } else if let Some(length) = length {
            read_exact_to(stream, length, sink)?;
        } else {
            to_eof = true;
            loop {
                let buf = stream.fill_buf()?;
                if buf.is_empty() {
                    break;
                }
                let n = buf.len();
                sink(buf);
                stream.consume(n);
            }
        }
        if close || to_eof {
            self.stream = None;
        }
        Ok(status)
    }
}

fn bad(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("malformed response: {what}"),
    )
}

fn read_exact_to(
    stream: &mut BufReader<TcpStream>,
    mut left: u64,
    sink: &mut dyn FnMut(&[u8]),
) -> io::Result<()> {
    while left > 0 {
        let buf = stream.fill_buf()?;
        if buf.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the body ended early",
            ));
        }
        let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        sink(&buf[..n]);
        stream.consume(n);
        left -= n as u64;
    }
    Ok(())
}

fn read_chunked(
    stream: &mut BufReader<TcpStream>,
    line: &mut Vec<u8>,
    sink: &mut dyn FnMut(&[u8]),
) -> io::Result<()> {
    loop {
        line.clear();
        stream.by_ref().take(4096).read_until(b'\n', line)?;
        let text = std::str::from_utf8(line).map_err(|_| bad("chunk size"))?;
        let size = text.split(';').next().unwrap_or("").trim();
        let size = u64::from_str_radix(size, 16).map_err(|_| bad("chunk size"))?;
        if size == 0 {
            // Trailers, up to the empty line.
            loop {
                line.clear();
                stream.by_ref().take(4096).read_until(b'\n', line)?;
                if line.is_empty() || line == b"\r\n" || line == b"\n" {
                    return Ok(());
                }
            }
        }
        read_exact_to(stream, size, sink)?;
        line.clear();
        stream.by_ref().take(2).read_until(b'\n', line)?;
    }
}

/// The `Authorization` every request of the harness carries while a scenario runs with a
/// token (`--token`); none otherwise.
static AUTHORIZATION: std::sync::RwLock<Option<String>> = std::sync::RwLock::new(None);

/// Sets (or, with None, clears) the `Authorization` value of the requests built from now on.
pub fn set_authorization(value: Option<String>) {
    *AUTHORIZATION.write().unwrap_or_else(|e| e.into_inner()) = value;
}

/// `Authorization: VALUE\r\n` while a token is set, else "".
pub fn authorization_line() -> String {
    match &*AUTHORIZATION.read().unwrap_or_else(|e| e.into_inner()) {
        Some(value) => format!("Authorization: {value}\r\n"),
        None => String::new(),
    }
}

/// A request head: `METHOD PATH HTTP/1.1`, Host, the token while one is set, the given
/// headers, and a Content-Length when there is a body.
pub fn head(
    method: &str,
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body_len: Option<u64>,
) -> Vec<u8> {
    let mut out = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{}",
        authorization_line()
    );
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(len) = body_len {
        out.push_str(&format!("Content-Length: {len}\r\n"));
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// A whole request with a small body.
pub fn request(
    method: &str,
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let has_body = !body.is_empty() || method == "POST";
    let mut out = head(
        method,
        addr,
        path,
        headers,
        has_body.then_some(body.len() as u64),
    );
    out.extend_from_slice(body);
    out
}

/// A GET without a body.
pub fn get(addr: SocketAddr, path: &str) -> Vec<u8> {
    request("GET", addr, path, &[], b"")
}

/// The submission every load scenario sends: a `sleep` task of `seconds`, as JSON.
pub fn submit_request(addr: SocketAddr, seconds: &str) -> Vec<u8> {
    let body = format!(r#"{{"kind":"sleep","params":{{"seconds":"{seconds}"}}}}"#);
    request(
        "POST",
        addr,
        "/webservicetasks",
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
}

/// A bulk submission of `tasks` `sleep` tasks of 0 s, as one JSON array.
pub fn bulk_request(addr: SocketAddr, tasks: usize) -> Vec<u8> {
    let one = r#"{"kind":"sleep","params":{"seconds":"0"}}"#;
    let body = format!("[{}]", vec![one; tasks].join(","));
    request(
        "POST",
        addr,
        "/webservicetasks/bulk",
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
}

/// How a load runs: `connections` threads, each with its own connection, until
/// `duration` has passed or `count` requests have been sent in all, whichever comes
/// first. A request counts as done when its answer has the status `expect`.
#[derive(Debug, Clone)]
pub struct Plan {
    pub connections: usize,
    pub duration: Option<Duration>,
    pub count: Option<u64>,
    pub expect: u16,
}

/// What a load measured.
pub struct Outcome {
    /// Answers with the expected status.
    pub ok: u64,
    /// Other answers and failed requests.
    pub errors: u64,
    pub first_error: Option<String>,
    /// The latency of every answer with the expected status.
    pub latencies: Latencies,
    pub started: Instant,
    pub wall: Duration,
    /// The bench process's CPU time over the run ÷ wall time ÷ cores.
    pub cpu_share: f64,
}

impl Outcome {
    pub fn per_second(&self) -> f64 {
        self.ok as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    /// Fails the scenario when no request succeeded, or when more than 1 % failed.
    pub fn check(&self, what: &str) -> Result<(), String> {
        let total = self.ok + self.errors;
        if self.ok == 0 || self.errors * 100 > total {
            return Err(format!(
                "{what}: {} of {total} requests failed; the first: {}",
                self.errors,
                self.first_error.as_deref().unwrap_or("none")
            ));
        }
        Ok(())
    }
}

/// Latencies in nanoseconds, sorted.
pub struct Latencies(Vec<u64>);

impl Latencies {
    pub fn new(mut values: Vec<u64>) -> Latencies {
        values.sort_unstable();
        Latencies(values)
    }

    /// The nearest-rank percentile `q` (0 < q ≤ 1), in milliseconds.
    pub fn ms(&self, q: f64) -> f64 {
        if self.0.is_empty() {
            return f64::NAN;
        }
        let rank = ((q * self.0.len() as f64).ceil() as usize).clamp(1, self.0.len());
        self.0[rank - 1] as f64 / 1e6
    }
}

/// Drives `addr` as `plan` says. `make(connection, n, buf)` writes the n-th request of
/// that connection into `buf` (cleared before).
pub fn run<F>(addr: SocketAddr, plan: &Plan, make: F) -> Outcome
where
    F: Fn(usize, u64, &mut Vec<u8>) + Sync,
{
    let tickets = AtomicU64::new(0);
    let first_error = Mutex::new(None::<String>);
    // The connections are opened one after the other, each answering a GET before the
    // next opens, and only then does the clock start. tiny_http 0.12 (taskbox's HTTP
    // server, and the ceiling's) can leave a connection opened in a burst without a thread
    // until another connection closes (its TaskPool::spawn counts a woken thread as still
    // waiting): a load that opened all at once would measure that stall, not the server.
    let warmup = get(addr, "/webservicetasks?limit=1");
    let conns: Vec<Conn> = (0..plan.connections)
        .map(|_| {
            let mut conn = Conn::new(addr);
            if let Err(e) = conn.request(&warmup, &mut |_| {}) {
                first_error
                    .lock()
                    .unwrap()
                    .get_or_insert(format!("connecting: {e}"));
            }
            conn
        })
        .collect();
    let cpu_before = procfs::self_cpu_seconds();
    let started = Instant::now();
    let deadline = plan.duration.map(|d| started + d);
    let per_thread: Vec<(u64, u64, Vec<u64>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = conns
            .into_iter()
            .enumerate()
            .map(|(c, mut conn)| {
                let (make, tickets, first_error) = (&make, &tickets, &first_error);
                scope.spawn(move || {
                    let mut buf = Vec::with_capacity(512);
                    let mut latencies = Vec::with_capacity(64 * 1024);
                    let (mut ok, mut errors, mut failing) = (0u64, 0u64, 0u32);
                    let mut n = 0u64;
                    loop {
                        if deadline.is_some_and(|d| Instant::now() >= d) {
                            break;
                        }
                        if let Some(count) = plan.count {
                            if tickets.fetch_add(1, Ordering::Relaxed) >= count {
                                break;
                            }
                        }
                        buf.clear();
                        make(c, n, &mut buf);
                        n += 1;
                        let sent = Instant::now();
                        let error = match conn.request(&buf, &mut |_| {}) {
                            Ok(status) if status == plan.expect => {
                                latencies.push(sent.elapsed().as_nanos() as u64);
                                ok += 1;
                                failing = 0;
                                continue;
                            }
                            Ok(status) => format!("status {status}, expected {}", plan.expect),
                            Err(e) => e.to_string(),
                        };
                        errors += 1;
                        failing += 1;
                        first_error.lock().unwrap().get_or_insert(error);
                        if failing >= 50 {
                            break; // The server is gone: stop hammering.
                        }
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    (ok, errors, latencies)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a load thread panicked"))
            .collect()
    });
    let wall = started.elapsed();
    let cpu = procfs::self_cpu_seconds() - cpu_before;
    let (mut ok, mut errors, mut all) = (0, 0, Vec::new());
    for (o, e, l) in per_thread {
        ok += o;
        errors += e;
        all.extend(l);
    }
    Outcome {
        ok,
        errors,
        first_error: first_error.into_inner().unwrap(),
        latencies: Latencies::new(all),
        started,
        wall,
        cpu_share: cpu / wall.as_secs_f64().max(1e-9) / procfs::cores() as f64,
    }
}

/// A small xorshift generator: random task ids without a dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}
