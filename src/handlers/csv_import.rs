//! `csv.import`: loads a CSV file (RFC 4180, header row, UTF-8, optional BOM) into a
//! dataset. Each data row is counted once: succeeded, duplicate (its key was seen) or failed
//! (wrong number of fields, an empty key value, not UTF-8). Failed rows go to the ERR file
//! with the reason; the LOG file tells the story; PercentComplete follows the bytes read.

use std::cell::Cell;
use std::io::{self, BufReader, Read, Write};
use std::rc::Rc;
use std::time::Instant;

use super::csv_format::{defuse_formula, restore_formula, write_record};
use super::{list_param, percent_of, validate_table};
use crate::kind::{store_error_in, Handler, Param, TaskContext, TaskError};
use crate::store::{DatasetError, ImportSession, RowOutcome};
use crate::task::{Counts, Params};

/// Rows inserted per transaction.
const BATCH_ROWS: usize = 2000;
/// Bytes of rows inserted per transaction at most (a batch of wide rows is cut short).
const BATCH_BYTES: usize = 8 << 20;
/// The longest record (a row, all its fields) an import accepts.
pub const MAX_RECORD_BYTES: u64 = 16 << 20;

/// ERR bytes buffered before they are written to the ERR file.
const ERR_BUFFER: usize = 64 * 1024;

pub struct CsvImport;

/// The params of csv.import (the first two are also the test kind debug.import's).
pub(super) const PARAMS: [Param; 3] = [
    super::TABLE,
    Param::new(
        "key",
        super::MAX_COLUMN_LIST,
        "comma-separated key columns: rows with the key of a stored row are duplicates",
    ),
    Param::new(
        "campaign",
        crate::store::MAX_CAMPAIGN_LEN,
        "the campaign the import belongs to: the import-result query lists its imports",
    ),
];

impl Handler for CsvImport {
    fn kind(&self) -> &'static str {
        "csv.import"
    }

    fn params(&self) -> &[Param] {
        &PARAMS
    }

    fn validate(&self, params: &Params, has_input: bool) -> Result<(), String> {
        if !has_input {
            return Err(
                "csv.import needs a file: send the CSV as the request body, or as the \
                        form's file part."
                    .into(),
            );
        }
        validate_table(params)?;
        // A blank campaign could never be asked for: the query refuses a blank campaignId.
        if params.get("campaign").is_some_and(|c| c.trim().is_empty()) {
            return Err(
                "The param campaign is empty: name the campaign the import belongs \
                        to, or leave it out."
                    .into(),
            );
        }
        if let Some(key) = list_param(params, "key") {
            if key.is_empty() {
                return Err(
                    "The param key names no column: give comma-separated column names.".into(),
                );
            }
        }
        Ok(())
    }

    fn run(&self, ctx: &mut TaskContext<'_>) -> Result<String, TaskError> {
        self.run_with(ctx, &mut |_| Ok(()))
    }
}

impl CsvImport {
    /// `run`, calling `after_first_batch` once, as soon as the rows of the first batch are
    /// stored and counted and the progress set: when the second batch is sent, so never for
    /// a file of fewer than two full batches. An error from it ends the import as one of its
    /// own would. `run` passes a no-op; the test kind `debug.import` holds the task there.
    pub(crate) fn run_with(
        &self,
        ctx: &mut TaskContext<'_>,
        after_first_batch: &mut dyn FnMut(&mut TaskContext<'_>) -> Result<(), TaskError>,
    ) -> Result<String, TaskError> {
        let table = ctx.param("table").unwrap_or_default().to_string();
        let key = list_param(ctx.params(), "key").unwrap_or_default();
        let Some((input, size)) = ctx.input()? else {
            return Err(TaskError::Permanent(
                "File is empty or does not exist.".into(),
            ));
        };
        let started = Instant::now();
        let name = if ctx.io_filename().is_empty() {
            "the upload".to_string()
        } else {
            format!("{:?}", ctx.io_filename())
        };
        ctx.log(format!(
            "Importing {name} ({size} bytes) into dataset {table}"
        ));
        // Where the record being read began: RecordBound refuses to hand out more than
        // MAX_RECORD_BYTES past it, so one endless record cannot take the worker's memory.
        let record_start = Rc::new(Cell::new(0u64));
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .buffer_capacity(64 * 1024)
            .from_reader(BufReader::with_capacity(
                64 * 1024,
                RecordBound::new(input, record_start.clone()),
            ));

        let mut record = csv::ByteRecord::new();
        if !reader.read_byte_record(&mut record).map_err(csv_error)? {
            ctx.log("The file has no header row");
            return Err(TaskError::Permanent(
                "The file has no header row: nothing was imported.".into(),
            ));
        }
        let header: Vec<String> = match record
            .iter()
            .map(|f| std::str::from_utf8(f).map(String::from))
            .collect()
        {
            Ok(h) => h,
            Err(_) => {
                return Err(TaskError::Permanent(
                    "The header row is not valid UTF-8: nothing was imported.".into(),
                ))
            }
        };
        let raw_header = record.clone();
        let mut session = match ctx.begin_import(&table, &header, &key)? {
            Ok(s) => s,
            Err(DatasetError::Store(e)) => return Err(e.into()),
            Err(e) => {
                let message = format!("The file cannot be imported: {e}. Nothing was imported.");
                ctx.log(&message);
                return Err(TaskError::Permanent(message));
            }
        };
        // begin_import checked that every key column is in the header.
        let key_positions: Vec<(usize, &str)> = key
            .iter()
            .filter_map(|k| Some((header.iter().position(|h| h == k)?, k.as_str())))
            .collect();

        // The whole file or nothing: on any error the session is dropped, removing its rows.
        let loaded = (|| -> Result<Counts, TaskError> {
            let mut counts = Counts::default();
            let mut batch: Vec<Vec<String>> = Vec::with_capacity(BATCH_ROWS);
            let mut batch_bytes = 0;
            let mut errors = ErrFile::new(&raw_header);
            let mut next_log_percent = 10;
            let mut first_batch_seen = false;
            while reader.read_byte_record(&mut record).map_err(csv_error)? {
                counts.total += 1;
                match check_row(&record, header.len(), &key_positions) {
                    Ok(row) => {
                        batch_bytes += record.as_slice().len();
                        batch.push(row);
                    }
                    Err(reason) => {
                        counts.failed += 1;
                        errors.add(&record, &reason);
                    }
                }
                if batch.len() == BATCH_ROWS || batch_bytes >= BATCH_BYTES {
                    batch_bytes = 0;
                    insert(&mut session, &mut batch, &mut counts)?;
                }
                if errors.buffered() >= ERR_BUFFER {
                    errors.drain_into(ctx)?;
                }
                record_start.set(reader.position().byte());
                let percent = percent_of(reader.position().byte(), size);
                ctx.set_percent(percent);
                ctx.set_counts(counts);
                if percent >= next_log_percent {
                    ctx.log(format!("{percent}% read: {} records so far", counts.total));
                    next_log_percent = percent / 10 * 10 + 10;
                }
                ctx.checkpoint()?;
                if !first_batch_seen && counts.succeeded + counts.duplicate > 0 {
                    first_batch_seen = true;
                    after_first_batch(ctx)?;
                }
            }
            insert(&mut session, &mut batch, &mut counts)?;
            errors.drain_into(ctx)?;
            count(session.commit()?, &mut counts);
            Ok(counts)
        })();
        let counts = match loaded {
            Ok(counts) => counts,
            Err(e) => {
                ctx.set_counts(Counts::default());
                return Err(match e {
                    TaskError::Cancelled => {
                        ctx.log("Cancelled: nothing was imported");
                        TaskError::Cancelled
                    }
                    TaskError::Permanent(message) => {
                        ctx.log(&message);
                        TaskError::Permanent(format!("{message} Nothing was imported."))
                    }
                    other => other,
                });
            }
        };
        ctx.set_counts(counts);
        ctx.log(format!(
            "Read {} records: {} imported, {} duplicates, {} failed, in {:.3} s",
            counts.total,
            counts.succeeded,
            counts.duplicate,
            counts.failed,
            started.elapsed().as_secs_f64()
        ));
        if counts.failed > 0 {
            return Err(TaskError::Permanent(format!(
                "Some records were not imported: {} of {} failed. They are in the error file, \
                 each with the reason.",
                counts.failed, counts.total
            )));
        }
        Ok(format!(
            "Imported {} of {} records into {table}{}.",
            counts.succeeded,
            counts.total,
            match counts.duplicate {
                0 => String::new(),
                d => format!("; {d} duplicates were skipped"),
            }
        ))
    }
}

/// The file could not be read: its fault (bad CSV, a record too long), said as such, or the
/// database's, whose own words stay out of the message (see `TaskError`).
fn csv_error(e: csv::Error) -> TaskError {
    match e.kind() {
        csv::ErrorKind::Io(io) => match store_error_in(io) {
            Some(store) => store.into(),
            None => TaskError::Permanent(format!("The file could not be read: {e}.")),
        },
        _ => TaskError::Permanent(format!("The file could not be read: {e}.")),
    }
}

/// A row's cells, or why it fails.
fn check_row(
    record: &csv::ByteRecord,
    width: usize,
    key: &[(usize, &str)],
) -> Result<Vec<String>, String> {
    if record.len() != width {
        return Err(format!("expected {width} fields, found {}", record.len()));
    }
    let mut cells = Vec::with_capacity(width);
    for (i, field) in record.iter().enumerate() {
        match std::str::from_utf8(field) {
            // A cell as taskbox's own CSV files defuse it is stored as it was.
            Ok(text) => cells.push(restore_formula(text).to_string()),
            Err(_) => return Err(format!("field {} is not valid UTF-8", i + 1)),
        }
    }
    for &(position, name) in key {
        if cells[position].is_empty() {
            return Err(format!("the key column {name:?} is empty"));
        }
    }
    Ok(cells)
}

fn insert(
    session: &mut ImportSession,
    batch: &mut Vec<Vec<String>>,
    counts: &mut Counts,
) -> Result<(), TaskError> {
    if batch.is_empty() {
        return Ok(());
    }
    let rows = std::mem::replace(batch, Vec::with_capacity(BATCH_ROWS));
    // The outcomes are those of the batch before: one batch is written while this one is read.
    count(session.insert(rows)?, counts);
    Ok(())
}

fn count(outcomes: Vec<RowOutcome>, counts: &mut Counts) {
    for outcome in outcomes {
        match outcome {
            RowOutcome::Inserted => counts.succeeded += 1,
            RowOutcome::Duplicate => counts.duplicate += 1,
        }
    }
}

/// The ERR file being built: the header plus `error`, then each failed row and its reason.
struct ErrFile {
    header: Vec<u8>,
    header_written: bool,
    buf: Vec<u8>,
}

impl ErrFile {
    fn new(header: &csv::ByteRecord) -> ErrFile {
        let mut line = Vec::new();
        write_record(
            &mut line,
            header.iter().chain(std::iter::once(&b"error"[..])),
        );
        ErrFile {
            header: line,
            header_written: false,
            buf: Vec::new(),
        }
    }

    /// A failed row and its reason, its cells defused as an export's are (a spreadsheet
    /// opens this file too), so that the row, corrected, imports as it was written.
    fn add(&mut self, record: &csv::ByteRecord, reason: &str) {
        if !self.header_written {
            self.buf.extend_from_slice(&self.header);
            self.header_written = true;
        }
        let cells: Vec<_> = record
            .iter()
            .chain(std::iter::once(reason.as_bytes()))
            .map(defuse_formula)
            .collect();
        write_record(&mut self.buf, cells.iter().map(|c| c.as_ref()));
    }

    fn buffered(&self) -> usize {
        self.buf.len()
    }

    fn drain_into(&mut self, ctx: &mut TaskContext<'_>) -> Result<(), TaskError> {
        if !self.buf.is_empty() {
            ctx.err_file()?.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }
}

/// A reader that fails once the record being parsed runs past [`MAX_RECORD_BYTES`]: the
/// import loop moves `record_start` after each record, so at most that much (plus the
/// buffers) is ever held for one record.
struct RecordBound<R> {
    inner: R,
    handed_out: u64,
    record_start: Rc<Cell<u64>>,
}

impl<R> RecordBound<R> {
    fn new(inner: R, record_start: Rc<Cell<u64>>) -> RecordBound<R> {
        RecordBound {
            inner,
            handed_out: 0,
            record_start,
        }
    }
}

impl<R: Read> Read for RecordBound<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.handed_out.saturating_sub(self.record_start.get()) > MAX_RECORD_BYTES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the record starting at byte {} is longer than {} MiB (an unclosed quote?)",
                    self.record_start.get(),
                    MAX_RECORD_BYTES >> 20
                ),
            ));
        }
        let n = self.inner.read(out)?;
        self.handed_out += n as u64;
        Ok(n)
    }
}
