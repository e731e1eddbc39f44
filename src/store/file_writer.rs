//! Writing a stored file: chunks buffered and sent to the writer a batch at a time, one
//! batch committing while the next fills (see `files.rs` for the layout).

use std::io::{self, Write};

use super::files::{CHUNKS_PER_COMMIT, CHUNK_SIZE};
use super::{Result, Store, StoreError, StoredFile};
use crate::task::FileId;

/// Writes one of a task's files (its output, ERR file) through [`std::io::Write`], in
/// chunks. `flush` makes everything written so far durable and readable; the task's end
/// stores the rest.
pub struct FileWriter {
    store: Store,
    id: FileId,
    /// The client whose upload this is (held to its quota), None for a task's own file.
    quota: Option<String>,
    next_seq: i64,
    size: u64,
    /// The chunk being filled.
    buf: Vec<u8>,
    /// Full chunks not yet sent to the writer.
    full: Vec<Vec<u8>>,
    /// The outcome of the chunks sent and not yet committed: one batch is committed while
    /// the next fills, so a fast upload waits on its commits only when the disk is slower.
    in_flight: Option<crossbeam_channel::Receiver<Result<()>>>,
}

impl FileWriter {
    /// A writer of the new, empty file `id`; an upload of client `quota`'s is held to that
    /// client's quota and to the free-space floor as it grows.
    pub(super) fn new(store: Store, id: FileId, quota: Option<String>) -> FileWriter {
        FileWriter {
            store,
            id,
            quota,
            next_seq: 0,
            size: 0,
            buf: Vec::new(),
            full: Vec::new(),
            in_flight: None,
        }
    }

    /// The file's id.
    pub fn id(&self) -> FileId {
        self.id
    }

    /// Bytes written so far, committed or not.
    pub fn len(&self) -> u64 {
        self.size
    }

    /// Whether nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// Commits everything written so far, and waits for it.
    pub(crate) fn commit(&mut self) -> Result<()> {
        if !self.buf.is_empty() {
            self.full.push(std::mem::take(&mut self.buf));
        }
        self.send_full()?;
        self.wait_in_flight()
    }

    /// Sends the full chunks to the writer, once the previous batch has committed.
    fn send_full(&mut self) -> Result<()> {
        self.wait_in_flight()?;
        if self.full.is_empty() {
            return Ok(());
        }
        let chunks = std::mem::take(&mut self.full);
        let count = chunks.len() as i64;
        if self.quota.is_some() {
            let bytes: u64 = chunks.iter().map(|c| c.len() as u64).sum();
            self.store.check_free_space(bytes)?;
        }
        self.in_flight =
            Some(
                self.store
                    .append_chunks(self.id, self.next_seq, chunks, self.quota.clone()),
            );
        self.next_seq += count;
        Ok(())
    }

    fn wait_in_flight(&mut self) -> Result<()> {
        match self.in_flight.take() {
            Some(outcome) => outcome.recv().unwrap_or_else(|_| {
                Err(StoreError::Unavailable(
                    "the database writer has stopped".into(),
                ))
            }),
            None => Ok(()),
        }
    }

    /// Commits the rest and returns the stored file.
    pub(crate) fn finish(mut self) -> Result<StoredFile> {
        self.commit()?;
        Ok(StoredFile {
            id: self.id,
            size: self.size,
        })
    }

    /// Deletes the file and everything written to it.
    pub(crate) fn discard(self) -> Result<()> {
        self.store.delete_file(self.id)
    }
}

impl FileWriter {
    /// Appends bytes, committing whenever enough full chunks are buffered.
    pub(crate) fn append(&mut self, mut data: &[u8]) -> Result<()> {
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
                    self.send_full()?;
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
