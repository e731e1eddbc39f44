//! taskbox-bench: measures taskbox against the ceilings of the machine it runs on.
//!
//! ```text
//! cargo build --release --bins
//! target/release/taskbox-bench [--quick] [--json FILE] [--durability full|normal] [SCENARIO...]
//! ```
//!
//! Each scenario starts what it measures on a fresh temporary database (a `taskbox`
//! child, the release binary next to this one; the bare tiny_http ceiling server; or, for
//! `in-process`, the library in this process), measures, stops it and prints one table
//! row. `--json FILE` writes the same rows as a JSON array. See BENCHMARKS.md.
//!
//! Modules: `load` (the HTTP load generator), `server` (the child processes and the
//! temporary directories), `procfs` (CPU time, RSS, the machine), `report` (rows and
//! JSON), `scenarios` (one function per scenario).

mod load;
mod procfs;
mod report;
mod scenarios;
mod server;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use report::RunInfo;
use scenarios::{Ctx, SCENARIOS};

const USAGE: &str =
    "usage: taskbox-bench [--quick] [--json FILE] [--durability full|normal] [--token] [SCENARIO...]";

/// The scenarios `--token` runs a second time with an access token on every request, and
/// the names of those rows.
const TOKEN_SCENARIOS: &[&str] = &["submit", "end-to-end", "poll", "list"];
const TOKEN_NAMES: &[&str] = &[
    "submit +token",
    "end-to-end +token",
    "poll +token",
    "list +token",
];

struct Args {
    quick: bool,
    token: bool,
    json: Option<PathBuf>,
    durability: String,
    scenarios: Vec<&'static str>,
}

fn help() -> String {
    let mut text = format!(
        "{USAGE}\n\nMeasures taskbox (the release binary next to this one) against the ceilings of \
         this machine.\n\n  --quick           a few seconds per scenario (CI)\n  --json FILE       \
         also write the rows as a JSON array to FILE\n  --durability D    taskbox's --durability \
         (full, the default, or normal)\n  --token           run submit, end-to-end, poll and list \
         again with an access token\n                    on every request (rows `+token`)\n\nScenarios (all when none is named):\n"
    );
    for (name, about, _) in SCENARIOS {
        text.push_str(&format!("  {name:<12} {about}\n"));
    }
    text
}

fn parse_args(argv: &[String]) -> Result<Args, String> {
    let mut args = Args {
        quick: false,
        token: false,
        json: None,
        durability: "full".into(),
        scenarios: Vec::new(),
    };
    let mut named = Vec::new();
    let mut it = argv.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--quick" => args.quick = true,
            "--token" => args.token = true,
            "--json" => {
                args.json = Some(PathBuf::from(it.next().ok_or("--json needs a file name")?))
            }
            "--durability" => {
                let value = it.next().ok_or("--durability needs full or normal")?;
                let value = value.to_ascii_lowercase();
                if value != "full" && value != "normal" {
                    return Err(format!("--durability is full or normal, not {value:?}"));
                }
                args.durability = value;
            }
            other if other.starts_with('-') => return Err(format!("unknown option {other}")),
            name => {
                if !SCENARIOS.iter().any(|(n, _, _)| *n == name) {
                    let known: Vec<&str> = SCENARIOS.iter().map(|(n, _, _)| *n).collect();
                    return Err(format!(
                        "unknown scenario {name:?}; the scenarios are {}",
                        known.join(", ")
                    ));
                }
                named.push(name.to_string());
            }
        }
    }
    // The scenarios run in the table's order (the ceiling first: submit's ratio uses it).
    args.scenarios = SCENARIOS
        .iter()
        .map(|(n, _, _)| *n)
        .filter(|n| named.is_empty() || named.iter().any(|m| m == n))
        .collect();
    Ok(args)
}

/// The commit measured: `$TASKBOX_BENCH_COMMIT` if set, else that of the repository this
/// was built from, `-dirty` with uncommitted changes.
fn commit() -> String {
    if let Some(commit) = std::env::var("TASKBOX_BENCH_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
    {
        return commit;
    }
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(env!("CARGO_MANIFEST_DIR"))
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match git(&["rev-parse", "--short=12", "HEAD"]) {
        Some(hash) => match git(&["status", "--porcelain", "--untracked-files=no"]) {
            Some(changes) if !changes.is_empty() => format!("{hash}-dirty"),
            _ => hash,
        },
        None => "unknown".into(),
    }
}

/// `cargo run --bin taskbox-bench` rebuilds the harness but not taskbox: says so when the
/// taskbox binary is older than this one, which may mean it is stale.
fn warn_if_older(taskbox: &std::path::Path) {
    let modified = |p: &std::path::Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let me = std::env::current_exe().ok().and_then(|p| modified(&p));
    if let (Some(me), Some(server)) = (me, modified(taskbox)) {
        if server < me {
            eprintln!(
                "taskbox-bench: note: {} was built before this harness; if taskbox changed \
                 since, build both with cargo build --release --bins",
                taskbox.display()
            );
        }
    }
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.first().map(String::as_str) == Some("ceiling-server") {
        return server::ceiling_server(&argv[1..]);
    }
    if argv.iter().any(|a| a == "-h" || a == "--help") {
        print!("{}", help());
        return ExitCode::SUCCESS;
    }
    let args = match parse_args(&argv) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("taskbox-bench: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let needs_taskbox = args.scenarios.iter().any(|s| {
        !matches!(
            *s,
            "ceiling" | "store-ceiling" | "in-process" | "in-process-many"
        )
    });
    let taskbox = server::taskbox_exe();
    if needs_taskbox && taskbox.is_none() {
        let dir = std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(|p| p.display().to_string()))
            .unwrap_or_else(|| "this executable's directory".into());
        eprintln!(
            "taskbox-bench: there is no taskbox binary in {dir}: build it with cargo build --release"
        );
        return ExitCode::from(2);
    }
    if let Some(taskbox) = taskbox.as_deref().filter(|_| needs_taskbox) {
        warn_if_older(taskbox);
    }
    let temp = match server::TempRoot::create() {
        Ok(temp) => temp,
        Err(e) => {
            eprintln!("taskbox-bench: cannot create a temporary directory: {e}");
            return ExitCode::FAILURE;
        }
    };
    let run = RunInfo {
        cores: procfs::cores(),
        cpu_model: procfs::cpu_model(),
        mem_mib: procfs::mem_total_mib(),
        date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
        commit: commit(),
        durability: args.durability.clone(),
        quick: args.quick,
    };
    println!("{}", run.header());
    println!("{}", report::COLUMNS);
    let mut ctx = Ctx {
        quick: args.quick,
        durability: args.durability.clone(),
        temp,
        taskbox,
        ceiling: None,
        store_ceiling: None,
        stored_template: None,
        token: false,
    };
    let mut rows = Vec::new();
    let mut failed = 0;
    let runs = args.scenarios.iter().flat_map(|name| {
        let again = args.token && TOKEN_SCENARIOS.contains(name);
        std::iter::once((*name, false)).chain(again.then_some((*name, true)))
    });
    for (name, token) in runs {
        let (_, _, scenario) = SCENARIOS
            .iter()
            .find(|(n, _, _)| *n == name)
            .expect("parse_args checked the name");
        ctx.token = token;
        let shown = if token {
            format!("{name} +token")
        } else {
            name.to_string()
        };
        match scenario(&mut ctx) {
            Ok(mut row) => {
                if token {
                    row.scenario =
                        TOKEN_NAMES[TOKEN_SCENARIOS.iter().position(|s| *s == name).unwrap_or(0)];
                }
                println!("{}", report::line(&row, &run));
                rows.push(report::row_json(&row, &run));
            }
            Err(error) => {
                failed += 1;
                println!("{}", report::failed_line(&shown, &error, &run));
                rows.push(report::failed_json(&shown, &error, &run));
            }
        }
        let _ = std::io::stdout().flush();
    }
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&rows).expect("rows are JSON");
        if let Err(e) = std::fs::write(path, text + "\n") {
            eprintln!("taskbox-bench: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    if failed > 0 {
        eprintln!("taskbox-bench: {failed} scenario(s) failed");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
