//! `dataset.update`: updates the rows of a dataset by key from a JSON array of records
//! (objects: column name -> value), the task's IO file; with `upsert=true` a record whose
//! key no row has creates one. The records are read one at a time (`records`) and applied
//! in batches (`Store::begin_update`), so a 100 MB array is never held whole.
//!
//! Each record counts once in TotalRecords and once in exactly one of SucceededRecords
//! (it changed the dataset: a row updated or created), DuplicateRecords (it matched rows
//! already up to date: it repeats what is stored) or FailedRecords. A failed record is
//! named by its key in the message (the first [`MESSAGE_FAILURES`], one line each) and goes
//! to the ERR file with the reason, as a JSON line. The task ends SUCCESS once every record
//! was read, failed ones or not, with a message that is empty when none failed; it ends
//! ERROR when the update as a whole cannot run or stops short (no such dataset or key
//! column, an input that is not a JSON array or breaks off), keeping the batches applied
//! before, as the message says.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Write;
use std::ops::ControlFlow;
use std::time::Instant;

use serde::Serialize;
use serde_json::{Map, Value};

use super::{list_param, percent_of, validate_bool, validate_table};
use crate::kind::{Handler, Param, TaskContext, TaskError};
use crate::records::{read_records, Element, RecordsError};
use crate::store::{UpdateOutcome, UpdateRow, UpdateSession};
use crate::task::{Counts, Params};

/// Records applied per transaction.
const BATCH_RECORDS: usize = 2000;
/// Bytes of records applied per transaction at most (a batch of big records is cut short).
const BATCH_BYTES: u64 = 8 << 20;
/// ERR bytes buffered before they are written to the ERR file.
const ERR_BUFFER: usize = 64 * 1024;
/// The failed records the message names, one line each; a last line says how many more
/// failed (the ERR file has every one). With each line cut to [`SHOWN_NAME_CHARS`] and a
/// short reason, the message stays within about 40 KB.
const MESSAGE_FAILURES: usize = 100;
/// The most characters of a record's name (its key), and of a name in a reason, shown.
const SHOWN_NAME_CHARS: usize = 200;
/// The most characters of one key value shown in a record's name.
const SHOWN_VALUE_CHARS: usize = 64;

pub struct DatasetUpdate {
    max_record_bytes: u64,
    max_value_bytes: u64,
}

impl DatasetUpdate {
    /// The kind, reading records of at most `max_record_bytes` and setting values of at most
    /// `max_value_bytes` (`--max-record-bytes`, `--max-value-bytes`).
    pub fn new(max_record_bytes: u64, max_value_bytes: u64) -> DatasetUpdate {
        DatasetUpdate {
            max_record_bytes,
            max_value_bytes,
        }
    }
}

const PARAMS: [Param; 3] = [
    super::TABLE,
    Param::new(
        "key",
        super::MAX_COLUMN_LIST,
        "comma-separated key columns: each record updates the rows with its values in them",
    ),
    Param::new(
        "upsert",
        5,
        "true: a record whose key no row has creates one",
    ),
];

impl Handler for DatasetUpdate {
    fn kind(&self) -> &'static str {
        "dataset.update"
    }

    fn params(&self) -> &[Param] {
        &PARAMS
    }

    fn takes_records(&self) -> bool {
        true
    }

    fn validate(&self, params: &Params, has_input: bool) -> Result<(), String> {
        if !has_input {
            return Err(
                "dataset.update needs a file: send the JSON array of records as the \
                        request body, or as the form's file part."
                    .into(),
            );
        }
        validate_table(params)?;
        match list_param(params, "key") {
            None => {
                return Err(
                    "The param key is required: name the key columns, comma-separated.".into(),
                )
            }
            Some(key) if key.is_empty() => {
                return Err(
                    "The param key names no column: give comma-separated column names.".into(),
                )
            }
            Some(_) => {}
        }
        validate_bool(params, "upsert")
    }

    fn run(&self, ctx: &mut TaskContext<'_>) -> Result<String, TaskError> {
        let table = ctx.param("table").unwrap_or_default().to_string();
        let mut key = list_param(ctx.params(), "key").unwrap_or_default();
        let mut seen = std::collections::HashSet::new();
        key.retain(|k| seen.insert(k.clone()));
        let upsert = ctx.param("upsert") == Some("true");
        let Some((input, size)) = ctx.input()? else {
            return Err(TaskError::Permanent(
                "File is empty or does not exist.".into(),
            ));
        };
        let started = Instant::now();
        ctx.log(format!(
            "Updating dataset {table} by {} from {:?} ({size} bytes){}",
            key.join(","),
            ctx.io_filename(),
            if upsert {
                ", creating missing rows"
            } else {
                ""
            }
        ));
        let session = match ctx.begin_update(&table, &key, upsert)? {
            Ok(session) => session,
            Err(refused) => {
                let message = format!("Nothing was updated: {refused}.");
                ctx.log(&message);
                return Err(TaskError::Permanent(message));
            }
        };
        let rules = Rules::new(&session.dataset().columns, key, self.max_value_bytes);
        let mut update = Update::new(session, rules);

        let mut stopped = None;
        let mut next_log_percent = 10;
        let read = read_records(input, self.max_record_bytes, |element| {
            let end = element.end;
            let step = update.take(element).and_then(|()| {
                if update.failures.err.len() >= ERR_BUFFER {
                    update.failures.drain_into(ctx)?;
                }
                let percent = percent_of(end, size);
                ctx.set_percent(percent);
                ctx.set_counts(update.counts);
                if percent >= next_log_percent {
                    ctx.log(format!(
                        "{percent}% read: {} records so far",
                        update.counts.total
                    ));
                    next_log_percent = percent / 10 * 10 + 10;
                }
                ctx.checkpoint()
            });
            match step {
                Ok(()) => ControlFlow::Continue(()),
                Err(e) => {
                    stopped = Some(e);
                    ControlFlow::Break(())
                }
            }
        });
        let broken = match (read, stopped) {
            (_, Some(stop)) => return Err(update.abandon(ctx, stop)),
            (Err(RecordsError::Read(e)), None) => return Err(update.abandon(ctx, e.into())),
            (Ok(_), None) => None,
            // Bad input: the records before it were good, and are applied.
            (Err(bad), None) => Some(bad),
        };
        if let Err(stop) = update.finish() {
            return Err(update.abandon(ctx, stop));
        }
        update.failures.drain_into(ctx)?;
        let counts = update.counts;
        ctx.set_counts(counts);
        ctx.log(format!(
            "Read {} records: {} changed the dataset ({} rows created), {} already up to date, \
             {} failed, in {:.3} s",
            counts.total,
            counts.succeeded,
            update.created,
            counts.duplicate,
            counts.failed,
            started.elapsed().as_secs_f64()
        ));
        if let Some(bad) = broken {
            let message = format!("The update stopped: {bad}. {}", applied_before(counts));
            ctx.log(&message);
            return Err(TaskError::Permanent(message));
        }
        Ok(update.failures.message())
    }
}

/// What was done before the update stopped on its input.
fn applied_before(counts: Counts) -> String {
    if counts.total == 0 {
        return "Nothing was updated.".into();
    }
    format!(
        "The {} before it {} applied ({} changed the dataset, {} were already up to date, \
         {} failed); none after it was read.",
        records(counts.total),
        if counts.total == 1 { "was" } else { "were" },
        counts.succeeded,
        counts.duplicate,
        counts.failed
    )
}

fn records(n: u64) -> String {
    match n {
        1 => "1 record".into(),
        n => format!("{n} records"),
    }
}

/// The records of one run on their way to the dataset, and what became of them.
struct Update {
    session: UpdateSession,
    rules: Rules,
    counts: Counts,
    /// Rows created (upsert), for the LOG.
    created: u64,
    /// The batch being gathered: its rows, and an entry for every record read for it, in
    /// order (failed records wait in it too, so that failures are told in input order).
    rows: Vec<UpdateRow>,
    entries: Vec<Entry>,
    batch_bytes: u64,
    /// The entries of the batch sent and not yet answered.
    in_flight: Vec<Entry>,
    failures: Failures,
}

/// A record of a batch: sent to be applied, or failed before it reached the dataset.
enum Entry {
    Apply {
        number: u64,
    },
    Failed {
        number: u64,
        name: String,
        reason: String,
        record: Value,
    },
}

impl Update {
    fn new(session: UpdateSession, rules: Rules) -> Update {
        Update {
            session,
            rules,
            counts: Counts::default(),
            created: 0,
            rows: Vec::new(),
            entries: Vec::new(),
            batch_bytes: 0,
            in_flight: Vec::new(),
            failures: Failures::default(),
        }
    }

    /// Takes one element of the array into the batch, and sends the batch once it is full.
    fn take(&mut self, element: Element) -> Result<(), TaskError> {
        self.counts.total += 1;
        self.batch_bytes += element.end - element.offset;
        // Records are numbered from 1, as a person counts them.
        let number = element.index + 1;
        let entry = match element.record {
            Err(other) => Entry::Failed {
                number,
                name: format!("Record {number}"),
                reason: format!("the record is {}", other.what),
                record: other.value,
            },
            Ok(record) => match self.rules.check(&record) {
                Err(reason) => Entry::Failed {
                    number,
                    name: self.rules.name(&record, number),
                    reason,
                    record: Value::Object(record),
                },
                Ok(()) => {
                    self.rows.push(self.rules.row(record));
                    Entry::Apply { number }
                }
            },
        };
        self.entries.push(entry);
        if self.entries.len() >= BATCH_RECORDS || self.batch_bytes >= BATCH_BYTES {
            self.send()?;
        }
        Ok(())
    }

    /// Sends the batch gathered, and settles the one it waited for.
    fn send(&mut self) -> Result<(), TaskError> {
        self.batch_bytes = 0;
        let rows = std::mem::take(&mut self.rows);
        let entries = std::mem::take(&mut self.entries);
        let answered = self.session.apply(rows)?;
        let settled = std::mem::replace(&mut self.in_flight, entries);
        self.settle(settled, answered);
        Ok(())
    }

    /// Every record is read: sends the last batch and settles it.
    fn finish(&mut self) -> Result<(), TaskError> {
        self.send()?;
        let answered = self.session.wait()?;
        let settled = std::mem::take(&mut self.in_flight);
        self.settle(settled, answered);
        Ok(())
    }

    /// The update stops on `stop` (cancelled, the database failing): the batch in flight,
    /// applied by now, is counted, the batch being gathered is dropped, and the counts say
    /// what was done. Returns `stop`.
    fn abandon(&mut self, ctx: &mut TaskContext<'_>, stop: TaskError) -> TaskError {
        if let Ok(answered) = self.session.wait() {
            let settled = std::mem::take(&mut self.in_flight);
            self.settle(settled, answered);
        }
        let c = &mut self.counts;
        c.total = c.succeeded + c.duplicate + c.failed;
        ctx.set_counts(*c);
        ctx.log(format!(
            "Stopped ({stop}) after {}: {} changed the dataset, {} already up to date, {} \
             failed; the records after them were not applied",
            records(c.total),
            c.succeeded,
            c.duplicate,
            c.failed
        ));
        if let Err(e) = self.failures.drain_into(ctx) {
            log::warn!("task {}: writing its ERR file failed: {e}", ctx.id());
        }
        stop
    }

    /// Counts a batch's records: its entries, and the rows of those applied with their
    /// outcomes, in the same order.
    fn settle(&mut self, entries: Vec<Entry>, answered: Vec<(UpdateRow, UpdateOutcome)>) {
        let mut answered = answered.into_iter();
        for entry in entries {
            match entry {
                Entry::Failed {
                    number,
                    name,
                    reason,
                    record,
                } => {
                    self.counts.failed += 1;
                    self.failures.add(number, &name, &reason, &record);
                }
                Entry::Apply { number } => {
                    // The store answers every row it was sent.
                    let Some((row, outcome)) = answered.next() else {
                        break;
                    };
                    match outcome {
                        UpdateOutcome::Changed => self.counts.succeeded += 1,
                        UpdateOutcome::Created => {
                            self.counts.succeeded += 1;
                            self.created += 1;
                        }
                        UpdateOutcome::Unchanged => self.counts.duplicate += 1,
                        UpdateOutcome::NoSuchRow => {
                            self.counts.failed += 1;
                            let name = self.rules.row_name(&row);
                            let record = self.rules.record_of(row);
                            self.failures.add(number, &name, "no such record", &record);
                        }
                    }
                }
            }
        }
    }
}

/// A dataset column as records name it.
struct Column {
    position: usize,
    /// Its place in the key, if it is a key column.
    key: Option<usize>,
}

/// What a record must be to be applied, and how it becomes a row.
struct Rules {
    columns: HashMap<String, Column>,
    /// The dataset's column names, by position.
    names: Vec<String>,
    key: Vec<String>,
    max_value_bytes: u64,
}

impl Rules {
    /// The rules for a dataset of `columns`, every one of `key` among them.
    fn new(columns: &[String], key: Vec<String>, max_value_bytes: u64) -> Rules {
        let column = |(position, name): (usize, &String)| {
            let key = key.iter().position(|k| k == name);
            (name.clone(), Column { position, key })
        };
        Rules {
            columns: columns.iter().enumerate().map(column).collect(),
            names: columns.to_vec(),
            key,
            max_value_bytes,
        }
    }

    /// Why `record` cannot be applied, if it cannot.
    fn check(&self, record: &Map<String, Value>) -> Result<(), String> {
        for name in &self.key {
            match record.get(name) {
                None => return Err(format!("the key column {} is missing", quoted(name))),
                Some(Value::Null) => {
                    return Err(format!("the key column {} is null", quoted(name)))
                }
                Some(Value::String(s)) if s.is_empty() => {
                    return Err(format!("the key column {} is empty", quoted(name)))
                }
                Some(_) => {}
            }
        }
        for (name, value) in record {
            if !self.columns.contains_key(name) {
                return Err(format!("the dataset has no column {}", quoted(name)));
            }
            let what = match value {
                Value::Object(_) => "an object",
                Value::Array(_) => "an array",
                Value::String(s) if s.len() as u64 > self.max_value_bytes => {
                    return Err(format!(
                        "the value of {} is {} bytes long; a value may take at most {} bytes",
                        quoted(name),
                        s.len(),
                        self.max_value_bytes
                    ))
                }
                _ => continue,
            };
            return Err(format!(
                "the value of {} is {what}; a value is a string, a number, a boolean or null",
                quoted(name)
            ));
        }
        Ok(())
    }

    /// A checked record as the row to apply.
    fn row(&self, record: Map<String, Value>) -> UpdateRow {
        let mut key = vec![String::new(); self.key.len()];
        let mut cells = Vec::with_capacity(record.len());
        for (name, value) in record {
            let Some(column) = self.columns.get(&name) else {
                continue;
            };
            let text = cell_text(value);
            match column.key {
                Some(i) => key[i] = text,
                None => cells.push((column.position, text)),
            }
        }
        UpdateRow { key, cells }
    }

    /// How the message names a record: by its key values (`Case ID: 4528`, every key column
    /// for a composite key), or by its number when they are not all there.
    fn name(&self, record: &Map<String, Value>, number: u64) -> String {
        let mut values = Vec::with_capacity(self.key.len());
        for name in &self.key {
            match record.get(name).and_then(scalar_text) {
                Some(text) if !text.is_empty() => values.push(text),
                _ => return format!("Record {number}"),
            }
        }
        self.key_name(values.iter().map(|v| v.as_ref()))
    }

    fn row_name(&self, row: &UpdateRow) -> String {
        self.key_name(row.key.iter().map(String::as_str))
    }

    fn key_name<'v>(&self, values: impl Iterator<Item = &'v str>) -> String {
        let parts: Vec<String> = (self.key.iter().zip(values))
            .map(|(name, value)| format!("{name}: {}", shown(value, SHOWN_VALUE_CHARS)))
            .collect();
        shown(&parts.join(", "), SHOWN_NAME_CHARS)
    }

    /// A row as a record again, for the ERR file: its key and cells, as the text they set.
    fn record_of(&self, row: UpdateRow) -> Value {
        let mut record = Map::new();
        for (name, value) in self.key.iter().zip(row.key) {
            record.insert(name.clone(), Value::String(value));
        }
        for (position, value) in row.cells {
            record.insert(self.names[position].clone(), Value::String(value));
        }
        Value::Object(record)
    }
}

/// The text a value sets in a cell: a string as it is, a number as serde_json writes it, a
/// boolean as `true` or `false`, null as empty. (Objects and arrays were refused before.)
fn cell_text(value: Value) -> String {
    match value {
        Value::String(s) => s,
        Value::Null => String::new(),
        other => scalar_text(&other).map(Cow::into_owned).unwrap_or_default(),
    }
}

/// The text of a string, number or boolean.
fn scalar_text(value: &Value) -> Option<Cow<'_, str>> {
    match value {
        Value::String(s) => Some(Cow::Borrowed(s)),
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        Value::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
        _ => None,
    }
}

/// A client's text on one line of the message: control characters escaped, cut to `most`
/// characters.
fn shown(text: &str, most: usize) -> String {
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == most {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// A column name a client gave, quoted and cut.
fn quoted(name: &str) -> String {
    format!("{:?}", shown(name, SHOWN_NAME_CHARS))
}

/// The failed records: the message's lines, and the ERR file's.
#[derive(Default)]
struct Failures {
    lines: Vec<String>,
    /// Failed records past the message's lines.
    more: u64,
    /// ERR lines not yet written.
    err: Vec<u8>,
}

/// One line of the ERR file.
#[derive(Serialize)]
struct ErrLine<'a> {
    number: u64,
    error: &'a str,
    record: &'a Value,
}

impl Failures {
    fn add(&mut self, number: u64, name: &str, reason: &str, record: &Value) {
        if self.lines.len() < MESSAGE_FAILURES {
            self.lines.push(format!("{name} failed: {reason}"));
        } else {
            self.more += 1;
        }
        let line = ErrLine {
            number,
            error: reason,
            record,
        };
        // A Value with string keys always serializes.
        if serde_json::to_writer(&mut self.err, &line).is_ok() {
            self.err.push(b'\n');
        }
    }

    fn drain_into(&mut self, ctx: &mut TaskContext<'_>) -> Result<(), TaskError> {
        if !self.err.is_empty() {
            ctx.err_file()?.write_all(&self.err)?;
            self.err.clear();
        }
        Ok(())
    }

    /// The task's message: empty when nothing failed.
    fn message(&self) -> String {
        let mut message = self.lines.join("\n");
        if self.more > 0 {
            let more = match self.more {
                1 => "1 more record".to_string(),
                n => format!("{n} more records"),
            };
            message.push_str(&format!(
                "\n{more} failed; the error file has every failed record, each with the reason."
            ));
        }
        message
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules() -> Rules {
        let columns = ["Case ID", "Region", "status", "note"].map(String::from);
        Rules::new(&columns, vec!["Case ID".into(), "Region".into()], 10)
    }

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            other => panic!("{other}"),
        }
    }

    #[test]
    fn a_record_is_checked_named_by_its_key_and_made_a_row() {
        let rules = rules();
        let good =
            object(json!({"status": 5, "Region": "EU", "Case ID": "4528a261", "note": null}));
        assert_eq!(rules.check(&good), Ok(()));
        assert_eq!(rules.name(&good, 3), "Case ID: 4528a261, Region: EU");
        let row = rules.row(good);
        assert_eq!(row.key, ["4528a261", "EU"]);
        assert_eq!(row.cells, [(2, "5".to_string()), (3, String::new())]);
        assert_eq!(rules.row_name(&row), "Case ID: 4528a261, Region: EU");
        assert_eq!(
            rules.record_of(row),
            json!({"Case ID": "4528a261", "Region": "EU", "status": "5", "note": ""})
        );
        // A number or a boolean is a key value too.
        let numbered = object(json!({"Case ID": 12, "Region": true}));
        assert_eq!(rules.name(&numbered, 1), "Case ID: 12, Region: true");
    }

    #[test]
    fn a_record_that_cannot_be_applied_says_why_and_is_named_by_its_number_without_a_key() {
        let rules = rules();
        let cases = [
            (json!({"Region": "EU"}), "the key column \"Case ID\" is missing"),
            (json!({"Case ID": "", "Region": "EU"}), "the key column \"Case ID\" is empty"),
            (json!({"Case ID": null, "Region": "EU"}), "the key column \"Case ID\" is null"),
            (
                json!({"Case ID": "1", "Region": "EU", "colour": "red"}),
                "the dataset has no column \"colour\"",
            ),
            (
                json!({"Case ID": "1", "Region": "EU", "note": {"a": 1}}),
                "the value of \"note\" is an object; a value is a string, a number, a boolean or null",
            ),
            (
                json!({"Case ID": ["1"], "Region": "EU"}),
                "the value of \"Case ID\" is an array; a value is a string, a number, a boolean or null",
            ),
            (
                json!({"Case ID": "1", "Region": "EU", "note": "12345678901"}),
                "the value of \"note\" is 11 bytes long; a value may take at most 10 bytes",
            ),
        ];
        for (record, reason) in cases {
            let record = object(record);
            assert_eq!(rules.check(&record), Err(reason.to_string()));
        }
        let keyless = object(json!({"Case ID": {"x": 1}, "Region": "EU"}));
        assert_eq!(rules.name(&keyless, 7), "Record 7");
    }

    #[test]
    fn what_a_client_sent_is_shown_on_one_line_and_cut() {
        assert_eq!(shown("a\nb\u{1b}", 10), "a\\nb\\u{1b}");
        assert_eq!(shown(&"é".repeat(100), 3), "ééé…");
        assert_eq!(quoted("x\"y"), "\"x\\\"y\"");
        let rules = rules();
        let long = object(json!({"Case ID": "c".repeat(500), "Region": "r\n"}));
        let name = rules.name(&long, 1);
        assert!(name.starts_with(&format!("Case ID: {}…, Region: r\\n", "c".repeat(64))));
    }

    #[test]
    fn the_message_names_the_first_failures_then_counts_the_rest() {
        let mut failures = Failures::default();
        assert_eq!(failures.message(), "");
        for n in 1..=MESSAGE_FAILURES as u64 + 2 {
            failures.add(n, &format!("id: {n}"), "no such record", &json!({"id": n}));
        }
        let message = failures.message();
        let lines: Vec<&str> = message.lines().collect();
        assert_eq!(lines.len(), MESSAGE_FAILURES + 1);
        assert_eq!(lines[0], "id: 1 failed: no such record");
        assert_eq!(
            lines[MESSAGE_FAILURES],
            "2 more records failed; the error file has every failed record, each with the reason."
        );
        let err = String::from_utf8(failures.err.clone()).unwrap();
        assert_eq!(
            err.lines().next().unwrap(),
            r#"{"number":1,"error":"no such record","record":{"id":1}}"#
        );
        assert_eq!(err.lines().count(), MESSAGE_FAILURES + 2);
    }
}
