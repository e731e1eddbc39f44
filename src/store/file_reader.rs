//! Reading a stored file: chunk by chunk, from one snapshot for a download, or chunk by
//! chunk on pooled connections for a task's input (see `files.rs` for the layout).
//!
//! A download's snapshot is bounded in time: while it is open SQLite cannot checkpoint the
//! write-ahead log past it, so a client reading slowly would make the WAL grow for as long
//! as it reads. Past the bound the reader ends its snapshot and reads on, a chunk at a time
//! on pooled connections. A file's chunks never change once written (a LOG file only grows,
//! and the reader stops at the size it saw; an export's output is a new file), so the rest
//! is the same bytes, unless the file is deleted meanwhile: then the read fails, and the
//! client sees its download cut short of its Content-Length.

use std::io::{self, Read};
use std::time::Instant;

use rusqlite::{params, Connection, OptionalExtension};

use super::{Conn, Result, Store};
use crate::task::FileId;

/// Reads a stored file chunk by chunk, all from one snapshot (see the module notes). It
/// holds a pooled connection and a snapshot that holds back WAL checkpoints: drop it as
/// soon as it is no longer read.
pub struct FileReader {
    store: Store,
    /// For a download, the connection whose open read transaction is the snapshot (rolled
    /// back on drop); None for a task's input, read chunk by chunk from the pool.
    snapshot: Option<Conn>,
    /// When the snapshot must end (a download's bound; see the module notes).
    snapshot_until: Option<Instant>,
    id: FileId,
    remaining: u64,
    next_seq: i64,
    chunk: Vec<u8>,
    pos: usize,
}

// A download streams from another thread than the one that opened it.
const _: () = {
    const fn assert_send<T: Send>() {}
    assert_send::<FileReader>();
};

impl FileReader {
    /// Bytes left to read.
    pub fn remaining(&self) -> u64 {
        self.remaining + (self.chunk.len() - self.pos) as u64
    }

    /// A reader of file `id`, positioned at its start: on `snapshot` (a connection in a
    /// read transaction, which the reader ends when dropped), or on pooled connections.
    pub(super) fn open(store: &Store, id: FileId, snapshot: Option<Conn>) -> Result<FileReader> {
        let snapshot_until = snapshot
            .as_ref()
            .map(|_| Instant::now() + store.limits().max_snapshot);
        let mut reader = FileReader {
            store: store.clone(),
            snapshot,
            snapshot_until,
            id,
            remaining: 0,
            next_seq: 0,
            chunk: Vec::new(),
            pos: 0,
        };
        reader.remaining = reader.size()?;
        Ok(reader)
    }

    /// A reader over bytes already read (a LOG kept in its task's row).
    pub(super) fn of_bytes(store: &Store, bytes: Vec<u8>) -> FileReader {
        FileReader {
            store: store.clone(),
            snapshot: None,
            snapshot_until: None,
            id: 0,
            remaining: 0,
            next_seq: 0,
            chunk: bytes,
            pos: 0,
        }
    }

    /// Runs `f` on the snapshot's connection, or on one from the pool.
    fn with_conn<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        Ok(match &self.snapshot {
            Some(conn) => f(conn)?,
            None => f(&*self.store.conn()?)?,
        })
    }

    fn size(&self) -> Result<u64> {
        self.with_conn(|c| {
            c.prepare_cached("SELECT size FROM files WHERE id = ?1")?
                .query_row([self.id], |r| r.get(0))
        })
    }

    fn next_chunk(&mut self) -> Result<bool> {
        if self
            .snapshot_until
            .is_some_and(|until| Instant::now() >= until)
        {
            self.end_snapshot();
        }
        let found: Option<(i64, Vec<u8>)> = self.with_conn(|c| {
            c.prepare_cached(
                "SELECT seq, data FROM file_chunks WHERE file_id = ?1 AND seq >= ?2 ORDER BY seq LIMIT 1",
            )?
            .query_row(params![self.id, self.next_seq], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
        })?;
        match found {
            Some((seq, data)) => {
                self.next_seq = seq + 1;
                self.chunk = data;
                self.pos = 0;
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

impl Read for FileReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.chunk.len() {
            if self.remaining == 0 {
                return Ok(0);
            }
            if !self.next_chunk().map_err(io::Error::other)? {
                // Within a snapshot this cannot happen; outside one, the file was deleted.
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the file has fewer bytes than its recorded size",
                ));
            }
            // Never read past the size the file had in the snapshot.
            let keep = (self.chunk.len() as u64).min(self.remaining) as usize;
            self.chunk.truncate(keep);
            self.remaining -= keep as u64;
        }
        let n = out.len().min(self.chunk.len() - self.pos);
        out[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl FileReader {
    /// Ends the snapshot (if any) and gives its connection back to the pool.
    fn end_snapshot(&mut self) {
        self.snapshot_until = None;
        if let Some(conn) = self.snapshot.take() {
            // The connection goes back to the pool: it must go back with no transaction.
            if !conn.is_autocommit() {
                if let Err(e) = conn.execute_batch("ROLLBACK") {
                    log::error!("ending the read transaction of file {}: {e}", self.id);
                }
            }
        }
    }
}

impl Drop for FileReader {
    fn drop(&mut self) {
        self.end_snapshot();
    }
}
