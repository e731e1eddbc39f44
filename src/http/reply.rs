//! Replies: JSON bodies and streamed file bodies, with their headers. Each family wraps its
//! JSON in its own envelope. Turning a reply into tiny_http's response happens here only.

use std::io::Read;
use std::sync::Arc;

use serde_json::Value;
use tiny_http::{Header, Response, StatusCode};

use super::limits::Limits;
use super::meter::Meter;

pub type Body = Box<dyn Read + Send>;

/// An answer to a request.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Body,
    pub length: Option<usize>,
}

impl Reply {
    /// `value` as a JSON body.
    pub fn json(status: u16, value: &Value) -> Reply {
        Reply::json_text(status, serde_json::to_vec(value).unwrap_or_default())
    }

    /// `bytes`, JSON text already serialized, as a JSON body.
    pub fn json_text(status: u16, bytes: Vec<u8>) -> Reply {
        Reply {
            status,
            headers: vec![("Content-Type", "application/json; charset=utf-8".into())],
            length: Some(bytes.len()),
            body: Box::new(std::io::Cursor::new(bytes)),
        }
    }

    /// A file download of `length` bytes.
    pub fn file(name: &str, length: u64, body: Body) -> Reply {
        Reply {
            status: 200,
            headers: vec![
                ("Content-Type", content_type_of(name).into()),
                ("Content-Disposition", content_disposition(name)),
            ],
            length: Some(usize::try_from(length).unwrap_or(usize::MAX)),
            body,
        }
    }

    /// The reply with one more header.
    pub fn with_header(mut self, name: &'static str, value: String) -> Reply {
        self.headers.push((name, value));
        self
    }

    /// The library's response, its body counted into `meter` as the library sends it, and
    /// failing once the meter is cut off.
    pub(super) fn into_response(self, meter: Arc<Meter>, limits: Limits) -> Response<Body> {
        let body: Body = Box::new(Metered {
            inner: self.body,
            meter,
            limits,
        });
        let headers = self
            .headers
            .into_iter()
            .filter_map(|(name, value)| Header::from_bytes(name.as_bytes(), value.as_bytes()).ok())
            .collect();
        // A known length always goes out as Content-Length: tiny_http would otherwise switch
        // to chunked encoding from 32 KiB on.
        Response::new(StatusCode(self.status), headers, body, self.length, None)
            .with_chunked_threshold(usize::MAX)
    }
}

/// An answer's body as the HTTP library pulls it to send it.
struct Metered {
    inner: Body,
    meter: Arc<Meter>,
    limits: Limits,
}

impl Read for Metered {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.meter.check(&self.limits)?;
        let read = self.inner.read(buf)?;
        self.meter.count(read);
        Ok(read)
    }
}

/// The Content-Type of a file from its name's extension.
pub fn content_type_of(name: &str) -> &'static str {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "csv" => "text/csv; charset=utf-8",
        "txt" | "log" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// `attachment; filename="..."` (RFC 6266): an ASCII fallback, plus `filename*` in UTF-8
/// when the name is not plain ASCII.
pub fn content_disposition(name: &str) -> String {
    let fallback: String = name
        .chars()
        .map(|c| match c {
            '"' | '\\' => '_',
            c if c.is_ascii() && !c.is_ascii_control() => c,
            _ => '_',
        })
        .collect();
    if fallback == name {
        format!("attachment; filename=\"{fallback}\"")
    } else {
        let encoded = percent_encoding::utf8_percent_encode(name, ATTR_CHAR);
        format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
    }
}

/// Everything but RFC 5987's attr-char is percent-encoded.
const ATTR_CHAR: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_follow_the_extension() {
        assert_eq!(content_type_of("a.CSV"), "text/csv; charset=utf-8");
        assert_eq!(content_type_of("a-log.txt"), "text/plain; charset=utf-8");
        assert_eq!(content_type_of("x.log"), "text/plain; charset=utf-8");
        assert_eq!(content_type_of("blob"), "application/octet-stream");
    }

    #[test]
    fn dispositions_carry_non_ascii_names_in_utf8() {
        assert_eq!(
            content_disposition("Data File.csv"),
            "attachment; filename=\"Data File.csv\""
        );
        assert_eq!(
            content_disposition("Préféré \"x\".csv"),
            "attachment; filename=\"Pr_f_r_ _x_.csv\"; filename*=UTF-8''Pr%C3%A9f%C3%A9r%C3%A9%20%22x%22.csv"
        );
    }
}
