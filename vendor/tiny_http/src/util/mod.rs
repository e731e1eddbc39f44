pub use self::chunked_body::ChunkedBody;
pub use self::custom_stream::CustomStream;
pub use self::equal_reader::EqualReader;
pub use self::fused_reader::FusedReader;
pub use self::messages_queue::MessagesQueue;
pub use self::refined_tcp_stream::{HeadClock, RefinedTcpStream};
pub use self::sequential::{SequentialReader, SequentialReaderBuilder};
#[allow(unused_imports)] // taskbox: a warning of today's compiler, as published
pub use self::sequential::{SequentialWriter, SequentialWriterBuilder};
pub use self::task_pool::TaskPool;

use std::io::Read;
use std::str::FromStr;

mod chunked_body;
mod custom_stream;
mod equal_reader;
mod fused_reader;
mod messages_queue;
pub(crate) mod refined_tcp_stream;
mod sequential;
mod task_pool;

/// taskbox patch: the source of a request's body, which can be given up when the body is
/// dropped before its end (see `SequentialReader::abandon`): what is left of the body must
/// never be read as the next request, and is not drained either.
pub trait Abandon {
    fn abandon(&mut self);
}

impl<R: Read + Send> Abandon for SequentialReader<R> {
    fn abandon(&mut self) {
        SequentialReader::abandon(self)
    }
}

/// A body in memory (`TestRequest`): nothing to give up.
impl Abandon for &[u8] {
    fn abandon(&mut self) {}
}

/// taskbox patch: reads what is left of a body into a small buffer and throws it away, at
/// most `budget` bytes, stopping at its end or an error. The caller knows whether it ended.
pub fn drain(body: &mut dyn Read, budget: usize) {
    let mut buf = [0u8; 8 * 1024];
    let mut read = 0;
    while read < budget {
        let want = buf.len().min(budget - read);
        match body.read(&mut buf[..want]) {
            Ok(0) | Err(_) => return,
            Ok(n) => read += n,
        }
    }
}

/// Parses a the value of a header.
/// Suitable for `Accept-*`, `TE`, etc.
///
/// For example with `text/plain, image/png; q=1.5` this function would
/// return `[ ("text/plain", 1.0), ("image/png", 1.5) ]`
pub fn parse_header_value(input: &str) -> Vec<(&str, f32)> {
    input
        .split(',')
        .filter_map(|elem| {
            let mut params = elem.split(';');

            let t = params.next()?;

            let mut value = 1.0_f32;

            for p in params {
                if p.trim_start().starts_with("q=") {
                    if let Ok(val) = f32::from_str(p.trim_start()[2..].trim()) {
                        value = val;
                        break;
                    }
                }
            }

            Some((t.trim(), value))
        })
        .collect()
}

#[cfg(test)]
mod test {
    #[test]
    #[allow(clippy::float_cmp)]
    fn test_parse_header() {
        let result = super::parse_header_value("text/html, text/plain; q=1.5 , image/png ; q=2.0");

        assert_eq!(result.len(), 3);
        assert_eq!(result[0].0, "text/html");
        assert_eq!(result[0].1, 1.0);
        assert_eq!(result[1].0, "text/plain");
        assert_eq!(result[1].1, 1.5);
        assert_eq!(result[2].0, "image/png");
        assert_eq!(result[2].1, 2.0);
    }
}
