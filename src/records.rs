//! Records: a JSON array of objects, read as a stream (interim: the checking half; the
//! reader that yields each record comes with the dataset.update kind).

use std::io::Read;

use serde::de::{Deserializer, IgnoredAny, SeqAccess, Visitor};

/// Why an input is not a JSON array of records.
#[derive(Debug, thiserror::Error)]
pub enum RecordsError {
    /// Reading the input failed.
    #[error("{0}")]
    Io(std::io::Error),
    /// The input is not a JSON array of objects.
    #[error("{0}")]
    Syntax(String),
}

/// Checks that `input` is one JSON array of objects and nothing else, holding no record
/// whole; the number of records.
pub fn count(input: impl Read) -> Result<u64, RecordsError> {
    let mut de = serde_json::Deserializer::from_reader(input);
    let n = de.deserialize_seq(CountObjects).map_err(from_json)?;
    de.end().map_err(from_json)?;
    Ok(n)
}

fn from_json(e: serde_json::Error) -> RecordsError {
    if e.is_io() {
        return RecordsError::Io(e.into());
    }
    RecordsError::Syntax(e.to_string())
}

struct CountObjects;

impl<'de> Visitor<'de> for CountObjects {
    type Value = u64;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an array of records (objects)")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<u64, A::Error> {
        let mut n = 0u64;
        while seq.next_element::<Object>()?.is_some() {
            n += 1;
        }
        Ok(n)
    }
}

/// An object, skipped.
struct Object;

impl<'de> serde::Deserialize<'de> for Object {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Object, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Object;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a record (an object)")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut map: M,
            ) -> Result<Object, M::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Object)
            }
        }
        d.deserialize_map(V)
    }
}
