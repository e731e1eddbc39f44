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

use taskbox::auth;
use taskbox::config::{self, AuthMode, Config};
use taskbox::{Durability, Registry, Service};

/// mimalloc rather than glibc's malloc: under load, the HTTP threads' many small
/// allocations spent about a seventh of the server's CPU in glibc (see BENCHMARKS.md). The
/// library leaves the choice to whoever embeds it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `purge_delay`: `mi_option_purge_delay`, the 16th of `mi_option_e` in the
/// mimalloc.h that libmimalloc-sys builds (pinned in Cargo.toml for that reason; a test
/// checks its default, 1,000 ms in the mimalloc v3 it builds).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Memory freed goes back to the system at once rather than a second later: a transfer's
/// buffers come and go faster than that, and held back they added about 40 MiB to the
/// resident size during a 256 MiB upload. An operator's `MIMALLOC_PURGE_DELAY` wins.
#[allow(unsafe_code)]
fn give_memory_back_at_once() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: sets one of mimalloc's options to a value its documentation allows (0:
    // purge immediately); no memory is touched.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
}

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
    /// Create, list and revoke access tokens (also while the service runs on the file).
    #[command(subcommand)]
    Token(TokenCommand),
    /// Print every HTTP route (method, path, API family), each behind authentication.
    Routes,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token; its text is printed once, alone on stdout.
    Create(TokenCreateArgs),
    /// List the tokens (never their secrets).
    List(DbArg),
    /// Revoke a token: the service refuses it from its next request.
    Revoke(TokenRevokeArgs),
}

#[derive(clap::Args)]
struct DbArg {
    /// The SQLite database file (created if missing).
    #[arg(long, env = "TASKBOX_DB", default_value = config::DEFAULT_DB)]
    db: PathBuf,
}

#[derive(clap::Args)]
struct TokenCreateArgs {
    /// The user's id: it fills UserId of the tasks the token submits.
    #[arg(long)]
    user_id: i64,
    /// The user's name: it fills UserName of the tasks the token submits.
    #[arg(long, default_value = "")]
    user_name: String,
    /// The client (tenant) whose objects the token sees and owns.
    #[arg(long)]
    client: String,
    /// An administrator's token: it sees every client's objects, and may act for one
    /// with the header X-Taskbox-Client.
    #[arg(long)]
    admin: bool,
    /// How long it lives: a number and a unit, s, m, h, d or w (90d, 12h); by default until
    /// revoked.
    #[arg(long, value_parser = auth::commands::parse_lifetime)]
    expires: Option<Duration>,
    #[command(flatten)]
    db: DbArg,
}

#[derive(clap::Args)]
struct TokenRevokeArgs {
    /// The token's id (the number after tbx_, as `token list` shows it).
    id: i64,
    #[command(flatten)]
    db: DbArg,
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
    /// When requests must carry an access token (Authorization: Bearer): auto, as soon as a
    /// token exists (before, the service runs open, on loopback only); required, always.
    #[arg(long, env = "TASKBOX_AUTH", default_value = "auto", value_parser = parse_auth)]
    auth: AuthMode,
    /// Let the open mode (no token) serve on an address other than loopback: anyone who
    /// can reach the port may then read, change and delete every task.
    #[arg(long, env = "TASKBOX_ALLOW_OPEN_NETWORK")]
    allow_open_network: bool,
    /// The longest a failed authentication's answer is held back, in milliseconds (the
    /// delay grows from 50 ms, doubling per failure of one address).
    #[arg(long, env = "TASKBOX_AUTH_MAX_DELAY_MS", default_value_t = config::DEFAULT_AUTH_MAX_DELAY_MS)]
    auth_max_delay_ms: u64,
    /// Seconds after its last failed authentication that an address starts afresh.
    #[arg(long, env = "TASKBOX_AUTH_FORGET_SECS", default_value_t = config::DEFAULT_AUTH_FORGET_SECS)]
    auth_forget_secs: u64,
    /// The most task ids one import-result query may name (importTaskIds); more is refused.
    #[arg(long, env = "TASKBOX_MAX_IMPORT_TASK_IDS", default_value_t = config::DEFAULT_MAX_IMPORT_TASK_IDS)]
    max_import_task_ids: usize,
    /// The most tasks one bulk submission (POST /webservicetasks/bulk) may hold; more is
    /// refused.
    #[arg(long, env = "TASKBOX_MAX_BULK_TASKS", default_value_t = config::DEFAULT_MAX_BULK_TASKS)]
    max_bulk_tasks: usize,
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

fn parse_auth(text: &str) -> Result<AuthMode, String> {
    AuthMode::parse(text)
        .ok_or_else(|| format!("{text:?} is not an auth mode: use auto or required"))
}

fn parse_durability(text: &str) -> Result<Durability, String> {
    Durability::parse(text)
        .ok_or_else(|| format!("{text:?} is not a durability: use full or normal"))
}

fn main() -> ExitCode {
    give_memory_back_at_once();
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
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Token(command) => token(command),
        Command::Routes => {
            let mut out = std::io::stdout().lock();
            for line in taskbox::route_lines() {
                writeln!(out, "{line}")?;
            }
            Ok(())
        }
    }
}

fn token(command: TokenCommand) -> Result<(), Box<dyn std::error::Error>> {
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    match command {
        TokenCommand::Create(args) => {
            let request = auth::commands::CreateRequest {
                user_id: args.user_id,
                user_name: args.user_name,
                client: args.client,
                admin: args.admin,
                expires_in: args.expires,
            };
            auth::commands::create(&args.db.db, &request, &mut out, &mut err)?
        }
        TokenCommand::List(db) => auth::commands::list(&db.db, &mut out)?,
        TokenCommand::Revoke(args) => auth::commands::revoke(&args.db.db, args.id, &mut err)?,
    }
    Ok(())
}

fn serve(args: ServeArgs) -> Result<(), Box<dyn std::error::Error>> {
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
        auth: args.auth,
        allow_open_network: args.allow_open_network,
        auth_max_delay: Duration::from_millis(args.auth_max_delay_ms),
        auth_forget: Duration::from_secs(args.auth_forget_secs),
        max_import_task_ids: args.max_import_task_ids,
        max_bulk_tasks: args.max_bulk_tasks,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The option `give_memory_back_at_once` sets is purge_delay: its documented default is
    /// 1,000 ms (mimalloc v3's), and nothing in this test process set it.
    #[test]
    #[allow(unsafe_code)]
    fn the_option_set_at_start_is_mimalloc_s_purge_delay() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return;
        }
        // SAFETY: reads one of mimalloc's options.
        let delay = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert_eq!(delay, 1000);
    }
}
