//! The processes under test: a taskbox child on a fresh temporary database, and the bare
//! tiny_http "ceiling" server (this binary, re-executed with the hidden subcommand
//! `ceiling-server`). Each is started on port 0, its address read from the first line of
//! its standard output, watched through /proc, and stopped with SIGTERM.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use taskbox::config::DEFAULT_HTTP_THREADS;

use crate::procfs;

/// How long a server may take to print its address (a start on a database of a million
/// tasks included), and to exit after SIGTERM.
const START_TIMEOUT: Duration = Duration::from_secs(120);
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// The harness's temporary directory, `<temp>/taskbox-bench-<pid>`, removed with
/// everything in it when dropped.
pub struct TempRoot {
    path: PathBuf,
    counter: AtomicUsize,
}

impl TempRoot {
    pub fn create() -> std::io::Result<TempRoot> {
        let path = std::env::temp_dir().join(format!("taskbox-bench-{}", std::process::id()));
        std::fs::create_dir_all(&path)?;
        Ok(TempRoot {
            path,
            counter: AtomicUsize::new(0),
        })
    }

    /// A fresh directory for one scenario, removed when dropped.
    pub fn dir(&self, name: &str) -> std::io::Result<TempDir> {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let path = self.path.join(format!("{n}-{name}"));
        std::fs::create_dir_all(&path)?;
        Ok(TempDir { path })
    }
}

impl Drop for TempRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// The release `taskbox` next to this executable.
pub fn taskbox_exe() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let path = exe.parent()?.join("taskbox");
    path.is_file().then_some(path)
}

/// `--max-unfinished-tasks` for every server the harness starts: room for the million
/// tasks the stored scenarios keep waiting (the default quota is 100,000 per client).
const UNFINISHED_FOR_SCENARIOS: &str = "1000000000";

/// Makes an access token in the database at `db` with `taskbox token create` (the CLI a
/// user runs), creating the database if need be; its text. From then on that server
/// requires a token on every request.
pub fn create_token(exe: &Path, db: &Path) -> Result<String, String> {
    let out = Command::new(exe)
        .args([
            "token",
            "create",
            "--user-id",
            "1",
            "--user-name",
            "bench",
            "--client",
            "default",
        ])
        .arg("--db")
        .arg(db)
        .env_remove("TASKBOX_DB")
        .output()
        .map_err(|e| format!("taskbox token create: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "taskbox token create failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// How a taskbox child is started.
pub struct TaskboxOptions<'a> {
    pub exe: &'a Path,
    pub db: &'a Path,
    pub durability: &'a str,
    /// `--workers`; None keeps taskbox's default (one per CPU).
    pub workers: Option<usize>,
}

/// A server child process.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    pid: String,
    name: &'static str,
    log: Option<PathBuf>,
}

impl Server {
    /// `taskbox serve --db DB --listen 127.0.0.1:0 --durability D --grace-secs 0`, its log
    /// (at taskbox's default level, info) in `log`. The grace period is 0 so that a stop
    /// does not wait for the long `sleep` tasks some scenarios keep running.
    pub fn taskbox(options: &TaskboxOptions<'_>, log: &Path) -> Result<Server, String> {
        let mut cmd = Command::new(options.exe);
        // The caller's TASKBOX_* settings must not leak into the measurement.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("TASKBOX_") {
                cmd.env_remove(key);
            }
        }
        cmd.env("RUST_LOG", "info")
            .arg("serve")
            .arg("--db")
            .arg(options.db)
            .args(["--listen", "127.0.0.1:0"])
            .args(["--durability", options.durability])
            .args(["--grace-secs", "0"])
            // The stored scenarios keep a million tasks waiting, past the default quota.
            .args(["--max-unfinished-tasks", UNFINISHED_FOR_SCENARIOS]);
        if let Some(workers) = options.workers {
            cmd.args(["--workers", &workers.to_string()]);
        }
        let stderr = File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        cmd.stderr(stderr);
        Server::start(cmd, "taskbox", Some(log.to_path_buf()))
    }

    /// The bare tiny_http server: this executable, `ceiling-server`.
    pub fn ceiling() -> Result<Server, String> {
        let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
        let mut cmd = Command::new(exe);
        cmd.args(["ceiling-server", "--listen", "127.0.0.1:0"])
            .stderr(Stdio::inherit());
        Server::start(cmd, "ceiling-server", None)
    }

    fn start(mut cmd: Command, name: &'static str, log: Option<PathBuf>) -> Result<Server, String> {
        cmd.stdin(Stdio::null()).stdout(Stdio::piped());
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {name}: {e}"))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = tx.send(reader.read_line(&mut line).map(|_| line));
            // Drain the rest, so the child never blocks on a full pipe.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let mut server = Server {
            pid: child.id().to_string(),
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            name,
            log,
        };
        let line = match rx.recv_timeout(START_TIMEOUT) {
            Ok(Ok(line)) => line,
            Ok(Err(e)) => return Err(server.failed(&format!("reading its output: {e}"))),
            Err(_) => {
                return Err(server.failed(&format!(
                    "it did not print its address within {START_TIMEOUT:?}"
                )))
            }
        };
        let addr = line
            .trim()
            .rsplit_once("http://")
            .and_then(|(_, addr)| addr.parse().ok());
        match addr {
            Some(addr) => server.addr = addr,
            None => {
                return Err(server.failed(&format!(
                    "its first line is not an address: {:?}",
                    line.trim()
                )))
            }
        }
        Ok(server)
    }

    /// The error for a server that did not start, with the end of its log.
    fn failed(&mut self, why: &str) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        format!("{} did not start: {why}{}", self.name, self.log_tail())
    }

    fn log_tail(&self) -> String {
        let Some(log) = &self.log else {
            return String::new();
        };
        let mut text = String::new();
        let _ = File::open(log).and_then(|mut f| f.read_to_string(&mut text));
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(10)..].join("\n  ");
        if tail.is_empty() {
            String::new()
        } else {
            format!("; the end of its log:\n  {tail}")
        }
    }

    /// utime + stime so far, in seconds.
    pub fn cpu_seconds(&self) -> f64 {
        procfs::cpu_seconds(&self.pid).unwrap_or(f64::NAN)
    }

    /// VmRSS in MiB.
    pub fn rss_mib(&self) -> f64 {
        procfs::status_kib(&self.pid, "VmRSS").map_or(f64::NAN, |k| k as f64 / 1024.0)
    }

    /// VmHWM (the peak RSS) in MiB.
    pub fn peak_rss_mib(&self) -> f64 {
        procfs::status_kib(&self.pid, "VmHWM").map_or(f64::NAN, |k| k as f64 / 1024.0)
    }

    /// Resets the peak RSS to the current RSS; false if the kernel refused.
    pub fn reset_peak_rss(&self) -> bool {
        procfs::reset_peak_rss(&self.pid)
    }

    /// SIGTERM, then waits for the exit. taskbox must exit with status 0; the ceiling
    /// server has no handler and dies of the signal, which is its normal end.
    pub fn stop(mut self) -> Result<(), String> {
        // kill(1) comes with procps, which a slim image may lack; sh has it built in.
        let sent = match Command::new("kill").args(["-TERM", &self.pid]).status() {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Command::new("sh")
                .args(["-c", &format!("kill -TERM {}", self.pid)])
                .status(),
            other => other,
        }
        .map_err(|e| format!("running kill: {e}"))?;
        if !sent.success() {
            return Err(format!("kill -TERM {} failed", self.pid));
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    return if status.success() || self.name != "taskbox" {
                        Ok(())
                    } else {
                        Err(format!(
                            "taskbox exited with {status} after SIGTERM{}",
                            self.log_tail()
                        ))
                    };
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Ok(None) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return Err(format!(
                        "{} did not stop within {STOP_TIMEOUT:?} of SIGTERM",
                        self.name
                    ));
                }
                Err(e) => return Err(format!("waiting for {}: {e}", self.name)),
            }
        }
    }
}

impl Drop for Server {
    /// A server left running by a failed scenario is killed.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The body every ceiling answer carries: about the size of taskbox's answer to a
/// submission (the envelope around a new task), so the two move the same bytes.
const CEILING_BODY: &str = r#"{"status":"success","message":"","data":{"WebServiceTaskId":1,"UserId":0,"UserName":"","DateTime":"2026-01-01T00:00:00","IoFileName":"","LogFileName":"","ErrFileName":"","PercentComplete":0,"Status":"Pending","Message":"","Kind":"sleep","Params":{"seconds":"0"},"StartTime":null,"EndTime":null,"TotalRecords":0,"SucceededRecords":0,"DuplicateRecords":0,"FailedRecords":0}}"#;

/// `taskbox-bench ceiling-server --listen ADDR`: a bare tiny_http server with taskbox's
/// default number of HTTP threads, reading each request's body and answering 200 with a
/// fixed JSON body. Prints `ceiling-server listening on http://ADDR` first; runs until
/// killed.
pub fn ceiling_server(args: &[String]) -> ExitCode {
    let mut listen = "127.0.0.1:0".to_string();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--listen" => match it.next() {
                Some(v) => listen = v.clone(),
                None => {
                    eprintln!("ceiling-server: --listen needs an address");
                    return ExitCode::from(2);
                }
            },
            other => {
                eprintln!("ceiling-server: unknown argument {other}");
                return ExitCode::from(2);
            }
        }
    }
    let server = match tiny_http::Server::http(&listen) {
        Ok(server) => std::sync::Arc::new(server),
        Err(e) => {
            eprintln!("ceiling-server: cannot listen on {listen}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let addr = server.server_addr().to_ip().expect("an IP listener");
    println!("ceiling-server listening on http://{addr}");
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let content_type =
        tiny_http::Header::from_bytes("Content-Type", "application/json; charset=utf-8")
            .expect("a valid header");
    let threads: Vec<_> = (0..DEFAULT_HTTP_THREADS)
        .map(|_| {
            let (server, content_type) = (server.clone(), content_type.clone());
            std::thread::spawn(move || loop {
                let Ok(mut request) = server.recv() else {
                    continue;
                };
                let _ = std::io::copy(request.as_reader(), &mut std::io::sink());
                let response = tiny_http::Response::from_string(CEILING_BODY)
                    .with_header(content_type.clone());
                let _ = request.respond(response);
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
    ExitCode::SUCCESS
}
