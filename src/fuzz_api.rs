//! Entry points for the fuzz targets under `fuzz/` (cargo-fuzz), and the replay of what they
//! found as unit tests. Not part of the API: hidden from the docs, and nothing else in the
//! crate calls it.
//!
//! - [`RequestHarness`]: arbitrary bytes read as a raw HTTP request (request line, headers,
//!   body), made into the server's own `Request` (no socket) and answered by the same
//!   function the HTTP threads call (`http::answer`: the URL and header limits, routing with
//!   percent decoding and id parsing, the query string and list parameters, the media type,
//!   JSON and multipart submissions, uploads, file names, Idempotency-Key), against a real
//!   store on a temporary database. Every answer must be below 500. The same bytes also go
//!   through the parsers directly ([`request_parsers`]), with the promises they make checked.
//! - [`ImportHarness`]: arbitrary bytes as an uploaded CSV, imported by the real engine (one
//!   worker, the built-in kinds) into a real store on a temporary database, and the task's
//!   end checked against what the import promises: it finishes, its counters add up, its
//!   ERR file holds exactly the failed rows with a reason each, and the dataset holds exactly
//!   the rows it says it imported.
//!
//! Every check panics when it fails: under the fuzzer a panic is a finding.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::auth::{AuthMode, AuthSettings, Authenticator, ThrottleSettings};
use crate::clock::SystemClock;
use crate::config::{Config, Durability};
use crate::engine::Engine;
use crate::http::fields::{
    check_filename, disposition_filename, disposition_name, query_pairs, read_limited, MediaType,
};
use crate::http::multipart::Multipart;
use crate::http::{AllowedHosts, ApiError, App, Limits, Method, Request};
use crate::kind::Registry;
use crate::store::Store;
use crate::task::{Counts, FileRole, Identity, NewTask, Params, Scope, State, Task, TaskId};

/// The body limit the request target reads within (a small `--max-json`, so the 413 path is
/// reached by inputs the fuzzer can make).
const FUZZ_BODY_LIMIT: u64 = 1024;

/// A directory of its own for this process under /dev/shm (a tmpfs: SQLite's syncs cost
/// nothing there) or the system's temporary directory. libFuzzer exits without running
/// destructors, so the directories of processes that are gone are removed here instead.
pub fn scratch_dir(target: &str) -> PathBuf {
    let shm = Path::new("/dev/shm");
    let base = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let prefix = format!("taskbox-fuzz-{target}-");
    if let Ok(entries) = std::fs::read_dir(&base) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix(&prefix) {
                if !Path::new("/proc").join(pid).exists() {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
    }
    base.join(format!("{prefix}{}", std::process::id()))
}

/// Answers fuzzed requests with `http::handle` against a real store (see the module notes).
pub struct RequestHarness {
    dir: PathBuf,
    generation: u64,
    requests: u64,
    app: Option<App>,
}

/// Requests per database before the next one is started (submissions pile up as tasks).
const REQUESTS_PER_DATABASE: u64 = 1000;
impl RequestHarness {
    /// A harness whose databases live in `dir` (created if needed; use a fresh directory).
    pub fn new(dir: &Path) -> RequestHarness {
        std::fs::create_dir_all(dir).expect("the harness directory");
        RequestHarness {
            dir: dir.to_path_buf(),
            generation: 0,
            requests: 0,
            app: None,
        }
    }

    /// Answers `data` read as a raw request and returns the answer's status (None for input
    /// tiny_http would refuse itself); panics on an answer of 500 or more.
    pub fn request(&mut self, data: &[u8]) -> Option<u16> {
        request_parsers(data);
        let raw = RawRequest::split(data)?;
        if self.requests.is_multiple_of(REQUESTS_PER_DATABASE) {
            self.rotate();
        }
        self.requests += 1;
        let app = self.app.as_ref().expect("a database is open");
        let (length, mut body) = raw.body_as_sent()?;
        let mut request = Request::new(
            Method::parse(&raw.method),
            raw.url.clone(),
            raw.headers_as_sent(),
            None,
            length,
            &mut body,
        );
        let answer = crate::http::answer(app, &mut request);
        let status = answer.reply.status;
        assert!(
            status < 500,
            "{} {:?} answered {status}",
            raw.method,
            raw.url
        );
        Some(status)
    }

    fn rotate(&mut self) {
        if let Some(app) = self.app.take() {
            drop(app);
            let _ = std::fs::remove_dir_all(self.db_dir());
        }
        self.generation += 1;
        let dir = self.db_dir();
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("the database directory");
        let store = Store::open_sized(
            &dir.join("fuzz.db"),
            Durability::Normal,
            CONNECTIONS,
            Arc::new(SystemClock),
        )
        .expect("open the store");
        // Small limits, so that the 413s are within reach of inputs the fuzzer makes.
        let config = Config {
            max_upload: 4096,
            max_json: 1024,
            ..Config::default()
        };
        // Open, as on loopback with no token; the fuzzer's bad tokens wait for nothing.
        let auth = Authenticator::new(
            store.clone(),
            AuthSettings {
                mode: AuthMode::Auto,
                open_allowed: true,
                throttle: ThrottleSettings {
                    max_delay: Duration::ZERO,
                    forget_after: Duration::from_secs(1),
                },
            },
            Arc::new(SystemClock),
        )
        .expect("the authenticator");
        self.app = Some(App::new(
            store,
            Arc::new(Registry::builtin()),
            Limits::of(&config),
            crate::api::router(),
            AllowedHosts::new(&[], "127.0.0.1:0".parse().expect("an address")),
            auth,
        ));
    }

    fn db_dir(&self) -> PathBuf {
        self.dir.join(format!("db{}", self.generation))
    }
}

impl Drop for RequestHarness {
    fn drop(&mut self) {
        self.app = None;
        let _ = std::fs::remove_dir_all(self.db_dir());
    }
}

/// Drives one raw HTTP request through the parsers taskbox applies to a request, directly:
/// routing, the query string, media types, Content-Disposition, file names, the bounded body
/// read, JSON, the multipart reader. Panics if one answers other than with a 4xx, or breaks
/// a promise it makes.
pub fn request_parsers(data: &[u8]) {
    let Some(raw) = RawRequest::split(data) else {
        return;
    };
    let url = raw.url.as_str();

    let path = url.split_once('?').map_or(url, |(p, _)| p);
    let routed = crate::api::router()
        .find(&Method::parse(&raw.method), path)
        .map(|(_, args)| args)
        .map_err(|(e, _)| e);
    if let Ok(args) = check_api_error(routed, "route") {
        if let Some(id) = args.id {
            assert!(id > 0, "a routed task id is not positive: {id}")
        }
    }
    if let Ok(pairs) = check_api_error(query_pairs(url), "query_pairs") {
        for (name, value) in &pairs {
            if name == "filename" {
                checked_filename(value);
            }
        }
    }

    let header = |name: &str| {
        raw.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    if let Some(value) = header("Content-Disposition") {
        let _ = disposition_name(value);
        if let Some(name) = disposition_filename(value) {
            checked_filename(&name);
        }
    }
    let media = header("Content-Type").map(MediaType::parse);
    let essence = media.as_ref().map_or("", |m| m.essence.as_str());
    let _ = media.as_ref().and_then(|m| m.param("charset"));
    let Ok(body) = check_api_error(
        read_limited(&mut &raw.body[..], FUZZ_BODY_LIMIT, "fuzzed body"),
        "read_limited",
    ) else {
        return;
    };
    assert!(body.len() as u64 <= FUZZ_BODY_LIMIT);
    if essence == "application/json" {
        let _ = serde_json::from_slice::<serde_json::Value>(&body);
    } else if essence == "multipart/form-data" {
        let boundary = media
            .as_ref()
            .and_then(|m| m.param("boundary"))
            .filter(|b| !b.is_empty() && b.len() <= 70);
        if let Some(boundary) = boundary {
            read_form(&raw.body, boundary);
        }
    }
}

/// Reads a multipart body to its end as the submission does: every part's headers, every
/// field within a limit, every file part streamed. What comes out of the parts can never be
/// more than what went in.
fn read_form(body: &[u8], boundary: &str) {
    let mut form = Multipart::new(body, boundary);
    let mut out = 0usize;
    for _ in 0..10_000 {
        let part = match form.next_part() {
            Ok(Some(part)) => part,
            Ok(None) | Err(_) => return,
        };
        if let Some(name) = part.filename.as_deref() {
            checked_filename(name);
        }
        let read = if part.name == "file" {
            let mut data = Vec::new();
            form.body().read_to_end(&mut data).map(|_| data)
        } else {
            match read_limited(&mut form.body(), FUZZ_BODY_LIMIT, "form's fields") {
                Ok(data) => Ok(data),
                Err(e) => {
                    let _ = check_api_error::<()>(Err(e), "a form field");
                    return;
                }
            }
        };
        match read {
            Ok(data) => out += data.len(),
            Err(_) => return,
        }
        assert!(
            out <= body.len(),
            "the parts gave {out} bytes from a body of {}",
            body.len()
        );
    }
    panic!("a body of {} bytes gave 10000 parts", body.len());
}

/// Checks a file name as the submission does; one it accepts must keep its promise.
fn checked_filename(name: &str) {
    if check_api_error(check_filename(name), "check_filename").is_ok() {
        assert!(!name.contains(['/', '\\']), "accepted a path: {name:?}");
        assert!(!name.chars().any(char::is_control), "accepted {name:?}");
        assert!(name != "." && name != ".." && name.len() <= 255, "{name:?}");
    }
}

/// An error must be a client error in the envelope's terms: a 4xx with a message.
fn check_api_error<T>(result: Result<T, ApiError>, what: &str) -> Result<T, ApiError> {
    if let Err(e) = &result {
        assert!(
            (400..500).contains(&e.status),
            "{what} answered {}: {}",
            e.status,
            e.message
        );
        assert!(
            !e.message.is_empty(),
            "{what} answered {} with no message",
            e.status
        );
    }
    result
}

/// A raw request cut into its pieces the way tiny_http does before taskbox sees it: a
/// request line `METHOD URL [VERSION]`, header lines `Name: value` up to an empty line, then
/// the body. Input tiny_http would refuse itself (not UTF-8, a header without a colon or
/// with a non-ASCII value) is skipped.
struct RawRequest {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl RawRequest {
    fn split(data: &[u8]) -> Option<RawRequest> {
        let mut rest = data;
        let mut next_line = || -> Option<&[u8]> {
            let at = memchr::memchr(b'\n', rest)?;
            let line = &rest[..at];
            rest = &rest[at + 1..];
            Some(line.strip_suffix(b"\r").unwrap_or(line))
        };
        let line = std::str::from_utf8(next_line()?).ok()?;
        let mut words = line.split(' ');
        let method = words.next()?.to_string();
        let url = words.next()?.to_string();
        let mut headers = Vec::new();
        loop {
            let line = next_line()?;
            if line.is_empty() {
                break;
            }
            let line = std::str::from_utf8(line).ok()?;
            let (name, value) = line.split_once(':')?;
            if !value.is_ascii() {
                return None;
            }
            headers.push((name.trim().to_string(), value.trim().to_string()));
        }
        Some(RawRequest {
            method,
            url,
            headers,
            body: rest.to_vec(),
        })
    }

    /// The body as the server would read it: its declared length (None when chunked) and
    /// its bytes. None for what tiny_http refuses before taskbox sees it (a method it cannot
    /// parse, an Expect other than 100-continue, a short body of at most 1 KiB shorter than
    /// its Content-Length).
    fn body_as_sent(&self) -> Option<(Option<usize>, &[u8])> {
        let find = |name: &str| {
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        if find("Expect").is_some_and(|v| !v.eq_ignore_ascii_case("100-continue")) {
            return None;
        }
        if find("Transfer-Encoding").is_some() {
            return Some((None, &self.body));
        }
        match find("Content-Length").and_then(|v| v.parse::<usize>().ok()) {
            Some(length) if length <= 1024 && length > self.body.len() => None,
            Some(length) => Some((Some(length), &self.body[..length.min(self.body.len())])),
            // A request without a length is given its body's, as tiny_http's test
            // requests are (see `headers_as_sent`).
            None => Some((Some(self.body.len()), &self.body)),
        }
    }

    /// The headers as sent, with a Content-Length added when the request declared no length.
    fn headers_as_sent(&self) -> Vec<(String, String)> {
        let mut headers = self.headers.clone();
        let declared = headers.iter().any(|(n, _)| {
            n.eq_ignore_ascii_case("Content-Length") || n.eq_ignore_ascii_case("Transfer-Encoding")
        });
        if !declared {
            headers.push(("Content-Length".into(), self.body.len().to_string()));
        }
        headers
    }
}

/// Imports fuzzed CSV files with the real engine into a real store (see the module notes).
/// Each import goes into a dataset of its own, so an input's outcome does not depend on the
/// ones before it; the database is replaced every [`ROTATE_EVERY`] imports so that it stays
/// small.
pub struct ImportHarness {
    dir: PathBuf,
    durability: Durability,
    generation: u64,
    imports: u64,
    running: Option<(Store, Engine)>,
}

/// Imports per database before the next one is started. Each import creates a dataset (a
/// table), and every table added makes SQLite parse the whole schema again on each
/// connection: a small database keeps the target fast.
const ROTATE_EVERY: u64 = 50;
/// Pooled connections: the harness, the dispatcher, the worker and one to spare (fewer
/// connections, fewer schema parses).
const CONNECTIONS: u32 = 4;
/// How long an import may take before it counts as hung.
const IMPORT_DEADLINE: Duration = Duration::from_secs(30);

/// The key an input asks for, from the low bits of its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyChoice {
    None,
    FirstColumn,
    FirstTwoColumns,
    NotInHeader,
}

impl ImportHarness {
    /// A harness whose databases live in `dir` (created if needed; use a fresh directory,
    /// on a tmpfs for speed). `Durability::Normal` is enough: nothing here survives a crash.
    pub fn new(dir: &Path, durability: Durability) -> ImportHarness {
        std::fs::create_dir_all(dir).expect("the harness directory");
        ImportHarness {
            dir: dir.to_path_buf(),
            durability,
            generation: 0,
            imports: 0,
            running: None,
        }
    }

    /// The first byte chooses the key (bits 0-1) and whether the file is imported a second
    /// time into the same dataset (bit 2); the rest is the CSV file.
    pub fn import(&mut self, data: &[u8]) {
        let Some((&flags, csv)) = data.split_first() else {
            return;
        };
        // An empty body is no upload: the HTTP layer refuses it before any task exists.
        if csv.is_empty() {
            return;
        }
        let key = match flags & 3 {
            0 => KeyChoice::None,
            1 => KeyChoice::FirstColumn,
            2 => KeyChoice::FirstTwoColumns,
            _ => KeyChoice::NotInHeader,
        };
        let twice = flags & 4 != 0;
        if self.imports.is_multiple_of(ROTATE_EVERY) {
            self.rotate();
        }
        self.imports += 1;
        let table = format!("fuzz_{}", self.imports);
        let mut params = Params::new();
        params.insert("table".into(), table.clone());
        if let Some(key) = key_param(key, csv) {
            params.insert("key".into(), key);
        }
        let keyed = params.contains_key("key");

        let first = self.run(csv, &params);
        let Some(first_counts) = check_outcome(self.store(), &first) else {
            return;
        };
        let rows = dataset_len(self.store(), &table);
        assert_eq!(
            rows, first_counts.succeeded,
            "the dataset holds {rows} rows after an import that inserted {} (task {})",
            first_counts.succeeded, first.id
        );
        if !twice {
            return;
        }
        let second = self.run(csv, &params);
        let second_counts = check_outcome(self.store(), &second)
            .unwrap_or_else(|| panic!("the same file imported again failed: {:?}", second.message));
        let good = first_counts.succeeded + first_counts.duplicate;
        assert_eq!(
            second_counts.total, first_counts.total,
            "total, second import"
        );
        assert_eq!(
            second_counts.failed, first_counts.failed,
            "failed, second import"
        );
        if keyed {
            assert_eq!(
                (second_counts.succeeded, second_counts.duplicate),
                (0, good),
                "every row of a keyed file imported again is a duplicate"
            );
        } else {
            assert_eq!(second_counts.succeeded, good, "succeeded, second import");
        }
        let rows = dataset_len(self.store(), &table);
        assert_eq!(rows, first_counts.succeeded + second_counts.succeeded);
    }

    fn store(&self) -> &Store {
        &self.running.as_ref().expect("a database is open").0
    }

    /// Stops the engine on the current database, removes it, and starts on a fresh one.
    fn rotate(&mut self) {
        if let Some((store, engine)) = self.running.take() {
            let stuck = engine.stop(Instant::now() + Duration::from_secs(5));
            assert!(stuck.is_empty(), "tasks left running: {stuck:?}");
            drop(store);
            let _ = std::fs::remove_dir_all(self.db_dir());
        }
        self.generation += 1;
        let dir = self.db_dir();
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("the database directory");
        let store = Store::open_sized(
            &dir.join("fuzz.db"),
            self.durability,
            CONNECTIONS,
            Arc::new(SystemClock),
        )
        .expect("open the store");
        let engine = Engine::start(store.clone(), Arc::new(Registry::builtin()), 1)
            .expect("start the engine");
        self.running = Some((store, engine));
    }

    fn db_dir(&self) -> PathBuf {
        self.dir.join(format!("db{}", self.generation))
    }

    /// Uploads `csv` as a task's IO file, submits a csv.import and waits for its end.
    fn run(&self, csv: &[u8], params: &Params) -> Task {
        let store = self.store();
        let mut upload = store
            .scoped(Scope::All)
            .create_upload()
            .expect("create the upload");
        upload.append(csv).expect("write the upload");
        let upload = upload.finish().expect("finish the upload");
        let mut new = NewTask::new("csv.import", params.clone());
        new.io_filename = "fuzz.csv".into();
        new.io_file = Some(upload.id);
        let id = store
            .scoped(Scope::All)
            .submit(&new)
            .expect("submit")
            .task
            .id;
        wait_for_end(store, id)
    }
}

impl Drop for ImportHarness {
    fn drop(&mut self) {
        if let Some((store, engine)) = self.running.take() {
            engine.stop(Instant::now() + Duration::from_secs(5));
            drop(store);
        }
        let _ = std::fs::remove_dir_all(self.db_dir());
    }
}

/// The key param for `choice`, from the file's first record (its header). None when no key
/// is asked for, or the header is not UTF-8 (the import refuses it anyway).
fn key_param(choice: KeyChoice, csv: &[u8]) -> Option<String> {
    let columns = match choice {
        KeyChoice::None => return None,
        KeyChoice::NotInHeader => return Some("no such column".into()),
        KeyChoice::FirstColumn => 1,
        KeyChoice::FirstTwoColumns => 2,
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(csv);
    let mut header = csv::ByteRecord::new();
    reader.read_byte_record(&mut header).ok()?;
    let names: Vec<&str> = header
        .iter()
        .take(columns)
        .map(std::str::from_utf8)
        .collect::<Result<_, _>>()
        .ok()?;
    Some(names.join(","))
}

fn wait_for_end(store: &Store, id: TaskId) -> Task {
    let deadline = Instant::now() + IMPORT_DEADLINE;
    loop {
        let seen = store.activity().generation();
        let task = store.scoped(Scope::All).task(id).expect("read the task");
        if task.state.is_finished() {
            return task;
        }
        assert!(
            Instant::now() < deadline,
            "task {id} has not finished after {IMPORT_DEADLINE:?}: {task:?}"
        );
        store.activity().wait_past(seen, Duration::from_millis(1));
    }
}

/// Checks a finished import against the promises of csv.import; returns its counters when it
/// imported the file (wholly or with failed rows), None when it refused the file whole.
fn check_outcome(store: &Store, task: &Task) -> Option<Counts> {
    let c = task.counts;
    let message = task.message.as_str();
    assert!(
        !message.contains("panicked") && !crate::kind::is_database_failure(message),
        "task {}: {message}",
        task.id
    );
    match task.state {
        State::Succeeded => {
            assert_eq!(c.failed, 0, "a SUCCESS with failed rows: {message}");
            assert_eq!(c.total, c.succeeded + c.duplicate, "counters: {c:?}");
            assert!(!task.has_err_file, "a SUCCESS with an ERR file");
            Some(c)
        }
        State::Failed if message.starts_with("Some records were not imported") => {
            assert!(c.failed > 0, "{message} but no failed row: {c:?}");
            assert_eq!(c.total, c.succeeded + c.duplicate + c.failed, "{c:?}");
            let failed = err_file_rows(store, task.id);
            assert_eq!(failed, c.failed, "ERR file rows, task {}", task.id);
            Some(c)
        }
        State::Failed => {
            assert!(
                message
                    .to_ascii_lowercase()
                    .contains("nothing was imported"),
                "an import refused with an unexpected message: {message}"
            );
            assert_eq!(c, Counts::default(), "{message}");
            None
        }
        other => panic!("task {} ended {other}: {message}", task.id),
    }
}

/// The data rows of a task's ERR file, each checked to carry a reason.
fn err_file_rows(store: &Store, id: TaskId) -> u64 {
    let store = store.scoped(Scope::All);
    let file = store
        .task_file(id, FileRole::Err)
        .expect("look up the ERR file")
        .unwrap_or_else(|| panic!("task {id} has failed rows and no ERR file"));
    let mut bytes = Vec::new();
    store
        .open_file(file.id)
        .expect("open the ERR file")
        .read_to_end(&mut bytes)
        .expect("read the ERR file");
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(&bytes[..]);
    let mut records = reader.byte_records();
    let header = records
        .next()
        .expect("the ERR file has a header")
        .expect("the ERR file is CSV");
    assert_eq!(header.iter().next_back(), Some(&b"error"[..]), "ERR header");
    let mut rows = 0;
    for record in records {
        let record = record.expect("the ERR file is CSV");
        let reason = record.iter().next_back().unwrap_or_default();
        assert!(
            !reason.is_empty(),
            "an ERR row without a reason: {record:?}"
        );
        rows += 1;
    }
    rows
}

fn dataset_len(store: &Store, name: &str) -> u64 {
    match store
        .dataset(Identity::DEFAULT_CLIENT, name)
        .expect("read the dataset")
    {
        Some(dataset) => store.dataset_len(&dataset).expect("count the dataset"),
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn import_harness() -> (tempfile::TempDir, ImportHarness) {
        let dir = tempfile::tempdir().unwrap();
        let harness = ImportHarness::new(dir.path(), Durability::Normal);
        (dir, harness)
    }

    #[test]
    fn requests_of_every_shape_are_answered() {
        let dir = tempfile::tempdir().unwrap();
        let mut requests = RequestHarness::new(dir.path());
        let cases: [(&[u8], Option<u16>); 9] = [
            (b"GET /webservicetasks?limit=5&offset=99999999999 HTTP/1.1\r\n\r\n", Some(200)),
            (b"GET /webservicetasks?limit=0 HTTP/1.1\r\n\r\n", Some(400)),
            (b"GET /webservicetasks/7/IoFile HTTP/1.1\r\n\r\n", Some(404)),
            (
                b"POST /webservicetasks?kind=csv.import&table=t&filename=a.csv HTTP/1.1\r\nContent-Type: text/csv\r\n\r\na,b\n",
                Some(202),
            ),
            (
                b"POST /webservicetasks?kind=csv.import&table=t&filename=..%2Fetc HTTP/1.1\r\nContent-Type: text/csv\r\n\r\na,b\n",
                Some(400),
            ),
            (
                b"POST /webservicetasks HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{\"kind\":\"sleep\",\"params\":{\"seconds\":1}}",
                Some(202),
            ),
            (
                b"POST /webservicetasks HTTP/1.1\r\nContent-Type: multipart/form-data; boundary=b\r\n\r\n--b\r\nContent-Disposition: form-data; name=\"kind\"\r\n\r\ncsv.import\r\n--b\r\nContent-Disposition: form-data; name=\"table\"\r\n\r\nt\r\n--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.csv\"\r\n\r\na\r\n--b--",
                Some(202),
            ),
            (b"GET /webservicetasks/%FF HTTP/1.1\r\n\r\n", Some(400)),
            (b"GET /webservicetasks HTTP/1.1\r\nExpect: nothing\r\n\r\n", None),
        ];
        for (input, status) in cases {
            assert_eq!(
                requests.request(input),
                status,
                "{}",
                String::from_utf8_lossy(input)
            );
        }
        assert_eq!(requests.request(b""), None);
    }

    /// The files of `fuzz/<dir>/<target>/` whose names start with `prefix`.
    fn inputs(dir: &str, target: &str, prefix: &str) -> Vec<(String, Vec<u8>)> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz")
            .join(dir)
            .join(target);
        let mut found: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|name| name.starts_with(prefix))
                    .map(|name| {
                        let data = std::fs::read(dir.join(&name)).unwrap();
                        (name, data)
                    })
                    .collect()
            })
            .unwrap_or_default();
        found.sort();
        found
    }

    /// The seeds of both corpora pass, so a fuzz run starts from inputs the checks accept.
    #[test]
    fn the_seed_corpora_pass() {
        let seeds = inputs("corpus", "request", "seed-");
        assert!(seeds.len() >= 5, "request seeds: {}", seeds.len());
        let dir = tempfile::tempdir().unwrap();
        let mut requests = RequestHarness::new(dir.path());
        for (_, data) in &seeds {
            requests.request(data);
        }
        assert_eq!(requests.requests, seeds.len() as u64);
        let imports = inputs("corpus", "csv_import", "seed-");
        assert!(imports.len() >= 5, "csv_import seeds: {}", imports.len());
        let (_dir, mut harness) = import_harness();
        for (_, data) in &imports {
            harness.import(data);
        }
        assert_eq!(harness.imports, imports.len() as u64);
    }

    #[test]
    fn imports_are_checked_once_and_twice() {
        let (_dir, mut harness) = import_harness();
        // Keyed by the first column, imported twice: the second time every row is a duplicate.
        harness.import(b"\x05code,name\nUS,x\nFR,y\nUS,z\n,empty key\nbad\n");
        // No key, imported twice: every good row again.
        harness.import(b"\x04a,b\n1,2\n3\n");
        // Refused whole: a duplicate column, no header, a key not in the header.
        harness.import(b"\x04a,a\n1,2\n");
        harness.import(b"\x00\n");
        harness.import(b"\x07a,b\n1,2\n");
        assert_eq!(harness.imports, 5);
    }
}
