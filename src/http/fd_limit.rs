//! The process's file descriptor limit (RLIMIT_NOFILE) against what the settings need: at
//! start, the soft limit is raised to what `--max-connections` needs when the hard limit
//! allows it, and the start is refused otherwise, naming both numbers. Past the limit the
//! HTTP library can no longer accept a connection, and SQLite no longer open its files.

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// Makes sure the process may open `needed` descriptors, which `--max-connections`
/// `max_connections` asks for; the error says why not, with both numbers.
pub fn ensure_descriptors(needed: u64, max_connections: usize) -> Result<(), String> {
    let limit = getrlimit(Resource::Nofile);
    let soft = limit.current.unwrap_or(u64::MAX);
    if soft >= needed {
        return Ok(());
    }
    let hard = limit.maximum.unwrap_or(u64::MAX);
    let refused = |why: String| {
        format!(
            "--max-connections {max_connections} needs {needed} file descriptors (2 per \
             connection, and those of the database), but {why}: lower --max-connections, or \
             raise the limit (ulimit -Hn, or LimitNOFILE= in a systemd unit)"
        )
    };
    if hard < needed {
        return Err(refused(format!(
            "the process may open at most {hard} (its hard limit, RLIMIT_NOFILE)"
        )));
    }
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(needed),
            maximum: limit.maximum,
        },
    )
    .map_err(|e| {
        refused(format!(
            "raising the descriptor limit from {soft} to it failed ({e})"
        ))
    })?;
    log::info!(
        "raised the file descriptor limit from {soft} to {needed} for --max-connections {max_connections}"
    );
    Ok(())
}
