//! Group commit: one flush of a file or folder serves every change made before it started.
//!
//! A worker that changed the token folder (a rename) or queued a line for the audit log
//! takes a ticket, then waits for a commit that started after its ticket was issued. When
//! no commit is running, it runs one itself, for every ticket issued so far, with the batch
//! they queued (the log's lines, written in one `write`); the workers that arrive meanwhile
//! wait for the next one, the way a database's log flush serves every transaction waiting
//! on it. N users of a run then ask for far fewer journal commits than N, without `syncfs`
//! (which would flush every tenant's data on the file system).
//!
//! A failed commit fails every ticket it was to cover, for good: a later one that succeeds
//! says nothing about data an earlier one lost.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

/// The tickets, queued batch and commits of one file or folder. `T` is what the tickets
/// queue for the next commit (`()` when there is nothing to carry); `E` a commit's error,
/// cloned for each ticket it fails.
#[derive(Debug)]
pub(crate) struct GroupSync<T, E> {
    state: Mutex<State<T, E>>,
    finished: Condvar,
}

#[derive(Debug)]
struct State<T, E> {
    /// The last ticket handed out.
    issued: u64,
    /// Every ticket up to this one is covered by a commit that succeeded...
    synced: u64,
    /// ...unless it is in the range of a commit that failed: `(after, through, error)`.
    failed: Vec<(u64, u64, E)>,
    syncing: bool,
    /// What the tickets not yet taken by a commit have queued.
    batch: T,
}

/// A change waiting to be covered by a commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ticket(u64);

impl<T: Default, E: Clone> Default for GroupSync<T, E> {
    fn default() -> Self {
        Self {
            state: Mutex::new(State {
                issued: 0,
                synced: 0,
                failed: Vec::new(),
                syncing: false,
                batch: T::default(),
            }),
            finished: Condvar::new(),
        }
    }
}

impl<T: Default, E: Clone> GroupSync<T, E> {
    /// A ticket for a change just made, after `queue` added what the next commit must
    /// carry for it: any commit that starts after this call covers it.
    pub(crate) fn ticket(&self, queue: impl FnOnce(&mut T)) -> Ticket {
        let mut state = self.lock();
        queue(&mut state.batch);
        state.issued += 1;
        Ticket(state.issued)
    }

    /// Returns once `ticket` is covered by a commit that started after it was issued,
    /// running `commit` on this thread, with the batch queued so far, when none is running.
    pub(crate) fn wait(
        &self,
        ticket: Ticket,
        commit: impl FnOnce(T) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut commit = Some(commit);
        let mut state = self.lock();
        loop {
            if let Some((_, _, error)) = state
                .failed
                .iter()
                .find(|(after, through, _)| *after < ticket.0 && ticket.0 <= *through)
            {
                return Err(error.clone());
            }
            if state.synced >= ticket.0 {
                return Ok(());
            }
            match commit.take() {
                Some(run) if !state.syncing => {
                    state.syncing = true;
                    let (after, through) = (state.synced, state.issued);
                    let batch = std::mem::take(&mut state.batch);
                    drop(state);
                    let result = run(batch);
                    state = self.lock();
                    state.syncing = false;
                    match result {
                        Ok(()) => state.synced = state.synced.max(through),
                        Err(e) => state.failed.push((after, through, e)),
                    }
                    self.finished.notify_all();
                }
                other => {
                    commit = other;
                    state = self
                        .finished
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner);
                }
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T, E>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    type Counted = GroupSync<Vec<u32>, i32>;

    #[test]
    fn one_commit_carries_every_batch_queued_before_it_started() {
        let group = Counted::default();
        let commits = Mutex::new(Vec::new());
        let tickets: Vec<Ticket> = (0..5).map(|n| group.ticket(|b| b.push(n))).collect();
        for ticket in tickets {
            group
                .wait(ticket, |batch| {
                    commits.lock().unwrap().push(batch);
                    Ok(())
                })
                .unwrap();
        }
        assert_eq!(*commits.lock().unwrap(), [vec![0, 1, 2, 3, 4]]);
        let later = group.ticket(|b| b.push(5));
        group
            .wait(later, |batch| {
                commits.lock().unwrap().push(batch);
                Ok(())
            })
            .unwrap();
        assert_eq!(
            commits.lock().unwrap().len(),
            2,
            "a new change needs a new commit"
        );
    }

    #[test]
    fn a_failed_commit_fails_its_tickets_even_after_a_later_commit_succeeds() {
        let group = Counted::default();
        let first = group.ticket(|_| ());
        let second = group.ticket(|_| ());
        assert_eq!(group.wait(first, |_| Err(5)), Err(5));
        let third = group.ticket(|_| ());
        group.wait(third, |_| Ok(())).unwrap();
        assert_eq!(
            group.wait(second, |_| Ok(())),
            Err(5),
            "lost data is never reported synced"
        );
    }

    #[test]
    fn threads_share_commits_and_each_change_is_carried_once() {
        let group = Arc::new(Counted::default());
        let carried = Arc::new(Mutex::new(Vec::new()));
        let commits = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8u32)
            .map(|t| {
                let (group, carried, commits) = (
                    Arc::clone(&group),
                    Arc::clone(&carried),
                    Arc::clone(&commits),
                );
                std::thread::spawn(move || {
                    for n in 0..50 {
                        let ticket = group.ticket(|b| b.push(t * 100 + n));
                        group
                            .wait(ticket, |batch| {
                                commits.fetch_add(1, Ordering::SeqCst);
                                std::thread::sleep(std::time::Duration::from_micros(200));
                                carried.lock().unwrap().extend(batch);
                                Ok(())
                            })
                            .unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let mut carried = carried.lock().unwrap().clone();
        carried.sort_unstable();
        let expected: Vec<u32> = (0..8)
            .flat_map(|t| (0..50).map(move |n| t * 100 + n))
            .collect();
        assert_eq!(carried, expected, "every change carried, once");
        let state = group.lock();
        assert_eq!(state.synced, state.issued, "every change was covered");
    }
}
