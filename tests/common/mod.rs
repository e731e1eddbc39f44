//! Shared by every test binary (integration, crash, disk, hostile), each of which includes
//! it with `#[path = "../common/mod.rs"] mod common;`: start the real taskbox binary on port
//! 0 with its own temporary database, talk HTTP to it, and wait on conditions with a
//! deadline.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long any wait in a test may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// A taskbox process started for one test.
pub struct Server {
    child: Option<Child>,
    pub base: String,
    /// The test's own directory: the database and the server's log live here.
    pub dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
}

impl Server {
    /// A server with default settings on a fresh database.
    pub fn start() -> Server {
        Server::start_with(&[])
    }

    /// A server with extra command-line flags on a fresh database.
    pub fn start_with(args: &[&str]) -> Server {
        let temp = tempfile::tempdir().expect("temp dir");
        let dir = temp.path().to_path_buf();
        let mut server = Server::start_in(&dir, args);
        server._temp = Some(temp);
        server
    }

    /// A server on the database in `dir` (kept by the caller, so a restart finds it).
    pub fn start_in(dir: &Path, args: &[&str]) -> Server {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("server.log"))
            .expect("server log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_taskbox"))
            .arg("serve")
            .arg("--db")
            .arg(dir.join("taskbox.db"))
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env("RUST_LOG", "debug")
            .env("TASKBOX_TEST_KINDS", "true")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start taskbox");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            // Keep draining so the child never blocks on a full pipe.
            for _ in lines {}
        });
        let line = match rx.recv_timeout(DEADLINE) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                panic!("taskbox did not start; its log:\n{}", read_log(dir));
            }
        };
        let base = line
            .strip_prefix("taskbox listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        Server {
            child: Some(child),
            base,
            dir: dir.to_path_buf(),
            _temp: None,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.join("taskbox.db")
    }

    /// The server's log so far (stderr).
    pub fn log(&self) -> String {
        read_log(&self.dir)
    }

    /// SIGKILL: the process dies at once, as in a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends a signal and waits for the process to exit; returns its exit status.
    pub fn signal_and_wait(&mut self, signal: &str, within: Duration) -> std::process::ExitStatus {
        self.signal(signal);
        self.wait_exit(within, &format!("SIG{signal}"))
    }

    /// Sends a signal (`TERM`, `INT`, ...) to the process.
    pub fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .expect("kill");
        assert!(ok.success());
    }

    /// Waits for the process to exit, `after` what (for the failure's message); returns its
    /// exit status. Kills it and fails the test if it is still running after `within`.
    pub fn wait_exit(&mut self, within: Duration, after: &str) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("taskbox did not exit within {within:?} after {after}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The names of the process's threads (as `/proc` gives them, at most 15 bytes).
    pub fn thread_names(&self) -> Vec<String> {
        let dir = format!("/proc/{}/task", self.pid());
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| std::fs::read_to_string(e.path().join("comm")).ok())
            .map(|name| name.trim_end().to_string())
            .collect()
    }

    /// The peak resident memory of the server so far (VmHWM), in bytes.
    pub fn peak_rss(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("proc status");
        let line = status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .expect("VmHWM");
        let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        kib * 1024
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn read_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
}

/// Polls `check` until it gives a value, failing the test after `DEADLINE`.
pub fn wait_until<T>(what: &str, check: impl FnMut() -> Option<T>) -> T {
    poll_until(DEADLINE, check).unwrap_or_else(|| panic!("timed out waiting for {what}"))
}

/// Polls `check` until it gives a value, or `within` has passed (None: a caller that says
/// more than `wait_until` about a failure).
pub fn poll_until<T>(within: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// An HTTP answer.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The envelope's `data`, after checking the answer is a success with `status`.
    pub fn data(&self, status: u16) -> Value {
        let json = self.json();
        assert_eq!(self.status, status, "unexpected answer: {json}");
        assert_eq!(json["status"], "success", "{json}");
        assert_eq!(json["message"], "", "{json}");
        json["data"].clone()
    }

    /// The envelope's message, after checking the answer is an error with `status`.
    pub fn error(&self, status: u16) -> String {
        let json = self.json();
        assert_eq!(self.status, status, "unexpected answer: {json}");
        assert_eq!(json["status"], "error", "{json}");
        assert_eq!(json["data"], Value::Null, "{json}");
        json["message"].as_str().expect("message").to_string()
    }
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(60))
        .build()
}

/// Sends a request; 4xx and 5xx answers are answers, not errors.
pub fn send(method: &str, url: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> Answer {
    let mut request = agent().request(method, url);
    for (name, value) in headers {
        request = request.set(name, value);
    }
    let result = match body {
        Some(bytes) => request.send_bytes(bytes),
        None => request.call(),
    };
    let response = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {url}: {e}"),
    };
    into_answer(response)
}

pub fn into_answer(response: ureq::Response) -> Answer {
    let status = response.status();
    let headers = response
        .headers_names()
        .into_iter()
        .map(|n| {
            let v = response.header(&n).unwrap_or_default().to_string();
            (n, v)
        })
        .collect();
    let mut body = Vec::new();
    response
        .into_reader()
        .read_to_end(&mut body)
        .expect("read body");
    Answer {
        status,
        headers,
        body,
    }
}

pub fn get(url: &str) -> Answer {
    send("GET", url, &[], None)
}

pub fn delete(url: &str) -> Answer {
    send("DELETE", url, &[], None)
}

pub fn post_json(url: &str, body: &Value) -> Answer {
    send(
        "POST",
        url,
        &[("Content-Type", "application/json")],
        Some(body.to_string().as_bytes()),
    )
}

/// POSTs a file as the raw body; `query` is appended to /webservicetasks.
pub fn post_file(server: &Server, query: &str, file: &[u8]) -> Answer {
    send(
        "POST",
        &server.url(&format!("/webservicetasks?{query}")),
        &[("Content-Type", "text/csv")],
        Some(file),
    )
}

/// Submits a JSON task and returns its id.
pub fn submit(server: &Server, kind: &str, params: Value) -> i64 {
    let data = post_json(
        &server.url("/webservicetasks"),
        &serde_json::json!({"kind": kind, "params": params}),
    )
    .data(202);
    data["WebServiceTaskId"].as_i64().expect("id")
}

/// The task object of task `id`.
pub fn task(server: &Server, id: i64) -> Value {
    get(&server.url(&format!("/webservicetasks/{id}"))).data(200)
}

/// Waits until task `id` has ended and returns it.
pub fn wait_finished(server: &Server, id: i64) -> Value {
    wait_until(&format!("task {id} to finish"), || {
        let t = task(server, id);
        matches!(t["Status"].as_str(), Some("SUCCESS" | "ERROR" | "CANCELED")).then_some(t)
    })
}

/// Waits until task `id` is running.
pub fn wait_running(server: &Server, id: i64) -> Value {
    wait_until(&format!("task {id} to start"), || {
        let t = task(server, id);
        (t["Status"] == "In progress").then_some(t)
    })
}

/// Runs `taskbox serve --db DB ARGS` expecting it to exit by itself (a start that fails)
/// within `within`: its exit status and standard error. Fails the test, with what it wrote,
/// if it is still running then.
pub fn run_to_exit(db: &Path, args: &[&str], within: Duration) -> (ExitStatus, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_taskbox"))
        .arg("serve")
        .arg("--db")
        .arg(db)
        .args(args)
        .env("RUST_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start taskbox");
    let mut stderr = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + within;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let text = reader.join().unwrap_or_default();
            panic!("taskbox {args:?} did not exit within {within:?}: it started? Its log:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (status, reader.join().expect("stderr reader"))
}
