//! Pruning runs' backups (`whmtoken runs --prune --older-than DURATION`): a run begun
//! longer ago than asked loses its backups when it was restored (its access hashes are
//! back, the backups are mere copies), or when forced (it can then never be restored). A
//! run whose forced restore kept the access hashes it replaced holds the only copies of
//! those: it is kept unless forced.
//! Each pruning is journaled (`{"pruned_at": …}`) before the backups go; a dry run only
//! decides. Nothing here prints.

use crate::backend::{BackendError, Retirement};
use crate::clock::Clock;

use super::records::{Journal, Record, RestoreState, RunId};

/// What a pruning is asked to do.
#[derive(Clone, Copy, Debug)]
pub struct PruneRequest {
    /// Only runs begun at least this many seconds ago.
    pub older_than: i64,
    /// Prune runs that were not (or only partly) restored too.
    pub force: bool,
    /// Decide only: nothing is written.
    pub dry_run: bool,
}

/// What became of one run old enough to be pruned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pruning {
    /// Its backups were removed (a dry run: would be); how many (a dry run: how many
    /// would be).
    Pruned { removed: usize },
    /// Kept: it was not restored, or only partly, and pruning was not forced.
    NotRestored(RestoreState),
    /// Kept: a forced restore kept these accounts' replaced access hashes among its
    /// backups (their only copies), and pruning was not forced.
    HoldsReplaced(Vec<String>),
    /// Pruned already, at that time.
    AlreadyPruned(i64),
}

/// Prunes the runs of `retirement` as `request` says, under the server's run lock (not a
/// dry run), oldest first: one entry per run begun long enough ago. The lock could not be
/// taken, the journals could not be read, or a pruning could not be journaled or done:
/// `Err` (the runs before it were pruned).
pub fn prune(
    retirement: &dyn Retirement,
    request: PruneRequest,
    clock: &dyn Clock,
) -> Result<Vec<(RunId, Pruning)>, BackendError> {
    // No run at all: nothing to prune, and no store made (taking the lock would make it).
    if retirement.journals()?.is_empty() {
        return Ok(Vec::new());
    }
    let _lock = (!request.dry_run)
        .then(|| retirement.lock_runs())
        .transpose()?;
    let now = clock.now().timestamp().as_second();
    let old = |j: &Journal| j.started <= now.saturating_sub(request.older_than);
    let mut done = Vec::new();
    for journal in retirement.journals()?.into_iter().filter(old) {
        let pruning = match (journal.pruned_at, journal.restore_state()) {
            (Some(at), _) => {
                // A pruning stopped between its record and its removals is finished.
                if !request.dry_run {
                    retirement.remove_backups(&journal.id)?;
                }
                Pruning::AlreadyPruned(at)
            }
            (None, state) if state != RestoreState::Restored && !request.force => {
                Pruning::NotRestored(state)
            }
            (None, _) if !journal.kept_replaced.is_empty() && !request.force => {
                Pruning::HoldsReplaced(journal.kept_replaced.iter().cloned().collect())
            }
            (None, _) if request.dry_run => Pruning::Pruned {
                removed: retirement.count_backups(&journal.id)?,
            },
            (None, _) => {
                retirement.append(&journal.id, &Record::Pruned { pruned_at: now })?;
                let removed = retirement.remove_backups(&journal.id)?;
                Pruning::Pruned { removed }
            }
        };
        done.push((journal.id, pruning));
    }
    Ok(done)
}
