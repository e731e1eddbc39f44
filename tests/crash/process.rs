//! One taskbox process for the crash test: started on a database directory, killed with
//! SIGKILL (a crash) or stopped with SIGTERM. Unlike `common::Server`, starting does not
//! wait for the address (a kill may come before it) and logs at `info`, so a run of
//! hundreds of kills keeps a readable `server.log`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

/// A copy of the taskbox binary in `dir`, for a test that starts it many times: a `cargo
/// build` run meanwhile (by hand, in the same checkout) replaces the binary it built, and a
/// run of hundreds of kills must test one and the same binary throughout.
pub fn private_binary(dir: &Path) -> PathBuf {
    let copy = dir.join("taskbox-under-test");
    std::fs::copy(env!("CARGO_BIN_EXE_taskbox"), &copy).expect("copy the taskbox binary");
    copy
}

pub struct Taskbox {
    child: Option<Child>,
    pub spawned: Instant,
    first_line: Receiver<String>,
    address: Option<String>,
}

impl Taskbox {
    /// Starts `taskbox serve` (the binary `bin`, see [`private_binary`]) on `dir/taskbox.db`,
    /// on a free port, with the extra `args`.
    pub fn spawn(bin: &Path, dir: &Path, args: &[&str]) -> Taskbox {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("server.log"))
            .expect("server log");
        let mut command = Command::new(bin);
        command
            .arg("serve")
            .arg("--db")
            .arg(dir.join("taskbox.db"))
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env("RUST_LOG", "info")
            .env("TASKBOX_TEST_KINDS", "true")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
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
        Taskbox {
            child: Some(child),
            spawned,
            first_line,
            address: None,
        }
    }

    /// The base URL (`http://127.0.0.1:PORT`) once the server has printed it (recovery runs
    /// before it binds), or None if it did not within `within`.
    pub fn wait_address(&mut self, within: Duration) -> Option<String> {
        if self.address.is_none() {
            let line = self.first_line.recv_timeout(within).ok()?;
            let base = line
                .strip_prefix("taskbox listening on ")
                .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
            self.address = Some(base.to_string());
        }
        self.address.clone()
    }

    /// Whether the server had printed its address (without waiting).
    pub fn had_listened(&mut self) -> bool {
        self.wait_address(Duration::ZERO).is_some()
    }

    /// SIGKILL, then waits for the process to be gone. Returns when it was killed, as the
    /// time since the start.
    pub fn kill(&mut self) -> Duration {
        let mut child = self.child.take().expect("running");
        let at = self.spawned.elapsed();
        child.kill().expect("SIGKILL");
        child.wait().expect("wait for the killed server");
        at
    }

    /// SIGTERM, then waits up to `within` for the exit; None if it did not exit (then it is
    /// killed).
    pub fn terminate(&mut self, within: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take().expect("running");
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(sent.success(), "kill -TERM failed");
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return Some(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Taskbox {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Spawns `command`, trying again while its executable is "busy" (ETXTBSY): the copy made by
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
