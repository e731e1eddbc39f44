//! Bulk data: a large file up and down, and a CSV import beside the sqlite3 shell's.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::{task_id_of, wait_for_task, Ctx};
use crate::load::{self, Conn, Rng};
use crate::report::{mib, rate, thousands, Row};

/// Bytes in a MB, as the MB/s figures count them.
const MB: f64 = 1e6;

/// The repeating pattern of the transferred file: 1 MiB of pseudo-random bytes, so that a
/// transfer is generated and checked on the fly without holding the file.
struct Pattern(Vec<u8>);

impl Pattern {
    fn new() -> Pattern {
        let mut rng = Rng::new(42);
        let mut block = Vec::with_capacity(1 << 20);
        while block.len() < 1 << 20 {
            block.extend_from_slice(&rng.next().to_le_bytes());
        }
        Pattern(block)
    }

    /// Whether `data` is what the pattern has at `offset`.
    fn matches(&self, mut offset: u64, mut data: &[u8]) -> bool {
        let len = self.0.len() as u64;
        while !data.is_empty() {
            let at = (offset % len) as usize;
            let n = data.len().min(self.0.len() - at);
            if data[..n] != self.0[at..at + n] {
                return false;
            }
            data = &data[n..];
            offset += n as u64;
        }
        true
    }
}

/// The pattern, repeated to `left` bytes.
struct PatternReader<'a> {
    pattern: &'a Pattern,
    offset: u64,
    left: u64,
}

impl Read for PatternReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let block = &self.pattern.0;
        let at = (self.offset % block.len() as u64) as usize;
        let n = buf
            .len()
            .min(block.len() - at)
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        buf[..n].copy_from_slice(&block[at..at + n]);
        self.offset += n as u64;
        self.left -= n as u64;
        Ok(n)
    }
}

pub fn files(ctx: &mut Ctx) -> Result<Row, String> {
    // Issue 14's size: a large export or import, not the largest file taskbox takes.
    let size: u64 = if ctx.quick { 64 << 20 } else { 256 << 20 };
    let dir = ctx.dir("files")?;
    let server = ctx.start_taskbox(&dir, None)?;
    let addr = server.addr;
    let pattern = Pattern::new();
    let mut conn = Conn::new(addr);
    std::thread::sleep(Duration::from_millis(200));
    let idle_rss = server.rss_mib();

    // Upload: a raw body, kept by a `sleep` task as its IO file.
    let exact_peaks = server.reset_peak_rss();
    let head = load::head(
        "POST",
        addr,
        "/webservicetasks?kind=sleep&filename=big.bin",
        &[("Content-Type", "application/octet-stream")],
        Some(size),
    );
    let mut body = PatternReader {
        pattern: &pattern,
        offset: 0,
        left: size,
    };
    let mut answer = Vec::new();
    let started = Instant::now();
    let status = conn
        .request_streaming(&head, &mut body, size, &mut |b| answer.extend_from_slice(b))
        .map_err(|e| format!("files: uploading: {e}"))?;
    let up = started.elapsed();
    let up_peak = server.peak_rss_mib();
    if status != 202 {
        return Err(format!(
            "files: the upload answered {status}: {}",
            String::from_utf8_lossy(&answer)
        ));
    }
    let id = task_id_of(&answer)?;

    // Download, checking every byte against the pattern.
    server.reset_peak_rss();
    let (mut received, mut intact) = (0u64, true);
    let started = Instant::now();
    let status = conn
        .request(
            &load::get(addr, &format!("/webservicetasks/{id}/IoFile")),
            &mut |b| {
                intact &= pattern.matches(received, b);
                received += b.len() as u64;
            },
        )
        .map_err(|e| format!("files: downloading: {e}"))?;
    let down = started.elapsed();
    let down_peak = server.peak_rss_mib();
    drop(conn);
    server.stop()?;
    if status != 200 {
        return Err(format!("files: the download answered {status}"));
    }
    if received != size || !intact {
        return Err(format!(
            "files: the download differs from the upload ({received} of {size} bytes, {})",
            if intact { "intact so far" } else { "corrupt" }
        ));
    }
    let up_mbs = size as f64 / MB / up.as_secs_f64();
    let down_mbs = size as f64 / MB / down.as_secs_f64();
    let peak = up_peak.max(down_peak);
    let mut row = Row::new("files", up_mbs.min(down_mbs), "MB/s (the slower way)");
    row.figure_text = format!("{} MB/s up, {} MB/s down", rate(up_mbs), rate(down_mbs));
    row.summary = format!(
        "{} MiB each way; server peak RSS {} up, {} down (idle {}){}",
        size >> 20,
        mib(up_peak),
        mib(down_peak),
        mib(idle_rss),
        if exact_peaks {
            ""
        } else {
            " (peaks since the server started: clear_refs refused)"
        }
    );
    row.num("upload_mb_per_s", up_mbs)
        .num("download_mb_per_s", down_mbs)
        .num("upload_seconds", up.as_secs_f64())
        .num("download_seconds", down.as_secs_f64())
        .num("upload_peak_rss_mib", up_peak)
        .num("download_peak_rss_mib", down_peak)
        .num("peak_rss_mib", peak)
        .num("idle_rss_mib", idle_rss)
        .detail("bytes", size);
    Ok(row)
}

/// Writes the import's CSV: a header and `rows` rows of 6 columns, `id` unique.
fn write_csv(path: &Path, rows: u64) -> Result<u64, String> {
    const CITIES: [&str; 8] = [
        "Paris", "Lyon", "Berlin", "Madrid", "Rome", "Lisbon", "Vienna", "Oslo",
    ];
    let err = |e: std::io::Error| format!("import: writing {}: {e}", path.display());
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path).map_err(err)?);
    writeln!(out, "id,name,email,city,amount,created").map_err(err)?;
    let mut rng = Rng::new(7);
    for i in 1..=rows {
        let r = rng.next();
        writeln!(
            out,
            "K{i:08},Customer {i},customer{i}@example.com,{},{}.{:02},2026-{:02}-{:02}",
            CITIES[(r % 8) as usize],
            (r >> 8) % 100_000,
            (r >> 32) % 100,
            1 + (r >> 40) % 12,
            1 + (r >> 48) % 28,
        )
        .map_err(err)?;
    }
    out.flush().map_err(err)?;
    drop(out);
    Ok(std::fs::metadata(path).map_err(err)?.len())
}

/// The sqlite3 shell on PATH.
fn sqlite3() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("sqlite3"))
        .find(|p| p.is_file())
}

/// `sqlite3 DB ".import --csv FILE t"` into a fresh database: the seconds it took.
fn sqlite3_import(shell: &Path, db: &Path, csv: &Path, rows: u64) -> Result<f64, String> {
    let started = Instant::now();
    let out = Command::new(shell)
        .arg(db)
        .arg(format!(".import --csv '{}' t", csv.display()))
        .output()
        .map_err(|e| format!("import: running sqlite3: {e}"))?;
    let took = started.elapsed().as_secs_f64();
    if !out.status.success() || !out.stderr.is_empty() {
        return Err(format!(
            "import: sqlite3 .import failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let count = Command::new(shell)
        .arg(db)
        .arg("SELECT count(*) FROM t")
        .output()
        .map_err(|e| format!("import: running sqlite3: {e}"))?;
    let count = String::from_utf8_lossy(&count.stdout).trim().to_string();
    if count != rows.to_string() {
        return Err(format!("import: sqlite3 imported {count} rows, not {rows}"));
    }
    Ok(took)
}

/// The seconds in the LOG's `Read N records: ... in S s` line.
fn handler_seconds(log: &str) -> Option<f64> {
    log.lines()
        .filter(|line| line.contains("Read ") && line.contains(" records: "))
        .find_map(|line| {
            let rest = &line[line.rfind(" in ")? + 4..];
            rest.trim().strip_suffix('s')?.trim().parse().ok()
        })
}

pub fn import(ctx: &mut Ctx) -> Result<Row, String> {
    let rows: u64 = if ctx.quick { 50_000 } else { 1_000_000 };
    let dir = ctx.dir("import")?;
    let csv = dir.join("import.csv");
    let bytes = write_csv(&csv, rows)?;
    let server = ctx.start_taskbox(&dir, None)?;
    let addr = server.addr;
    let mut conn = Conn::new(addr);

    let head = load::head(
        "POST",
        addr,
        "/webservicetasks?kind=csv.import&table=bench&key=id&filename=import.csv",
        &[("Content-Type", "text/csv")],
        Some(bytes),
    );
    let mut file = File::open(&csv).map_err(|e| format!("import: {e}"))?;
    let mut answer = Vec::new();
    let started = Instant::now();
    let status = conn
        .request_streaming(&head, &mut file, bytes, &mut |b| {
            answer.extend_from_slice(b)
        })
        .map_err(|e| format!("import: uploading: {e}"))?;
    let uploaded = started.elapsed();
    if status != 202 {
        return Err(format!(
            "import: the submission answered {status}: {}",
            String::from_utf8_lossy(&answer)
        ));
    }
    let id = task_id_of(&answer)?;
    let (task, done) = wait_for_task(&mut conn, addr, id, Duration::from_secs(3600))?;
    let took = done.duration_since(started);
    let (status, log) = conn
        .fetch(&load::get(addr, &format!("/webservicetasks/{id}/LogFile")))
        .map_err(|e| format!("import: reading the LOG: {e}"))?;
    drop(conn);
    server.stop()?;
    if task["Status"] != "SUCCESS" || task["SucceededRecords"].as_u64() != Some(rows) {
        return Err(format!(
            "import: the task ended {} with {} of {rows} records imported: {}",
            task["Status"], task["SucceededRecords"], task["Message"]
        ));
    }
    let handler = if status == 200 {
        handler_seconds(&String::from_utf8_lossy(&log))
    } else {
        None
    };
    let rps = rows as f64 / took.as_secs_f64();

    let shell = sqlite3();
    let sqlite = match &shell {
        Some(shell) => Some(sqlite3_import(shell, &dir.join("sqlite3.db"), &csv, rows)?),
        None => None,
    };
    let mut row = Row::new("import", rps, "rows/s");
    row.figure_text = format!("{} rows/s", rate(rps));
    row.summary = format!(
        "{} rows ({:.0} MB) in {:.2} s from submission to completion (upload {:.2} s{})",
        thousands(rows),
        bytes as f64 / MB,
        took.as_secs_f64(),
        uploaded.as_secs_f64(),
        handler
            .map(|h| format!(", handler {h:.2} s"))
            .unwrap_or_default()
    );
    match sqlite {
        Some(secs) => {
            let sqlite_rps = rows as f64 / secs;
            row.summary.push_str(&format!(
                "; sqlite3 .import {} rows/s ({secs:.2} s)",
                rate(sqlite_rps)
            ));
            row.ratio = Some((rps / sqlite_rps, "sqlite3 .import"));
            row.num("sqlite3_rows_per_s", sqlite_rps)
                .num("sqlite3_seconds", secs);
        }
        None => {
            row.note = Some("sqlite3 .import skipped: apt-get install sqlite3".into());
        }
    }
    row.detail("rows", rows)
        .detail("bytes", bytes)
        .num("seconds", took.as_secs_f64())
        .num("upload_seconds", uploaded.as_secs_f64());
    if let Some(h) = handler {
        row.num("handler_seconds", h)
            .num("handler_rows_per_s", rows as f64 / h);
    }
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_handler_time_is_read_from_the_log() {
        let log = "2026-01-01T00:00:00 Importing import.csv (1 bytes)\n\
                   2026-01-01T00:00:09 Read 1000 records: 1000 imported, 0 duplicates, 0 failed, in 9.125 s\n";
        assert_eq!(handler_seconds(log), Some(9.125));
        assert_eq!(handler_seconds("nothing"), None);
    }

    #[test]
    fn the_pattern_checks_what_its_reader_wrote() {
        let pattern = Pattern::new();
        let mut reader = PatternReader {
            pattern: &pattern,
            offset: 0,
            left: 3 << 20,
        };
        let mut all = Vec::new();
        reader.read_to_end(&mut all).unwrap();
        assert_eq!(all.len(), 3 << 20);
        assert!(pattern.matches(0, &all));
        assert!(pattern.matches(12345, &all[12345..(2 << 20) + 7]));
        all[(1 << 20) + 3] ^= 1;
        assert!(!pattern.matches(0, &all));
    }
}
