//! A streaming reader of `multipart/form-data` bodies (RFC 7578): parts come one at a time,
//! and a part's body is a `Read` that stops at the next boundary, so a file part of any
//! size flows to the store through a fixed buffer.

use std::io::{self, Read};

use memchr::memmem;

use super::fields::{disposition_filename, disposition_name};

/// The buffer through which the body flows.
const BUFFER: usize = 64 * 1024;
/// The most a part's header block may take.
const MAX_PART_HEADERS: usize = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum MultipartError {
    #[error("The multipart body is malformed: {0}")]
    Malformed(&'static str),
    #[error("The request body could not be read: {0}")]
    Io(#[from] io::Error),
}

/// A part's headers: its field name and, for a file, its file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub name: String,
    pub filename: Option<String>,
}

pub struct Multipart<R> {
    reader: R,
    /// `\r\n--boundary`: what ends a part's body.
    delimiter: Vec<u8>,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    /// Inside a part's body (not yet at its delimiter).
    in_body: bool,
    finished: bool,
}

impl<R: Read> Multipart<R> {
    pub fn new(reader: R, boundary: &str) -> Multipart<R> {
        let mut delimiter = b"\r\n--".to_vec();
        delimiter.extend_from_slice(boundary.as_bytes());
        // The first boundary may open the body without a preceding CRLF: pretend one came.
        let mut buf = vec![0; BUFFER.max(delimiter.len() * 2)];
        buf[..2].copy_from_slice(b"\r\n");
        Multipart {
            reader,
            delimiter,
            buf,
            start: 0,
            end: 2,
            eof: false,
            in_body: true,
            finished: false,
        }
    }

    /// The next part's headers, after skipping what is left of the current part. None at
    /// the closing boundary.
    pub fn next_part(&mut self) -> Result<Option<Part>, MultipartError> {
        if self.finished {
            return Ok(None);
        }
        if self.in_body {
            // Skip to the delimiter (the preamble, or an unread part body).
            io::copy(&mut PartBody { multipart: self }, &mut io::sink())?;
        }
        // After the delimiter: `--` closes the body, CRLF opens a part.
        self.fill_to(2)?;
        if self.available() < 2 {
            return Err(MultipartError::Malformed(
                "it ends without a closing boundary",
            ));
        }
        let after = &self.buf[self.start..self.start + 2];
        if after == b"--" {
            self.finished = true;
            return Ok(None);
        }
        // Transport padding (spaces, tabs) may precede the CRLF.
        loop {
            self.fill_to(1)?;
            match self.available() {
                0 => return Err(MultipartError::Malformed("it ends inside a boundary line")),
                _ if matches!(self.buf[self.start], b' ' | b'\t') => self.start += 1,
                _ => break,
            }
        }
        self.fill_to(2)?;
        if self.available() < 2 || &self.buf[self.start..self.start + 2] != b"\r\n" {
            return Err(MultipartError::Malformed(
                "a boundary line is not followed by a line break",
            ));
        }
        self.start += 2;
        let headers = self.read_headers()?;
        let mut name = None;
        let mut filename = None;
        for line in headers.split("\r\n") {
            if let Some((field, value)) = line.split_once(':') {
                if field.trim().eq_ignore_ascii_case("content-disposition") {
                    name = disposition_name(value);
                    filename = disposition_filename(value);
                }
            }
        }
        let Some(name) = name else {
            return Err(MultipartError::Malformed(
                "a part has no Content-Disposition name",
            ));
        };
        self.in_body = true;
        Ok(Some(Part { name, filename }))
    }

    /// The current part's body.
    pub fn body(&mut self) -> PartBody<'_, R> {
        PartBody { multipart: self }
    }

    fn available(&self) -> usize {
        self.end - self.start
    }

    /// Reads until at least `n` bytes are buffered or the body ends.
    fn fill_to(&mut self, n: usize) -> io::Result<()> {
        while self.available() < n && !self.eof {
            if self.end == self.buf.len() {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            let read = self.reader.read(&mut self.buf[self.end..])?;
            if read == 0 {
                self.eof = true;
            }
            self.end += read;
        }
        Ok(())
    }

    fn read_headers(&mut self) -> Result<String, MultipartError> {
        loop {
            let window = &self.buf[self.start..self.end];
            if let Some(at) = memmem::find(window, b"\r\n\r\n") {
                let text = std::str::from_utf8(&window[..at])
                    .map_err(|_| MultipartError::Malformed("a part's headers are not UTF-8"))?
                    .to_string();
                self.start += at + 4;
                return Ok(text);
            }
            if window.starts_with(b"\r\n") {
                // No headers at all.
                self.start += 2;
                return Ok(String::new());
            }
            if self.available() >= MAX_PART_HEADERS {
                return Err(MultipartError::Malformed("a part's headers are too long"));
            }
            if self.eof {
                return Err(MultipartError::Malformed("it ends inside a part's headers"));
            }
            let want = self.available() + 1;
            self.fill_to(want)?;
        }
    }
}

/// A part's body: reads up to the next delimiter.
pub struct PartBody<'a, R> {
    multipart: &'a mut Multipart<R>,
}

impl<R: Read> Read for PartBody<'_, R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let m = &mut *self.multipart;
        if !m.in_body || out.is_empty() {
            return Ok(0);
        }
        let dlen = m.delimiter.len();
        m.fill_to(dlen)?;
        let window = &m.buf[m.start..m.end];
        let (usable, found) = match memmem::find(window, &m.delimiter) {
            Some(at) => (at, true),
            // Keep the last dlen-1 bytes: they may begin a delimiter.
            None if !m.eof => (window.len().saturating_sub(dlen - 1), false),
            None => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the multipart body ends inside a part",
                ))
            }
        };
        if usable == 0 && found {
            m.start += dlen;
            m.in_body = false;
            return Ok(0);
        }
        let n = usable.min(out.len());
        out[..n].copy_from_slice(&window[..n]);
        m.start += n;
        if n == 0 {
            // Too little buffered to decide; read more next time.
            let want = m.available() + 1;
            m.fill_to(want)?;
            return self.read(out);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds the reader a byte at a time, the worst case for boundary detection.
    struct Trickle<'a>(&'a [u8]);
    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() || out.is_empty() {
                return Ok(0);
            }
            out[0] = self.0[0];
            self.0 = &self.0[1..];
            Ok(1)
        }
    }

    fn parts(body: &[u8], boundary: &str, trickle: bool) -> Result<Vec<(Part, Vec<u8>)>, String> {
        let reader: Box<dyn Read> = if trickle {
            Box::new(Trickle(body))
        } else {
            Box::new(body)
        };
        let mut m = Multipart::new(reader, boundary);
        let mut out = Vec::new();
        while let Some(part) = m.next_part().map_err(|e| e.to_string())? {
            let mut data = Vec::new();
            m.body().read_to_end(&mut data).map_err(|e| e.to_string())?;
            out.push((part, data));
        }
        Ok(out)
    }

    const BODY: &[u8] = b"preamble\r\n--XyZ\r\nContent-Disposition: form-data; name=\"kind\"\r\n\r\ncsv.import\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.csv\"\r\nContent-Type: text/csv\r\n\r\na,b\r\n1,\"x\r\n--Xy\"\r\n\r\n--XyZ--\r\nepilogue";

    #[test]
    fn reads_fields_and_files_in_any_chunking() {
        for trickle in [false, true] {
            let got = parts(BODY, "XyZ", trickle).unwrap();
            assert_eq!(got.len(), 2);
            assert_eq!(
                got[0].0,
                Part {
                    name: "kind".into(),
                    filename: None
                }
            );
            assert_eq!(got[0].1, b"csv.import");
            assert_eq!(got[1].0.filename.as_deref(), Some("a.csv"));
            assert_eq!(got[1].1, b"a,b\r\n1,\"x\r\n--Xy\"\r\n");
        }
    }

    #[test]
    fn a_body_may_start_with_the_boundary_and_skip_unread_parts() {
        let body = b"--b\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n1\r\n--b\r\nContent-Disposition: form-data; name=\"y\"\r\n\r\n2\r\n--b--";
        let mut m = Multipart::new(&body[..], "b");
        assert_eq!(m.next_part().unwrap().unwrap().name, "x");
        let second = m.next_part().unwrap().unwrap();
        assert_eq!(second.name, "y");
        let mut data = String::new();
        m.body().read_to_string(&mut data).unwrap();
        assert_eq!(data, "2");
        assert!(m.next_part().unwrap().is_none());
    }

    #[test]
    fn malformed_bodies_are_errors() {
        assert!(parts(
            b"--b\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\nno end",
            "b",
            false
        )
        .is_err());
        assert!(parts(b"nothing here", "b", false).is_err());
        assert!(parts(b"--b\r\nX-Other: 1\r\n\r\nv\r\n--b--", "b", false).is_err());
    }
}
