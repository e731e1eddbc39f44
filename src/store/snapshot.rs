//! A read transaction: several statements on a pooled connection that see one snapshot of
//! the file (WAL), as a list's total and its page, or a claim's due tasks and their rows,
//! must.
//!
//! Begun and ended through cached statements: rusqlite's `Transaction` runs `BEGIN` and
//! `COMMIT` through `execute_batch`, which parses them anew each time, a cost the claim
//! (every few tasks) and the list paid on every call.

use std::ops::Deref;

use rusqlite::Connection;

use super::Result;

/// A read transaction on a borrowed connection, ended when dropped.
pub(super) struct Snapshot<'c> {
    conn: &'c Connection,
}

impl<'c> Snapshot<'c> {
    /// Begins a read transaction on `conn`; its snapshot is taken by its first read (`pin`).
    pub(super) fn begin(conn: &'c Connection) -> Result<Snapshot<'c>> {
        conn.prepare_cached("BEGIN")?.execute([])?;
        Ok(Snapshot { conn })
    }

    /// Takes the snapshot now (in WAL mode the first read does), so that what is copied
    /// from memory just after it is of the same moment (see `memory.rs`).
    pub(super) fn pin(&self) -> Result<()> {
        self.conn
            .prepare_cached("SELECT 1 FROM tasks WHERE id = 0")?
            .exists([])?;
        Ok(())
    }
}

impl Deref for Snapshot<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.conn
    }
}

impl Drop for Snapshot<'_> {
    fn drop(&mut self) {
        // A read transaction only holds the snapshot: ending it cannot lose anything. It
        // must end, though: the connection goes back to the pool, where a transaction left
        // open would hold an old snapshot for every later read on it.
        let ended = self
            .conn
            .prepare_cached("COMMIT")
            .and_then(|mut end| end.execute([]));
        if let Err(e) = ended {
            log::warn!("ending a read transaction failed: {e}");
        }
        if !self.conn.is_autocommit() {
            if let Err(e) = self.conn.execute_batch("ROLLBACK") {
                log::warn!("rolling back a read transaction failed: {e}");
            }
        }
    }
}
