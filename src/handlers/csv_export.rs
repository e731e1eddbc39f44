//! `csv.export`: writes a dataset, or chosen columns of it, as a CSV IO file named
//! `<table>.csv`, in import order, with formula injection defused unless `raw=true`.
//! PercentComplete follows the rows written.

use std::io::Write;
use std::time::Instant;

use super::csv_format::{defuse_formula, write_record};
use super::{list_param, validate_bool, validate_table};
use crate::kind::{Handler, Param, TaskContext, TaskError};
use crate::task::{Counts, Params};

/// Rows written out of `total`, as a percentage below 100 (100 is for the task's end).
fn percent(written: u64, total: u64) -> u8 {
    if total == 0 {
        return 0;
    }
    (written.min(total) * 100 / total).min(99) as u8
}

/// Rows read per query: each page is a short read, so a long export never pins the WAL.
const PAGE_ROWS: usize = 5000;

pub struct CsvExport;

const PARAMS: [Param; 3] = [
    super::TABLE,
    Param::new(
        "columns",
        super::MAX_COLUMN_LIST,
        "comma-separated columns to write, in that order (default: all)",
    ),
    Param::new(
        "raw",
        5,
        "true: write cells as stored, without defusing formulas",
    ),
];

impl Handler for CsvExport {
    fn kind(&self) -> &'static str {
        "csv.export"
    }

    fn params(&self) -> &[Param] {
        &PARAMS
    }

    fn validate(&self, params: &Params, _has_input: bool) -> Result<(), String> {
        validate_table(params)?;
        validate_bool(params, "raw")?;
        if let Some(columns) = list_param(params, "columns") {
            if columns.is_empty() {
                return Err(
                    "The param columns names no column: give comma-separated column names.".into(),
                );
            }
        }
        Ok(())
    }

    fn run(&self, ctx: &mut TaskContext<'_>) -> Result<String, TaskError> {
        let table = ctx.param("table").unwrap_or_default().to_string();
        let raw = ctx.param("raw") == Some("true");
        let started = Instant::now();
        let Some(dataset) = ctx.dataset(&table)? else {
            return Err(TaskError::Permanent(format!(
                "There is no dataset named {table:?}."
            )));
        };
        let columns =
            list_param(ctx.params(), "columns").unwrap_or_else(|| dataset.columns.clone());
        let mut positions = Vec::with_capacity(columns.len());
        for wanted in &columns {
            match dataset.columns.iter().position(|c| c == wanted) {
                Some(p) => positions.push(p),
                None => {
                    return Err(TaskError::Permanent(format!(
                        "Dataset {table} has no column {wanted:?}; its columns are {}.",
                        dataset
                            .columns
                            .iter()
                            .map(|c| format!("{c:?}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )))
                }
            }
        }
        let total = ctx.dataset_len(&dataset)?;
        ctx.log(format!(
            "Exporting {total} records of dataset {table} ({} columns{})",
            columns.len(),
            if raw { ", raw" } else { "" }
        ));
        // Column names are written exactly as imported; the formula rule is for cells.
        let mut chunk = Vec::with_capacity(64 * 1024);
        write_record(&mut chunk, columns.iter().map(|c| c.as_bytes()));
        let name = format!("{table}.csv");
        ctx.create_output(&name)?.write_all(&chunk)?;
        let mut written: u64 = 0;
        let mut after = 0;
        loop {
            let page = ctx.dataset_page(&dataset, &positions, after, PAGE_ROWS)?;
            let Some(&(last, _)) = page.last() else { break };
            chunk.clear();
            for (_, cells) in &page {
                if raw {
                    write_record(&mut chunk, cells.iter().map(|c| c.as_bytes()));
                } else {
                    let safe: Vec<_> = cells.iter().map(|c| defuse_formula(c.as_bytes())).collect();
                    write_record(&mut chunk, safe.iter().map(|c| c.as_ref()));
                }
            }
            ctx.output()?.write_all(&chunk)?;
            written += page.len() as u64;
            after = last;
            ctx.set_counts(Counts {
                total: written,
                succeeded: written,
                ..Counts::default()
            });
            ctx.set_percent(percent(written, total));
            ctx.checkpoint()?;
        }
        ctx.log(format!(
            "Wrote {written} records to {name} in {:.3} s",
            started.elapsed().as_secs_f64()
        ));
        Ok(format!("Exported {written} records from {table}."))
    }
}
