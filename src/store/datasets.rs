//! Datasets: the tables that csv.import fills and csv.export reads, kept in the same SQLite
//! file, each owned by a client. A dataset's rows live in `ds_<id>` with columns `c1..cN`
//! in header order, so no name a client chose ever reaches SQL: any header is stored
//! exactly (see schema.sql). This file reads them; `import.rs` writes them.

use rusqlite::{params, OptionalExtension};

use super::{Result, Store, StoreError};

/// The longest dataset name.
pub const MAX_NAME_LEN: usize = 64;
/// The most columns a dataset may have: SQLite allows 2000 per table, two are taskbox's.
pub const MAX_COLUMNS: usize = 1998;

/// A dataset as described in the `datasets` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dataset {
    /// Its id (its rows are in the table `ds_<id>`).
    pub id: i64,
    /// Its name, unique within its client.
    pub name: String,
    /// Its columns' names, in header order.
    pub columns: Vec<String>,
}

/// Whether `name` may name a dataset: letters, digits and `_`, not starting with a digit,
/// at most 64 characters.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit())
}

pub(super) fn table(dataset: i64) -> String {
    format!("ds_{dataset}")
}

/// The SQL column of the dataset column at `index` (0-based).
pub(super) fn column(index: usize) -> String {
    format!("c{}", index + 1)
}

/// `c2 = ?1 AND c5 = ?2`: the columns at `positions` equal to the params from `?first` on.
pub(super) fn key_conditions(positions: &[usize], first: usize) -> String {
    let conditions: Vec<String> = positions
        .iter()
        .enumerate()
        .map(|(i, &p)| format!("{} = ?{}", column(p), first + i))
        .collect();
    conditions.join(" AND ")
}

/// The statement that gives dataset `dataset` an index on the columns at `positions` (for
/// lookups by key), named after them, unless it has one already.
pub(super) fn key_index_sql(dataset: i64, positions: &[usize]) -> String {
    let table = table(dataset);
    let columns: Vec<String> = positions.iter().map(|&p| column(p)).collect();
    format!(
        "CREATE INDEX IF NOT EXISTS {table}_key_{} ON {table} ({})",
        columns.join("_"),
        columns.join(", ")
    )
}

/// The statement that inserts a row into dataset `dataset` of `width` columns: `?1` the
/// task writing it, `?2`... its cells in column order.
pub(super) fn insert_row_sql(dataset: i64, width: usize) -> String {
    let names: Vec<String> = (0..width).map(column).collect();
    let params: Vec<String> = (0..width).map(|i| format!("?{}", i + 2)).collect();
    format!(
        "INSERT INTO {} (task_id, {}) VALUES (?1, {})",
        table(dataset),
        names.join(", "),
        params.join(", ")
    )
}

/// Rows of imports that are not done are invisible to readers.
pub(super) const VISIBLE: &str =
    "task_id NOT IN (SELECT task_id FROM dataset_imports WHERE state <> 'done')";

/// [`VISIBLE`] for a statement on the few rows of a key, run once per record: a lookup per
/// row it meets, where `VISIBLE` builds its list of imports anew at every run.
pub(super) fn visible_row(table: &str) -> String {
    format!(
        "NOT EXISTS (SELECT 1 FROM dataset_imports WHERE task_id = {table}.task_id \
         AND state <> 'done')"
    )
}

impl Store {
    /// Client `client`'s dataset `name`, if it exists.
    pub fn dataset(&self, client: &str, name: &str) -> Result<Option<Dataset>> {
        let conn = self.conn()?;
        let found: Option<(i64, String)> = conn
            .prepare_cached("SELECT id, columns FROM datasets WHERE client = ?1 AND name = ?2")?
            .query_row([client, name], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        found
            .map(|(id, columns)| {
                Ok(Dataset {
                    id,
                    name: name.to_string(),
                    columns: parse_columns(&columns)?,
                })
            })
            .transpose()
    }

    /// How many visible rows a dataset holds.
    pub fn dataset_len(&self, dataset: &Dataset) -> Result<u64> {
        let conn = self.conn()?;
        let sql = format!("SELECT count(*) FROM {} WHERE {VISIBLE}", table(dataset.id));
        let count: i64 = conn.prepare_cached(&sql)?.query_row([], |r| r.get(0))?;
        Ok(count as u64)
    }

    /// Up to `limit` visible rows of a dataset after row `after` (0 for the first page), in
    /// import order: `(row id, cells of the columns at positions)`. Pages keep each read
    /// short, so a long export never pins the WAL.
    pub fn dataset_page(
        &self,
        dataset: &Dataset,
        positions: &[usize],
        after: i64,
        limit: usize,
    ) -> Result<Vec<(i64, Vec<String>)>> {
        let conn = self.conn()?;
        let select: Vec<String> = positions.iter().map(|&p| column(p)).collect();
        let sql = format!(
            "SELECT row_id, {} FROM {} WHERE row_id > ?1 AND {VISIBLE} ORDER BY row_id LIMIT ?2 + 0",
            select.join(", "),
            table(dataset.id)
        );
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params![after, limit as i64], |r| {
            let mut cells = Vec::with_capacity(positions.len());
            for i in 0..positions.len() {
                cells.push(r.get::<_, String>(i + 1)?);
            }
            Ok((r.get(0)?, cells))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

pub(super) fn parse_columns(text: &str) -> Result<Vec<String>> {
    serde_json::from_str(text).map_err(|e| StoreError::Internal(format!("dataset columns: {e}")))
}

/// Refuses a header that cannot make a dataset, or a key that is not in it.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dataset_names_follow_the_rule() {
        assert!(is_valid_name("rates"));
        assert!(is_valid_name("_x9"));
        assert!(!is_valid_name("9x"));
        assert!(!is_valid_name("a-b"));
        assert!(!is_valid_name(""));
        assert!(!is_valid_name(&"a".repeat(65)));
        assert!(is_valid_name(&"a".repeat(64)));
    }
}
