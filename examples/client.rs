//! A small taskbox client: imports a CSV file with `csv.import`, draws a progress bar while
//! the task runs, prints how it ended and downloads its ERR file if it has one. With
//! `--export` it then exports the dataset with `csv.export` and downloads the result.
//!
//! ```text
//! cargo run --example client -- rates.csv [--url http://127.0.0.1:8080] [--table rates] [--key code] [--export]
//! ```
//!
//! `--url` defaults to `$TASKBOX_URL`, else `http://127.0.0.1:8080`; `--table` defaults to
//! the file's name without its extension. Files are saved in the current directory under
//! the names taskbox gives them (`rates-err.txt`, `rates.csv`); a name already taken gets
//! the prefix `task-<id>-`, so the input file is never overwritten.
//!
//! Exit status: 0 when every task ended SUCCESS, 1 when one did not, 2 when the command
//! line is wrong or taskbox cannot be asked.
//!
//! It speaks plain HTTP through `ureq` and reads JSON with `serde_json`; see docs/api.md
//! for the API.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::thread::sleep;
use std::time::Duration;

use serde_json::{json, Value};

const USAGE: &str =
    "usage: client <file.csv> [--url URL] [--table NAME] [--key COLUMNS] [--export]";
/// How often the task is polled: taskbox stores progress about four times a second.
const POLL: Duration = Duration::from_millis(250);
/// The progress bar's width, in characters.
const BAR: usize = 30;

struct Args {
    file: PathBuf,
    url: String,
    table: String,
    key: Option<String>,
    export: bool,
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(message) => {
            eprintln!("client: {message}");
            ExitCode::from(2)
        }
    }
}

fn parse_args(mut argv: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut file = None;
    let mut url = std::env::var("TASKBOX_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let mut table = None;
    let mut key = None;
    let mut export = false;
    while let Some(arg) = argv.next() {
        let mut value = |name: &str| argv.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--url" => url = value("--url")?,
            "--table" => table = Some(value("--table")?),
            "--key" => key = Some(value("--key")?),
            "--export" => export = true,
            "-h" | "--help" => return Err("Imports a CSV file into taskbox.".into()),
            other if other.starts_with('-') => return Err(format!("unknown option {other}")),
            _ if file.is_none() => file = Some(PathBuf::from(arg)),
            _ => return Err("give one file".into()),
        }
    }
    let file = file.ok_or("give the CSV file to import")?;
    let table = table.unwrap_or_else(|| dataset_name(&file));
    let url = url.trim_end_matches('/').to_string();
    Ok(Args {
        file,
        url,
        table,
        key,
        export,
    })
}

/// A dataset name made from a file name (`Rate Plan 2.csv` → `Rate_Plan_2`): taskbox
/// takes letters, digits and `_`, not starting with a digit, at most 64 characters.
fn dataset_name(file: &Path) -> String {
    let stem = file.file_stem().unwrap_or_default().to_string_lossy();
    let mut name: String = stem
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .take(64)
        .collect();
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, '_');
        name.truncate(64);
    }
    name
}

/// Imports (and maybe exports); true when every task ended SUCCESS.
fn run(args: &Args) -> Result<bool, String> {
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(5))
        .build();
    let tasks = format!("{}/webservicetasks", args.url);

    // Submit the file as the raw request body; kind, table, key and the file's name go in
    // the query string. Setting Content-Length makes ureq stream the file as it is rather
    // than chunked.
    let file = File::open(&args.file).map_err(|e| format!("{}: {e}", args.file.display()))?;
    let size = file.metadata().map_err(|e| e.to_string())?.len();
    let filename = args.file.file_name().unwrap_or_default().to_string_lossy();
    let mut request = agent
        .post(&tasks)
        .query("kind", "csv.import")
        .query("table", &args.table)
        .query("filename", &filename)
        .set("Content-Type", "text/csv")
        .set("Content-Length", &size.to_string());
    if let Some(key) = &args.key {
        request = request.query("key", key);
    }
    let task = data(request.send(file))?;
    let id = task_id(&task)?;
    println!(
        "Importing {} into dataset {} as task {id}",
        args.file.display(),
        args.table
    );

    let task = wait(&agent, &args.url, id)?;
    let mut all_succeeded = report(&task);
    if has_file(&task, "ErrFileName") {
        let saved = download(&agent, &args.url, &task, "ErrorFile", "ErrFileName")?;
        println!(
            "  The rows that failed, with the reason, are in {}",
            saved.display()
        );
    }

    if args.export {
        // A task without a file is simplest to submit as JSON.
        let body = json!({"kind": "csv.export", "params": {"table": args.table}});
        let task = data(
            agent
                .post(&tasks)
                .set("Content-Type", "application/json")
                .send_string(&body.to_string()),
        )?;
        let id = task_id(&task)?;
        println!("Exporting dataset {} as task {id}", args.table);
        let task = wait(&agent, &args.url, id)?;
        all_succeeded &= report(&task);
        if has_file(&task, "IoFileName") {
            let saved = download(&agent, &args.url, &task, "IoFile", "IoFileName")?;
            println!("  The export is in {}", saved.display());
        }
    }
    Ok(all_succeeded)
}

/// The `data` of a JSON answer, or the error message of the envelope `{status, message, data}`.
fn data(answer: Result<ureq::Response, ureq::Error>) -> Result<Value, String> {
    let (ok, code, response) = match answer {
        Ok(response) => (true, response.status(), response),
        Err(ureq::Error::Status(code, response)) => (false, code, response),
        Err(e) => return Err(format!("taskbox cannot be reached: {e}")),
    };
    let text = response.into_string().map_err(|e| e.to_string())?;
    let envelope: Value =
        serde_json::from_str(&text).map_err(|_| format!("HTTP {code}: {text}"))?;
    if ok {
        Ok(envelope["data"].clone())
    } else {
        Err(format!(
            "HTTP {code}: {}",
            envelope["message"].as_str().unwrap_or(&text)
        ))
    }
}

fn task_id(task: &Value) -> Result<i64, String> {
    task["WebServiceTaskId"]
        .as_i64()
        .ok_or_else(|| format!("no task id in {task}"))
}

/// Polls task `id` until it has ended, redrawing one line (`\r`) with a progress bar.
fn wait(agent: &ureq::Agent, url: &str, id: i64) -> Result<Value, String> {
    loop {
        let task = data(agent.get(&format!("{url}/webservicetasks/{id}")).call())?;
        let status = task["Status"].as_str().unwrap_or("?");
        let percent = task["PercentComplete"].as_u64().unwrap_or(0).min(100) as usize;
        let filled = percent * BAR / 100;
        print!(
            "\r[{}{}] {percent:>3}% {status:<12} {} records",
            "#".repeat(filled),
            "-".repeat(BAR - filled),
            task["TotalRecords"]
        );
        io::stdout().flush().map_err(|e| e.to_string())?;
        if matches!(status, "SUCCESS" | "ERROR" | "CANCELED") {
            println!();
            return Ok(task);
        }
        sleep(POLL);
    }
}

/// Prints how a task ended; true when it ended SUCCESS.
fn report(task: &Value) -> bool {
    let status = task["Status"].as_str().unwrap_or("?");
    let message = task["Message"].as_str().unwrap_or("");
    println!(
        "Task {} ended {status}: {message}",
        task["WebServiceTaskId"]
    );
    println!(
        "  records: {} total, {} succeeded, {} duplicates, {} failed",
        task["TotalRecords"],
        task["SucceededRecords"],
        task["DuplicateRecords"],
        task["FailedRecords"]
    );
    status == "SUCCESS"
}

fn has_file(task: &Value, field: &str) -> bool {
    task[field].as_str().is_some_and(|name| !name.is_empty())
}

/// Downloads one of a task's files (`endpoint`: IoFile, ErrorFile or LogFile) into the
/// current directory, under the name in the task's `name_field`.
fn download(
    agent: &ureq::Agent,
    url: &str,
    task: &Value,
    endpoint: &str,
    name_field: &str,
) -> Result<PathBuf, String> {
    let id = task_id(task)?;
    let response = match agent
        .get(&format!("{url}/webservicetasks/{id}/{endpoint}"))
        .call()
    {
        Ok(response) => response,
        // A failed download answers the JSON envelope: let `data` word the error.
        Err(e) => return Err(data(Err(e)).err().unwrap_or_default()),
    };
    // Only the last component of the name, so a download never lands outside this directory.
    let name = task[name_field].as_str().unwrap_or_default();
    let name = Path::new(name)
        .file_name()
        .map_or_else(|| format!("task-{id}"), |n| n.to_string_lossy().into());
    let mut path = PathBuf::from(&name);
    if path.exists() {
        path = PathBuf::from(format!("task-{id}-{name}"));
    }
    let mut out = File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    io::copy(&mut response.into_reader(), &mut out)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}
