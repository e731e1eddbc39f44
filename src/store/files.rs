//! Files: the IO, LOG and ERR files of tasks, and uploads being received.
//!
//! DESIGN: a file is a row in `files` plus a sequence of chunk rows of at most
//! [`CHUNK_SIZE`] bytes. Chunked rows rather than one BLOB because (1) a file streams in
//! from a socket and out to one without ever being whole in memory, (2) a LOG file grows
//! while its task runs and is readable meanwhile (a BLOB cannot grow in place), and (3) a
//! file may exceed SQLite's 1 GB BLOB limit. A writer sends [`CHUNKS_PER_COMMIT`] chunks
//! (8 MiB) at a time to the store's writer, one transaction each, so a slow client never
//! holds the write lock and a fast one is not slowed by one fsync per chunk; one batch
//! commits while the next fills, so at most two batches are in memory. A reader fetches one
//! chunk at a time, so a download costs one chunk of memory whatever the file's size.
//!
//! A reader reads the whole file inside one read transaction on one pooled connection: a
//! WAL snapshot of the file as it was when it was opened. So a download whose task is
//! deleted, or whose IO file is replaced, while it streams still sends every byte its
//! Content-Length promised. The price: the reader holds a pooled connection until it is
//! dropped, and while a snapshot is open SQLite cannot checkpoint the write-ahead log past
//! it, so the WAL file grows by whatever is written meanwhile (and keeps that size on
//! disk, reused from its start, once no snapshot needs it).

use rusqlite::{params, params_from_iter, Connection, OptionalExtension};

use super::{FileReader, FileWriter, Result, Store, StoreError};
use crate::task::{FileId, FileRole, Scope, TaskId};

/// The size of a stored chunk (the last chunk of a file, and LOG chunks, may be shorter).
pub const CHUNK_SIZE: usize = 256 * 1024;
/// Chunks buffered before a commit: 4 MiB per writer at most.
pub(super) const CHUNKS_PER_COMMIT: usize = 32;

/// A stored file: its id and size in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredFile {
    pub id: FileId,
    pub size: u64,
}

impl Store {
    /// Starts a new file of task `task` (an output, a LOG or ERR file): it belongs to the
    /// task's client and is deleted with the task.
    pub fn create_file(&self, task: TaskId) -> Result<FileWriter> {
        self.start_file(Some(task), String::new())
    }

    /// Starts an upload of `client`'s, which `submit` attaches to a task (or which the next
    /// start removes). Reached through [`super::Scoped::create_upload`].
    pub(super) fn create_upload(&self, client: &str) -> Result<FileWriter> {
        self.check_upload_room(client, 0)?;
        self.start_file(None, client.to_string())
    }

    fn start_file(&self, task: Option<TaskId>, client: String) -> Result<FileWriter> {
        let quota = task.is_none().then(|| client.clone());
        let now = self.clock().now_text();
        let id = self.write(move |tx| create_in(tx, task, &client, &now))?;
        Ok(FileWriter::new(self.clone(), id, quota))
    }

    /// Deletes a file (a writer's discarded output or upload).
    pub(super) fn delete_file(&self, id: FileId) -> Result<()> {
        self.write(move |tx| {
            tx.execute("DELETE FROM files WHERE id = ?1", [id])?;
            Ok(())
        })
    }

    /// Deletes an upload within `scope` that no task refers to (a refused submission's).
    pub(super) fn discard_upload(&self, scope: &Scope, id: FileId) -> Result<()> {
        let (clause, values) = super::scope::one_in_scope(scope, id, "client");
        let sql = format!("DELETE FROM files WHERE id = ?1 AND task_id IS NULL {clause}");
        self.write(move |tx| {
            tx.execute(&sql, params_from_iter(&values))?;
            Ok(())
        })
    }

    /// A task's file, if the task is within `scope` and has one.
    pub(super) fn task_file(
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
        let (clause, values) = super::scope::one_in_scope(scope, task, "t.client");
        let sql = format!(
            "SELECT f.id, f.size FROM tasks t JOIN files f ON f.id = t.{column} WHERE t.id = ?1 {clause}"
        );
        let conn = self.conn()?;
        let file = conn
            .prepare_cached(&sql)?
            .query_row(params_from_iter(&values), |r| {
                Ok(StoredFile {
                    id: r.get(0)?,
                    size: r.get(1)?,
                })
            })
            .optional()?;
        Ok(file)
    }

    /// A reader over a task's LOG kept in its row (see finish.rs), if the task is within
    /// `scope` and has one.
    pub(super) fn task_log_text(&self, scope: &Scope, task: TaskId) -> Result<Option<FileReader>> {
        let (clause, values) = super::scope::one_in_scope(scope, task, "client");
        let sql =
            format!("SELECT log_text FROM tasks WHERE id = ?1 AND log_text IS NOT NULL {clause}");
        let text: Option<Vec<u8>> = self
            .conn()?
            .prepare_cached(&sql)?
            .query_row(params_from_iter(&values), |r| r.get(0))
            .optional()?;
        Ok(text.map(|bytes| FileReader::of_bytes(self, bytes)))
    }

    /// A reader over a snapshot of file `id`, for a download: a read transaction on a
    /// connection of its own, which the reader holds (and ends) until it is dropped, so a
    /// task deleted or an IO file replaced meanwhile cannot cut the download short. A file
    /// that grows (a LOG file) is read up to the size it had in the snapshot.
    pub(super) fn open_file(&self, scope: &Scope, id: FileId) -> Result<FileReader> {
        let conn = self.conn()?;
        // DEFERRED: the snapshot starts with the first read, the scope's check below.
        conn.execute_batch("BEGIN")?;
        let (clause, values) = super::scope::one_in_scope(scope, id, "client");
        let within = conn
            .prepare_cached(&format!("SELECT 1 FROM files WHERE id = ?1 {clause}"))
            .and_then(|mut stmt| stmt.exists(params_from_iter(&values)));
        if !matches!(within, Ok(true)) {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(within.err().map_or(StoreError::NotFound, StoreError::from));
        }
        // The reader owns the transaction from here: its drop ends it on every path.
        FileReader::open(self, id, Some(conn))
    }

    /// A reader over file `id` for a task reading its IO file: each chunk is read on a
    /// pooled connection of its own, so a long import holds back no WAL checkpoint. (Only a
    /// DELETE removes a running task's IO file, and that cancels the task first.)
    pub fn open_input(&self, id: FileId) -> Result<FileReader> {
        FileReader::open(self, id, None)
    }

    /// Queues chunks to append to file `id`; the receiver gets the commit's outcome.
    pub(super) fn append_chunks(
        &self,
        id: FileId,
        first_seq: i64,
        chunks: Vec<Vec<u8>>,
        quota: Option<String>,
    ) -> crossbeam_channel::Receiver<Result<()>> {
        let added: u64 = chunks.iter().map(|c| c.len() as u64).sum();
        let limit = self.limits().quota_bytes;
        let (done, outcome) = crossbeam_channel::bounded(1);
        // A refusal by the quota is decided before anything is written, and is the inner
        // error: the job succeeds, and the batch it shares need not run again (writer.rs).
        let work = move |tx: &super::writer::JobTx<'_, '_>| -> Result<Result<()>> {
            if let Some(client) = &quota {
                if let Err(refused) = super::space::check_bytes(tx, client, limit, added) {
                    return Ok(Err(refused));
                }
            }
            let mut insert = tx.prepare_cached(ADD_CHUNK)?;
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
            Ok(Ok(()))
        };
        self.inner
            .writer
            .write_then(work, move |result: Result<Result<()>>| {
                let _ = done.send(result.and_then(|refused| refused));
            });
        outcome
    }
}

/// The file writes of every task (its LOG), for the test that they build no temporary b-tree.
#[cfg(test)]
pub(super) const HOT_STATEMENTS: &[&str] = &[CREATE_FILE, CREATE_WHOLE_FILE, ADD_CHUNK];

/// A new file: ?1 its task (none for an upload), ?2 now, ?3 the client of an upload (a
/// task's file is its task's client's). Not `RETURNING id`: SQLite buffers RETURNING rows
/// in a temporary b-tree it builds at every execution, which costs more than the insert;
/// the rowid is read back instead.
const CREATE_FILE: &str = "INSERT INTO files (task_id, created_at, client) \
     VALUES (?1, ?2, coalesce((SELECT client FROM tasks WHERE id = ?1), ?3))";
/// A new file of task ?1, attached, ?2 bytes long, made at ?3.
const CREATE_WHOLE_FILE: &str = "INSERT INTO files (task_id, size, attached, created_at, client) \
     VALUES (?1, ?2, 1, ?3, (SELECT client FROM tasks WHERE id = ?1))";
/// Chunk ?2 of file ?1 holding ?3.
const ADD_CHUNK: &str = "INSERT INTO file_chunks (file_id, seq, data) VALUES (?1, ?2, ?3)";

/// Creates an empty file within a transaction.
pub(super) fn create_in(
    tx: &Connection,
    owner: Option<TaskId>,
    client: &str,
    now: &str,
) -> Result<FileId> {
    Ok(tx
        .prepare_cached(CREATE_FILE)?
        .insert(params![owner, now, client])?)
}

/// Creates a task's file holding `data`, attached, within a transaction: two statements.
pub(super) fn create_whole_in(
    tx: &Connection,
    task: TaskId,
    data: &[u8],
    now: &str,
) -> Result<FileId> {
    let id: FileId =
        tx.prepare_cached(CREATE_WHOLE_FILE)?
            .insert(params![task, data.len() as u64, now])?;
    tx.prepare_cached(ADD_CHUNK)?
        .execute(params![id, 0, data])?;
    Ok(id)
}

/// Appends `data` to a file as one more chunk, within a transaction.
pub(super) fn append_in(tx: &Connection, file: FileId, data: &[u8]) -> Result<()> {
    let next: i64 = tx
        .prepare_cached("SELECT coalesce(max(seq) + 1, 0) FROM file_chunks WHERE file_id = ?1")?
        .query_row([file], |r| r.get(0))?;
    tx.prepare_cached(ADD_CHUNK)?
        .execute(params![file, next, data])?;
    let grown = tx
        .prepare_cached("UPDATE files SET size = size + ?1 WHERE id = ?2")?
        .execute(params![data.len() as u64, file])?;
    if grown != 1 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Durability, StoreLimits};
    use std::io::Read;

    fn store(dir: &tempfile::TempDir) -> Store {
        Store::open(&dir.path().join("t.db"), Durability::Normal).unwrap()
    }

    fn bytes(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    fn stored(store: &Store, data: &[u8]) -> StoredFile {
        let mut writer = store.create_upload("default").unwrap();
        writer.append(data).unwrap();
        writer.finish().unwrap()
    }

    #[test]
    fn a_reader_reads_the_file_as_it_was_when_opened_even_once_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        let data = bytes(CHUNK_SIZE * 3 + 1234);
        let file = stored(&store, &data);
        let mut reader = store.open_file(&Scope::All, file.id).unwrap();
        assert_eq!(reader.remaining(), data.len() as u64);
        let mut first = vec![0u8; 1000];
        reader.read_exact(&mut first).unwrap();
        store.delete_file(file.id).unwrap();
        assert!(matches!(
            store.open_file(&Scope::All, file.id),
            Err(StoreError::NotFound)
        ));
        assert_reads_on(&mut reader, &first, &data);
    }

    /// Reads `reader` to its end after `first`, and checks the whole is `data`.
    fn assert_reads_on(reader: &mut FileReader, first: &[u8], data: &[u8]) {
        let mut all = first.to_vec();
        reader.read_to_end(&mut all).unwrap();
        assert!(all == data, "the bytes read differ from the bytes written");
    }

    /// Whether a passive checkpoint, run after a write made while `reader` reads, could copy
    /// the whole write-ahead log back (nothing pins it).
    fn checkpoint_completes(store: &Store) -> bool {
        store
            .write(|tx| {
                tx.execute_batch("CREATE TABLE IF NOT EXISTS t (n); INSERT INTO t VALUES (1);")?;
                Ok(())
            })
            .unwrap();
        let conn = store.conn().unwrap();
        let (log, copied): (i64, i64) = conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok((r.get(1)?, r.get(2)?))
            })
            .unwrap();
        log == copied
    }

    #[test]
    fn a_download_past_its_snapshot_bound_no_longer_pins_the_log_and_reads_on() {
        let dir = tempfile::tempdir().unwrap();
        let data = bytes(CHUNK_SIZE * 3 + 1234);
        // The default bound: the reader pins the log while it reads.
        let pinned = store(&dir);
        let file = stored(&pinned, &data);
        let mut reader = pinned.open_file(&Scope::All, file.id).unwrap();
        let mut first = vec![0u8; 1000];
        reader.read_exact(&mut first).unwrap();
        assert!(
            !checkpoint_completes(&pinned),
            "a snapshot did not pin the log"
        );
        drop(reader);
        drop(pinned);

        // A bound of zero: the snapshot ends at the first chunk, the bytes are the same.
        let limits = StoreLimits {
            max_snapshot: std::time::Duration::ZERO,
            ..StoreLimits::default()
        };
        let bounded = Store::open_with(
            &dir.path().join("t.db"),
            Durability::Normal,
            4,
            std::sync::Arc::new(crate::clock::SystemClock),
            limits,
        )
        .unwrap();
        let mut reader = bounded.open_file(&Scope::All, file.id).unwrap();
        reader.read_exact(&mut first).unwrap();
        // Another connection may read for a moment (the pool opens its spare connections in
        // the background): the checkpoint is tried until it completes, which it never would
        // while the reader, still held here mid-file, pinned the log.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !checkpoint_completes(&bounded) {
            assert!(
                std::time::Instant::now() < deadline,
                "the log is still pinned"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_reads_on(&mut reader, &first, &data);

        // Outside its snapshot, a download of a file deleted meanwhile is cut short.
        let mut reader = bounded.open_file(&Scope::All, file.id).unwrap();
        reader.read_exact(&mut first[..10]).unwrap();
        bounded.delete_file(file.id).unwrap();
        let cut = reader.read_to_end(&mut Vec::new()).unwrap_err();
        assert_eq!(cut.kind(), std::io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn a_growing_file_is_read_up_to_its_size_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        let mut writer = store.create_upload("default").unwrap();
        writer.append(b"first line\n").unwrap();
        writer.commit().unwrap();
        let mut reader = store.open_file(&Scope::All, writer.id()).unwrap();
        writer.append(b"second line\n").unwrap();
        writer.commit().unwrap();
        let mut text = String::new();
        reader.read_to_string(&mut text).unwrap();
        assert_eq!(text, "first line\n");
        let mut later = String::new();
        store
            .open_file(&Scope::All, writer.id())
            .unwrap()
            .read_to_string(&mut later)
            .unwrap();
        assert_eq!(later, "first line\nsecond line\n");
    }

    #[test]
    fn a_missing_file_is_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        assert!(matches!(
            store.open_file(&Scope::All, 12345 as FileId),
            Err(StoreError::NotFound)
        ));
    }

    #[test]
    fn readers_give_their_connection_back_without_a_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        let data = bytes(CHUNK_SIZE + 10);
        let file = stored(&store, &data);
        // More readers than the pool has connections, each dropped part-way: were a
        // connection returned inside its transaction, the next BEGIN on it would fail.
        for _ in 0..(super::super::DEFAULT_POOL_SIZE as usize + 8) {
            let mut reader = store.open_file(&Scope::All, file.id).unwrap();
            let mut some = [0u8; 10];
            reader.read_exact(&mut some).unwrap();
        }
        // Writes go on, and the file is whole.
        let other = stored(&store, b"more");
        let mut all = Vec::new();
        store
            .open_file(&Scope::All, file.id)
            .unwrap()
            .read_to_end(&mut all)
            .unwrap();
        assert!(all == data);
        assert_eq!(store.open_input(other.id).unwrap().remaining(), 4);
    }

    #[test]
    fn a_reader_is_sent_to_another_thread() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        let data = bytes(CHUNK_SIZE * 2);
        let file = stored(&store, &data);
        let reader = store.open_file(&Scope::All, file.id).unwrap();
        let read = std::thread::spawn(move || {
            let mut reader = reader;
            let mut all = Vec::new();
            reader.read_to_end(&mut all).unwrap();
            all
        })
        .join()
        .unwrap();
        assert!(read == data);
    }

    /// A chunk past the client's byte quota is refused by the writer before anything is
    /// written: an answer, not a failed job, so the batch it shares does not run again.
    #[test]
    fn a_byte_quota_refusal_inside_the_writer_does_not_make_its_batch_run_again() {
        use std::sync::atomic::Ordering;
        let dir = tempfile::tempdir().unwrap();
        let limits = StoreLimits {
            quota_bytes: 1000,
            ..StoreLimits::default()
        };
        let store = Store::open_limited(&dir.path().join("t.db"), limits);
        let upload = store.create_upload("default").unwrap();
        let release = store.inner.writer.hold();
        let (runs, answer) = store.inner.writer.probe();
        let over = store.append_chunks(upload.id(), 0, vec![bytes(2000)], Some("default".into()));
        release.send(()).unwrap();
        assert!(answer.recv().unwrap());
        assert!(matches!(
            over.recv().unwrap(),
            Err(StoreError::Refused(crate::store::Refusal::BytesQuota {
                limit: 1000
            }))
        ));
        assert_eq!(runs.load(Ordering::SeqCst), 1, "the batch ran again");
    }
}
