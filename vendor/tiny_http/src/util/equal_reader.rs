use std::io::Read;
use std::io::Result as IoResult;

use super::{drain, Abandon};

/// A `Reader` that reads exactly the number of bytes from a sub-reader.
///
/// If the limit is reached, it returns EOF. taskbox patch: if the limit is not reached
/// when the destructor is called, the remaining bytes are read and thrown away through a
/// small buffer, at most `max_drain` of them (not into one buffer of their size); if that
/// does not reach the end, the sub-reader is abandoned (the connection ends).
pub struct EqualReader<R>
where
    R: Read + Abandon,
{
    reader: R,
    size: usize,
    max_drain: usize,
}

impl<R> EqualReader<R>
where
    R: Read + Abandon,
{
    pub fn new(reader: R, size: usize, max_drain: usize) -> EqualReader<R> {
        EqualReader {
            reader,
            size,
            max_drain,
        }
    }
}

impl<R> Read for EqualReader<R>
where
    R: Read + Abandon,
{
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        if self.size == 0 {
            return Ok(0);
        }

        let buf = if buf.len() < self.size {
            buf
        } else {
            &mut buf[..self.size]
        };

        match self.reader.read(buf) {
            Ok(len) => {
                self.size -= len;
                Ok(len)
            }
            err @ Err(_) => err,
        }
    }
}

impl<R> Drop for EqualReader<R>
where
    R: Read + Abandon,
{
    fn drop(&mut self) {
        if self.size > 0 {
            let max_drain = self.max_drain;
            drain(self, max_drain);
        }
        if self.size > 0 {
            self.reader.abandon();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Abandon;
    use super::EqualReader;
    use std::io::{Cursor, Read};

    /// A source that records whether it was given up.
    struct Source(Cursor<&'static [u8]>, bool);

    impl Read for Source {
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
    fn test_limit() {
        let mut source = Source(Cursor::new(b"hello world"), false);
        {
            let mut equal_reader = EqualReader::new(&mut source, 5, 0);
            let mut string = String::new();
            equal_reader.read_to_string(&mut string).unwrap();
            assert_eq!(string, "hello");
        }
        assert!(!source.1);
        let mut string = String::new();
        source.read_to_string(&mut string).unwrap();
        assert_eq!(string, " world");
    }

    #[test]
    fn a_body_dropped_before_its_end_is_drained_within_the_budget() {
        let mut source = Source(Cursor::new(b"hello world"), false);
        {
            let mut equal_reader = EqualReader::new(&mut source, 5, 4);
            let mut vec = [0];
            equal_reader.read_exact(&mut vec).unwrap();
            assert_eq!(vec[0], b'h');
        }
        assert!(!source.1);
        assert_eq!(source.0.position(), 5);
    }

    #[test]
    fn a_body_dropped_further_than_the_budget_from_its_end_gives_its_source_up() {
        let mut source = Source(Cursor::new(b"hello world"), false);
        {
            let mut equal_reader = EqualReader::new(&mut source, 5, 3);
            let mut vec = [0];
            equal_reader.read_exact(&mut vec).unwrap();
        }
        assert!(source.1);
        assert_eq!(source.0.position(), 4);
    }
}
