//! Schema versions. Version 1 is schema.sql, embedded in the binary; each later version is
//! one more step in `STEPS` (a file in migrations/, also embedded), applied in order in one transaction with `PRAGMA user_version`
//! moved to match. A file from a newer taskbox is refused rather than misread.

use rusqlite::Connection;

use super::{Result, StoreError};

/// Step n (1-based) brings a file from version n-1 to version n.
const STEPS: &[&str] = &[
    include_str!("../../schema.sql"),
    include_str!("../../migrations/002_import_start_row.sql"),
];

pub fn apply(conn: &Connection) -> Result<()> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let latest = STEPS.len() as i64;
    if current > latest {
        return Err(StoreError::Internal(format!(
            "the database is at schema version {current}, newer than this taskbox ({latest}); \
             use a newer taskbox"
        )));
    }
    if current == latest {
        return Ok(());
    }
    // A plain connection: start the transaction by hand so it is IMMEDIATE.
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let result = (|| {
        for (i, step) in STEPS.iter().enumerate().skip(current as usize) {
            conn.execute_batch(step)?;
            conn.execute_batch(&format!("PRAGMA user_version = {}", i + 1))?;
        }
        Ok::<_, rusqlite::Error>(())
    })();
    match result {
        Ok(()) => Ok(conn.execute_batch("COMMIT")?),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e.into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applies_once_and_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("t.db")).unwrap();
        apply(&conn).unwrap();
        apply(&conn).unwrap();
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, STEPS.len() as i64);
        let n: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='tasks'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 1);
    }

    #[test]
    fn brings_a_version_1_file_forward() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("t.db")).unwrap();
        conn.execute_batch(STEPS[0]).unwrap();
        conn.execute_batch("PRAGMA user_version = 1").unwrap();
        conn.execute_batch(
            "INSERT INTO datasets (id, name, columns, created_at) VALUES (1, 'd', '[]', '');
             INSERT INTO dataset_imports (task_id, dataset_id, state) VALUES (7, 1, 'done');",
        )
        .unwrap();
        apply(&conn).unwrap();
        let after_row: i64 = conn
            .query_row(
                "SELECT after_row FROM dataset_imports WHERE task_id = 7",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(
            after_row, 0,
            "an import of version 1 is removed by a full scan"
        );
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, 2);
    }

    #[test]
    fn refuses_a_newer_file() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("t.db")).unwrap();
        conn.execute_batch("PRAGMA user_version = 99").unwrap();
        assert!(matches!(apply(&conn), Err(StoreError::Internal(_))));
    }
}
