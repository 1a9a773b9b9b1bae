//! Group commit: one fsync of a file or folder serves every change made before it started.
//!
//! A worker that changed the token folder (a rename) or appended to the audit log takes a
//! ticket, then waits for a sync that started after its ticket was issued. When no sync is
//! running, it runs one itself, for every ticket issued so far; the workers that changed
//! the same file meanwhile wait for the next one, the way a database's log flush serves
//! every transaction waiting on it. N users of a run then ask for far fewer journal
//! commits than N, without `syncfs` (which would flush every tenant's data on the file
//! system).
//!
//! A failed sync fails every ticket it was to cover, for good: a later sync that succeeds
//! says nothing about data an earlier one lost.

use std::io;
use std::sync::{Condvar, Mutex, PoisonError};

/// The tickets and syncs of one file or folder.
#[derive(Debug, Default)]
pub(crate) struct GroupSync {
    state: Mutex<State>,
    finished: Condvar,
}

#[derive(Debug, Default)]
struct State {
    /// The last ticket handed out.
    issued: u64,
    /// Every ticket up to this one is covered by a sync that succeeded...
    synced: u64,
    /// ...unless it is in the range of a sync that failed: `(after, through, error)`.
    failed: Vec<(u64, u64, Failure)>,
    syncing: bool,
}

/// A failed sync's error, given to each of the tickets it was to cover.
#[derive(Debug, Clone)]
struct Failure {
    raw: Option<i32>,
    kind: io::ErrorKind,
    message: String,
}

impl Failure {
    fn of(error: &io::Error) -> Self {
        Self {
            raw: error.raw_os_error(),
            kind: error.kind(),
            message: error.to_string(),
        }
    }

    fn to_error(&self) -> io::Error {
        match self.raw {
            Some(code) => io::Error::from_raw_os_error(code),
            None => io::Error::new(self.kind, self.message.clone()),
        }
    }
}

/// A change waiting to be covered by a sync.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ticket(u64);

impl GroupSync {
    /// A ticket for a change just made: any sync that starts after this call covers it.
    pub(crate) fn ticket(&self) -> Ticket {
        let mut state = self.lock();
        state.issued += 1;
        Ticket(state.issued)
    }

    /// Fails every ticket issued so far that no sync has covered yet, with `error`: what a
    /// sync made outside this group (of a file about to be replaced) reports for them.
    pub(crate) fn fail_pending(&self, error: &io::Error) {
        let mut state = self.lock();
        let (after, through) = (state.synced, state.issued);
        if through > after {
            state.failed.push((after, through, Failure::of(error)));
        }
    }

    /// Returns once `ticket` is covered by a sync that started after it was issued,
    /// running `sync` on this thread for every pending ticket when no sync is running.
    pub(crate) fn wait(
        &self,
        ticket: Ticket,
        sync: impl FnOnce() -> io::Result<()>,
    ) -> io::Result<()> {
        let mut sync = Some(sync);
        let mut state = self.lock();
        loop {
            if let Some((_, _, failure)) = state
                .failed
                .iter()
                .find(|(after, through, _)| *after < ticket.0 && ticket.0 <= *through)
            {
                return Err(failure.to_error());
            }
            if state.synced >= ticket.0 {
                return Ok(());
            }
            match sync.take() {
                Some(run) if !state.syncing => {
                    state.syncing = true;
                    let (after, through) = (state.synced, state.issued);
                    drop(state);
                    let result = run();
                    state = self.lock();
                    state.syncing = false;
                    match result {
                        Ok(()) => state.synced = state.synced.max(through),
                        Err(e) => state.failed.push((after, through, Failure::of(&e))),
                    }
                    self.finished.notify_all();
                }
                other => {
                    sync = other;
                    state = self
                        .finished
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner);
                }
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn one_sync_covers_every_ticket_issued_before_it_started() {
        let group = GroupSync::default();
        let syncs = AtomicUsize::new(0);
        let tickets: Vec<Ticket> = (0..5).map(|_| group.ticket()).collect();
        for ticket in tickets {
            group
                .wait(ticket, || {
                    syncs.fetch_add(1, Ordering::SeqCst);
                    Ok(())
                })
                .unwrap();
        }
        assert_eq!(syncs.load(Ordering::SeqCst), 1);
        let later = group.ticket();
        group
            .wait(later, || {
                syncs.fetch_add(1, Ordering::SeqCst);
                Ok(())
            })
            .unwrap();
        assert_eq!(
            syncs.load(Ordering::SeqCst),
            2,
            "a new change needs a new sync"
        );
    }

    #[test]
    fn a_failed_sync_fails_its_tickets_even_after_a_later_sync_succeeds() {
        let group = GroupSync::default();
        let first = group.ticket();
        let second = group.ticket();
        let err = group
            .wait(first, || Err(io::Error::from_raw_os_error(5)))
            .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(5));
        let third = group.ticket();
        group.wait(third, || Ok(())).unwrap();
        let err = group.wait(second, || Ok(())).unwrap_err();
        assert_eq!(
            err.raw_os_error(),
            Some(5),
            "lost data is never reported synced"
        );
    }

    #[test]
    fn threads_share_syncs_and_each_change_is_covered() {
        let group = Arc::new(GroupSync::default());
        let syncs = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (group, syncs) = (Arc::clone(&group), Arc::clone(&syncs));
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        let ticket = group.ticket();
                        group
                            .wait(ticket, || {
                                syncs.fetch_add(1, Ordering::SeqCst);
                                std::thread::sleep(std::time::Duration::from_micros(200));
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
        let syncs = syncs.load(Ordering::SeqCst);
        assert!((1..=400).contains(&syncs), "{syncs} syncs");
        let state = group.lock();
        assert_eq!(state.synced, state.issued, "every change was covered");
    }
}
