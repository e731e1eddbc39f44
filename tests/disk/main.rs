//! Full disks and read-only databases: the database lives on a small filesystem of its own
//! (a loop-mounted ext4 image, or tmpfs), which the tests fill or make read-only while the
//! real taskbox binary serves from it. They check what the README promises: writes get a
//! clear 507 (disk full) or 503 (unavailable) in the envelope, everything stored stays
//! readable, the process stays up, a task running at the time is not left "In progress",
//! and the service recovers by itself when the cause goes away.
//!
//! Mounting needs root (CI runs as root). Where it is impossible the tests print
//! `SKIPPED: cannot mount a small filesystem: <reason>` and pass, unless
//! `TASKBOX_REQUIRE_MOUNT=1` is set, which turns a skip into a failure.

#[path = "../common/mod.rs"]
mod common;
mod mount;

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use common::{
    get, list_all, post_task, send, task, wait_finished, wait_running, wait_until, Answer, Server,
};
use mount::SmallFs;

/// What a client is told when the disk is full.
const DISK_FULL: &str =
    "The disk holding the database is full: nothing was stored. Free some space and try again.";

/// Mounts a filesystem with `mount`, or says why the test is skipped (None).
fn mounted(what: &str, mount: impl FnOnce() -> Result<SmallFs, String>) -> Option<SmallFs> {
    match mount() {
        Ok(fs) => Some(fs),
        Err(reason) => {
            if std::env::var_os("TASKBOX_REQUIRE_MOUNT").is_some_and(|v| v == "1") {
                panic!("cannot mount {what} and TASKBOX_REQUIRE_MOUNT=1: {reason}");
            }
            eprintln!("SKIPPED: cannot mount a small filesystem: {what}: {reason}");
            None
        }
    }
}

/// Starts taskbox on the database `db` (on the small filesystem), logging into
/// `log_dir/server.log` (off it: a log on the full disk would lose the very lines the test
/// waits for). With no free-space floor unless `args` sets one: these tests fill the disk
/// to SQLite's own refusal.
fn start(db: &Path, log_dir: &Path, args: &[&str]) -> Server {
    let mut all = args.to_vec();
    if !args.contains(&"--min-free-bytes") {
        all.extend(["--min-free-bytes", "0"]);
    }
    Server::builder()
        .db(db)
        .log_dir(log_dir)
        .args(&all)
        .log_level("info")
        .start()
}

fn submitted(answer: &Answer) -> i64 {
    answer.data(202)["WebServiceTaskId"]
        .as_i64()
        .expect("an id")
}

/// POSTs `file` as the raw body of a csv.import into `table`.
fn import(tb: &Server, table: &str, file: &[u8]) -> Answer {
    send(
        "POST",
        &tb.url(&format!(
            "/webservicetasks?kind=csv.import&table={table}&key=code&filename={table}.csv"
        )),
        &[("Content-Type", "text/csv")],
        Some(file),
    )
}

fn wait_success(tb: &Server, id: i64) -> Value {
    let t = wait_finished(tb, id);
    assert_eq!(t["Status"], "SUCCESS", "{t}");
    t
}

fn file(tb: &Server, id: i64, which: &str) -> Vec<u8> {
    let answer = get(&tb.url(&format!("/webservicetasks/{id}/{which}")));
    assert_eq!(answer.status, 200, "{which} of {id}: {}", answer.text());
    answer.body
}

/// Runs `request` on `n` threads at once; their answers.
fn concurrently(n: usize, request: impl Fn() -> Answer + Sync) -> Vec<Answer> {
    let start = std::sync::Barrier::new(n);
    std::thread::scope(|s| {
        let threads: Vec<_> = (0..n)
            .map(|_| {
                s.spawn(|| {
                    start.wait();
                    request()
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    })
}

/// A CSV of `rows` records, about 40 bytes each.
fn csv(rows: usize, salt: &str) -> Vec<u8> {
    let mut out = String::from("code,name,rate\n");
    for i in 0..rows {
        out.push_str(&format!("C{i:07},name {salt} {i},0.{i:05}\n"));
    }
    out.into_bytes()
}

/// Checkpoints the WAL and truncates it to nothing. A WAL keeps its size after a checkpoint
/// and is reused from its start, so a disk filled behind it still takes that many pages of
/// commits; without this the first refusal would come after an unknown number of writes.
fn truncate_wal(db: &Path) {
    let conn = rusqlite::Connection::open(db).expect("open the database");
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    wait_until("a truncating checkpoint", || {
        let (busy, _, _): (i64, i64, i64) = conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .expect("checkpoint");
        (busy == 0).then_some(())
    });
}

fn integrity_check(db: &Path) -> String {
    let conn = rusqlite::Connection::open(db).expect("open the database");
    conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check")
}

/// Everything stored before the trouble, to compare with afterwards.
struct Stored {
    tasks: Vec<(i64, Value)>,
    files: Vec<(i64, &'static str, Vec<u8>)>,
}

impl Stored {
    /// Stores an import (with its uploaded IO file, LOG and ERR) and an export of it.
    fn make(tb: &Server) -> Stored {
        let mut input = csv(2000, "first");
        // One bad row, so the import has an ERR file too.
        input.extend_from_slice(b"BAD,too,many,fields\n");
        let imported = submitted(&import(tb, "rates", &input));
        let done = wait_finished(tb, imported);
        assert_eq!(done["Status"], "ERROR", "one row fails: {done}");
        assert_eq!(done["SucceededRecords"], 2000, "{done}");
        let exported = submitted(&post_task(tb, "csv.export", json!({"table": "rates"})));
        wait_success(tb, exported);
        let mut stored = Stored {
            tasks: Vec::new(),
            files: Vec::new(),
        };
        for (id, files) in [
            (imported, &["IoFile", "LogFile", "ErrorFile"][..]),
            (exported, &["IoFile", "LogFile"][..]),
        ] {
            stored.tasks.push((id, task(tb, id)));
            for &which in files {
                stored.files.push((id, which, file(tb, id, which)));
            }
        }
        assert_eq!(stored.files[0].2, input, "the uploaded file reads back");
        stored
    }

    /// Checks every task and file reads back exactly as it was.
    fn check(&self, tb: &Server, when: &str) {
        for (id, before) in &self.tasks {
            assert_eq!(&task(tb, *id), before, "task {id} {when}");
        }
        for (id, which, before) in &self.files {
            assert!(
                &file(tb, *id, which) == before,
                "the {which} of task {id} differs {when}"
            );
        }
        let (listed, _) = list_all(tb);
        for (id, before) in &self.tasks {
            let found = listed.iter().find(|t| t["WebServiceTaskId"] == *id);
            assert_eq!(found, Some(before), "task {id} in the list {when}");
        }
    }
}

#[test]
fn a_full_disk_refuses_writes_with_507_keeps_reads_and_recovers_without_a_restart() {
    let Some(fs) = mounted("16 MiB", || SmallFs::any(16)) else {
        return;
    };
    eprintln!("filesystem: {:?} at {}", fs.kind, fs.path.display());
    let logs = tempfile::tempdir().unwrap();
    let db = fs.path.join("taskbox.db");
    let mut tb = start(&db, logs.path(), &["--workers", "2", "--grace-secs", "5"]);

    let stored = Stored::make(&tb);
    // A task that is running when the disk fills, and ends while it is full: held until the
    // test creates its release file (outside the small filesystem).
    let release = logs.path().join("release-hold");
    let holder = submitted(&post_task(&tb, "debug.hold", json!({"release": release})));
    wait_running(&tb, holder);
    let (_, total_before) = list_all(&tb);

    truncate_wal(&db);
    let filler = fs.path.join("filler");
    let filled = mount::fill(&filler);
    eprintln!("filled the disk with {filled} bytes");
    assert_eq!(
        task(&tb, holder)["Status"],
        "In progress",
        "the held task ended before the disk was full"
    );

    // Writes are refused with 507, in the envelope, and store nothing.
    let message = post_task(&tb, "sleep", json!({"seconds": "0"})).error(507);
    assert_eq!(message, DISK_FULL);
    // Submissions that arrive together share one transaction: each still hears 507.
    for answer in concurrently(8, || post_task(&tb, "sleep", json!({"seconds": "0"}))) {
        assert_eq!(answer.error(507), DISK_FULL);
    }
    let message = import(&tb, "other", &csv(2000, "refused")).error(507);
    assert_eq!(message, DISK_FULL);
    let (_, total) = list_all(&tb);
    assert_eq!(total, total_before, "a refused submission stored a task");
    // A delete is a write too: refused, and the task stays (checked below).
    let exported = stored.tasks[1].0;
    let message = common::delete(&tb.url(&format!("/webservicetasks/{exported}"))).error(507);
    assert_eq!(message, DISK_FULL);

    // Reads still work, unchanged.
    stored.check(&tb, "while the disk is full");
    assert!(tb.is_running(), "taskbox died when the disk filled");

    // The held task ends while the disk is full: its end cannot be recorded yet, so it
    // stays "In progress" (truthfully: nothing says otherwise) and its end is retried.
    std::fs::write(&release, b"").expect("release the held task");
    wait_until("the held task's end to be refused", || {
        tb.log()
            .contains(&format!("task {holder}: recording its end failed"))
            .then_some(())
    });
    assert_eq!(task(&tb, holder)["Status"], "In progress");

    // Space comes back: no restart.
    std::fs::remove_file(&filler).unwrap();
    let released = wait_success(&tb, holder);
    assert_eq!(released["Message"], "Released.", "{released}");
    // Its LOG lines, which could not be stored while the disk was full, came with its end.
    let log = String::from_utf8_lossy(&file(&tb, holder, "LogFile")).into_owned();
    assert!(
        log.contains("Started debug.hold") && log.contains("Finished SUCCESS"),
        "the LOG of the task that ran through the full disk:\n{log}"
    );
    let fresh = submitted(&post_task(&tb, "sleep", json!({"seconds": "0"})));
    wait_success(&tb, fresh);
    let again = csv(500, "after");
    let imported = submitted(&import(&tb, "other", &again));
    let done = wait_success(&tb, imported);
    assert_eq!(done["SucceededRecords"], 500, "{done}");
    assert_eq!(file(&tb, imported, "IoFile"), again);
    stored.check(&tb, "after the disk had space again");
    let (_, total) = list_all(&tb);
    assert_eq!(total, total_before + 2);

    let status = tb.signal_and_wait("TERM", Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "exit status; log:\n{}", tb.log());
    assert_eq!(integrity_check(&db), "ok");
}

/// What a client is told when the database cannot be written (read-only, failing storage).
const UNAVAILABLE: &str = "The database cannot be used right now (it is busy, read-only or its \
     disk is failing): nothing was changed. Try again later.";

/// The kernel refuses `mount -o remount,ro` while a file on the filesystem is open for
/// writing (EBUSY), and SQLite keeps the database, its WAL and its shared-memory file open
/// read-write for as long as taskbox runs. What does make a mounted filesystem read-only
/// under a running process is an error on it: ext4 mounted `errors=remount-ro` turns itself
/// read-only on the first one (as a disk that starts failing does), which
/// `/sys/fs/ext4/<dev>/trigger_fs_error` provokes. That state lasts until the filesystem is
/// unmounted and checked, which needs the process to let go of its files: so the recovery
/// here is a restart, after `e2fsck`.
#[test]
fn a_read_only_database_refuses_writes_with_503_keeps_reads_and_works_after_a_restart() {
    let Some(mut fs) = mounted("16 MiB ext4, errors=remount-ro", || {
        SmallFs::ext4(16, "errors=remount-ro")
    }) else {
        return;
    };
    let trigger = match fs.device() {
        Some(dev) => Path::new("/sys/fs/ext4").join(dev).join("trigger_fs_error"),
        None => panic!("no device behind {}", fs.path.display()),
    };
    if !trigger.exists() {
        eprintln!(
            "SKIPPED: cannot make ext4 read-only: {} is missing",
            trigger.display()
        );
        return;
    }
    let logs = tempfile::tempdir().unwrap();
    let db = fs.path.join("taskbox.db");
    let mut tb = start(&db, logs.path(), &["--workers", "2", "--grace-secs", "5"]);
    let stored = Stored::make(&tb);
    // A task that is running when the disk turns read-only, and ends while it is: held
    // until the test creates its release file (outside the failing filesystem).
    let release = logs.path().join("release-hold");
    let holder = submitted(&post_task(&tb, "debug.hold", json!({"release": release})));
    wait_running(&tb, holder);
    let (_, total_before) = list_all(&tb);

    std::fs::write(&trigger, "taskbox disk test\n").expect("trigger an ext4 error");
    let probe = std::fs::write(fs.path.join("probe"), b"x");
    assert_eq!(
        probe.as_ref().err().and_then(|e| e.raw_os_error()),
        Some(30),
        "the filesystem did not turn read-only: {probe:?}"
    );

    let message = post_task(&tb, "sleep", json!({"seconds": "0"})).error(503);
    assert_eq!(message, UNAVAILABLE);
    let message = import(&tb, "other", &csv(2000, "refused")).error(503);
    assert_eq!(message, UNAVAILABLE);
    stored.check(&tb, "while the database is read-only");
    let (_, total) = list_all(&tb);
    assert_eq!(total, total_before, "a refused submission stored a task");
    assert!(
        tb.is_running(),
        "taskbox died when its disk turned read-only"
    );
    // Its end cannot be recorded: it stays "In progress" while the service runs...
    assert_eq!(task(&tb, holder)["Status"], "In progress");
    std::fs::write(&release, b"").expect("release the held task");
    wait_until("the held task's end to be refused", || {
        tb.log()
            .contains(&format!("task {holder}: recording its end failed"))
            .then_some(())
    });
    assert_eq!(task(&tb, holder)["Status"], "In progress");

    let status = tb.signal_and_wait("TERM", Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "exit status; log:\n{}", tb.log());
    drop(tb);

    fs.unmount(false).expect("unmount");
    fs.fsck_and_mount("errors=remount-ro")
        .expect("check and mount again");
    let tb = start(&db, logs.path(), &["--workers", "2"]);
    stored.check(&tb, "after the restart");
    // ...and the start after the repair marks it interrupted, as after a crash.
    let interrupted = task(&tb, holder);
    assert_eq!(interrupted["Status"], "ERROR", "{interrupted}");
    assert_eq!(
        interrupted["Message"], "Interrupted: the service stopped while this task was running.",
        "{interrupted}"
    );
    let fresh = submitted(&post_task(&tb, "sleep", json!({"seconds": "0"})));
    wait_success(&tb, fresh);
    drop(tb);
    assert_eq!(integrity_check(&db), "ok");
}

/// SQLite removes the WAL and its `-shm` file when the last connection to the database
/// closes (a `sqlite3` shell, a backup tool, a clean close); a start on a full disk must
/// then create the `-shm` file and cannot. It cannot serve even reads without it, so it
/// refuses to start, and says why: a supervisor that restarts it gets it back once space is
/// freed.
#[test]
fn a_start_on_a_full_disk_fails_saying_so_and_succeeds_once_space_is_freed() {
    let Some(fs) = mounted("16 MiB", || SmallFs::any(16)) else {
        return;
    };
    let logs = tempfile::tempdir().unwrap();
    let db = fs.path.join("taskbox.db");
    let mut tb = start(&db, logs.path(), &[]);
    let stored = Stored::make(&tb);
    assert_eq!(
        tb.signal_and_wait("TERM", Duration::from_secs(30)).code(),
        Some(0)
    );
    drop(tb);
    // The last connection to close removes the WAL and the -shm file.
    let conn = rusqlite::Connection::open(&db).expect("open the database");
    let _: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
        .expect("read the database");
    drop(conn);
    let shm = fs.path.join("taskbox.db-shm");
    assert!(!shm.exists(), "{} is still there", shm.display());

    let filler = fs.path.join("filler");
    mount::fill(&filler);
    let (status, stderr) = Server::builder()
        .db(&db)
        .run_to_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(1), "exit status; stderr:\n{stderr}");
    assert!(
        stderr.contains("the disk holding the database is full"),
        "the start does not say the disk is full:\n{stderr}"
    );

    std::fs::remove_file(&filler).unwrap();
    let mut tb = start(&db, logs.path(), &[]);
    stored.check(&tb, "after a start on a freed disk");
    let fresh = submitted(&post_task(&tb, "sleep", json!({"seconds": "0"})));
    wait_success(&tb, fresh);
    assert_eq!(
        tb.signal_and_wait("TERM", Duration::from_secs(30)).code(),
        Some(0)
    );
    assert_eq!(integrity_check(&db), "ok");
}

#[test]
fn under_the_free_space_floor_new_work_gets_507_and_reads_downloads_and_deletes_go_on() {
    let Some(fs) = mounted("a 16 MiB filesystem", || SmallFs::any(16)) else {
        return;
    };
    let logs = tempfile::tempdir().expect("a log directory");
    let db = fs.path.join("taskbox.db");
    // A floor of 4 MiB.
    let tb = start(&db, logs.path(), &["--min-free-bytes", "4194304"]);
    let stored = Stored::make(&tb);
    let pending = submitted(&post_task(&tb, "sleep", json!({"seconds": 0})));
    wait_success(&tb, pending);

    // A ballast file leaves 2 MiB free: under the floor, above a full disk.
    let ballast = fs.path.join("ballast");
    let free = rustix::fs::statvfs(&fs.path).expect("statvfs");
    let available = free.f_bavail * free.f_frsize;
    let keep = 2 << 20;
    assert!(available > keep, "only {available} bytes free at the start");
    std::fs::write(&ballast, vec![0u8; (available - keep) as usize]).expect("the ballast");
    std::fs::File::open(&ballast).unwrap().sync_all().unwrap();

    let refused = [
        post_task(&tb, "sleep", json!({"seconds": 0})),
        import(&tb, "more", &csv(10, "more")),
    ];
    for answer in refused {
        let message = answer.error(507);
        assert!(message.contains("--min-free-bytes"), "{message}");
    }
    // Everything stored reads back, downloads included, and a delete works.
    stored.check(&tb, "under the floor");
    let delete = send(
        "DELETE",
        &tb.url(&format!("/webservicetasks/{pending}")),
        &[],
        None,
    );
    delete.data(200);
    assert_eq!(
        get(&tb.url(&format!("/webservicetasks/{pending}"))).status,
        404
    );

    // Space given back: new work is taken again, without a restart.
    std::fs::remove_file(&ballast).expect("remove the ballast");
    let again = submitted(&post_task(&tb, "sleep", json!({"seconds": 0})));
    wait_success(&tb, again);
    stored.check(&tb, "after the floor");
}
