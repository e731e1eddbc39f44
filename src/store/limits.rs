//! What the store refuses so that no client can fill the disk or pin the write-ahead log:
//! per-client quotas, the free-space floor, and the bound on a download's snapshot. The
//! settings of the same names in `Config`; the defaults and why are in RELIABILITY.md.

use std::time::Duration;

/// 64 GiB of stored files per client: generous for one installation's own client, a bound
/// for the others.
pub const DEFAULT_QUOTA_BYTES: u64 = 64 << 30;
/// 100,000 tasks waiting or running per client.
pub const DEFAULT_MAX_UNFINISHED: u64 = 100_000;
/// 256 MiB: below this much free space on the database's filesystem, new uploads and
/// submissions are refused (507) so that running tasks, deletes and SQLite's own journal
/// still have room.
pub const DEFAULT_MIN_FREE_BYTES: u64 = 256 << 20;
/// 30 s: the longest a download reads from one snapshot (see `file_reader`).
pub const DEFAULT_MAX_SNAPSHOT_SECS: u64 = 30;

/// The store's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreLimits {
    /// The most bytes of stored files one client may have; an upload past it is refused.
    pub quota_bytes: u64,
    /// The most tasks one client may have waiting or running; a submission past it is
    /// refused.
    pub max_unfinished: u64,
    /// The free space below which uploads and submissions are refused.
    pub min_free_bytes: u64,
    /// The longest a download reads from one snapshot.
    pub max_snapshot: Duration,
}

impl Default for StoreLimits {
    fn default() -> StoreLimits {
        StoreLimits {
            quota_bytes: DEFAULT_QUOTA_BYTES,
            max_unfinished: DEFAULT_MAX_UNFINISHED,
            min_free_bytes: DEFAULT_MIN_FREE_BYTES,
            max_snapshot: Duration::from_secs(DEFAULT_MAX_SNAPSHOT_SECS),
        }
    }
}
