use std::io::Result as IoResult;
use std::io::{Error as IoError, ErrorKind, Read, Write};

use std::sync::mpsc::channel;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use std::mem;

pub struct SequentialReaderBuilder<R>
where
    R: Read + Send,
{
    inner: SequentialReaderBuilderInner<R>,
}

enum SequentialReaderBuilderInner<R>
where
    R: Read + Send,
{
    First(R),
    NotFirst(Receiver<R>),
}

pub struct SequentialReader<R>
where
    R: Read + Send,
{
    inner: SequentialReaderInner<R>,
    // taskbox patch: None once abandoned (see `abandon`).
    next: Option<Sender<R>>,
}

enum SequentialReaderInner<R>
where
    R: Read + Send,
{
    MyTurn(R),
    Waiting(Receiver<R>),
    Empty,
}

pub struct SequentialWriterBuilder<W>
where
    W: Write + Send,
{
    writer: Arc<Mutex<W>>,
    next_trigger: Option<Receiver<()>>,
    // taskbox patch: the turn of the next writer (see `SequentialWriter::turn`).
    next_turn: Arc<AtomicBool>,
}

pub struct SequentialWriter<W>
where
    W: Write + Send,
{
    trigger: Option<Receiver<()>>,
    writer: Arc<Mutex<W>>,
    on_finish: Sender<()>,
    // taskbox patch: set once every writer before this one is done (see `turn`), and the
    // next writer's, set as this one is dropped.
    turn: Arc<AtomicBool>,
    next_turn: Arc<AtomicBool>,
}

impl<R: Read + Send> SequentialReaderBuilder<R> {
    pub fn new(reader: R) -> SequentialReaderBuilder<R> {
        SequentialReaderBuilder {
            inner: SequentialReaderBuilderInner::First(reader),
        }
    }
}

impl<W: Write + Send> SequentialWriterBuilder<W> {
    pub fn new(writer: W) -> SequentialWriterBuilder<W> {
        SequentialWriterBuilder {
            writer: Arc::new(Mutex::new(writer)),
            next_trigger: None,
            next_turn: Arc::new(AtomicBool::new(true)),
        }
    }
}

impl<R: Read + Send> Iterator for SequentialReaderBuilder<R> {
    type Item = SequentialReader<R>;

    fn next(&mut self) -> Option<SequentialReader<R>> {
        let (tx, rx) = channel();

        let inner = mem::replace(&mut self.inner, SequentialReaderBuilderInner::NotFirst(rx));

        match inner {
            SequentialReaderBuilderInner::First(reader) => Some(SequentialReader {
                inner: SequentialReaderInner::MyTurn(reader),
                next: Some(tx),
            }),

            SequentialReaderBuilderInner::NotFirst(previous) => Some(SequentialReader {
                inner: SequentialReaderInner::Waiting(previous),
                next: Some(tx),
            }),
        }
    }
}

impl<W: Write + Send> Iterator for SequentialWriterBuilder<W> {
    type Item = SequentialWriter<W>;
    fn next(&mut self) -> Option<SequentialWriter<W>> {
        let (tx, rx) = channel();
        let mut next_next_trigger = Some(rx);
        ::std::mem::swap(&mut next_next_trigger, &mut self.next_trigger);

        let turn = mem::replace(&mut self.next_turn, Arc::new(AtomicBool::new(false)));
        Some(SequentialWriter {
            trigger: next_next_trigger,
            writer: self.writer.clone(),
            on_finish: tx,
            turn,
            next_turn: self.next_turn.clone(),
        })
    }
}

// taskbox patch: a reader whose predecessor was abandoned (see `abandon`) fails with
// ConnectionAborted instead of panicking, so the connection ends cleanly.
impl<R: Read + Send> SequentialReader<R> {
    /// Waits until the readers before this one are done with the stream.
    pub fn wait_turn(&mut self) -> IoResult<&mut R> {
        if let SequentialReaderInner::Waiting(ref recv) = self.inner {
            let reader = recv.recv().map_err(|_| abandoned())?;
            self.inner = SequentialReaderInner::MyTurn(reader);
        }
        match self.inner {
            SequentialReaderInner::MyTurn(ref mut reader) => Ok(reader),
            _ => Err(abandoned()),
        }
    }

    /// Gives the stream up instead of passing it on: it is closed now, and the readers
    /// after this one fail. For a request whose body was not read to its end: what is
    /// left of it must never be read as the next request.
    pub fn abandon(&mut self) {
        if let SequentialReaderInner::Waiting(ref recv) = self.inner {
            // The stream is still with a reader before this one: wait for it, to close it.
            let _ = recv.recv();
        }
        self.inner = SequentialReaderInner::Empty;
        self.next = None;
    }
}

// taskbox patch: a writer's turn can be seen without waiting for it.
impl<W: Write + Send> SequentialWriter<W> {
    /// Set once every writer before this one has been dropped: from then on, writing to
    /// this one does not wait. (A request's answer waits for the answers before it on its
    /// connection; a server that takes a connection's requests on several threads sets a
    /// request aside until its turn, rather than block a thread on another's answer.)
    pub fn turn(&self) -> Arc<AtomicBool> {
        self.turn.clone()
    }
}

fn abandoned() -> IoError {
    IoError::new(
        ErrorKind::ConnectionAborted,
        "the connection was given up by an earlier request",
    )
}

impl<R: Read + Send> Read for SequentialReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        self.wait_turn()?.read(buf)
    }
}

impl<W: Write + Send> Write for SequentialWriter<W> {
    fn write(&mut self, buf: &[u8]) -> IoResult<usize> {
        if let Some(v) = self.trigger.as_mut() {
            v.recv().unwrap()
        }
        self.trigger = None;

        self.writer.lock().unwrap().write(buf)
    }

    fn flush(&mut self) -> IoResult<()> {
        if let Some(v) = self.trigger.as_mut() {
            v.recv().unwrap()
        }
        self.trigger = None;

        self.writer.lock().unwrap().flush()
    }
}

impl<R> Drop for SequentialReader<R>
where
    R: Read + Send,
{
    fn drop(&mut self) {
        let inner = mem::replace(&mut self.inner, SequentialReaderInner::Empty);

        let reader = match inner {
            SequentialReaderInner::MyTurn(reader) => Some(reader),
            SequentialReaderInner::Waiting(recv) => recv.recv().ok(),
            SequentialReaderInner::Empty => None,
        };
        if let (Some(reader), Some(next)) = (reader, self.next.as_ref()) {
            next.send(reader).ok();
        }
    }
}

impl<W> Drop for SequentialWriter<W>
where
    W: Write + Send,
{
    fn drop(&mut self) {
        self.next_turn.store(true, Ordering::SeqCst);
        self.on_finish.send(()).ok();
    }
}
