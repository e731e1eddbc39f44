//! Room for more: the free-space floor of the database's filesystem, and each client's quota
//! of stored bytes and of unfinished tasks. The checks refuse new work (uploads,
//! submissions); reads, downloads, deletes and running tasks are never refused by them, so a
//! full client or a nearly full disk can always be cleaned up.
//!
//! A client's stored bytes are kept in `client_usage` by triggers on `files` (schema
//! version 4), so a check costs one row; its unfinished tasks are the counts kept in memory
//! (`counts.rs`).

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension};

use super::counts;
use super::writer::JobTx;
use super::{Refusal, Result, Store, StoreError};

/// The bytes of stored files of client ?1.
const USAGE: &str = "SELECT bytes FROM client_usage WHERE client = ?1";

/// The directory holding the database (its filesystem is the one that fills).
pub(super) fn database_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

impl Store {
    /// Refuses new work when the database's filesystem has less than the floor free, with
    /// `more` bytes still to come. A filesystem that cannot be asked is let through: SQLite
    /// reports a truly full disk itself.
    pub(super) fn check_free_space(&self, more: u64) -> Result<()> {
        let floor = self.limits().min_free_bytes;
        if floor == 0 {
            // No floor: a full disk is SQLite's to report.
            return Ok(());
        }
        let free = match rustix::fs::statvfs(&self.inner.dir) {
            Ok(stat) => stat.f_bavail.saturating_mul(stat.f_frsize),
            Err(e) => {
                log::warn!("cannot read the free space of the database's disk: {e}");
                return Ok(());
            }
        };
        if free < floor.saturating_add(more) {
            return Err(StoreError::Refused(Refusal::FreeSpace { free, floor }));
        }
        Ok(())
    }

    /// Refuses an upload of `more` bytes (0: not yet known) that would take `client` past its
    /// quota, or the disk under its floor.
    pub(super) fn check_upload_room(&self, client: &str, more: u64) -> Result<()> {
        self.check_free_space(more)?;
        check_bytes(&*self.conn()?, client, self.limits().quota_bytes, more)
    }
}

/// Refuses `adding` more bytes of `client`'s past `limit`, by the kept usage as `conn` sees
/// it: committed (a pooled connection), or within the writer's transaction.
pub(super) fn check_bytes(conn: &Connection, client: &str, limit: u64, adding: u64) -> Result<()> {
    let used: i64 = conn
        .prepare_cached(USAGE)?
        .query_row([client], |r| r.get(0))
        .optional()?
        .unwrap_or(0);
    if (used.max(0) as u64).saturating_add(adding) > limit {
        return Err(StoreError::Refused(Refusal::BytesQuota { limit }));
    }
    Ok(())
}

impl Store {
    /// Refuses, before the writer, `adding` new tasks of `client`'s that the committed counts
    /// say would take it past its quota of unfinished tasks: a client at its quota that keeps
    /// submitting is so refused without costing the writer a read. The writer's own check
    /// (`check_unfinished_in`) still decides.
    pub(super) fn precheck_unfinished_of(&self, client: &str, adding: u64) -> Result<()> {
        let committed = counts::unfinished(&self.inner.memory.counts_of(Some(client)));
        refuse_past(self.limits().max_unfinished, committed, adding)
    }
}

/// Within the writer's transaction: refuses `adding` more unfinished tasks of `client`'s.
pub(super) fn check_unfinished_in(
    tx: &JobTx<'_, '_>,
    client: &str,
    limit: u64,
    adding: u64,
) -> Result<()> {
    refuse_past(limit, tx.unfinished(client), adding)
}

/// Refuses `adding` tasks to `unfinished` past `limit`.
fn refuse_past(limit: u64, unfinished: u64, adding: u64) -> Result<()> {
    if unfinished.saturating_add(adding) > limit {
        return Err(StoreError::Refused(Refusal::UnfinishedQuota { limit }));
    }
    Ok(())
}

/// The statements every submission runs, for the test that they build no temporary b-tree.
#[cfg(test)]
pub(super) const HOT_STATEMENTS: &[&str] = &[USAGE];

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::store::StoreLimits;
    use crate::task::{NewTask, Params, Scope};

    fn store_with(dir: &tempfile::TempDir, limits: StoreLimits) -> Store {
        Store::open_limited(&dir.path().join("t.db"), limits)
    }

    fn refusal<T: std::fmt::Debug>(result: Result<T>) -> Refusal {
        match result {
            Err(StoreError::Refused(refusal)) => refusal,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn unfinished_tasks_are_held_to_their_quota_and_a_finished_one_frees_its_place() {
        let dir = tempfile::tempdir().unwrap();
        let limits = StoreLimits {
            max_unfinished: 2,
            ..StoreLimits::default()
        };
        let store = store_with(&dir, limits);
        let mine = store.scoped(Scope::Client("default".into()));
        let mut first = NewTask::new("sleep", Params::new());
        first.idempotency_key = Some("k".into());
        let first = mine.submit(&first).unwrap().task.id;
        mine.submit(&NewTask::new("sleep", Params::new())).unwrap();
        let third = mine.submit(&NewTask::new("sleep", Params::new()));
        assert_eq!(refusal(third), Refusal::UnfinishedQuota { limit: 2 });
        // One with a new Idempotency-Key is refused by the writer's own check (the check
        // before the writer leaves keyed submissions to it).
        let mut keyed = NewTask::new("sleep", Params::new());
        keyed.idempotency_key = Some("new".into());
        assert_eq!(
            refusal(mine.submit(&keyed)),
            Refusal::UnfinishedQuota { limit: 2 }
        );
        // All or none: a batch that would pass it stores nothing.
        let batch = vec![NewTask::new("sleep", Params::new()); 2];
        assert_eq!(
            refusal(mine.submit_many(&batch)),
            Refusal::UnfinishedQuota { limit: 2 }
        );
        // A retry of a submission is not a new task.
        let mut retry = NewTask::new("sleep", Params::new());
        retry.idempotency_key = Some("k".into());
        assert_eq!(mine.submit(&retry).unwrap().task.id, first);
        // Another client has its own quota.
        let mut theirs = NewTask::new("sleep", Params::new());
        theirs.owner.client = "other".into();
        store.scoped(Scope::All).submit(&theirs).unwrap();
        // A task that ends frees its place.
        let claimed = store.claim_due(1).unwrap().tasks;
        assert!(store.start(claimed[0].id, "default", "me").unwrap());
        let end = crate::store::Finish::success(b"");
        assert!(store.finish(claimed[0].id, "default", "me", end).unwrap());
        mine.submit(&NewTask::new("sleep", Params::new())).unwrap();
    }

    #[test]
    fn uploads_are_held_to_the_client_s_quota_and_a_delete_frees_it() {
        let dir = tempfile::tempdir().unwrap();
        let limits = StoreLimits {
            quota_bytes: 1000,
            ..StoreLimits::default()
        };
        let store = store_with(&dir, limits);
        let mine = store.scoped(Scope::Client("default".into()));
        let mut first = mine.create_upload().unwrap();
        first.write_all(&[1; 800]).unwrap();
        let first = first.finish().unwrap();
        // Declared up front, and found out while it streams.
        assert_eq!(
            refusal(mine.check_upload(300)),
            Refusal::BytesQuota { limit: 1000 }
        );
        let mut second = mine.create_upload().unwrap();
        second.write_all(&[2; 300]).unwrap();
        assert_eq!(
            refusal(second.commit()),
            Refusal::BytesQuota { limit: 1000 }
        );
        second.discard().unwrap();
        // Another client's files do not count.
        let theirs = store.scoped(Scope::Client("other".into()));
        let mut other = theirs.create_upload().unwrap();
        other.write_all(&[3; 900]).unwrap();
        other.finish().unwrap();
        // Deleting the first frees its bytes, exactly.
        mine.discard_upload(first.id).unwrap();
        mine.check_upload(1000).unwrap();
        let mut third = mine.create_upload().unwrap();
        third.write_all(&[4; 1000]).unwrap();
        third.finish().unwrap();
        assert_eq!(
            refusal(mine.check_upload(1)),
            Refusal::BytesQuota { limit: 1000 }
        );
    }

    #[test]
    fn under_the_free_space_floor_new_work_is_refused_and_reads_go_on() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with(&dir, StoreLimits::default());
        let id = store
            .scoped(Scope::All)
            .submit(&NewTask::new("sleep", Params::new()))
            .unwrap()
            .task
            .id;
        drop(store);
        let limits = StoreLimits {
            min_free_bytes: u64::MAX / 2,
            ..StoreLimits::default()
        };
        let store = store_with(&dir, limits);
        let all = store.scoped(Scope::All);
        let floor = |r| match refusal(r) {
            Refusal::FreeSpace { floor, .. } => floor,
            other => panic!("expected the floor, got {other:?}"),
        };
        assert_eq!(
            floor(
                all.submit(&NewTask::new("sleep", Params::new()))
                    .map(|_| ())
            ),
            u64::MAX / 2
        );
        assert_eq!(floor(all.create_upload().map(|_| ())), u64::MAX / 2);
        assert_eq!(all.task(id).unwrap().id, id);
        assert_eq!(
            all.delete(id, false).unwrap(),
            crate::store::DeleteOutcome::Deleted
        );
    }
}
