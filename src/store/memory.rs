//! What the store keeps in memory beside the rows: the tasks per client and state
//! (`counts.rs`), the tasks a claim reserved that have not started yet (`claim.rs`), and the
//! last task id given (`task_ids.rs`).
//! The counts and the reservations are moved by the writer's jobs, which report what they
//! changed (`JobTx`); the writer applies a batch's reports with its commit and drops them
//! with its rollback. Both are made anew when the store opens: the counts from the rows,
//! the reservations empty (a task reserved by a process that stopped simply waits again).
//! The last id given only grows: an id given in a batch rolled back is skipped, never
//! given again.
//!
//! A reader that pairs them with rows must see both at one moment: a list (its total beside
//! its page), a claim (the tasks its snapshot finds waiting, less those reserved). The writer
//! holds `commits` (written) from before its COMMIT until the batch's reports are applied;
//! such a reader holds it (read) while its transaction takes its snapshot and it copies what
//! it needs (`at_snapshot`). Without it a list could show a total that is not its page's,
//! and a claim could find a task still waiting in a snapshot taken before its start
//! committed, and no longer reserved after it: a task run twice.

use std::collections::HashSet;
use std::sync::{Mutex, MutexGuard, RwLock};

use rusqlite::Connection;

use super::counts::{slot, Changes, PerState, TaskCounts};
use super::task_ids::TaskIds;
use super::Result;
use crate::task::{State, TaskId};

/// The counts and the reservations, and the lock that keeps them of one moment with the rows;
/// and the last task id given.
#[derive(Default)]
pub(super) struct Memory {
    /// Written by the writer across a commit and the reports' update; read by a reader while
    /// it takes its snapshot and copies what it needs (see the module's doc).
    commits: RwLock<()>,
    counts: Mutex<TaskCounts>,
    reserved: Mutex<Reserved>,
    ids: TaskIds,
}

/// The reserved tasks, and what a claim in progress must not reserve.
#[derive(Default)]
struct Reserved {
    tasks: HashSet<TaskId>,
    /// From a claim's snapshot to its reservations: the reservations ended meanwhile (a
    /// task deleted, say), by commits its snapshot did not see. The claim may have found
    /// such a task waiting, and must not reserve it.
    claim: Option<Ended>,
}

/// Reservations ended while a claim was in progress.
#[derive(Default)]
struct Ended {
    tasks: HashSet<TaskId>,
    all: bool,
}

/// What a job (or a batch) reports, to be applied with its commit.
#[derive(Default)]
pub(super) struct Reports {
    /// How the tasks it inserted, deleted or moved change the counts.
    pub(super) counts: Changes,
    /// Reserved tasks that the commit takes out of the queue (started, ended, or found gone).
    pub(super) released: Vec<TaskId>,
    /// Every reservation goes with the commit (the service stops: no reserved task may
    /// start after it).
    pub(super) release_all: bool,
}

impl Reports {
    /// Adds `other`'s reports to these.
    pub(super) fn absorb(&mut self, other: Reports) {
        self.counts.absorb(other.counts);
        self.released.extend(other.released);
        self.release_all |= other.release_all;
    }
}

impl Memory {
    /// The counts of the tasks in `conn`'s file, and no reservation.
    pub(super) fn load(conn: &Connection) -> Result<Memory> {
        Ok(Memory {
            counts: Mutex::new(TaskCounts::load(conn)?),
            ids: TaskIds::load(conn)?,
            ..Memory::default()
        })
    }

    /// A new task's id (see `task_ids`).
    pub(super) fn new_task_id(&self) -> TaskId {
        self.ids.next()
    }

    fn counts(&self) -> MutexGuard<'_, TaskCounts> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn reserved(&self) -> MutexGuard<'_, Reserved> {
        self.reserved.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `client`'s committed counts (None: all clients' together).
    pub(super) fn counts_of(&self, client: Option<&str>) -> PerState {
        self.counts().of(client)
    }

    /// Runs `pin`, which must take the snapshot of the caller's read transaction (its first
    /// read does), then `copy` on the counts as of that snapshot.
    pub(super) fn at_snapshot<T>(
        &self,
        pin: impl FnOnce() -> Result<()>,
        copy: impl FnOnce(&TaskCounts) -> T,
    ) -> Result<T> {
        let _no_commit = self.commits.read().unwrap_or_else(|e| e.into_inner());
        pin()?;
        Ok(copy(&self.counts()))
    }

    /// A claim's snapshot: runs `pin` (as `at_snapshot`) and returns the tasks reserved as of
    /// that snapshot. From now until `reserve`, the reservations that commits end are noted,
    /// so that the claim does not reserve a task its snapshot saw waiting and a later
    /// commit took out of the queue. One claim at a time (the caller's lock).
    pub(super) fn claim_snapshot(
        &self,
        pin: impl FnOnce() -> Result<()>,
    ) -> Result<HashSet<TaskId>> {
        let _no_commit = self.commits.read().unwrap_or_else(|e| e.into_inner());
        pin()?;
        let mut reserved = self.reserved();
        reserved.claim = Some(Ended::default());
        Ok(reserved.tasks.clone())
    }

    /// Ends the claim begun by `claim_snapshot`: reserves those of `ids` that no commit took
    /// out of the queue since its snapshot, and returns them.
    pub(super) fn reserve(&self, ids: impl IntoIterator<Item = TaskId>) -> HashSet<TaskId> {
        let mut reserved = self.reserved();
        let ended = reserved.claim.take().unwrap_or_default();
        let taken: HashSet<TaskId> = if ended.all {
            HashSet::new()
        } else {
            ids.into_iter()
                .filter(|id| !ended.tasks.contains(id))
                .collect()
        };
        reserved.tasks.extend(&taken);
        taken
    }

    /// Runs `commit` and, if it succeeded, applies `reports`, as one step for the readers of
    /// `at_snapshot`.
    pub(super) fn commit_with(
        &self,
        commit: impl FnOnce() -> Result<()>,
        reports: Reports,
    ) -> Result<()> {
        let _committing = self.commits.write().unwrap_or_else(|e| e.into_inner());
        commit()?;
        self.counts().apply(reports.counts);
        if reports.release_all || !reports.released.is_empty() {
            let mut reserved = self.reserved();
            let Reserved { tasks, claim } = &mut *reserved;
            if reports.release_all {
                tasks.clear();
            }
            for id in &reports.released {
                tasks.remove(id);
            }
            if let Some(ended) = claim {
                ended.all |= reports.release_all;
                ended.tasks.extend(reports.released);
            }
        }
        Ok(())
    }

    /// How many tasks wait (due or not) and are not reserved, as of the last commit: a claim
    /// finding none need not read. (Every reserved task waits: its reservation ends with the
    /// commit that takes it out of the queue.)
    pub(super) fn unreserved_waiting(&self) -> u64 {
        let _no_commit = self.commits.read().unwrap_or_else(|e| e.into_inner());
        let waiting = self.counts().of(None)[slot(State::Queued)];
        waiting.saturating_sub(self.reserved().tasks.len() as u64)
    }

    /// Whether task `id` is reserved, as committed.
    pub(super) fn is_reserved(&self, id: TaskId) -> bool {
        self.reserved().tasks.contains(&id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    /// A reader taking its snapshot while a commit is under way waits for it, and then sees
    /// what the commit changed: never a snapshot with the commit's rows beside the counts and
    /// reservations from before it.
    #[test]
    fn a_snapshot_taken_during_a_commit_waits_for_its_reports() {
        let memory = Arc::new(Memory::default());
        memory.reserve_now([7]);
        let (entered, committing) = crossbeam_channel::bounded::<()>(0);
        let (release, held) = crossbeam_channel::bounded::<()>(0);
        let mut reports = Reports::default();
        reports.counts.moved("a", None, Some(State::Queued));
        reports.released.push(7);
        let writer = {
            let memory = memory.clone();
            std::thread::spawn(move || {
                let commit = || {
                    entered.send(()).unwrap();
                    held.recv().unwrap();
                    Ok(())
                };
                memory.commit_with(commit, reports).unwrap();
            })
        };
        committing.recv().unwrap();
        let (seen, answer) = crossbeam_channel::bounded(1);
        let reader = {
            let memory = memory.clone();
            std::thread::spawn(move || {
                let queued = memory.at_snapshot(
                    || Ok(()),
                    |counts| counts.of(Some("a"))[State::Queued as usize],
                );
                seen.send((queued.unwrap(), memory.is_reserved(7))).unwrap();
            })
        };
        // It cannot answer while the commit holds; it would at once without the lock.
        assert!(
            answer.recv_timeout(Duration::from_millis(200)).is_err(),
            "a snapshot was taken in the middle of a commit"
        );
        release.send(()).unwrap();
        assert_eq!(answer.recv().unwrap(), (1, false));
        writer.join().unwrap();
        reader.join().unwrap();
    }

    #[test]
    fn reports_are_applied_on_commit_and_forgotten_when_it_fails() {
        let memory = Memory::default();
        memory.reserve_now([1, 2]);
        let mut job = Reports::default();
        job.counts.moved("a", None, Some(State::Queued));
        job.counts.moved("a", None, Some(State::Queued));
        job.counts
            .moved("a", Some(State::Queued), Some(State::Running));
        job.released.push(1);
        let mut batch = Reports::default();
        batch.absorb(job);
        assert_eq!(batch.counts.unfinished("a"), 2);
        memory.commit_with(|| Ok(()), batch).unwrap();
        let a = memory.counts_of(Some("a"));
        assert_eq!(
            (a[State::Queued as usize], a[State::Running as usize]),
            (1, 1)
        );
        let mut failed = Reports::default();
        failed
            .counts
            .moved("a", Some(State::Running), Some(State::Succeeded));
        failed.released.push(2);
        let refused = memory.commit_with(|| Err(crate::store::StoreError::DiskFull), failed);
        assert!(refused.is_err());
        assert_eq!(memory.counts_of(Some("a")), a);
        assert_eq!(memory.reserved().tasks, HashSet::from([2]));
    }

    /// A claim does not reserve a task that a commit took out of the queue (a delete)
    /// between its snapshot, which saw the task waiting, and its reservations.
    #[test]
    fn a_claim_does_not_reserve_a_task_ended_after_its_snapshot() {
        let memory = Memory::default();
        assert!(memory.claim_snapshot(|| Ok(())).unwrap().is_empty());
        let mut deleted = Reports::default();
        deleted.released.push(7);
        memory.commit_with(|| Ok(()), deleted).unwrap();
        assert_eq!(memory.reserve([7, 8]), HashSet::from([8]));
        assert!(!memory.is_reserved(7) && memory.is_reserved(8));
        // Nor anything, when the service stopped meanwhile.
        memory.claim_snapshot(|| Ok(())).unwrap();
        let stop = Reports {
            release_all: true,
            ..Reports::default()
        };
        memory.commit_with(|| Ok(()), stop).unwrap();
        assert!(memory.reserve([9]).is_empty());
        assert!(!memory.is_reserved(8) && !memory.is_reserved(9));
    }

    impl Memory {
        /// Reserves `ids` as a claim would.
        fn reserve_now(&self, ids: impl IntoIterator<Item = TaskId>) {
            self.claim_snapshot(|| Ok(())).unwrap();
            self.reserve(ids);
        }
    }
}
