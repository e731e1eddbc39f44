//! One taskbox process for a test: the real binary, started on a free port of 127.0.0.1
//! with a database of its own, its standard error appended to `server.log`. `Server::start`
//! and its shorthands cover most tests; `Server::builder` sets the rest: a database or a log
//! elsewhere (the disk tests keep the log off the small filesystem they fill), another copy
//! of the binary (the crash test runs one and the same copy throughout), a command to run it
//! under (`prlimit`), extra environment, a start that does not wait for the address (a
//! kill may come before it), or a start expected to fail.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::DEADLINE;

/// A taskbox process started for one test; killed when dropped (after printing the end of
/// its log, when the test is failing).
pub struct Server {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT` once the server has printed it (at once after `start`; after
    /// `wait_address` for a server only spawned).
    pub base: String,
    /// The directory of the database.
    pub dir: PathBuf,
    db: PathBuf,
    log: PathBuf,
    spawned: Instant,
    /// The first line of its standard output, when it comes (in a Mutex: a Server is shared
    /// by threads that send requests at once).
    first_line: Mutex<Receiver<String>>,
    _temp: Option<tempfile::TempDir>,
}

/// How to start a taskbox; see the module notes. Made by [`Server::builder`].
#[derive(Default)]
pub struct Builder {
    args: Vec<String>,
    env: Vec<(String, String)>,
    db: Option<PathBuf>,
    log_dir: Option<PathBuf>,
    binary: Option<PathBuf>,
    wrapper: Vec<String>,
    log_level: Option<String>,
}

impl Server {
    /// A server with default settings on a fresh database.
    pub fn start() -> Server {
        Server::builder().start()
    }

    /// A server with extra command-line flags on a fresh database.
    pub fn start_with(args: &[&str]) -> Server {
        Server::builder().args(args).start()
    }

    /// A server on the database in `dir` (kept by the caller, so a restart finds it).
    pub fn start_in(dir: &Path, args: &[&str]) -> Server {
        Server::builder().dir(dir).args(args).start()
    }

    pub fn builder() -> Builder {
        Builder::default()
    }

    /// The base URL once the server has printed it, waiting up to `within` (recovery runs
    /// before it binds); None if it did not print it by then.
    pub fn wait_address(&mut self, within: Duration) -> Option<String> {
        if self.base.is_empty() {
            let first_line = self.first_line.get_mut().unwrap_or_else(|e| e.into_inner());
            let line = first_line.recv_timeout(within).ok()?;
            self.base = line
                .strip_prefix("taskbox listening on ")
                .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
                .to_string();
        }
        Some(self.base.clone())
    }

    /// Whether the server had printed its address (without waiting).
    pub fn had_listened(&mut self) -> bool {
        self.wait_address(Duration::ZERO).is_some()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn db_path(&self) -> PathBuf {
        self.db.clone()
    }

    /// The server's log so far (stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => child.try_wait().expect("try_wait").is_none(),
            None => false,
        }
    }

    /// SIGKILL, as in a crash, then waits for the process to be gone. Returns when it was
    /// killed, as the time since it was started.
    pub fn kill(&mut self) -> Duration {
        let at = self.spawned.elapsed();
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL");
            child.wait().expect("wait for the killed server");
        }
        at
    }

    /// Sends a signal and waits for the process to exit; returns its exit status. Fails the
    /// test (after a SIGKILL) if it is still running after `within`.
    pub fn signal_and_wait(&mut self, signal: &str, within: Duration) -> ExitStatus {
        self.signal(signal);
        self.wait_exit(within, &format!("SIG{signal}"))
    }

    /// SIGTERM, then waits up to `within` for the exit; None if it did not exit (then it is
    /// killed).
    pub fn terminate(&mut self, within: Duration) -> Option<ExitStatus> {
        self.signal("TERM");
        self.exit_within(within)
    }

    /// Sends a signal (`TERM`, `INT`, ...) to the process.
    pub fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .expect("kill");
        assert!(sent.success(), "kill -{signal} failed");
    }

    /// Waits for the process to exit, `after` what (for the failure's message); returns its
    /// exit status. Kills it and fails the test if it is still running after `within`.
    pub fn wait_exit(&mut self, within: Duration, after: &str) -> ExitStatus {
        self.exit_within(within)
            .unwrap_or_else(|| panic!("taskbox did not exit within {within:?} after {after}"))
    }

    /// Waits up to `within` for the process to exit; None if it did not (then it is killed).
    fn exit_within(&mut self, within: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take().expect("running");
        wait_child(&mut child, within).or_else(|| {
            let _ = child.kill();
            let _ = child.wait();
            None
        })
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
        self.status_kib("VmHWM:") * 1024
    }

    /// The server's resident memory now (VmRSS), in bytes.
    pub fn rss(&self) -> u64 {
        self.status_kib("VmRSS:") * 1024
    }

    fn status_kib(&self, field: &str) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("proc status");
        let line = status
            .lines()
            .find(|l| l.starts_with(field))
            .unwrap_or_else(|| panic!("{field} in /proc/PID/status"));
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// How many threads the server runs now (`/proc/PID/task`).
    pub fn threads(&self) -> usize {
        count_entries(&format!("/proc/{}/task", self.pid()))
    }

    /// How many file descriptors the server holds open now (`/proc/PID/fd`).
    pub fn open_fds(&self) -> usize {
        count_entries(&format!("/proc/{}/fd", self.pid()))
    }

    /// The local ports of the IPv4 TCP connections whose sockets the server holds open (its
    /// peers' ports, read from `/proc/PID/fd` and `/proc/net/tcp`): a connection it has
    /// closed is gone from here at once, whatever data the kernel still holds for it.
    pub fn peer_ports(&self) -> std::collections::HashSet<u16> {
        let inodes: std::collections::HashSet<String> =
            std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
                .map(|dir| {
                    dir.flatten()
                        .filter_map(|e| std::fs::read_link(e.path()).ok())
                        .filter_map(|l| {
                            let l = l.to_string_lossy().to_string();
                            Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
                        })
                        .collect()
                })
                .unwrap_or_default();
        let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
        table
            .lines()
            .skip(1)
            .filter_map(|line| {
                let cols: Vec<&str> = line.split_whitespace().collect();
                let (remote, inode) = (cols.get(2)?, cols.get(9)?);
                if !inodes.contains(*inode) {
                    return None;
                }
                u16::from_str_radix(remote.split_once(':')?.1, 16).ok()
            })
            .filter(|&port| port != 0)
            .collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!("--- the end of the server log ({}) ---", self.log.display());
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Builder {
    /// Extra command-line flags (added to those given before). Without a `--listen` among
    /// them the server listens on a free port of 127.0.0.1.
    pub fn args(mut self, args: &[&str]) -> Builder {
        self.args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    /// An environment variable for the process.
    pub fn env(mut self, name: &str, value: &str) -> Builder {
        self.env.push((name.to_string(), value.to_string()));
        self
    }

    /// The database `dir/taskbox.db`, the log `dir/server.log`; `dir` is the caller's, so a
    /// restart finds them. Without it (or `db`), a fresh directory lives as long as the
    /// server.
    pub fn dir(self, dir: &Path) -> Builder {
        self.db(&dir.join("taskbox.db"))
    }

    /// The database file; the log goes next to it unless `log_dir` says otherwise.
    pub fn db(mut self, db: &Path) -> Builder {
        self.db = Some(db.to_path_buf());
        self
    }

    /// Where `server.log` goes (appended to, across restarts).
    pub fn log_dir(mut self, dir: &Path) -> Builder {
        self.log_dir = Some(dir.to_path_buf());
        self
    }

    /// Another taskbox binary than the one cargo built (see [`private_binary`]).
    pub fn binary(mut self, binary: &Path) -> Builder {
        self.binary = Some(binary.to_path_buf());
        self
    }

    /// Runs taskbox under `command` (a program and its arguments, the binary's path and its
    /// own arguments follow): `prlimit --nofile=128:128`, say.
    pub fn wrapped_by(mut self, command: &[&str]) -> Builder {
        self.wrapper = command.iter().map(|a| a.to_string()).collect();
        self
    }

    /// RUST_LOG for the process (`debug` unless set): a run of hundreds of starts logs at
    /// `info`, to keep its log readable.
    pub fn log_level(mut self, level: &str) -> Builder {
        self.log_level = Some(level.to_string());
        self
    }

    /// Starts the server and waits until it listens; fails the test, with its log, if it
    /// does not within [`DEADLINE`].
    pub fn start(self) -> Server {
        let mut server = self.spawn();
        if server.wait_address(DEADLINE).is_none() {
            let _ = server.child.as_mut().map(Child::kill);
            panic!("taskbox did not start; its log:\n{}", server.log());
        }
        server
    }

    /// Starts the server without waiting for it to listen (see [`Server::wait_address`]).
    pub fn spawn(self) -> Server {
        let (mut command, db, temp) = self.command();
        let dir = db.parent().expect("the database's directory").to_path_buf();
        let log = self.log_dir.clone().unwrap_or_else(|| dir.clone());
        let log = log.join("server.log");
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("server log");
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file));
        let mut child = spawn_retrying(&mut command);
        let spawned = Instant::now();
        let stdout = child.stdout.take().expect("stdout");
        let (tx, first_line) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            // Keep draining so the child never blocks on a full pipe.
            for _ in lines {}
        });
        Server {
            child: Some(child),
            base: String::new(),
            dir,
            db,
            log,
            spawned,
            first_line: Mutex::new(first_line),
            _temp: temp,
        }
    }

    /// Runs `taskbox serve` expecting it to exit by itself (a start that fails) within
    /// `within`: its exit status and standard error. Fails the test, with what it wrote, if
    /// it is still running then.
    pub fn run_to_exit(self, within: Duration) -> (ExitStatus, String) {
        let (mut command, _db, _temp) = self.command();
        let mut child = spawn_retrying(
            command
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped()),
        );
        let mut stderr = child.stderr.take().expect("stderr");
        let reader = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        let Some(status) = wait_child(&mut child, within) else {
            let _ = child.kill();
            let _ = child.wait();
            let text = reader.join().unwrap_or_default();
            panic!(
                "taskbox {:?} did not exit within {within:?}: it started? Its log:\n{text}",
                self.args
            );
        };
        (status, reader.join().expect("stderr reader"))
    }

    /// The command line, the database, and the fresh directory holding it when the caller
    /// named none.
    fn command(&self) -> (Command, PathBuf, Option<tempfile::TempDir>) {
        let (db, temp) = match &self.db {
            Some(db) => (db.clone(), None),
            None => {
                let temp = tempfile::tempdir().expect("temp dir");
                (temp.path().join("taskbox.db"), Some(temp))
            }
        };
        let binary = self
            .binary
            .clone()
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_taskbox")));
        let mut command = match self.wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(binary);
                command
            }
            None => Command::new(binary),
        };
        command.arg("serve").arg("--db").arg(&db);
        if !self.args.iter().any(|a| a == "--listen") {
            command.args(["--listen", "127.0.0.1:0"]);
        }
        command
            .args(&self.args)
            .env("RUST_LOG", self.log_level.as_deref().unwrap_or("debug"))
            .env("TASKBOX_TEST_KINDS", "true")
            .envs(self.env.iter().map(|(n, v)| (n, v)));
        (command, db, temp)
    }
}

/// The number of entries in a directory of `/proc` (0 when it cannot be read).
fn count_entries(dir: &str) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| entries.count())
}

/// Waits up to `within` for `child` to exit.
fn wait_child(child: &mut Child, within: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return Some(status);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A copy of the taskbox binary in `dir`, for a test that starts it many times: a `cargo
/// build` run meanwhile (by hand, in the same checkout) replaces the binary it built, and a
/// run of hundreds of kills must test one and the same binary throughout.
pub fn private_binary(dir: &Path) -> PathBuf {
    let copy = dir.join("taskbox-under-test");
    std::fs::copy(env!("CARGO_BIN_EXE_taskbox"), &copy).expect("copy the taskbox binary");
    copy
}

/// Spawns `command`, trying again while its executable is "busy" (ETXTBSY): a copy made by
/// [`private_binary`] was open for writing for a moment, and a process another test thread
/// forked in that moment holds the descriptor until it execs.
fn spawn_retrying(command: &mut Command) -> Child {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match command.spawn() {
            Ok(child) => return child,
            Err(e)
                if e.kind() == std::io::ErrorKind::ExecutableFileBusy
                    && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) => panic!("start taskbox: {e}"),
        }
    }
}
