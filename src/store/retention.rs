//! Retention: finding the finished tasks that ended before a cutoff, and removing them with
//! their files, a few at a time. The search reads on a pooled connection (it may pass many
//! tasks still waiting), never in the writer's transaction; each removal is one short write,
//! so submissions and task ends are never held up behind it. An unfinished task is never
//! removed, however old.

use rusqlite::{params, OptionalExtension};

use super::{Result, Store};
use crate::task::{State, TaskId};

/// Tasks read per page of the search.
const PAGE: i64 = 1000;

/// Finished before the cutoff, in id order from a cursor (ids grow with creation, so the
/// search stops at the first task created at or after the cutoff: no later one can have
/// ended before it).
const PAGE_AFTER: &str = "SELECT id, created_at, end_time FROM tasks WHERE id > ?1 \
     ORDER BY id LIMIT ?2 + 0";

/// Deletes task ?1 if it ended before ?2 (checked again: it may have been deleted, or, never
/// having ended, be running).
const DELETE_EXPIRED: &str = "DELETE FROM tasks WHERE id = ?1 AND end_time IS NOT NULL \
     AND end_time < ?2 RETURNING client, state";

impl Store {
    /// Up to `limit` ids of tasks that ended before `cutoff` (`YYYY-MM-DDTHH:MM:SS`), after
    /// id `after`, oldest first; and where to go on from, None once nothing older is left.
    pub fn expired_tasks(
        &self,
        cutoff: &str,
        after: TaskId,
        limit: usize,
    ) -> Result<(Vec<TaskId>, Option<TaskId>)> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(PAGE_AFTER)?;
        let mut found = Vec::new();
        let mut cursor = after;
        loop {
            let rows: Vec<(TaskId, String, Option<String>)> = stmt
                .query_map(params![cursor, PAGE], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?
                .collect::<rusqlite::Result<_>>()?;
            if rows.is_empty() {
                return Ok((found, None));
            }
            for (id, created_at, end_time) in rows {
                if created_at.as_str() >= cutoff {
                    return Ok((found, None));
                }
                cursor = id;
                if end_time.is_some_and(|end| end.as_str() < cutoff) {
                    found.push(id);
                    if found.len() >= limit {
                        return Ok((found, Some(cursor)));
                    }
                }
            }
        }
    }

    /// Removes those of `ids` that (still) ended before `cutoff`, with their files, in one
    /// short write. Returns how many it removed.
    pub fn remove_expired(&self, ids: Vec<TaskId>, cutoff: &str) -> Result<usize> {
        let cutoff = cutoff.to_string();
        let removed = self.write(move |tx| {
            let mut delete = tx.prepare_cached(DELETE_EXPIRED)?;
            let mut removed = 0;
            let mut last = None;
            for &id in &ids {
                let deleted: Option<(String, i64)> = delete
                    .query_row(params![id, cutoff], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?;
                if let Some((client, state)) = deleted {
                    tx.moved(&client, State::from_code(state), None);
                    removed += 1;
                    last = last.max(Some(id));
                }
            }
            if let Some(last) = last {
                super::task_ids::keep_given(tx, last)?;
            }
            Ok(removed)
        })?;
        if removed > 0 {
            self.activity().bump();
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use crate::clock::{Clock, ManualClock};
    use crate::store::{Durability, Finish, ListFilter, Store, StoreLimits};
    use crate::task::{NewTask, Params, Scope};

    #[test]
    fn only_tasks_finished_before_the_cutoff_are_removed_with_their_files() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::at(1_764_000_000_000));
        let store = Store::open_with(
            &dir.path().join("t.db"),
            Durability::Normal,
            4,
            clock.clone(),
            StoreLimits::default(),
        )
        .unwrap();
        let all = store.scoped(Scope::All);
        let ids = store
            .submit_many(&vec![NewTask::new("sleep", Params::new()); 4])
            .unwrap();
        // 0 and 1 end now; 2 runs; 3 waits.
        let claimed = store.claim_due(3).unwrap().tasks;
        for task in &claimed {
            assert!(store.start(task.id, "default", "me").unwrap());
        }
        // LOGs too long to keep in the row: files of their own, which go with their tasks.
        let log = vec![b'l'; super::super::finish::INLINE_LOG_MAX + 1];
        for id in &ids[..2] {
            assert!(store
                .finish(*id, "default", "me", Finish::success(&log))
                .unwrap());
        }
        // An hour later, 4 finishes; the cutoff is half an hour ago.
        clock.advance(Duration::from_secs(3600));
        let late = all
            .submit(&NewTask::new("sleep", Params::new()))
            .unwrap()
            .task
            .id;
        let claimed = store.claim_due(2).unwrap().tasks;
        for task in &claimed {
            assert!(store.start(task.id, "default", "me").unwrap());
        }
        assert!(store
            .finish(late, "default", "me", Finish::success(&log))
            .unwrap());
        let cutoff = crate::clock::format_ms(clock.now_ms() - 1_800_000);

        let (found, next) = store.expired_tasks(&cutoff, 0, 1).unwrap();
        assert_eq!((found.clone(), next), (vec![ids[0]], Some(ids[0])));
        let (rest, next) = store.expired_tasks(&cutoff, ids[0], 10).unwrap();
        assert_eq!((rest.clone(), next), (vec![ids[1]], None));
        assert_eq!(
            store
                .remove_expired([found, rest].concat(), &cutoff)
                .unwrap(),
            2
        );

        let (tasks, total) = all
            .list(&ListFilter {
                limit: 10,
                ..ListFilter::default()
            })
            .unwrap();
        let left: Vec<_> = tasks.iter().map(|t| t.id).collect();
        assert_eq!((left, total), (vec![late, ids[3], ids[2]], 3));
        // Their LOG files went with them.
        let files: i64 = store
            .conn()
            .unwrap()
            .query_row("SELECT count(*) FROM files", [], |r| r.get(0))
            .unwrap();
        assert_eq!(files, 1, "only the late task's LOG is left");
        // Nothing else is old enough.
        assert_eq!(store.expired_tasks(&cutoff, 0, 10).unwrap(), (vec![], None));
    }
}
