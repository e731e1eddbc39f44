//! Files: the IO, LOG and ERR files of tasks, and uploads being received.
//!
//! DESIGN: a file is a row in `files` plus a sequence of chunk rows of at most
//! [`CHUNK_SIZE`] bytes. Chunked rows rather than one BLOB because (1) a file streams in
//! from a socket and out to one without ever being whole in memory, (2) a LOG file grows
//! while its task runs and is readable meanwhile (a BLOB cannot grow in place), and (3) a
//! file may exceed SQLite's 1 GB BLOB limit. A writer holds at most [`CHUNKS_PER_COMMIT`]
//! chunks before committing them in one short transaction, so a slow client never holds the
//! write lock and a fast one is not slowed by one fsync per chunk. A reader fetches one
//! chunk at a time, so a download costs one chunk of memory whatever the file's size.

use std::io::{self, Read, Write};

use rusqlite::{params, OptionalExtension, Transaction};

use super::{Result, Store, StoreError};
use crate::task::{time, FileId, FileRole, Scope, TaskId};

/// The size of a stored chunk (the last chunk of a file, and LOG chunks, may be shorter).
pub const CHUNK_SIZE: usize = 256 * 1024;
/// Chunks buffered before a commit: 4 MiB per writer at most.
const CHUNKS_PER_COMMIT: usize = 16;

/// A stored file: its id and size in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredFile {
    pub id: FileId,
    pub size: u64,
}

impl Store {
    /// Starts a new file. With an owner, it is deleted with that task; without, it is an
    /// upload that `submit` attaches to a task (or that the next start removes).
    pub fn create_file(&self, owner: Option<TaskId>) -> Result<FileWriter> {
        let id = self.write(|tx| create_in(tx, owner))?;
        Ok(FileWriter {
            store: self.clone(),
            id,
            next_seq: 0,
            size: 0,
            buf: Vec::new(),
            full: Vec::new(),
        })
    }

    /// Deletes a file that no task refers to (an abandoned upload or output).
    pub fn delete_file(&self, id: FileId) -> Result<()> {
        self.write(|tx| {
            tx.execute("DELETE FROM files WHERE id = ?1", [id])?;
            Ok(())
        })
    }

    /// A task's file, if the task is within `scope` and has one.
    pub fn task_file(
        &self,
        scope: &Scope,
        task: TaskId,
        role: FileRole,
    ) -> Result<Option<StoredFile>> {
        let column = match role {
            FileRole::Io => "io_file_id",
            FileRole::Log => "log_file_id",
            FileRole::Err => "err_file_id",
        };
        let (clause, client) = match scope {
            Scope::Client(c) => ("AND t.client = ?2", Some(c.as_str())),
            Scope::All => ("", None),
        };
        let sql = format!(
            "SELECT f.id, f.size FROM tasks t JOIN files f ON f.id = t.{column} WHERE t.id = ?1 {clause}"
        );
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(&sql)?;
        let row = |r: &rusqlite::Row<'_>| {
            Ok(StoredFile {
                id: r.get(0)?,
                size: r.get(1)?,
            })
        };
        Ok(match client {
            Some(c) => stmt.query_row(params![task, c], row),
            None => stmt.query_row(params![task], row),
        }
        .optional()?)
    }

    /// A reader over a file's bytes as they are now (a growing LOG file is read up to the
    /// size it had when opened).
    pub fn open_file(&self, file: StoredFile) -> FileReader {
        FileReader {
            store: self.clone(),
            id: file.id,
            remaining: file.size,
            next_seq: 0,
            chunk: Vec::new(),
            pos: 0,
        }
    }

    fn file_size(&self, id: FileId) -> Result<u64> {
        let conn = self.conn()?;
        let size = conn
            .prepare_cached("SELECT size FROM files WHERE id = ?1")?
            .query_row([id], |r| r.get(0))?;
        Ok(size)
    }

    fn append_chunks(&self, id: FileId, first_seq: i64, chunks: &[Vec<u8>]) -> Result<()> {
        let added: u64 = chunks.iter().map(|c| c.len() as u64).sum();
        self.write(|tx| {
            let mut insert = tx.prepare_cached(
                "INSERT INTO file_chunks (file_id, seq, data) VALUES (?1, ?2, ?3)",
            )?;
            for (i, chunk) in chunks.iter().enumerate() {
                insert.execute(params![id, first_seq + i as i64, chunk])?;
            }
            let grown = tx
                .prepare_cached("UPDATE files SET size = size + ?1 WHERE id = ?2")?
                .execute(params![added, id])?;
            if grown != 1 {
                // The file was deleted under us (its task was deleted): store nothing.
                return Err(StoreError::NotFound);
            }
            Ok(())
        })
    }
}

/// Creates an empty file within a transaction.
pub(super) fn create_in(tx: &Transaction<'_>, owner: Option<TaskId>) -> Result<FileId> {
    Ok(tx
        .prepare_cached("INSERT INTO files (task_id, created_at) VALUES (?1, ?2) RETURNING id")?
        .query_row(params![owner, time::now_text()], |r| r.get(0))?)
}

/// Appends `data` to a file as one more chunk, within a transaction.
pub(super) fn append_in(tx: &Transaction<'_>, file: FileId, data: &[u8]) -> Result<()> {
    let next: i64 = tx
        .prepare_cached("SELECT coalesce(max(seq) + 1, 0) FROM file_chunks WHERE file_id = ?1")?
        .query_row([file], |r| r.get(0))?;
    tx.prepare_cached("INSERT INTO file_chunks (file_id, seq, data) VALUES (?1, ?2, ?3)")?
        .execute(params![file, next, data])?;
    let grown = tx
        .prepare_cached("UPDATE files SET size = size + ?1 WHERE id = ?2")?
        .execute(params![data.len() as u64, file])?;
    if grown != 1 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// Writes a file in chunks; see the module notes. `flush` makes everything written so far
/// durable and readable; [`FileWriter::finish`] does the same and returns the file.
pub struct FileWriter {
    store: Store,
    id: FileId,
    next_seq: i64,
    size: u64,
    /// The chunk being filled.
    buf: Vec<u8>,
    /// Full chunks not yet committed.
    full: Vec<Vec<u8>>,
}

impl FileWriter {
    pub fn id(&self) -> FileId {
        self.id
    }

    /// Bytes written so far, committed or not.
    pub fn len(&self) -> u64 {
        self.size
    }

    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// Commits what is buffered.
    pub fn commit(&mut self) -> Result<()> {
        if !self.buf.is_empty() {
            self.full.push(std::mem::take(&mut self.buf));
        }
        if self.full.is_empty() {
            return Ok(());
        }
        self.store
            .append_chunks(self.id, self.next_seq, &self.full)?;
        self.next_seq += self.full.len() as i64;
        self.full.clear();
        Ok(())
    }

    /// Commits the rest and returns the stored file.
    pub fn finish(mut self) -> Result<StoredFile> {
        self.commit()?;
        Ok(StoredFile {
            id: self.id,
            size: self.size,
        })
    }

    /// Deletes the file and everything written to it.
    pub fn discard(self) -> Result<()> {
        self.store.delete_file(self.id)
    }
}

impl FileWriter {
    /// Appends bytes, committing whenever enough full chunks are buffered.
    pub fn append(&mut self, mut data: &[u8]) -> Result<()> {
        while !data.is_empty() {
            let n = (CHUNK_SIZE - self.buf.len()).min(data.len());
            if self.buf.capacity() == 0 {
                self.buf.reserve_exact(CHUNK_SIZE.min(data.len().max(4096)));
            }
            self.buf.extend_from_slice(&data[..n]);
            self.size += n as u64;
            data = &data[n..];
            if self.buf.len() == CHUNK_SIZE {
                self.full.push(std::mem::take(&mut self.buf));
                if self.full.len() >= CHUNKS_PER_COMMIT {
                    self.commit()?;
                }
            }
        }
        Ok(())
    }
}

impl Write for FileWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.append(data).map_err(io::Error::other)?;
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.commit().map_err(io::Error::other)
    }
}

/// Reads a stored file chunk by chunk.
pub struct FileReader {
    store: Store,
    id: FileId,
    remaining: u64,
    next_seq: i64,
    chunk: Vec<u8>,
    pos: usize,
}

impl FileReader {
    /// Bytes left to read.
    pub fn remaining(&self) -> u64 {
        self.remaining + (self.chunk.len() - self.pos) as u64
    }

    fn next_chunk(&mut self) -> Result<bool> {
        let conn = self.store.conn()?;
        let found: Option<(i64, Vec<u8>)> = conn
            .prepare_cached(
                "SELECT seq, data FROM file_chunks WHERE file_id = ?1 AND seq >= ?2 ORDER BY seq LIMIT 1",
            )?
            .query_row(params![self.id, self.next_seq], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
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
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the file was deleted while it was being read",
                ));
            }
            // Never read past the size the file had when opened (a LOG file grows).
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

impl Store {
    /// A file by id, with its committed size.
    pub fn stored_file(&self, id: FileId) -> Result<StoredFile> {
        Ok(StoredFile {
            id,
            size: self.file_size(id)?,
        })
    }
}
