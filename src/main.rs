//! The taskbox command line: `taskbox serve [options]`. Flags and TASKBOX_* variables become a
//! `Config`; SIGINT and SIGTERM become a graceful shutdown; errors leave through one exit
//! point that prints their chain.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use taskbox::config::{self, Config};
use taskbox::{Durability, Registry, Service};

#[derive(Parser)]
#[command(
    name = "taskbox",
    version,
    about = "An embedded background-task service: one binary, one SQLite file, one HTTP port."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service.
    Serve(ServeArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// The SQLite database file (created if missing).
    #[arg(long, env = "TASKBOX_DB", default_value = config::DEFAULT_DB)]
    db: PathBuf,
    /// The address to listen on; port 0 picks a free port.
    #[arg(long, env = "TASKBOX_LISTEN", default_value = config::DEFAULT_LISTEN)]
    listen: String,
    /// Worker threads running tasks [default: the number of CPUs].
    #[arg(long, env = "TASKBOX_WORKERS")]
    workers: Option<usize>,
    /// The largest file upload, in bytes.
    #[arg(long, env = "TASKBOX_MAX_UPLOAD", default_value_t = config::DEFAULT_MAX_UPLOAD)]
    max_upload: u64,
    /// The largest JSON body (and form fields), in bytes.
    #[arg(long, env = "TASKBOX_MAX_JSON", default_value_t = config::DEFAULT_MAX_JSON)]
    max_json: u64,
    /// The most header lines a request may carry (431 beyond).
    #[arg(long, env = "TASKBOX_MAX_HEADERS", default_value_t = config::DEFAULT_MAX_HEADERS)]
    max_headers: usize,
    /// The most bytes a request's header lines may take in all (431 beyond).
    #[arg(long, env = "TASKBOX_MAX_HEADER_BYTES", default_value_t = config::DEFAULT_MAX_HEADER_BYTES)]
    max_header_bytes: usize,
    /// Seconds a client may take to send a request's head, stay idle between requests, or
    /// pause while sending a body or reading an answer; its connection is closed beyond.
    /// Also the window over which --min-transfer-rate is measured.
    #[arg(long, env = "TASKBOX_READ_TIMEOUT_SECS", default_value_t = config::DEFAULT_READ_TIMEOUT_SECS)]
    read_timeout_secs: u64,
    /// Open client connections beyond which a new one is closed at once. At start, the
    /// descriptor limit is raised to what this needs, or the start is refused.
    #[arg(long, env = "TASKBOX_MAX_CONNECTIONS", default_value_t = config::DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,
    /// Host names (or addresses) clients may reach taskbox by, besides the loopback ones and
    /// the address it listens on; comma-separated. Any other Host is refused (421), and a
    /// web page of another origin may not change tasks (403).
    #[arg(long, env = "TASKBOX_ALLOWED_HOSTS", value_delimiter = ',')]
    allowed_hosts: Vec<String>,
    /// The most bytes of stored files one client may have; an upload past it is refused (413).
    #[arg(long, env = "TASKBOX_QUOTA_BYTES", default_value_t = config::DEFAULT_QUOTA_BYTES)]
    quota_bytes: u64,
    /// The most tasks one client may have waiting or running; a submission past it is
    /// refused (429).
    #[arg(long, env = "TASKBOX_MAX_UNFINISHED_TASKS", default_value_t = config::DEFAULT_MAX_UNFINISHED)]
    max_unfinished_tasks: u64,
    /// Free bytes on the database's filesystem below which uploads and submissions are
    /// refused (507); reads, downloads and deletes go on.
    #[arg(long, env = "TASKBOX_MIN_FREE_BYTES", default_value_t = config::DEFAULT_MIN_FREE_BYTES)]
    min_free_bytes: u64,
    /// Seconds a download reads from one snapshot of the database; past it, it reads on
    /// without holding the write-ahead log back.
    #[arg(long, env = "TASKBOX_MAX_SNAPSHOT_SECS", default_value_t = config::DEFAULT_MAX_SNAPSHOT_SECS)]
    max_snapshot_secs: u64,
    /// Seconds a finished task and its files are kept before they are removed (0: for ever).
    #[arg(long, env = "TASKBOX_RETENTION_SECS", default_value_t = config::DEFAULT_RETENTION_SECS)]
    retention_secs: u64,
    /// Open connections from one IP address beyond which a new one from it is closed at once.
    #[arg(long, env = "TASKBOX_MAX_CONNECTIONS_PER_IP", default_value_t = config::DEFAULT_MAX_CONNECTIONS_PER_IP)]
    max_connections_per_ip: usize,
    /// Threads that read request bodies and send files and long answers; the only ones a
    /// slow client can hold. Others wait their turn.
    #[arg(long, env = "TASKBOX_TRANSFER_THREADS", default_value_t = config::DEFAULT_TRANSFER_THREADS)]
    transfer_threads: usize,
    /// The slowest a body or an answer may move, in bytes per second over each read timeout;
    /// a slower one is cut off.
    #[arg(long, env = "TASKBOX_MIN_TRANSFER_RATE", default_value_t = config::DEFAULT_MIN_TRANSFER_RATE)]
    min_transfer_rate: u64,
    /// Seconds a body may take to arrive, or an answer to be sent; it is cut off beyond.
    #[arg(long, env = "TASKBOX_TRANSFER_TIMEOUT_SECS", default_value_t = config::DEFAULT_TRANSFER_TIMEOUT_SECS)]
    transfer_timeout_secs: u64,
    /// The most bytes of a request read only to be thrown away (an unread body, the rest of a
    /// head over its limit); past it the connection is closed after the answer.
    #[arg(long, env = "TASKBOX_MAX_DRAIN_BYTES", default_value_t = config::DEFAULT_MAX_DRAIN_BYTES)]
    max_drain_bytes: u64,
    /// Seconds a shutdown lets running tasks finish before marking them interrupted.
    #[arg(long, env = "TASKBOX_GRACE_SECS", default_value_t = config::DEFAULT_GRACE_SECS)]
    grace_secs: u64,
    /// full: commits survive power loss; normal: faster, commits survive a crash of the
    /// process but a power loss may lose the last ones.
    #[arg(long, env = "TASKBOX_DURABILITY", default_value = "full", value_parser = parse_durability)]
    durability: Durability,
    /// Threads answering HTTP requests.
    #[arg(long, env = "TASKBOX_HTTP_THREADS", default_value_t = config::DEFAULT_HTTP_THREADS)]
    http_threads: usize,
    /// The longest sleep task accepted, in seconds (400 beyond).
    #[arg(long, env = "TASKBOX_MAX_SLEEP_SECS", default_value_t = config::DEFAULT_MAX_SLEEP_SECS)]
    max_sleep_secs: u64,
    /// The most bytes of tasks in one page of the task list; a page is cut short there.
    #[arg(long, env = "TASKBOX_MAX_LIST_BYTES", default_value_t = config::DEFAULT_MAX_LIST_BYTES)]
    max_list_bytes: usize,
    /// The longest record (one object) of a JSON array of records, in bytes, as
    /// dataset.update reads them; a longer one stops the reading.
    #[arg(long, env = "TASKBOX_MAX_RECORD_BYTES", default_value_t = config::DEFAULT_MAX_RECORD_BYTES)]
    max_record_bytes: u64,
    /// The longest value a dataset.update record may set in a cell, in bytes; a record with
    /// a longer one fails.
    #[arg(long, env = "TASKBOX_MAX_VALUE_BYTES", default_value_t = config::DEFAULT_MAX_VALUE_BYTES)]
    max_value_bytes: u64,
    /// Also register the diagnostic kinds debug.panic, debug.hang, debug.hold and
    /// debug.import (for tests). Only a build with the feature test-kinds has them; any
    /// other refuses to start when asked for them.
    #[arg(long, env = "TASKBOX_TEST_KINDS", hide = true)]
    test_kinds: bool,
}

/// The diagnostic kinds, in a build that has them; any other build refuses to start.
#[cfg(feature = "test-kinds")]
fn add_test_kinds(registry: &mut Registry) -> Result<(), Box<dyn std::error::Error>> {
    registry.register_diagnostic_kinds();
    Ok(())
}

#[cfg(not(feature = "test-kinds"))]
fn add_test_kinds(_: &mut Registry) -> Result<(), Box<dyn std::error::Error>> {
    Err(
        "--test-kinds (TASKBOX_TEST_KINDS) asks for the test kinds, which this build does not \
         have: they exist only in a build with the cargo feature test-kinds, for tests"
            .into(),
    )
}

fn parse_durability(text: &str) -> Result<Durability, String> {
    Durability::parse(text)
        .ok_or_else(|| format!("{text:?} is not a durability: use full or normal"))
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let mut message = format!("taskbox: {e}");
            let mut source = e.source();
            while let Some(cause) = source {
                message.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    let Command::Serve(args) = cli.command;
    let config = Config {
        db_path: args.db,
        listen: args.listen,
        workers: args.workers.unwrap_or_else(config::default_workers),
        http_threads: args.http_threads,
        max_upload: args.max_upload,
        max_json: args.max_json,
        max_headers: args.max_headers,
        max_header_bytes: args.max_header_bytes,
        read_timeout: Duration::from_secs(args.read_timeout_secs),
        max_connections: args.max_connections,
        max_connections_per_ip: args.max_connections_per_ip,
        transfer_threads: args.transfer_threads,
        min_transfer_rate: args.min_transfer_rate,
        transfer_timeout: Duration::from_secs(args.transfer_timeout_secs),
        max_drain_bytes: args.max_drain_bytes,
        grace: Duration::from_secs(args.grace_secs),
        allowed_hosts: args.allowed_hosts,
        quota_bytes: args.quota_bytes,
        max_unfinished_tasks: args.max_unfinished_tasks,
        min_free_bytes: args.min_free_bytes,
        max_snapshot: Duration::from_secs(args.max_snapshot_secs),
        retention: Duration::from_secs(args.retention_secs),
        durability: args.durability,
        max_sleep_secs: args.max_sleep_secs,
        max_list_bytes: args.max_list_bytes,
        max_record_bytes: args.max_record_bytes,
        max_value_bytes: args.max_value_bytes,
    };
    let mut registry = Registry::builtin_with(&config);
    if args.test_kinds {
        add_test_kinds(&mut registry)?;
    }
    // Signals are caught before the service starts, so none is lost in between.
    let mut signals = Signals::new([SIGINT, SIGTERM])?;
    let service = Service::start_with(config, registry)?;
    // The one line a supervisor (or a test) reads to learn the address.
    println!("taskbox listening on http://{}", service.addr());
    std::io::stdout().flush()?;
    if let Some(signal) = signals.forever().next() {
        log::info!("signal {signal}: stopping (running tasks get the grace period)");
    }
    let interrupted = service.shutdown();
    log::info!("stopped; {} task(s) interrupted", interrupted.len());
    Ok(())
}
