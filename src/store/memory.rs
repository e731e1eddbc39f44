//! What the store keeps in memory beside the rows: the tasks per client and state
//! (`counts.rs`), and the tasks a claim reserved that have not started yet (`claim.rs`).
//! Both are moved by the writer's jobs, which report what they changed (`JobTx`); the writer
//! applies a batch's reports with its commit and drops them with its rollback. Both are
//! made anew when the store opens: the counts from the rows, the reservations empty (a task
//! reserved by a process that stopped simply waits again).
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
use super::Result;
use crate::task::{State, TaskId};

/// The counts and the reservations, and the lock that keeps them of one moment with the rows.
#[derive(Default)]
pub(super) struct Memory {
    /// Written by the writer across a commit and the reports' update; read by a reader while
    /// it takes its snapshot and copies what it needs (see the module's doc).
    commits: RwLock<()>,
    counts: Mutex<TaskCounts>,
    reserved: Mutex<HashSet<TaskId>>,
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

/// What a reader may copy at its snapshot (`Memory::at_snapshot`).
pub(super) struct Kept<'a> {
    pub(super) counts: &'a TaskCounts,
    pub(super) reserved: &'a HashSet<TaskId>,
}

impl Memory {
    /// The counts of the tasks in `conn`'s file, and no reservation.
    pub(super) fn load(conn: &Connection) -> Result<Memory> {
        Ok(Memory {
            counts: Mutex::new(TaskCounts::load(conn)?),
            ..Memory::default()
        })
    }

    fn counts(&self) -> MutexGuard<'_, TaskCounts> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn reserved(&self) -> MutexGuard<'_, HashSet<TaskId>> {
        self.reserved.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `client`'s committed counts (None: all clients' together).
    pub(super) fn counts_of(&self, client: Option<&str>) -> PerState {
        self.counts().of(client)
    }

    /// Runs `pin`, which must take the snapshot of the caller's read transaction (its first
    /// read does), then `copy` on what is kept as of that snapshot.
    pub(super) fn at_snapshot<T>(
        &self,
        pin: impl FnOnce() -> Result<()>,
        copy: impl FnOnce(Kept<'_>) -> T,
    ) -> Result<T> {
        let _no_commit = self.commits.read().unwrap_or_else(|e| e.into_inner());
        pin()?;
        let (counts, reserved) = (self.counts(), self.reserved());
        Ok(copy(Kept {
            counts: &counts,
            reserved: &reserved,
        }))
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
        if reports.release_all {
            self.reserved().clear();
        } else if !reports.released.is_empty() {
            let mut reserved = self.reserved();
            for id in reports.released {
                reserved.remove(&id);
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
        waiting.saturating_sub(self.reserved().len() as u64)
    }

    /// Whether task `id` is reserved, as committed.
    pub(super) fn is_reserved(&self, id: TaskId) -> bool {
        self.reserved().contains(&id)
    }

    /// Reserves `ids` (found waiting, and not reserved, by a claim at its snapshot).
    pub(super) fn reserve(&self, ids: impl IntoIterator<Item = TaskId>) {
        self.reserved().extend(ids);
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
        memory.reserve([7]);
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
                let kept = memory.at_snapshot(
                    || Ok(()),
                    |kept| {
                        let queued = kept.counts.of(Some("a"))[State::Queued as usize];
                        (queued, kept.reserved.contains(&7))
                    },
                );
                seen.send(kept.unwrap()).unwrap();
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
        memory.reserve([1, 2]);
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
        assert_eq!(*memory.reserved(), HashSet::from([2]));
    }
}
