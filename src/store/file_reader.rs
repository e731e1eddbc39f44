//! Reading a stored file: chunk by chunk, from one snapshot for a download, or chunk by
//! chunk on pooled connections for a task's input (see `files.rs` for the layout).

use std::io::{self, Read};

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
        let mut reader = FileReader {
            store: store.clone(),
            snapshot,
            id,
            remaining: 0,
            next_seq: 0,
            chunk: Vec::new(),
            pos: 0,
        };
        reader.remaining = reader.size()?;
        Ok(reader)
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
                // Within a snapshot this cannot happen; for an input, the file was deleted.
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

impl Drop for FileReader {
    fn drop(&mut self) {
        if let Some(conn) = &self.snapshot {
            // The connection goes back to the pool: it must go back with no transaction.
            if !conn.is_autocommit() {
                if let Err(e) = conn.execute_batch("ROLLBACK") {
                    log::error!("ending the read transaction of file {}: {e}", self.id);
                }
            }
        }
    }
}
