//! taskbox patch: a chunked request body, as `chunked_transfer::Decoder` reads it, with two
//! bounds the decoder lacks:
//! - dropped before its last chunk, it reads the rest through a small buffer, at most
//!   `max_drain` bytes, and gives its source up (see `Abandon`) if that does not reach the
//!   end, as an `EqualReader` does: what is left of it must never be read as the next
//!   request;
//! - a chunk-size line (with its extensions) may take at most `MAX_SIZE_LINE` bytes: the
//!   decoder collects the line in memory with no limit.

use std::io::{Error as IoError, ErrorKind, Read, Result as IoResult};

use chunked_transfer::Decoder;

use super::{drain, Abandon};

/// The longest chunk-size line, extensions and CRLF included. A size is at most 16 hex
/// digits; extensions are rare and short.
pub const MAX_SIZE_LINE: usize = 4096;

pub struct ChunkedBody<R: Read + Abandon> {
    decoder: Decoder<SizeLineLimit<R>>,
    ended: bool,
    max_drain: usize,
}

impl<R: Read + Abandon> ChunkedBody<R> {
    pub fn new(source: R, max_drain: usize) -> ChunkedBody<R> {
        ChunkedBody {
            decoder: Decoder::new(SizeLineLimit {
                source,
                in_size_line: false,
                line: 0,
            }),
            ended: false,
            max_drain,
        }
    }
}

impl<R: Read + Abandon> Read for ChunkedBody<R> {
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        if self.ended || buf.is_empty() {
            return Ok(0);
        }
        // Between chunks the decoder's next read starts with a size line.
        if self.decoder.remaining_chunks_size().is_none() {
            let limit = self.decoder.get_mut();
            limit.in_size_line = true;
            limit.line = 0;
        }
        let read = self.decoder.read(buf)?;
        self.ended = read == 0;
        Ok(read)
    }
}

impl<R: Read + Abandon> Drop for ChunkedBody<R> {
    fn drop(&mut self) {
        if !self.ended {
            let max_drain = self.max_drain;
            drain(self, max_drain);
        }
        if !self.ended {
            self.decoder.get_mut().source.abandon();
        }
    }
}

/// The decoder's source: counts the bytes of a size line (the decoder reads it a byte at a
/// time) until its line feed, and fails past `MAX_SIZE_LINE`.
struct SizeLineLimit<R> {
    source: R,
    in_size_line: bool,
    line: usize,
}

impl<R: Read> Read for SizeLineLimit<R> {
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        if !self.in_size_line {
            return self.source.read(buf);
        }
        if self.line >= MAX_SIZE_LINE {
            return Err(IoError::new(
                ErrorKind::InvalidData,
                format!("a chunk-size line is longer than {MAX_SIZE_LINE} bytes"),
            ));
        }
        // A byte at a time, so that nothing past the line feed is read in this mode.
        let one = buf.len().min(1);
        let read = self.source.read(&mut buf[..one])?;
        if read == 1 {
            self.line += 1;
            if buf[0] == b'\n' {
                self.in_size_line = false;
            }
        }
        Ok(read)
    }
}

#[cfg(test)]
mod tests {
    use super::{Abandon, ChunkedBody, MAX_SIZE_LINE};
    use std::io::Read;

    struct Source(std::io::Cursor<Vec<u8>>, bool);

    impl Read for &mut Source {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.0.read(buf)
        }
    }

    impl Abandon for &mut Source {
        fn abandon(&mut self) {
            self.1 = true;
        }
    }

    #[test]
    fn a_whole_body_is_read_and_its_source_passed_on() {
        let mut source = Source(std::io::Cursor::new(b"3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\nNEXT".to_vec()), false);
        let mut body = String::new();
        ChunkedBody::new(&mut source, 0).read_to_string(&mut body).unwrap();
        assert_eq!(body, "abcde");
        assert!(!source.1);
        let mut rest = String::new();
        source.0.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "NEXT");
    }

    #[test]
    fn a_body_dropped_before_its_end_is_drained_or_gives_its_source_up() {
        let bytes = b"3\r\nabc\r\n0\r\n\r\nNEXT";
        let mut source = Source(std::io::Cursor::new(bytes.to_vec()), false);
        let mut first = [0u8; 1];
        ChunkedBody::new(&mut source, 100).read_exact(&mut first).unwrap();
        assert!(!source.1);
        assert_eq!(source.0.position(), bytes.len() as u64 - 4);
        let mut source = Source(std::io::Cursor::new(bytes.to_vec()), false);
        ChunkedBody::new(&mut source, 1).read_exact(&mut first).unwrap();
        assert!(source.1);
    }

    #[test]
    fn an_endless_size_line_fails_within_its_limit() {
        let mut source = Source(std::io::Cursor::new(vec![b'0'; 10 * MAX_SIZE_LINE]), false);
        let mut body = ChunkedBody::new(&mut source, 0);
        assert!(body.read(&mut [0u8; 64]).is_err());
        drop(body);
        assert!(source.0.position() as usize <= MAX_SIZE_LINE);
    }
}
