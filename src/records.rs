//! Reading a JSON array of records (objects: column name -> value) from any reader, one
//! record at a time, never holding the array: the IO file of `dataset.update`, and the body
//! of a bulk API request, which may be 100 MB.
//!
//! Two entry points, over any [`Read`]:
//! - [`read_records`] hands each element of the array to its caller as it is read, with its
//!   position and byte offsets: a record (an object), or what stands there instead (a
//!   string, a nested array, an object naming a key twice), for the caller to count as a
//!   failed record while the others go on.
//! - [`count_records`] checks that a whole input is a JSON array of objects and counts
//!   them, keeping none of them (nothing is parsed into memory but one key at a time), and
//!   reads the input to its end: what a route streaming a body into an upload (through a
//!   tee) calls to refuse a body that is not one.
//!
//! Each element, with the separator and whitespace before it, may take at most
//! `max_record_bytes` of the input: the bound is kept by the reader under the parser, so
//! one endless record cannot take the memory. A record past it, anything that is not JSON,
//! or an input that is not an array ends the reading with a [`RecordsError`] naming the
//! byte offset (from 0) where it went wrong. A UTF-8 byte order mark before the array is
//! skipped, as some Windows tools write one.
//!
//! serde_json does the parsing (its `StreamDeserializer` reads a sequence of values, not an
//! array's elements): a [`Visitor`] over the array's sequence takes one element at a time
//! and hands it on before it asks for the next.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Read};
use std::ops::ControlFlow;
use std::rc::Rc;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// The input is read through a buffer of this size (serde_json asks for one byte at a time).
const BUFFER: usize = 64 * 1024;
/// The line starts kept to place serde_json's errors (see `Shared::lines`): it reads on at
/// most a few bytes and the whitespace after them, so an error is rarely a line behind.
const KEPT_LINES: usize = 1024;

/// One element of the array, as read.
#[derive(Debug)]
pub(crate) struct Element {
    /// Its position in the array, from 0.
    pub index: u64,
    /// The byte offset of its first byte in the input.
    pub offset: u64,
    /// How many bytes of the input have been read once it was (at least its end).
    pub end: u64,
    /// The record, or why the element is not one.
    pub record: Result<Map<String, Value>, NotARecord>,
}

/// An element that is not a record, with what it is.
#[derive(Debug)]
pub(crate) struct NotARecord {
    /// The element as read (for an object naming a key twice, its later value).
    pub value: Value,
    /// What it is, in words: `a string, not an object`, `an object naming "a" twice`.
    pub what: String,
}

/// Why an input could not be read as records. Offsets count bytes from 0; records count
/// from 1, as a person does.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RecordsError {
    /// The input does not start with `[` (`expected '[' at byte 0, found '{'`), or is empty.
    #[error("the records are not a JSON array: {0}")]
    NotAnArray(String),
    /// Not JSON, or the array is cut short; `what` is serde_json's words.
    #[error("the records are not valid JSON at byte {offset}: {what}")]
    Syntax { offset: u64, what: String },
    /// An element longer than the bound.
    #[error("record {} (at byte {offset}) is longer than {limit} bytes", .index + 1)]
    TooLong { index: u64, offset: u64, limit: u64 },
    /// From [`count_records`] only: an element that is not an object.
    #[error("record {} (at byte {offset}) is not an object but {what}", .index + 1)]
    NotAnObject {
        index: u64,
        offset: u64,
        what: String,
    },
    /// The input itself failed (for a stored file, the database's error inside).
    #[error("the records could not be read: {0}")]
    Read(#[source] io::Error),
    /// The caller of [`read_records`] asked to stop.
    #[error("the reading was stopped")]
    Stopped,
}

/// Reads a JSON array from `input`, calling `each` with every element in turn, until the
/// end of the input (whitespace may follow the array, nothing else) or until `each` breaks
/// (`Stopped`). Returns how many elements were read. Holds one element at a time.
pub(crate) fn read_records<R: Read>(
    input: R,
    max_record_bytes: u64,
    mut each: impl FnMut(Element) -> ControlFlow<()>,
) -> Result<u64, RecordsError> {
    walk(input, max_record_bytes, Mode::Read(&mut each))
}

/// Checks that `input` is a JSON array of objects, each within `max_record_bytes`, reading
/// it to its end, and returns how many objects it holds. Keeps none of them.
pub(crate) fn count_records<R: Read>(input: R, max_record_bytes: u64) -> Result<u64, RecordsError> {
    walk(input, max_record_bytes, Mode::Count)
}

/// What to do with each element.
enum Mode<'f> {
    Read(&'f mut dyn FnMut(Element) -> ControlFlow<()>),
    Count,
}

fn walk<R: Read>(input: R, limit: u64, mode: Mode<'_>) -> Result<u64, RecordsError> {
    let shared = Rc::new(Shared {
        limit,
        ..Shared::default()
    });
    let mut counted = Counted::new(input, shared.clone());
    expect_array(&mut counted, &shared)?;
    shared.start_lines();
    // The `[` was read above; serde_json reads it again from here, then the rest.
    let mut de = serde_json::Deserializer::from_reader(io::Cursor::new(*b"[").chain(counted));
    let read = de
        .deserialize_seq(Array {
            shared: &shared,
            mode,
        })
        .and_then(|count| de.end().map(|()| count));
    read.map_err(|e| shared.explain(e))
}

/// Reads past whitespace and a byte order mark to the array's `[`.
fn expect_array(input: &mut impl Read, shared: &Shared) -> Result<(), RecordsError> {
    let mut next = || {
        let mut byte = [0u8];
        loop {
            match input.read(&mut byte) {
                Ok(0) => return Ok(None),
                Ok(_) => return Ok(Some(byte[0])),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(RecordsError::Read(e)),
            }
        }
    };
    let mut offset = 0;
    loop {
        match next()? {
            None if offset == 0 => {
                return Err(RecordsError::NotAnArray("the input is empty".into()))
            }
            None => {
                return Err(RecordsError::NotAnArray(
                    "the input holds only whitespace".into(),
                ))
            }
            Some(b'[') => return Ok(()),
            Some(b' ' | b'\t' | b'\n' | b'\r') => {}
            Some(0xEF) if offset == 0 && next()? == Some(0xBB) && next()? == Some(0xBF) => {}
            Some(other) => {
                return Err(RecordsError::NotAnArray(format!(
                    "expected '[' at byte {offset}, found {}",
                    describe_byte(other)
                )))
            }
        }
        offset = shared.pos.get();
    }
}

fn describe_byte(byte: u8) -> String {
    if byte.is_ascii_graphic() {
        format!("'{}'", byte as char)
    } else {
        format!("the byte 0x{byte:02X}")
    }
}

/// What the reader under the parser and the visitors over it share (one thread).
#[derive(Default)]
struct Shared {
    /// Bytes read from the input so far.
    pos: Cell<u64>,
    /// Where the element being read began (with the separator before it): the bound counts
    /// from here. None outside the array, where only whitespace, which costs no memory, may
    /// stand.
    bound_from: Cell<Option<u64>>,
    limit: u64,
    /// Set when the bound stopped the reading.
    too_long: Cell<bool>,
    /// The offsets where the last lines of the parser's input start (it begins at the
    /// array's `[`, line 1), numbered as serde_json numbers them: its errors name a line
    /// and a column, and it reads on past an error (to close what is open) before it
    /// returns it, so where the reading stands then is not where the error is.
    lines: RefCell<VecDeque<(u64, u64)>>,
    /// The element being read: its index and its first byte's offset.
    index: Cell<u64>,
    offset: Cell<u64>,
    /// Why the reading stopped, when a visitor stopped it (serde_json's error then says
    /// only that one did).
    failure: RefCell<Option<RecordsError>>,
}

impl Shared {
    fn start_element(&self, index: u64) {
        self.index.set(index);
        self.offset.set(self.pos.get());
        self.bound_from.set(Some(self.pos.get()));
    }

    /// The parser is to begin at the `[` just read.
    fn start_lines(&self) {
        let mut lines = self.lines.borrow_mut();
        lines.clear();
        lines.push_back((1, self.pos.get() - 1));
    }

    /// Notes the line breaks among `bytes`, read at `at`.
    fn note_lines(&self, bytes: &[u8], at: u64) {
        // The parser reads a byte at a time: the usual case is one that is no line break.
        if !bytes.contains(&b'\n') {
            return;
        }
        let mut lines = self.lines.borrow_mut();
        let Some(&(mut line, _)) = lines.back() else {
            return;
        };
        for i in memchr::memchr_iter(b'\n', bytes) {
            line += 1;
            if lines.len() == KEPT_LINES {
                lines.pop_front();
            }
            lines.push_back((line, at + i as u64 + 1));
        }
    }

    /// Where line `line` of the parser's input starts, if it is among the last lines.
    fn line_start(&self, line: u64) -> Option<u64> {
        let lines = self.lines.borrow();
        lines
            .iter()
            .rev()
            .find(|&&(l, _)| l == line)
            .map(|&(_, start)| start)
    }

    /// A visitor stops the reading for `why`.
    fn stop<E: de::Error>(&self, why: RecordsError) -> E {
        *self.failure.borrow_mut() = Some(why);
        E::custom("stopped")
    }

    /// The error behind serde_json's.
    fn explain(&self, e: serde_json::Error) -> RecordsError {
        if let Some(failure) = self.failure.borrow_mut().take() {
            return failure;
        }
        if self.too_long.get() {
            return RecordsError::TooLong {
                index: self.index.get(),
                offset: self.offset.get(),
                limit: self.limit,
            };
        }
        let full = e.to_string();
        let position = format!(" at line {} column {}", e.line(), e.column());
        let what = full.strip_suffix(&position).unwrap_or(&full).to_string();
        // serde_json's column counts the bytes of the line read when it gave up.
        let read_to = self
            .line_start(e.line() as u64)
            .map(|start| start + e.column() as u64);
        let pos = read_to.unwrap_or(self.pos.get());
        match e.classify() {
            serde_json::error::Category::Io => RecordsError::Read(e.into()),
            // At the end: nothing more came.
            serde_json::error::Category::Eof => RecordsError::Syntax { offset: pos, what },
            // serde_json stops at the byte it could not take, the last one read.
            _ => RecordsError::Syntax {
                offset: pos.saturating_sub(1),
                what,
            },
        }
    }
}

/// The input as the parser reads it, through a buffer: counted, and refused past the bound
/// of an element. (One layer: serde_json asks for a byte at a time, and each layer under it
/// costs a call per byte.)
struct Counted<R> {
    inner: R,
    buf: Box<[u8]>,
    /// The bytes of `buf` not yet handed out.
    start: usize,
    end: usize,
    shared: Rc<Shared>,
}

impl<R: Read> Counted<R> {
    fn new(inner: R, shared: Rc<Shared>) -> Counted<R> {
        Counted {
            inner,
            buf: vec![0; BUFFER].into_boxed_slice(),
            start: 0,
            end: 0,
            shared,
        }
    }
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let shared = &*self.shared;
        let mut room = out.len();
        if let Some(from) = shared.bound_from.get() {
            let used = shared.pos.get() - from;
            if used >= shared.limit && !out.is_empty() {
                shared.too_long.set(true);
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "a record is longer than its bound",
                ));
            }
            room = room.min(usize::try_from(shared.limit - used).unwrap_or(usize::MAX));
        }
        if self.start == self.end && room > 0 {
            self.end = self.inner.read(&mut self.buf)?;
            self.start = 0;
        }
        let n = room.min(self.end - self.start);
        out[..n].copy_from_slice(&self.buf[self.start..self.start + n]);
        self.start += n;
        shared.note_lines(&out[..n], shared.pos.get());
        shared.pos.set(shared.pos.get() + n as u64);
        Ok(n)
    }
}

/// The array: hands on (or checks) one element at a time.
struct Array<'a, 'f> {
    shared: &'a Shared,
    mode: Mode<'f>,
}

impl<'de> Visitor<'de> for Array<'_, '_> {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON array of records")
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<u64, A::Error> {
        let shared = self.shared;
        let mut index = 0;
        loop {
            shared.start_element(index);
            let more = match &mut self.mode {
                Mode::Count => seq.next_element_seed(CheckObject(shared))?.is_some(),
                Mode::Read(each) => match seq.next_element_seed(ReadElement(shared))? {
                    None => false,
                    Some(record) => {
                        let element = Element {
                            index,
                            offset: shared.offset.get(),
                            end: shared.pos.get(),
                            record,
                        };
                        if each(element).is_break() {
                            return Err(shared.stop(RecordsError::Stopped));
                        }
                        true
                    }
                },
            };
            if !more {
                break;
            }
            index += 1;
        }
        shared.bound_from.set(None);
        Ok(index)
    }
}

/// Notes where an element starts: serde_json has read its first byte (to see that the
/// array goes on) when it hands the element over.
fn element_starts(shared: &Shared) {
    shared.offset.set(shared.pos.get().saturating_sub(1));
}

/// One element, read whole.
struct ReadElement<'a>(&'a Shared);

impl<'de> DeserializeSeed<'de> for ReadElement<'_> {
    type Value = Result<Map<String, Value>, NotARecord>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        element_starts(self.0);
        d.deserialize_any(ElementVisitor)
    }
}

struct ElementVisitor;

fn other(value: Value, what: &str) -> Result<Map<String, Value>, NotARecord> {
    Err(NotARecord {
        value,
        what: format!("{what}, not an object"),
    })
}

impl<'de> Visitor<'de> for ElementVisitor {
    type Value = Result<Map<String, Value>, NotARecord>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a record")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut record = Map::new();
        let mut twice = None;
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value::<Value>()?;
            if twice.is_none() && record.contains_key(&key) {
                twice = Some(key.clone());
            }
            record.insert(key, value);
        }
        Ok(match twice {
            None => Ok(record),
            Some(key) => Err(NotARecord {
                value: Value::Object(record),
                what: format!("an object naming {key:?} twice"),
            }),
        })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Value>()? {
            items.push(item);
        }
        Ok(other(Value::Array(items), "an array"))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(other(Value::String(v.to_string()), "a string"))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(other(Value::String(v), "a string"))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(other(Value::Bool(v), "a boolean"))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(other(Value::Number(v.into()), "a number"))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(other(Value::Number(v.into()), "a number"))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        let number = Number::from_f64(v).map_or(Value::Null, Value::Number);
        Ok(other(number, "a number"))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(other(Value::Null, "null"))
    }
}

/// One element, checked to be an object and skipped.
struct CheckObject<'a>(&'a Shared);

impl<'de> DeserializeSeed<'de> for CheckObject<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        element_starts(self.0);
        d.deserialize_any(self)
    }
}

impl CheckObject<'_> {
    fn not_an_object<E: de::Error>(&self, what: &str) -> E {
        let shared = self.0;
        shared.stop(RecordsError::NotAnObject {
            index: shared.index.get(),
            offset: shared.offset.get(),
            what: what.to_string(),
        })
    }
}

impl<'de> Visitor<'de> for CheckObject<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(self.not_an_object("an array"))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(self.not_an_object("a string"))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(self.not_an_object("a boolean"))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(self.not_an_object("a number"))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(self.not_an_object("a number"))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(self.not_an_object("a number"))
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(self.not_an_object("null"))
    }
}

#[cfg(test)]
mod tests;
