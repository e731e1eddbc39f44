//! The records reader: elements one at a time with their offsets, what is not a record,
//! the errors with their offsets, and a large array streamed through a bounded window.

use std::io::{self, Read};
use std::ops::ControlFlow;
use std::rc::Rc;

use serde_json::{json, Value};

use super::*;

const BOUND: u64 = 1 << 20;

/// Every element of `input`, or the error.
fn elements(input: &[u8]) -> Result<Vec<Element>, RecordsError> {
    let mut all = Vec::new();
    read_records(input, BOUND, |e| {
        all.push(e);
        ControlFlow::Continue(())
    })?;
    Ok(all)
}

fn records(input: &str) -> Vec<Value> {
    elements(input.as_bytes())
        .unwrap()
        .into_iter()
        .map(|e| Value::Object(e.record.expect("a record")))
        .collect()
}

fn error(input: &str) -> String {
    elements(input.as_bytes()).unwrap_err().to_string()
}

#[test]
fn an_empty_array_and_whitespace_anywhere_read_as_such() {
    assert!(records("[]").is_empty());
    assert!(records(" \r\n\t[ \n ] \n").is_empty());
    assert_eq!(
        records("\n[ {\"a\" : \"1\"} ,\n\t{ } ]\n\n"),
        vec![json!({"a": "1"}), json!({})]
    );
    assert_eq!(
        count_records(&b" [ {} , {\"x\":[1]} ] "[..], BOUND).unwrap(),
        2
    );
    assert_eq!(count_records(&b"[]"[..], BOUND).unwrap(), 0);
    // A byte order mark before the array is skipped.
    assert_eq!(records("\u{feff}[{\"a\":1}]"), vec![json!({"a": 1})]);
}

#[test]
fn nested_values_and_key_order_are_kept_and_offsets_name_each_element() {
    let input = r#"[{"z":1,"a":{"b":[1,{"c":null}]},"m":"é\n"}, {"k":true}]"#;
    let all = elements(input.as_bytes()).unwrap();
    assert_eq!(all.len(), 2);
    let first = all[0].record.as_ref().unwrap();
    assert_eq!(first.keys().collect::<Vec<_>>(), ["z", "a", "m"]);
    assert_eq!(first["a"], json!({"b": [1, {"c": null}]}));
    assert_eq!(first["m"], "é\n");
    assert_eq!((all[0].index, all[0].offset), (0, 1));
    assert_eq!(
        &input[all[1].offset as usize..all[1].end as usize],
        r#"{"k":true}"#
    );
    assert_eq!(all[1].index, 1);
}

#[test]
fn elements_that_are_not_records_are_handed_on_with_what_they_are() {
    let all = elements(br#"[{"a":1}, "x", [1,2], 3, null, true, {"a":1,"a":2}, {"b":2}]"#).unwrap();
    let what: Vec<Option<String>> = all
        .iter()
        .map(|e| e.record.as_ref().err().map(|n| n.what.clone()))
        .collect();
    assert_eq!(
        what,
        [
            None,
            Some("a string, not an object".to_string()),
            Some("an array, not an object".to_string()),
            Some("a number, not an object".to_string()),
            Some("null, not an object".to_string()),
            Some("a boolean, not an object".to_string()),
            Some("an object naming \"a\" twice".to_string()),
            None,
        ]
    );
    assert_eq!(all[2].record.as_ref().unwrap_err().value, json!([1, 2]));
    // Counting refuses them, naming the record and where it starts.
    let refused = count_records(&br#"[{}, {}, "x"]"#[..], BOUND).unwrap_err();
    assert_eq!(
        refused.to_string(),
        "record 3 (at byte 9) is not an object but a string"
    );
}

#[test]
fn an_input_that_is_not_an_array_is_named_with_where_and_what() {
    assert_eq!(
        error(r#"{"a": 1}"#),
        "the records are not a JSON array: expected '[' at byte 0, found '{'"
    );
    assert_eq!(
        error("  \n x"),
        "the records are not a JSON array: expected '[' at byte 4, found 'x'"
    );
    assert_eq!(
        error(""),
        "the records are not a JSON array: the input is empty"
    );
    assert_eq!(
        error(" \n"),
        "the records are not a JSON array: the input holds only whitespace"
    );
    let binary = elements(b"\x00[]").unwrap_err().to_string();
    assert!(binary.ends_with("found the byte 0x00"), "{binary}");
}

#[test]
fn bad_syntax_is_named_with_its_byte_offset() {
    // Offsets from 0: the byte the parser could not take.
    let cases = [
        (r#"[{"a":1} {"b":2}]"#, 9, "expected `,` or `]`"),
        (r#"[{"a":1},]"#, 9, "trailing comma"),
        (r#"[{"a":tru}]"#, 9, "expected ident"),
        (r#"[{"a":1}"#, 8, "EOF while parsing a list"),
        (r#"[{"a":1}] x"#, 10, "trailing characters"),
        (r#"[{"a" 1}]"#, 6, "expected `:`"),
    ];
    for (input, offset, what) in cases {
        match elements(input.as_bytes()) {
            Err(RecordsError::Syntax {
                offset: at,
                what: said,
            }) => {
                assert_eq!((at, said.as_str()), (offset, what), "{input}");
            }
            other => panic!("{input}: {other:?}"),
        }
    }
    // Over several lines, after whitespace and a byte order mark, deep in a record: the
    // offset is still the byte's, though the parser read on before it gave up.
    let pretty = "\u{feff}\n [\n  {\"a\": 1},\n  {\"a\": 2}\n  {\"a\": 3}\n]\n";
    let expected = pretty.rfind("{\"a\": 3}").unwrap() as u64;
    assert!(
        matches!(elements(pretty.as_bytes()), Err(RecordsError::Syntax { offset, .. }) if offset == expected)
    );
    let nested = "[\n {\"a\": {\"b\": [1,\n tru]}\n }\n]";
    let expected = nested.find("tru]").unwrap() as u64 + 3;
    assert!(
        matches!(elements(nested.as_bytes()), Err(RecordsError::Syntax { offset, .. }) if offset == expected)
    );
    assert_eq!(
        error(r#"[{"a":1},{"#),
        "the records are not valid JSON at byte 10: EOF while parsing an object"
    );
    // The records before the error were handed on.
    let mut seen = 0;
    let result = read_records(&br#"[{}, {}, {"#[..], BOUND, |_| {
        seen += 1;
        ControlFlow::Continue(())
    });
    assert!(
        matches!(result, Err(RecordsError::Syntax { .. })),
        "{result:?}"
    );
    assert_eq!(seen, 2);
}

#[test]
fn a_record_longer_than_the_bound_stops_the_reading_naming_it() {
    let long = format!(r#"[{{"a":"1"}}, {{"a":"{}"}}, {{}}]"#, "x".repeat(2000));
    let stopped = read_records(long.as_bytes(), 1024, |_| ControlFlow::Continue(()));
    assert_eq!(
        stopped.unwrap_err().to_string(),
        "record 2 (at byte 12) is longer than 1024 bytes"
    );
    assert!(matches!(
        count_records(long.as_bytes(), 1024),
        Err(RecordsError::TooLong { index: 1, .. })
    ));
    // Whitespace around the array is not a record's.
    let padded = format!("{}[{{}}]{}", " ".repeat(5000), " ".repeat(5000));
    assert_eq!(count_records(padded.as_bytes(), 1024).unwrap(), 1);
}

#[test]
fn a_caller_may_stop_the_reading() {
    let mut seen = 0;
    let result = read_records(&b"[{}, {}, {}]"[..], BOUND, |_| {
        seen += 1;
        if seen == 2 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    });
    assert!(matches!(result, Err(RecordsError::Stopped)), "{result:?}");
    assert_eq!(seen, 2);
}

#[test]
fn a_failing_input_is_a_read_error_carrying_its_cause() {
    struct Failing;
    impl Read for Failing {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::Error::other("the disk is gone"))
        }
    }
    match read_records(
        io::Cursor::new(b"[{}".to_vec()).chain(Failing),
        BOUND,
        |_| ControlFlow::Continue(()),
    ) {
        Err(RecordsError::Read(e)) => assert_eq!(e.to_string(), "the disk is gone"),
        other => panic!("{other:?}"),
    }
}

/// An endless-looking input made on the fly: `[` then `count` records of about 100 bytes,
/// then `]`. It notes how far it has been read, for the consumer to compare with how far it
/// has been handed records.
struct Generated {
    count: u64,
    made: u64,
    pending: Vec<u8>,
    handed_out: Rc<Cell<u64>>,
}

impl Generated {
    /// The next piece of the input, or None at its end.
    fn make(&mut self) -> Option<Vec<u8>> {
        let n = self.made;
        if n > self.count {
            return None;
        }
        self.made += 1;
        if n == self.count {
            return Some(b"]".to_vec());
        }
        let mut piece = if n == 0 { b"[".to_vec() } else { b",".to_vec() };
        let record = json!({"id": n.to_string(), "note": "n".repeat(60), "nested": {"n": [n]}});
        piece.extend_from_slice(record.to_string().as_bytes());
        Some(piece)
    }
}

impl Read for Generated {
    /// Fills as much of `buf` as asked, as a file would.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut n = 0;
        while n < buf.len() {
            if self.pending.is_empty() {
                match self.make() {
                    Some(piece) => self.pending = piece,
                    None => break,
                }
            }
            let take = (buf.len() - n).min(self.pending.len());
            buf[n..n + take].copy_from_slice(&self.pending[..take]);
            self.pending.drain(..take);
            n += take;
        }
        self.handed_out.set(self.handed_out.get() + n as u64);
        Ok(n)
    }
}

#[test]
fn a_large_array_streams_through_holding_one_record_at_a_time() {
    const RECORDS: u64 = 250_000;
    let handed_out = Rc::new(Cell::new(0));
    let input = Generated {
        count: RECORDS,
        made: 0,
        pending: Vec::new(),
        handed_out: handed_out.clone(),
    };
    let mut next_id = 0u64;
    let mut widest_lag = 0;
    let read = read_records(input, 1024, |element| {
        let record = element.record.expect("a record");
        assert_eq!(record["id"], next_id.to_string());
        next_id += 1;
        // The reader never runs further ahead of the record it hands on than its buffer
        // (and the generator's one record in making): it holds no array.
        let lag = handed_out.get() - element.end;
        widest_lag = widest_lag.max(lag);
        assert!(lag <= BUFFER as u64 + 200, "{lag} bytes read ahead");
        ControlFlow::Continue(())
    });
    assert_eq!(read.unwrap(), RECORDS);
    assert_eq!(next_id, RECORDS);
    assert!(
        handed_out.get() > 20 << 20,
        "a large input: {}",
        handed_out.get()
    );
    assert!(widest_lag > 0);
}
