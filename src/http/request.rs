//! `Request`: a request as every route sees it, our own type, so that no family's code
//! names the HTTP library. The server makes one from the library's request (the head
//! copied, the body borrowed); a test or the fuzz harness makes one from bytes.

use std::io::Read;
use std::net::SocketAddr;
use std::sync::Arc;

use super::error::ApiError;
use super::fields::query_pairs;
use super::limits::Limits;
use super::meter::Meter;

/// An HTTP method. HEAD is answered as GET (without the body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    /// Any other method, as sent.
    Other(String),
}

impl Method {
    /// The method named `name` (case-sensitive, as HTTP methods are).
    pub fn parse(name: &str) -> Method {
        match name {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            other => Method::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Other(name) => name,
        }
    }

    /// Whether a route of method `route` answers this one (HEAD is served as GET).
    pub fn is_served_by(&self, route: &Method) -> bool {
        self == route || (*self == Method::Head && *route == Method::Get)
    }
}

/// A request: its head, and its body to read.
pub struct Request<'a> {
    method: Method,
    url: String,
    headers: Vec<(String, String)>,
    remote: Option<SocketAddr>,
    body_length: Option<usize>,
    body: Body<'a>,
    /// The HTTP library stopped reading the headers at `--max-header-bytes`: `headers`
    /// holds those before.
    head_too_large: bool,
}

impl<'a> Request<'a> {
    /// A request with this head, whose body (`body_length` bytes, None when chunked) is read
    /// from `body`.
    pub fn new(
        method: Method,
        url: String,
        headers: Vec<(String, String)>,
        remote: Option<SocketAddr>,
        body_length: Option<usize>,
        body: &'a mut dyn Read,
    ) -> Request<'a> {
        Request {
            method,
            url,
            headers,
            remote,
            body_length,
            body: Body::new(body, body_length),
            head_too_large: false,
        }
    }

    /// The library's request, its head copied and its body borrowed, read through `meter`.
    pub(super) fn from_tiny(
        request: &'a mut tiny_http::Request,
        meter: Arc<Meter>,
        limits: Limits,
    ) -> Request<'a> {
        let method = Method::parse(request.method().as_str());
        let url = request.url().to_string();
        let headers = request
            .headers()
            .iter()
            .map(|h| {
                (
                    h.field.as_str().as_str().to_string(),
                    h.value.as_str().to_string(),
                )
            })
            .collect();
        let remote = request.remote_addr().copied();
        let body_length = request.body_length();
        let head_too_large = request.head_too_large();
        let mut this = Request::new(
            method,
            url,
            headers,
            remote,
            body_length,
            request.as_reader(),
        );
        this.head_too_large = head_too_large;
        this.body.meter = Some((meter, limits));
        this
    }

    /// Whether the headers went past `--max-header-bytes` (see `headers`).
    pub fn head_too_large(&self) -> bool {
        self.head_too_large
    }

    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The URL: path and query string.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The URL without its query string.
    pub fn path(&self) -> &str {
        self.url.split_once('?').map_or(&self.url, |(p, _)| p)
    }

    /// The query string's pairs, decoded as HTML form data.
    pub fn query_pairs(&self) -> Result<Vec<(String, String)>, ApiError> {
        query_pairs(&self.url)
    }

    /// Every header, in the order sent.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// A header's value (the first, if repeated), its name matched case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The peer's address.
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.remote
    }

    /// The length the body declared (None when chunked or absent).
    pub fn body_length(&self) -> Option<usize> {
        self.body_length
    }

    /// The body, read through the checks of [`Body`].
    pub fn body(&mut self) -> &mut Body<'a> {
        &mut self.body
    }
}

/// A request's body as every route reads it: a body that ends before its Content-Length
/// is an error, not an end (tiny_http reports it as the end, so a truncated upload would be
/// taken for a whole one), and so is a pause longer than the read timeout (the HTTP library
/// sets it on the socket; the read then fails with WouldBlock), and a body cut off by the
/// connection guard as too slow or too long (see meter.rs).
pub struct Body<'a> {
    inner: &'a mut dyn Read,
    /// Bytes still due by the Content-Length; None for a chunked body.
    left: Option<usize>,
    /// The request's meter, when it came from the network.
    meter: Option<(Arc<Meter>, Limits)>,
}

impl<'a> Body<'a> {
    /// The body read from `inner`, which promised `length` bytes (None: chunked).
    pub fn new(inner: &'a mut dyn Read, length: Option<usize>) -> Body<'a> {
        Body {
            inner,
            left: length,
            meter: None,
        }
    }

    /// Bytes still due by the Content-Length; None for a chunked body or none.
    pub fn left(&self) -> Option<usize> {
        self.left
    }
}

impl Read for Body<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let Some((meter, limits)) = &self.meter else {
            return read_counted(self.inner, &mut self.left, buf);
        };
        meter.check(limits)?;
        meter.start();
        let result = read_counted(self.inner, &mut self.left, buf);
        // The guard shuts a connection down as it cuts it off: that read's end or error is
        // the cut's.
        meter.check(limits)?;
        match result {
            Ok(0) if !buf.is_empty() => meter.stop(),
            Ok(n) => meter.count(n),
            Err(_) => {}
        }
        result
    }
}

/// Reads from `inner`, counting the bytes still due (`left`) down.
fn read_counted(
    inner: &mut dyn Read,
    left: &mut Option<usize>,
    buf: &mut [u8],
) -> std::io::Result<usize> {
    use std::io::{Error, ErrorKind};
    match inner.read(buf) {
        Ok(0) if !buf.is_empty() && left.is_some_and(|n| n > 0) => Err(Error::new(
            ErrorKind::UnexpectedEof,
            format!(
                "it ended {} bytes short of its Content-Length",
                left.unwrap_or(0)
            ),
        )),
        Ok(n) => {
            *left = left.map(|left| left.saturating_sub(n));
            Ok(n)
        }
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            Err(Error::new(
                ErrorKind::TimedOut,
                "the client paused longer than the read timeout",
            ))
        }
        Err(e) => Err(e),
    }
}
