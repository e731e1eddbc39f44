//! `csv.export`: writes a dataset, or chosen columns of it, as a CSV IO file named
//! `<table>.csv`, in import order, with formula injection defused unless `raw=true`.
//! PercentComplete follows the rows written.

use std::io::Write;
use std::time::Instant;

use super::csv_format::{defuse_formula, write_record};
use super::{list_param, validate_bool, validate_table, Handler};
use crate::engine::{TaskContext, TaskError};
use crate::task::{Counts, Params};

/// Rows read per query: each page is a short read, so a long export never pins the WAL.
const PAGE_ROWS: usize = 5000;

pub struct CsvExport;

impl Handler for CsvExport {
    fn kind(&self) -> &'static str {
        "csv.export"
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
            return Err(TaskError::Failed(format!(
                "There is no dataset named {table:?}."
            )));
        };
        let columns = match list_param(ctx.params(), "columns") {
            Some(wanted) => {
                if let Some(unknown) = wanted.iter().find(|c| !dataset.columns.contains(c)) {
                    return Err(TaskError::Failed(format!(
                        "Dataset {table} has no column {unknown:?}; its columns are {}.",
                        dataset
                            .columns
                            .iter()
                            .map(|c| format!("{c:?}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
                wanted
            }
            None => dataset.columns.clone(),
        };
        let total = ctx.dataset_len(&table)?;
        ctx.log(format!(
            "Exporting {total} records of dataset {table} ({} columns{})",
            columns.len(),
            if raw { ", raw" } else { "" }
        ));
        let defuse = |cell: &str| -> String {
            if raw {
                cell.to_string()
            } else {
                defuse_formula(cell).into_owned()
            }
        };
        let mut line = Vec::with_capacity(64 * 1024);
        let header: Vec<String> = columns.iter().map(|c| defuse(c)).collect();
        write_record(&mut line, header.iter().map(|c| c.as_bytes()));
        let name = format!("{table}.csv");
        ctx.create_output(&name)?.write_all(&line)?;
        let mut written: u64 = 0;
        let mut after = 0;
        loop {
            let page = ctx.dataset_page(&table, &columns, after, PAGE_ROWS)?;
            let Some(&(last, _)) = page.last() else { break };
            line.clear();
            for (_, cells) in &page {
                let cells: Vec<String> = cells.iter().map(|c| defuse(c)).collect();
                write_record(&mut line, cells.iter().map(|c| c.as_bytes()));
            }
            ctx.output()?.write_all(&line)?;
            written += page.len() as u64;
            after = last;
            ctx.set_counts(Counts {
                total: written,
                succeeded: written,
                ..Counts::default()
            });
            ctx.set_percent(if total == 0 {
                0
            } else {
                (written * 100 / total.max(written)).min(99) as u8
            });
            ctx.checkpoint()?;
        }
        ctx.log(format!(
            "Wrote {written} records to {name} in {:.3} s",
            started.elapsed().as_secs_f64()
        ));
        Ok(format!("Exported {written} records from {table}."))
    }
}
